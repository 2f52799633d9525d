//! What the tests of `snf-ifup watch` following a cluster store share (`follow.rs` on
//! config.data, `follow_etcd.rs` on etcd): the gnt-* binaries that change the store, the
//! network they start from, and how they wait for a NIC's binding and rules.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use super::Lab;

/// The gnt-* binaries the tests change the store with.
pub const TOOLS: [&str; 2] = ["gnt-network", "gnt-instance"];

/// The directory of the workspace's [`TOOLS`], or `None` after saying why `test` skips.
pub fn gnt_bins(test: &str) -> Option<PathBuf> {
    let b = netconf_test_support::workspace_bins(&TOOLS);
    if b.is_none() {
        eprintln!(
            "SKIP {test}: {} not built next to the test executable (cargo build -p gnt-network)",
            TOOLS.join(", ")
        );
    }
    b
}

/// Fails the test unless gnt-* command `tool args` succeeded, showing its stderr.
pub fn assert_ran(tool: &str, args: &[&str], o: &Output) {
    assert!(
        o.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// net1 (198.51.100.0/24, gateway .1, nfdhcpd and spoof-protected) bridged on br0, made
/// with `gnt` (tool, arguments) against the store under test.
pub fn add_net1(gnt: impl Fn(&str, &[&str])) {
    gnt(
        "gnt-network",
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--tags",
            "nfdhcpd,spoof-protected",
            "net1",
        ],
    );
    gnt("gnt-network", &["connect", "net1", "bridged", "br0"]);
}

/// `tap`'s nfdhcpd binding ("" when there is none).
pub fn binding(lab: &Lab, tap: &str) -> String {
    std::fs::read_to_string(lab.nfdhcpd_dir().join(tap)).unwrap_or_default()
}

/// The firewall lines about `tap`'s NIC.
pub fn fw_of(lab: &Lab, tap: &str) -> String {
    lab.fw_dump()
        .lines()
        .filter(|l| l.contains(tap))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `done` for up to `limit`; how long it took to become true. The limit only bounds
/// the wait for an event (a loaded machine may need much of it), it asserts no speed.
pub fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if done() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not after {} s", limit.as_secs());
}
