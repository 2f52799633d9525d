//! snf-ifup's openvswitch mode against a real Open vSwitch. ovsdb-server and ovs-vswitchd
//! run inside the test's node namespace, with their database, sockets and logs in the
//! test's scratch directory, on a userspace (`datapath_type=netdev`) bridge: no kernel
//! module is needed and the host's Open vSwitch, if any, is never reached. Needs root and
//! openvswitch-switch; skips otherwise.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Env, Lab, can_run, ok, refs, set};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const SWITCH: &str = "obr0";

fn ovs_installed(test: &str) -> bool {
    for tool in [
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "tcpdump",
    ] {
        if !common::sh(&["sh", "-c", &format!("command -v {tool}")])
            .status
            .success()
        {
            let pkg = if tool == "tcpdump" {
                "tcpdump"
            } else {
                "openvswitch-switch"
            };
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: {tool} is not installed (package {pkg}, scripts/install-test-deps)"
            );
            return false;
        }
    }
    if !Path::new(SCHEMA).exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {test}: {SCHEMA} is missing (package openvswitch-switch, scripts/install-test-deps)"
        );
        return false;
    }
    true
}

/// A private Open vSwitch in the lab's node namespace with one netdev bridge. Dropped
/// before the lab (declare it after), it stops both daemons; the lab's guard then kills
/// whatever is left in the namespace anyway.
struct Ovs {
    dir: PathBuf,
    node: String,
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // Only pids that really are in our namespace: a stale pidfile must not kill a
        // stranger.
        let ours = common::sh(&["ip", "netns", "pids", &self.node]);
        let ours = String::from_utf8_lossy(&ours.stdout).into_owned();
        for daemon in ["ovs-vswitchd", "ovsdb-server"] {
            let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid"))) else {
                continue;
            };
            let pid = pid.trim();
            if ours.split_whitespace().any(|p| p == pid) {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}

impl Ovs {
    fn start(lab: &Lab) -> Ovs {
        let dir = lab.dir.path().join("ovs");
        std::fs::create_dir_all(&dir).unwrap();
        let ovs = Ovs {
            dir,
            node: lab.node.clone(),
        };
        let db = ovs.dir.join("conf.db");
        ovs.cmd("ovsdb-tool")
            .args(["create", db.to_str().unwrap(), SCHEMA])
            .status()
            .unwrap();
        let sock = format!("punix:{}", ovs.dir.join("db.sock").display());
        let common_args = |name: &str| {
            vec![
                format!(
                    "--pidfile={}",
                    ovs.dir.join(format!("{name}.pid")).display()
                ),
                format!(
                    "--log-file={}",
                    ovs.dir.join(format!("{name}.log")).display()
                ),
                "--detach".to_owned(),
                "--no-chdir".to_owned(),
                "-vconsole:off".to_owned(),
            ]
        };
        // --detach returns once the daemon is ready to serve.
        ovs.run_in_node(
            "ovsdb-server",
            &[
                vec![db.to_str().unwrap().to_owned(), format!("--remote={sock}")],
                common_args("ovsdb-server"),
            ]
            .concat(),
        );
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.run_in_node(
            "ovs-vswitchd",
            &[
                vec![format!("unix:{}", ovs.dir.join("db.sock").display())],
                common_args("ovs-vswitchd"),
            ]
            .concat(),
        );
        ovs.vsctl(&[
            "add-br",
            SWITCH,
            "--",
            "set",
            "bridge",
            SWITCH,
            "datapath_type=netdev",
        ]);
        ovs
    }

