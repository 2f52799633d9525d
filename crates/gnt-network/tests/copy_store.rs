//! `gnt-cluster copy-store` on a real etcd: config.data to etcd and back is byte-identical,
//! a non-empty target is refused without --force (and left as it was), --force replaces it.

use std::path::Path;
use std::process::{Command, Output};

use netconf_cluster::config::etcd::EtcdStore;
use netconf_test_support::{EtcdCluster, need_etcd, unique_prefix};

const INST: &str = env!("CARGO_BIN_EXE_gnt-instance");
const NET: &str = env!("CARGO_BIN_EXE_gnt-network");
const GROUP: &str = env!("CARGO_BIN_EXE_gnt-group");
const NODE: &str = env!("CARGO_BIN_EXE_gnt-node");
const CLUSTER: &str = env!("CARGO_BIN_EXE_gnt-cluster");

/// Runs a gnt-* tool on config.data at `cfg` (no etcd in the environment).
fn on_file(bin: &str, cfg: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("NETCONF_CONFIG", cfg)
        .env_remove("NETCONF_STORE")
        .env("NETCONF_HOOKS_DIR", "/nonexistent")
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

fn copy(args: &[&str]) -> Output {
    let mut all = vec!["copy-store"];
    all.extend_from_slice(args);
    Command::new(CLUSTER)
        .args(&all)
        .env_remove("NETCONF_STORE")
        .env_remove("NETCONF_CONFIG")
        .env("TZ", "UTC")
        .output()
        .expect("gnt-cluster")
}

/// A cluster with every kind of object: two groups, nodes in each, networks with reserved
/// addresses, IPv6, a MAC prefix and tags, connected in bridged and openvswitch (VLAN)
/// mode, and instances with pool, fixed and L2-only (no IP) NICs.
fn seed(cfg: &Path) {
    let steps: &[(&str, &[&str])] = &[
        (GROUP, &["add", "g2"]),
        (NODE, &["add", "--primary-ip", "192.0.2.11", "node1"]),
        (
            NODE,
            &["add", "-g", "g2", "--primary-ip", "192.0.2.12", "node2"],
        ),
        (
            NET,
            &[
                "add",
                "--network",
                "198.51.100.0/24",
                "--gateway",
                "198.51.100.1",
                "--add-reserved-ips",
                "198.51.100.10,198.51.100.11,198.51.100.12",
                "--network6",
                "2001:db8:1::/64",
                "--gateway6",
                "2001:db8:1::1",
                "-m",
                "aa:00:01",
                "--tags",
                "nfdhcpd,dns",
                "net1",
            ],
        ),
        (
            NET,
            &[
                "add",
                "--network",
                "203.0.113.0/26",
                "--gateway",
                "203.0.113.1",
                "--allocation-range",
                "203.0.113.20-203.0.113.29",
                "net2",
            ],
        ),
        // A network without an IPv4 subnet (L2 only), with an IPv6 subnet.
        (NET, &["add", "--network6", "2001:db8:2::/64", "l2net"]),
        (NET, &["connect", "-N", "mode=bridged,link=br2", "l2net"]),
        (NET, &["connect", "-N", "mode=bridged,link=br0", "net1"]),
        (
            NET,
            &[
                "connect",
                "-N",
                "mode=openvswitch,link=ovs0,vlan=42",
                "net2",
                "g2",
            ],
        ),
        (INST, &["add", "--net", "0:ip=pool,network=net1", "web1"]),
        (
            INST,
            &[
                "add",
                "-n",
                "node2",
                "--net",
                "0:ip=pool,network=net1",
                "--net",
                "1:ip=pool,network=net2",
                "web2",
            ],
        ),
        (
            INST,
            &["add", "--net", "0:ip=198.51.100.77,network=net1", "db1"],
        ),
        (INST, &["add", "--net", "0:mode=bridged,link=br9", "l2only"]),
        (INST, &["add", "--net", "0:network=l2net", "onl2"]),
    ];
    for (bin, args) in steps {
        ok(on_file(bin, cfg, args), &format!("{args:?}"));
    }
}

/// Issue 14: file → etcd → file gives config.data byte for byte; the copy on etcd verifies
/// as the source did and the tools read it.
#[test]
fn file_to_etcd_and_back_is_byte_identical() {
    if !need_etcd("file_to_etcd_and_back_is_byte_identical") {
        return;
    }
    let etcd = EtcdCluster::shared();
    let url = etcd.url(&unique_prefix());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("config.data");
    seed(&src);
    let before = std::fs::read(&src).unwrap();

    let out = ok(
        copy(&["--from", src.to_str().unwrap(), "--to", &url]),
        "copy to etcd",
    );
    assert!(
        out.contains("5 instances") && out.contains("3 networks") && out.contains("verified"),
        "{out}"
    );
    // The tools see the same cluster on etcd.
    let list = |o: Output| ok(o, "list");
    let on_etcd = |bin: &str, args: &[&str]| {
        Command::new(bin)
            .args(args)
            .env("NETCONF_STORE", &url)
            .env("NETCONF_CACHE_DIR", "")
            .env("TZ", "UTC")
            .output()
            .unwrap()
    };
    for (bin, args) in [
        (INST, &["list", "-o", "name,nic.ips,nic.macs"][..]),
        (NET, &["info", "net1"]),
        (NODE, &["list"]),
    ] {
        assert_eq!(
            list(on_etcd(bin, args)),
            list(on_file(bin, &src, args)),
            "{args:?}"
        );
    }
    let verify_file = on_file(CLUSTER, &src, &["verify", "--error-codes"]);
    let verify_etcd = on_etcd(CLUSTER, &["verify", "--error-codes"]);
    assert_eq!(verify_file.status.code(), verify_etcd.status.code());

    // Back to a new file: byte-identical.
    let back = dir.path().join("back/config.data");
    std::fs::create_dir(back.parent().unwrap()).unwrap();
    let to = format!("file://{}", back.display());
    ok(copy(&["--from", &url, "--to", &to]), "copy back");
    assert_eq!(
        std::fs::read(&back).unwrap(),
        before,
        "file -> etcd -> file changed config.data"
    );
    // And the copied-back file works as the source did.
    ok(
        on_file(
            INST,
            &back,
            &[
                "add",
                "-n",
                "node2",
                "--net",
                "0:ip=pool,network=net2",
                "web3",
            ],
        ),
        "add on the copy",
    );
}

/// A target that holds a cluster is refused without --force (exit 1, one line saying why,
/// target untouched, both ways); --force replaces it with the source.
#[test]
fn non_empty_target_is_refused_without_force_and_replaced_with_it() {
    if !need_etcd("non_empty_target_is_refused_without_force_and_replaced_with_it") {
        return;
    }
    let etcd = EtcdCluster::shared();
    let url = etcd.url(&unique_prefix());
    let store = EtcdStore::new(&url.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("config.data");
    seed(&src);

    // etcd holds another cluster (made by the tools there).
    let o = Command::new(NET)
        .args(["add", "--network", "192.0.2.0/24", "other"])
        .env("NETCONF_STORE", &url)
        .env("NETCONF_CACHE_DIR", "")
        .output()
        .unwrap();
    ok(o, "a cluster on etcd");
    let etcd_before = store.raw_dump().unwrap();
    let o = copy(&["--from", src.to_str().unwrap(), "--to", &url]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not empty; refusing to overwrite it (use --force"),
        "{err}"
    );
    // Ganeti's form of an execution error: the heading, then the one line that says why.
    assert!(
        err.starts_with("Failure: command execution error:\n"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 2, "{err}");
    assert_eq!(
        store.raw_dump().unwrap(),
        etcd_before,
        "the refused target changed"
    );

    // The other way: an existing config.data is refused too.
    let file_before = std::fs::read(&src).unwrap();
    let o = copy(&["--from", &url, "--to", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&src).unwrap(), file_before);

    // --force replaces: etcd now holds the file's cluster, nothing of 'other' left.
    ok(
        copy(&["--from", src.to_str().unwrap(), "--to", &url, "--force"]),
        "copy --force",
    );
    let names = ok(
        Command::new(NET)
            .args(["list", "--no-headers", "-o", "name"])
            .env("NETCONF_STORE", &url)
            .env("NETCONF_CACHE_DIR", "")
            .output()
            .unwrap(),
        "list",
    );
    assert_eq!(names, "l2net\nnet1\nnet2\n");
    let back = dir.path().join("again.data");
    ok(
        copy(&["--from", &url, "--to", back.to_str().unwrap()]),
        "back",
    );
    assert_eq!(std::fs::read(&back).unwrap(), file_before);

    // And file --force over file, from etcd's copy: byte-identical too.
    ok(
        copy(&["--from", &url, "--to", src.to_str().unwrap(), "--force"]),
        "file --force",
    );
    assert_eq!(std::fs::read(&src).unwrap(), file_before);
}

/// A copy of more objects than one etcd txn takes (128 ops) is written in chunks and reads
/// back whole; bad URLs and an empty source are refused.
#[test]
fn large_cluster_copies_in_chunks_and_bad_urls_are_refused() {
    if !need_etcd("large_cluster_copies_in_chunks_and_bad_urls_are_refused") {
        return;
    }
    let etcd = EtcdCluster::shared();
    let url = etcd.url(&unique_prefix());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("config.data");
    ok(
        on_file(NET, &src, &["add", "--network", "10.8.0.0/20", "big"]),
        "net",
    );
    ok(
        on_file(NET, &src, &["connect", "-N", "link=br0", "big"]),
        "connect",
    );
    for k in 0..150 {
        ok(
            on_file(
                INST,
                &src,
                &["add", "--net", "0:ip=pool,network=big", &format!("vm{k}")],
            ),
            "add",
        );
    }
    let before = std::fs::read(&src).unwrap();
    ok(
        copy(&["--from", src.to_str().unwrap(), "--to", &url]),
        "copy",
    );
    let back = dir.path().join("back.data");
    ok(
        copy(&["--from", &url, "--to", back.to_str().unwrap()]),
        "back",
    );
    assert_eq!(std::fs::read(&back).unwrap(), before);

    let empty = dir.path().join("nothing.data");
    for (args, code, says) in [
        (
            vec!["--from", empty.to_str().unwrap(), "--to", &url],
            1,
            "holds no cluster",
        ),
        (
            vec!["--from", "ftp://x/y", "--to", &url],
            2,
            "unknown store scheme",
        ),
        (
            vec!["--from", "file://rel/path", "--to", &url],
            2,
            "absolute path",
        ),
        (vec!["--from", &url, "--to", &url], 1, "the same store"),
    ] {
        let o = copy(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
