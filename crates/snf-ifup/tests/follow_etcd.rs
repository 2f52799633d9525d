//! `snf-ifup` on a cluster store in etcd (issue 14 points 4 and 5): `watch --store`
//! re-applies a NIC after `gnt-instance modify --store` (run as another node would: its
//! own process, its own connection), survives etcd outages (a member, all members),
//! resumes from the last revision it saw, resyncs after a compaction past it, and keeps a
//! local snapshot that `up --instance` boots from while etcd is down.
//!
//! A real 3-member etcd runs inside the node namespace (its own loopback), real gnt-*
//! binaries, real firewall. Needs root, etcd and the workspace's gnt-* binaries; skips
//! otherwise. The tests of this file run one at a time (each cluster preallocates about
//! 370 MB of WAL).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::follow::{add_net1, assert_ran, binding, fw_of, gnt_bins, until};
use common::watcher::Watcher;
use common::{Lab, can_run};
use netconf_test_support::{EtcdInNetns, need_etcd};

const MAC1: &str = "aa:00:00:00:00:01";
const MAC2: &str = "aa:00:00:00:00:02";
/// How long a change may take to be followed: etcd elections and reconnections take seconds.
const WAIT: Duration = Duration::from_secs(30);
const PREFIX: &str = "/cluster1";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A gnt-* command in the node namespace, against the store at `url`, as any node runs it.
fn gnt(lab: &Lab, bin: &Path, url: &str, tool: &str, args: &[&str]) {
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.node])
        .arg(bin.join(tool))
        .args(args)
        .env("NETCONF_STORE", url)
        .env("NETCONF_CACHE_DIR", "")
        .env("NETCONF_CONFIG", lab.dir.path().join("no-config.data"))
        .env("NETCONF_HOOKS_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert_ran(tool, args, &o);
}

fn bins(test: &str) -> Option<PathBuf> {
    if !can_run(test) || !need_etcd(test) {
        return None;
    }
    if !netconf_test_support::on_path("etcdctl") {
        netconf_test_support::skip(test, "needs etcdctl (Debian's etcd-client)");
        return None;
    }
    gnt_bins(test)
}