    /// `program` with the private directories; Open vSwitch's tools read these variables.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for v in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(v, &self.dir);
        }
        c
    }

    fn logs(&self) -> String {
        ["ovsdb-server.log", "ovs-vswitchd.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn run_in_node(&self, program: &str, args: &[String]) -> std::process::Output {
        let o = self
            .cmd("ip")
            .args(["netns", "exec", &self.node, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            o.status.success(),
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.logs()
        );
        o
    }

    /// ovs-vsctl in the node against the private database; fails the test on error. The
    /// timeout turns a daemon that does not answer into a failure instead of a hang.
    fn vsctl(&self, args: &[&str]) -> String {
        let mut v = vec!["--timeout=10".to_owned()];
        v.extend(args.iter().map(|s| (*s).to_owned()));
        let o = self.run_in_node("ovs-vsctl", &v);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn ports(&self) -> Vec<String> {
        self.vsctl(&["list-ports", SWITCH])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `tag`, `trunks` and `vlan_mode` of a port as ovs-vsctl prints them.
    fn vlans(&self, port: &str) -> [String; 3] {
        ["tag", "trunks", "vlan_mode"].map(|c| self.vsctl(&["get", "port", port, c]))
    }
}

fn nic(tap: &str, mac: &str, ip: &str, vlan: &str, ovs: &Ovs) -> Env {
    let mut e = common::nic(tap, mac, ip, "openvswitch", SWITCH, "", "");
    set(&mut e, "VLAN", vlan);
    // snf-ifup's ovs-vsctl must reach the private database.
    set(&mut e, "OVS_RUNDIR", ovs.dir.to_str().unwrap());
    e
}

/// A guest behind `tap` with MAC aa:00:00:00:00:<n> and address `ip`/24 on its eth1.
fn guest(lab: &mut Lab, tap: &str, n: u8, ip: &str) -> String {
    lab.guest_with_ip(tap, &format!("aa:00:00:00:00:{n:02x}"), ip)
}

fn up(lab: &Lab, env: &Env) {
    lab.ifup_ok(&refs(env), &["ganeti", "up"]);
}

fn down(lab: &Lab, ovs: &Ovs, tap: &str) {
    let rundir = ovs.dir.to_str().unwrap();
    lab.ifup_ok(&[("OVS_RUNDIR", rundir)], &["down", tap]);
}

/// The ARP requests that reach `ns`'s eth1, tagged or not, while `send` runs (tcpdump
/// lines with link-level headers).
fn arp_seen(ns: &str, send: impl FnOnce()) -> String {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "tcpdump",
            "-i",
            "eth1",
            "-nn",
            "-e",
            "-l",
            "--immediate-mode",
            "arp or (vlan and arp)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tcpdump");
    // `ip netns exec` execs tcpdump: the child is tcpdump itself.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("tcpdump in {ns} did not start");
        }
    }
    send();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One ARP request from `ns` (for an address nobody has).
fn arp_from(lab: &Lab, ns: &str) {
    lab.ping(ns, "198.51.100.99", &[]);
}

fn lines_with<'a>(seen: &'a str, needle: &str) -> Vec<&'a str> {
    seen.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn openvswitch_access_vlans_isolate_up_is_idempotent_reapply_and_down_removes_the_port() {
    let name =
        "openvswitch_access_vlans_isolate_up_is_idempotent_reapply_and_down_removes_the_port";
    if !can_run(name) || !ovs_installed(name) {
        return;
    }
    let mut lab = Lab::new();
    let ovs = Ovs::start(&lab);
    let g1 = guest(&mut lab, "tap1", 1, "198.51.100.11");
    let g2 = guest(&mut lab, "tap2", 2, "198.51.100.12");
    let e1 = nic("tap1", "aa:00:00:00:00:01", "198.51.100.11", ".100", &ovs);
    // Ganeti also accepts a bare N for .N.
    let mut e2 = nic("tap2", "aa:00:00:00:00:02", "198.51.100.12", "100", &ovs);
    up(&lab, &e1);
    up(&lab, &e2);
    assert_eq!(ovs.ports(), ["tap1", "tap2"]);
    for tap in ["tap1", "tap2"] {
        assert_eq!(ovs.vlans(tap), ["100", "[]", "[]"], "{tap}");
        let link = lab.exec(&["ip", "-o", "link", "show", tap]);
        assert!(link.contains(",UP"), "{link}");
        assert!(lab.state_dir().join(format!("{tap}.toml")).exists());
    }
    assert!(lab.ping_ok(&g1, "198.51.100.12", &[]), "same access VLAN");

    // Again with the same environment: the same port (not removed and re-added), the
    // same settings and state record.
    let uuid = ovs.vsctl(&["get", "port", "tap2", "_uuid"]);
    let record = std::fs::read_to_string(lab.state_dir().join("tap2.toml")).unwrap();
    up(&lab, &e2);
    assert_eq!(ovs.vsctl(&["get", "port", "tap2", "_uuid"]), uuid);
    assert_eq!(ovs.vlans("tap2"), ["100", "[]", "[]"]);
    assert_eq!(ovs.ports(), ["tap1", "tap2"]);
    assert_eq!(
        std::fs::read_to_string(lab.state_dir().join("tap2.toml")).unwrap(),
        record
    );

    // A port lost from the switch (say, a database restored from a backup) comes back with
    // its VLAN from the recorded state.
    ovs.vsctl(&["del-port", SWITCH, "tap1"]);
    assert_eq!(ovs.ports(), ["tap2"]);
    let rundir = ovs.dir.to_str().unwrap();
    lab.ifup_ok(&[("OVS_RUNDIR", rundir)], &["reapply", "--all"]);
    assert_eq!(ovs.ports(), ["tap1", "tap2"]);
    assert_eq!(ovs.vlans("tap1"), ["100", "[]", "[]"]);
    assert!(lab.ping_ok(&g1, "198.51.100.12", &[]), "after reapply");

    // Another VLAN: the tag changes in place and the guests no longer reach each other.
    set(&mut e2, "VLAN", ".200");
    up(&lab, &e2);
    assert_eq!(ovs.vlans("tap2"), ["200", "[]", "[]"]);
    assert_eq!(ovs.vsctl(&["get", "port", "tap2", "_uuid"]), uuid);
    ok(&["ip", "-n", &g1, "neigh", "flush", "all"]);
    ok(&["ip", "-n", &g2, "neigh", "flush", "all"]);
    assert!(!lab.ping_ok(&g1, "198.51.100.12", &[]), "different VLANs");
    assert!(!lab.ping_ok(&g2, "198.51.100.11", &[]), "different VLANs");

    down(&lab, &ovs, "tap1");
    assert_eq!(ovs.ports(), ["tap2"]);
    assert!(!lab.state_dir().join("tap1.toml").exists());
    down(&lab, &ovs, "tap1");
    assert_eq!(ovs.ports(), ["tap2"]);
    down(&lab, &ovs, "tap2");
    assert!(ovs.ports().is_empty());
    assert!(!lab.state_dir().join("tap2.toml").exists());
    // The switch itself is the administrator's: it stays.
    assert_eq!(ovs.vsctl(&["list-br"]), SWITCH);
}

