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
            ("etcds://127.0.0.1:2379", "not supported yet"),
        ] {
            let flag = c.cmd(bin, &[sub, "--store", url]);
            let mut env = c.command(bin, &[sub]);
            let env = env.env("NETCONF_STORE", url).output().unwrap();
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
