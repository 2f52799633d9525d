//! The copy of an etcd cluster's heads is on by default (netconf-store(7)): a command run
//! by root without `NETCONF_CACHE_DIR` keeps it in `/run/netconf/etcd-heads` (made mode
//! 0700, its parent 0755 if missing), and `NETCONF_CACHE_DIR=` (empty) turns it off. Run
//! in a private mount namespace with a tmpfs on /run, so that the machine's /run is never
//! written.

use std::process::Command;

use netconf_test_support::{EtcdCluster, need_etcd, need_root, unique_prefix};

const NET: &str = env!("CARGO_BIN_EXE_gnt-network");

/// `gnt-network add` then `list` on `url` with `cache` as NETCONF_CACHE_DIR (`None`:
/// unset), inside a mount namespace whose /run is a fresh tmpfs; what /run/netconf then
/// holds: `find` lines of path and mode.
fn run_in_private_run(url: &str, cache: Option<&str>) -> String {
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /run; \
         {NET} add --network 198.51.100.0/24 net1 >/dev/null; {NET} list >/dev/null; \
         find /run/netconf -printf '%p %m\\n' 2>/dev/null | LC_ALL=C sort || true"
    );
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("NETCONF_STORE", url)
        .env("NETCONF_HOOKS_DIR", "/nonexistent")
        .env_remove("XDG_RUNTIME_DIR");
    match cache {
        Some(v) => c.env("NETCONF_CACHE_DIR", v),
        None => c.env_remove("NETCONF_CACHE_DIR"),
    };
    let o = c.output().expect("unshare");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn roots_copy_of_the_heads_is_kept_in_run_by_default_and_empty_turns_it_off() {
    let t = "roots_copy_of_the_heads_is_kept_in_run_by_default_and_empty_turns_it_off";
    if !need_root(t, "a mount namespace") || !need_etcd(t) {
        return;
    }
    let etcd = EtcdCluster::shared();

    let by_default = run_in_private_run(&etcd.url(&unique_prefix()), None);
    let lines: Vec<&str> = by_default.lines().collect();
    assert_eq!(lines.first(), Some(&"/run/netconf 755"), "{by_default}");
    assert_eq!(
        lines.get(1),
        Some(&"/run/netconf/etcd-heads 700"),
        "{by_default}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("/run/netconf/etcd-heads/heads-") && l.ends_with(".json 600")),
        "no copy of the heads written: {by_default}"
    );

    let off = run_in_private_run(&etcd.url(&unique_prefix()), Some(""));
    assert_eq!(off, "", "NETCONF_CACHE_DIR= wrote: {off}");
}