#[test]
fn openvswitch_trunk_and_hybrid_vlans_carry_the_right_frames() {
    let name = "openvswitch_trunk_and_hybrid_vlans_carry_the_right_frames";
    if !can_run(name) || !ovs_installed(name) {
        return;
    }
    let mut lab = Lab::new();
    let ovs = Ovs::start(&lab);
    // a: access 200 (trunked), b: access 301 (not trunked), n: access 100 (the native
    // VLAN of the hybrid form), t: the trunk under test.
    let a = guest(&mut lab, "tap1", 1, "198.51.100.11");
    let t = guest(&mut lab, "tap2", 2, "198.51.100.12");
    let b = guest(&mut lab, "tap3", 3, "198.51.100.13");
    guest(&mut lab, "tap4", 4, "198.51.100.14");
    up(
        &lab,
        &nic("tap1", "aa:00:00:00:00:01", "198.51.100.11", ".200", &ovs),
    );
    up(
        &lab,
        &nic("tap3", "aa:00:00:00:00:03", "198.51.100.13", ".301", &ovs),
    );
    up(
        &lab,
        &nic("tap4", "aa:00:00:00:00:04", "198.51.100.14", ".100", &ovs),
    );
    let trunk = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        ":200:300",
        &ovs,
    );
    let hybrid = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        ".100:200:300",
        &ovs,
    );

    // Trunk: VLAN 200 arrives tagged, VLAN 301 not at all, nothing untagged passes.
    up(&lab, &trunk);
    assert_eq!(ovs.vlans("tap2"), ["[]", "[200, 300]", "[]"]);
    let seen = arp_seen(&t, || {
        arp_from(&lab, &a);
        arp_from(&lab, &b);
    });
    let from_a = lines_with(&seen, "tell 198.51.100.11");
    assert!(!from_a.is_empty(), "{seen}");
    assert!(from_a.iter().all(|l| l.contains("vlan 200,")), "{seen}");
    assert!(lines_with(&seen, "tell 198.51.100.13").is_empty(), "{seen}");
    assert!(!lab.ping_ok(&t, "198.51.100.14", &[]), "no native VLAN");

    // Hybrid: VLAN 100 untagged (native) and 200 tagged.
    up(&lab, &hybrid);
    assert_eq!(ovs.vlans("tap2"), ["100", "[200, 300]", "native-untagged"]);
    assert!(lab.ping_ok(&t, "198.51.100.14", &[]), "native VLAN 100");
    let seen = arp_seen(&t, || arp_from(&lab, &a));
    let from_a = lines_with(&seen, "tell 198.51.100.11");
    assert!(!from_a.is_empty(), "{seen}");
    assert!(from_a.iter().all(|l| l.contains("vlan 200,")), "{seen}");

    // Back to the trunk form: tag and mode are cleared, not left over.
    up(&lab, &trunk);
    assert_eq!(ovs.vlans("tap2"), ["[]", "[200, 300]", "[]"]);
    ok(&["ip", "-n", &t, "neigh", "flush", "all"]);
    assert!(!lab.ping_ok(&t, "198.51.100.14", &[]), "no native VLAN");

    down(&lab, &ovs, "tap2");
    assert_eq!(ovs.ports(), ["tap1", "tap3", "tap4"]);
    assert!(!lab.state_dir().join("tap2.toml").exists());
}

