//! End to end through this suite's own control plane: `gnt-instance` runs snf-dnshook as a
//! Ganeti post hook, and BIND ends up holding exactly the instance's records.

use std::io::Write as _;
mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use support::*;

const FWD: &str = "example.org";
const REV4: &str = "100.51.198.in-addr.arpa";
const REV6: &str = "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";

/// The gnt-* binaries are built beside ours by `cargo test --workspace`.
fn gnt(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_snf-dnshook")).with_file_name(name);
    p.exists().then_some(p)
}

/// gnt-network and gnt-instance, or `None` once it is said why `test` skips.
fn gnt_tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    skip_reason(test)?;
    let (Some(network), Some(instance)) = (gnt("gnt-network"), gnt("gnt-instance")) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {test}: gnt-network/gnt-instance not built (run cargo test --workspace)"
        );
        return None;
    };
    Some((network, instance))
}

struct Cluster<'a> {
    /// gnt-* commands run in its namespace, and so do the hooks they start.
    named: &'a Named,
    dir: tempfile::TempDir,
    hook_config: PathBuf,
    node: String,
}

impl Cluster<'_> {
    fn run(&self, bin: &Path, args: &[&str]) -> String {
        let out = self
            .named
            .cmd(bin)
            .args(args)
            .env("NETCONF_CONFIG", self.dir.path().join("config.data"))
            .env("NETCONF_HOOKS_DIR", self.dir.path().join("hooks"))
            .env("SNF_DNSHOOK_CONFIG", &self.hook_config)
            .env("SNF_DNSHOOK_NODE", &self.node)
            .output()
            .expect("run gnt command");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{} {args:?} failed: {text}",
            bin.display()
        );
        assert!(
            !text.contains("failed on node"),
            "a post hook failed: {text}"
        );
        text
    }
}

fn ptr4(ip: &str) -> String {
    let o: Vec<&str> = ip.split('.').rev().collect();
    format!("{}.in-addr.arpa.", o.join("."))
}

/// A cluster whose instance hooks run snf-dnshook against `named` (zone example.org).
fn cluster(named: &Named) -> Cluster<'_> {
    let dir = tempfile::tempdir().unwrap();
    let hook_config = dir.path().join("dnshook.toml");
    std::fs::write(
        &hook_config,
        config(named.port, &format!("zone = \"{FWD}\"")),
    )
    .unwrap();
    for op in ["add", "modify", "rename", "remove"] {
        let d = dir.path().join(format!("hooks/instance-{op}-post.d"));
        std::fs::create_dir_all(&d).unwrap();
        symlink(env!("CARGO_BIN_EXE_snf-dnshook"), d.join("50-snf-dnshook")).unwrap();
    }
    // Without a node, the suite names the master (this host) as the primary in hooks.
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    Cluster {
        named,
        dir,
        hook_config,
        node,
    }
}

#[test]
fn gnt_instance_hooks_keep_bind_in_step() {
    let Some((gnt_network, gnt_instance)) = gnt_tools("gnt_instance_hooks_keep_bind_in_step")
    else {
        return;
    };
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4), Zone::new(REV6)], &[KEY]);
    let c = cluster(&named);

    c.run(
        &gnt_network,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--network6",
            "2001:db8:1::/64",
            "--tags",
            "public,nfdhcpd",
            "pub",
        ],
    );
    c.run(
        &gnt_network,
        &["connect", "-N", "mode=bridged,link=br0", "pub"],
    );
    c.run(
        &gnt_instance,
        &[
            "add",
            "--net",
            "0:ip=pool,network=pub,mac=aa:00:00:12:34:56",
            "vm1",
        ],
    );
    let aaaa = "2001:db8:1:0:a800:ff:fe12:3456";
    assert_eq!(named.dig(&format!("vm1.{FWD}"), "A"), ["198.51.100.2"]);
    assert_eq!(named.dig(&format!("vm1.{FWD}"), "AAAA"), [aaaa]);
    assert_eq!(
        named.dig(&ptr4("198.51.100.2"), "PTR"),
        [format!("vm1.{FWD}.")]
    );
    assert_eq!(named.zone_records(REV6).len(), 1);

    c.run(
        &gnt_instance,
        &["modify", "--net", "0:modify,ip=198.51.100.20", "vm1"],
    );
    assert_eq!(named.dig(&format!("vm1.{FWD}"), "A"), ["198.51.100.20"]);
    assert!(
        named.dig(&ptr4("198.51.100.2"), "PTR").is_empty(),
        "stale PTR left"
    );
    assert_eq!(
        named.dig(&ptr4("198.51.100.20"), "PTR"),
        [format!("vm1.{FWD}.")]
    );

    c.run(&gnt_instance, &["rename", "vm1", "vm2"]);
    assert!(
        named.dig(&format!("vm1.{FWD}"), "A").is_empty(),
        "old name left"
    );
    assert_eq!(named.dig(&format!("vm2.{FWD}"), "A"), ["198.51.100.20"]);
    assert_eq!(named.dig(&format!("vm2.{FWD}"), "AAAA"), [aaaa]);
    assert_eq!(
        named.dig(&ptr4("198.51.100.20"), "PTR"),
        [format!("vm2.{FWD}.")]
    );

    c.run(&gnt_instance, &["remove", "vm2"]);
    assert!(
        named.zone_records(FWD).is_empty(),
        "{:?}",
        named.zone_records(FWD)
    );
    assert!(named.zone_records(REV4).is_empty());
    assert!(named.zone_records(REV6).is_empty());
}

/// A NIC on an L2-only network (no IPv4 subnet) is, to the hook, a NIC without IP: its
/// instance gets its AAAA record and no A or IPv4 PTR record, and loses it on removal.
#[test]
fn an_l2_only_nic_gets_only_its_aaaa_record() {
    let Some((gnt_network, gnt_instance)) = gnt_tools("an_l2_only_nic_gets_only_its_aaaa_record")
    else {
        return;
    };
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4), Zone::new(REV6)], &[KEY]);
    let c = cluster(&named);
    c.run(
        &gnt_network,
        &[
            "add",
            "--network6",
            "2001:db8:1::/64",
            "--tags",
            "public",
            "l2",
        ],
    );
    c.run(
        &gnt_network,
        &["connect", "-N", "mode=bridged,link=br0", "l2"],
    );
    c.run(
        &gnt_instance,
        &["add", "--net", "0:network=l2,mac=aa:00:00:12:34:56", "vm1"],
    );
    assert_eq!(
        named.dig(&format!("vm1.{FWD}"), "AAAA"),
        ["2001:db8:1:0:a800:ff:fe12:3456"]
    );
    assert!(named.dig(&format!("vm1.{FWD}"), "A").is_empty());
    assert!(named.zone_records(REV4).is_empty());
    assert_eq!(named.zone_records(REV6).len(), 1);
    c.run(&gnt_instance, &["remove", "vm1"]);
    assert!(named.zone_records(FWD).is_empty());
    assert!(named.zone_records(REV6).is_empty());
}
