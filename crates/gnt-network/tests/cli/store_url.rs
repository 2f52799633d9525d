//! `--store URL` / `NETCONF_STORE`: a bad URL is a usage error (exit 2) that says what is
//! wrong, on every binary, and nothing is read or written.

use crate::harness::*;

#[test]
fn a_bad_store_url_is_a_usage_error_on_every_binary() {
    let c = Cluster::new();
    for (bin, sub) in [
        (NET, "list"),
        (GROUP, "list"),
        (NODE, "list"),
        (INST, "list"),
        (CLUSTER, "verify"),
    ] {
        for (url, why) in [
            ("http://127.0.0.1:2379", "expected etcd://host:port"),
            ("etcd://127.0.0.1", "expected host:port"),
            ("etcd://127.0.0.1:99999", "the port must be a number"),
            ("etcd://127.0.0.1:2379/a/../b", "segments may hold only"),
            ("etcds://127.0.0.1", "expected host:port"),
            ("etcdx://127.0.0.1:2379", "(or etcds:// for TLS)"),
        ] {
            let flag = c.cmd(bin, &[sub, "--store", url]);
            let mut env = c.command(bin, &[sub]);
            let env = env
                .env("NETCONF_STORE", url)
                .env("NETCONF_CACHE_DIR", "")
                .output()
                .unwrap();
            for (code, stderr) in [
                (flag.code, flag.stderr),
                (
                    env.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&env.stderr).into_owned(),
                ),
            ] {
                assert_eq!(code, 2, "{bin} {url}: {stderr}");
                assert!(stderr.contains(why), "{bin} {url}: {stderr}");
            }
        }
    }
    assert!(!c.config().exists(), "nothing was written");
}

/// An etcd that cannot be reached is a command execution error naming the URL and each
/// member's error, not a hang: each member is tried, twice, with a connect timeout.
#[test]
fn an_unreachable_etcd_fails_clearly() {
    let c = Cluster::new();
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let url = "etcd://127.0.0.1:1,127.0.0.2:1/x";
    for (bin, args) in [
        (NET, vec!["list"]),
        (INST, vec!["add", "vm1"]),
        (CLUSTER, vec!["verify"]),
    ] {
        let mut cmd = c.command(bin, &args);
        let o = cmd
            .env("NETCONF_STORE", url)
            .env("NETCONF_CACHE_DIR", "")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "Failure: command execution error:\ncannot reach the etcd cluster {url}: http://127.0.0.1:1: "
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("http://127.0.0.2:1: "), "{err}");
    }
}