#[test]
fn openvswitch_without_vswitchd_fails_after_ovs_timeout_and_rolls_back() {
    let name = "openvswitch_without_vswitchd_fails_after_ovs_timeout_and_rolls_back";
    if !can_run(name) || !ovs_installed(name) {
        return;
    }
    let mut lab = Lab::new();
    std::fs::write(
        lab.dir.path().join("snf-network.toml"),
        "syslog = false\novs_timeout = 1\n",
    )
    .unwrap();
    let ovs = Ovs::start(&lab);
    guest(&mut lab, "tap1", 1, "198.51.100.11");
    // The database answers but nothing applies its changes: ovs-vsctl would wait forever.
    let pid = std::fs::read_to_string(ovs.dir.join("ovs-vswitchd.pid")).unwrap();
    ok(&["kill", pid.trim()]);
    let e1 = nic("tap1", "aa:00:00:00:00:01", "198.51.100.11", ".100", &ovs);
    let out = lab.ifup(&refs(&e1), &["ganeti", "up"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`ovs-vsctl --timeout=1 --may-exist add-port obr0 tap1")
            && err.contains(
                "was killed by signal 14 (its --timeout ran out: is ovs-vswitchd running?)"
            ),
        "{err}"
    );
    // Rolled back without waiting for the missing vswitchd: no port, no state record.
    assert!(ovs.ports().is_empty(), "{:?}", ovs.ports());
    assert!(!lab.state_dir().join("tap1.toml").exists());
}