/// A lab with two guests (tap1, tap2), a 3-member etcd in the node, and in it net1
/// (198.51.100.0/24, nfdhcpd and spoof-protected) with vm1 (198.51.100.11) and vm2
/// (198.51.100.12).
struct Setup {
    // Declared first: the members go before the lab's namespace.
    etcd: EtcdInNetns,
    lab: Lab,
    bin: PathBuf,
    url: String,
    // Declared last: the next test starts once this one's members and namespace are gone.
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Setup {
    /// The setup of `test` once no other test of this file runs; `None` when it skips.
    fn start(test: &str) -> Option<Setup> {
        let bin = bins(test)?;
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        Some(Setup::new(bin, one))
    }

    fn new(bin: PathBuf, one_at_a_time: MutexGuard<'static, ()>) -> Setup {
        let mut lab = Lab::new();
        lab.bridge("br0", 1500);
        lab.guest("tap1", MAC1);
        lab.guest("tap2", MAC2);
        let etcd = EtcdInNetns::start(&lab.node, &lab.dir.path().join("etcd"));
        let url = etcd.url(PREFIX);
        let s = Setup {
            etcd,
            lab,
            bin,
            url,
            _one_at_a_time: one_at_a_time,
        };
        add_net1(|tool, args| s.gnt(tool, args));
        let nic1 = format!("0:ip=198.51.100.11,network=net1,mac={MAC1}");
        let nic2 = format!("0:ip=198.51.100.12,network=net1,mac={MAC2}");
        s.gnt("gnt-instance", &["add", "--net", &nic1, "vm1"]);
        s.gnt("gnt-instance", &["add", "--net", &nic2, "vm2"]);
        s
    }

    fn gnt(&self, tool: &str, args: &[&str]) {
        gnt(&self.lab, &self.bin, &self.url, tool, args);
    }

    fn up(&self, url: &str, tap: &str, instance: &str, env: &[(&str, &str)]) -> Output {
        let mut e = vec![("NETCONF_STORE", url)];
        e.extend_from_slice(env);
        self.lab
            .ifup(&e, &["up", tap, "--instance", instance, "--nic", "0"])
    }

    /// `gnt-instance modify` of vm1's address; how long until tap1's binding and rules
    /// carry it (printed, not asserted).
    fn modify_and_follow(&self, ip: &str, what: &str) {
        let t0 = Instant::now();
        self.gnt(
            "gnt-instance",
            &["modify", "--net", &format!("0:ip={ip}"), "vm1"],
        );
        let after_cmd = t0.elapsed();
        until(&format!("{ip} in tap1's binding and rules"), WAIT, || {
            binding(&self.lab, "tap1").contains(&format!("IP={ip}\n"))
                && fw_of(&self.lab, "tap1").contains(ip)
        });
        let took = t0.elapsed();
        eprintln!(
            "{what}: re-applied {} ms after gnt-instance modify returned ({} ms with the command)",
            (took - after_cmd).as_millis(),
            took.as_millis()
        );
    }

    fn snapshot(&self) -> PathBuf {
        self.lab.state_dir().join("store/cluster.data")
    }
}

#[test]
fn watch_on_etcd_reapplies_a_modify_survives_outages_and_unrules_a_removed_instance() {
    let Some(mut s) = Setup::start(
        "watch_on_etcd_reapplies_a_modify_survives_outages_and_unrules_a_removed_instance",
    ) else {
        return;
    };
    let o = s.up(&s.url, "tap1", "vm1", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(binding(&s.lab, "tap1").contains("IP=198.51.100.11\n"));

    let w = Watcher::start(&s.lab, &["watch", "--store", &s.url]);
    s.modify_and_follow("198.51.100.21", "live");
    let l = w.wait_for("changed in the cluster store");
    assert!(l.contains("IP"), "{l}");

    // The member the watch is on dies: it goes on through another one.
    s.etcd.kill(0);
    w.wait_for("lost the watch");
    s.etcd.wait_healthy(&[1, 2]);
    s.modify_and_follow("198.51.100.22", "one member down");
    w.wait_for("again through");
    s.etcd.launch(0);
    s.etcd.wait_healthy(&[0, 1, 2]);

    // Every member dies: what is applied stays; they come back, and a modify is followed.
    let applied = (binding(&s.lab, "tap1"), fw_of(&s.lab, "tap1"));
    for i in 0..3 {
        s.etcd.kill(i);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!((binding(&s.lab, "tap1"), fw_of(&s.lab, "tap1")), applied);
    for i in 0..3 {
        s.etcd.launch(i);
    }
    s.etcd.wait_healthy(&[0, 1, 2]);
    s.modify_and_follow("198.51.100.23", "after all members restarted");

    // vm1 leaves the store while tap1 exists: its rules and binding go, with a warning;
    // the TAP stays.
    s.gnt("gnt-instance", &["remove", "vm1"]);
    let took = until("tap1's rules removed", WAIT, || {
        fw_of(&s.lab, "tap1").is_empty()
            && !s.lab.nfdhcpd_dir().join("tap1").exists()
            && !s.lab.state_dir().join("tap1.toml").exists()
    });
    eprintln!(
        "rules removed {} ms after gnt-instance remove",
        took.as_millis()
    );
    let l = w.wait_for("no longer in the cluster store");
    assert!(l.contains("tap1") && l.contains("vm1"), "{l}");
    assert!(
        s.lab
            .exec(&["ip", "-o", "link", "show", "tap1"])
            .contains("tap1")
    );
}

#[test]
fn watch_on_etcd_resumes_from_its_revision_and_resyncs_after_a_compaction() {
    let Some(mut s) =
        Setup::start("watch_on_etcd_resumes_from_its_revision_and_resyncs_after_a_compaction")
    else {
        return;
    };
    let o = s.up(&s.url, "tap1", "vm1", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The watcher knows member 0 only: while it is down, the others go on without it.
    let w = Watcher::start(&s.lab, &["watch", "--store", &s.etcd.member_url(0, PREFIX)]);
    s.modify_and_follow("198.51.100.21", "live");

    // Changed while the watch is away: seen when it comes back, from where it left off.
    s.etcd.kill(0);
    w.wait_for("lost the watch");
    s.etcd.wait_healthy(&[1, 2]);
    s.gnt(
        "gnt-instance",
        &["modify", "--net", "0:ip=198.51.100.31", "vm1"],
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(binding(&s.lab, "tap1").contains("IP=198.51.100.21\n"));
    s.etcd.launch(0);
    let l = w.wait_for("again through");
    assert!(l.contains("from revision"), "{l}");
    until("198.51.100.31 in tap1's binding", WAIT, || {
        binding(&s.lab, "tap1").contains("IP=198.51.100.31\n")
    });

    // Changed and then compacted away while the watch is away: it cannot resume, it
    // reads the whole store again.
    s.etcd.kill(0);
    w.wait_for("lost the watch");
    s.etcd.wait_healthy(&[1, 2]);
    s.gnt(
        "gnt-instance",
        &["modify", "--net", "0:ip=198.51.100.32", "vm1"],
    );
    // etcd keeps the compacted revision itself: one more write (outside the prefix) puts
    // the compaction past the revision the watch resumes from, the modify's.
    let p = s.etcd.etcdctl_at(1, &["put", "/elsewhere", "x"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let rev = s.etcd.revision(1);
    let c = s.etcd.etcdctl_at(1, &["compaction", &rev.to_string()]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    // Long enough for the watcher's backoff to outlast member 0's catching up.
    std::thread::sleep(Duration::from_secs(3));
    s.etcd.launch(0);
    let l = w.wait_for("compacted");
    assert!(l.contains("reading the whole store again"), "{l}");
    until("198.51.100.32 in tap1's binding", WAIT, || {
        binding(&s.lab, "tap1").contains("IP=198.51.100.32\n")
            && fw_of(&s.lab, "tap1").contains("198.51.100.32")
    });
}

#[test]
fn up_on_etcd_boots_from_the_local_snapshot_while_etcd_is_down() {
    let Some(mut s) = Setup::start("up_on_etcd_boots_from_the_local_snapshot_while_etcd_is_down")
    else {
        return;
    };
    // Nothing followed yet: the watcher keeps the snapshot anyway.
    let _w = Watcher::start(&s.lab, &["watch", "--store", &s.url]);
    let snap = s.snapshot();
    until("the local snapshot", WAIT, || snap.is_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    for i in 0..3 {
        s.etcd.kill(i);
    }
    let t0 = Instant::now();
    let o = s.up(&s.url, "tap2", "vm2", &[]);
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    eprintln!("up from the snapshot took {} ms", took.as_millis());
    assert!(
        err.contains("using the local snapshot") && err.contains("of revision"),
        "{err}"
    );
    assert!(binding(&s.lab, "tap2").contains("IP=198.51.100.12\n"));
    assert!(fw_of(&s.lab, "tap2").contains("198.51.100.12"));

    // Without a snapshot: a clear failure, nothing configured.
    let toml = s.lab.dir.path().join("no-snapshot.toml");
    std::fs::write(
        &toml,
        format!(
            "syslog = false\nstore_snapshot = \"{}\"\n",
            s.lab.dir.path().join("none/cluster.data").display()
        ),
    )
    .unwrap();
    let o = s.up(
        &s.url,
        "tap1",
        "vm1",
        &[("SNF_NETWORK_CONFIG", toml.to_str().unwrap())],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the cluster store") && err.contains("no usable local snapshot"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(binding(&s.lab, "tap1").is_empty());
    assert!(fw_of(&s.lab, "tap1").is_empty());
}
