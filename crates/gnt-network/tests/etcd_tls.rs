//! The cluster store on a real 3-member etcd serving its clients over TLS with client
//! certificates (`--client-cert-auth`): the gnt-* commands work over `etcds://` with the
//! CA, certificate and key their settings file names, and each way the TLS can be wrong (a
//! CA that did not sign the members, no client certificate, plain `etcd://`, a host name
//! the members' certificates are not for, a key others may read) fails as every store
//! error does: exit 1, `Failure:` and the reason, nothing written.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use netconf_test_support::{EtcdCluster, need_etcd, unique_prefix};

const NET: &str = env!("CARGO_BIN_EXE_gnt-network");
const INST: &str = env!("CARGO_BIN_EXE_gnt-instance");
const GROUP: &str = env!("CARGO_BIN_EXE_gnt-group");
const NODE: &str = env!("CARGO_BIN_EXE_gnt-node");
const CLUSTER: &str = env!("CARGO_BIN_EXE_gnt-cluster");

/// One TLS cluster for the tests of this file; its watchdog removes it with the process.
fn cluster() -> &'static EtcdCluster {
    static TLS: OnceLock<EtcdCluster> = OnceLock::new();
    TLS.get_or_init(|| EtcdCluster::start_tls(3))
}

/// A settings file (store.toml) in `dir` with these lines.
fn settings(dir: &Path, name: &str, lines: &[(&str, &Path)]) -> PathBuf {
    let text: String = lines
        .iter()
        .map(|(k, p)| format!("{k} = \"{}\"\n", p.display()))
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn gnt(bin: &str, url: &str, settings: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("NETCONF_STORE", url)
        .env("NETCONF_CACHE_DIR", "")
        .env("NETCONF_STORE_CONFIG", settings)
        .env("NETCONF_HOOKS_DIR", "/nonexistent")
        .env("TZ", "UTC")
        .env_remove("NETCONF_COMPLETE")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Exit 1 and `Failure: command execution error:` with `why` in the reason, as an
/// unreachable etcd gives.
fn assert_store_error(what: &str, o: &Output, why: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    assert!(
        err.starts_with("Failure: command execution error:\n") && !err.contains("panicked"),
        "{what}: {err}"
    );
    assert!(err.contains(why), "{what}: wanted '{why}' in: {err}");
}

#[test]
fn gnt_commands_work_over_etcds() {
    if !need_etcd("gnt_commands_work_over_etcds") {
        return;
    }
    let etcd = cluster();
    let tls = etcd.tls().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = settings(
        dir.path(),
        "store.toml",
        &[("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)],
    );
    let url = etcd.url(&unique_prefix());
    assert!(url.starts_with("etcds://127.0.0.1:"), "{url}");
    for (bin, args) in [
        (GROUP, &["add", "grp-t"][..]),
        (
            NODE,
            &[
                "add",
                "-g",
                "grp-t",
                "--primary-ip",
                "203.0.113.5",
                "node-t1",
            ],
        ),
        (
            NET,
            &[
                "add",
                "--network",
                "198.51.100.0/24",
                "--gateway",
                "198.51.100.1",
                "net-t",
            ],
        ),
        (NET, &["connect", "-N", "link=br0", "net-t", "grp-t"]),
        (
            INST,
            &[
                "add",
                "-n",
                "node-t1",
                "--net",
                "0:ip=pool,network=net-t",
                "vm-t",
            ],
        ),
    ] {
        ok(gnt(bin, &url, &good, args), &format!("{bin} {args:?}"));
    }
    let list = ok(
        gnt(
            INST,
            &url,
            &good,
            &["list", "--no-headers", "-o", "name,nic.ips"],
        ),
        "list",
    );
    assert!(
        list.contains("vm-t") && list.contains("198.51.100.2"),
        "{list}"
    );
    ok(gnt(CLUSTER, &url, &good, &["verify"]), "verify");
    // Each member alone, over its own TLS connection.
    let prefix = &url[url.rfind('/').unwrap()..];
    for i in 0..3 {
        let nets = ok(
            gnt(
                NET,
                &etcd.member_url(i, prefix),
                &good,
                &["list", "--no-headers", "-o", "name"],
            ),
            "list on one member",
        );
        assert_eq!(nets.trim(), "net-t", "member {i}");
    }
    // Shell completion reads the same settings.
    let tab = Command::new(INST)
        .args(["--", "gnt-instance", "modify", ""])
        .env("NETCONF_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_IFS", "\n")
        .env("NETCONF_STORE", &url)
        .env("NETCONF_CACHE_DIR", "")
        .env("NETCONF_STORE_CONFIG", &good)
        .output()
        .unwrap();
    assert!(tab.stderr.is_empty(), "{tab:?}");
    let words = String::from_utf8(tab.stdout).unwrap();
    assert!(words.lines().any(|w| w == "vm-t"), "{words}");
    // A copy to config.data and back to another prefix.
    let file = dir.path().join("config.data");
    let back = etcd.url(&unique_prefix());
    let copy = |from: &str, to: &str| {
        ok(
            gnt(
                CLUSTER,
                &url,
                &good,
                &["copy-store", "--from", from, "--to", to],
            ),
            "copy-store",
        )
    };
    copy(&url, file.to_str().unwrap());
    copy(file.to_str().unwrap(), &back);
    let again = ok(
        gnt(
            INST,
            &back,
            &good,
            &["list", "--no-headers", "-o", "name,nic.ips"],
        ),
        "list the copy",
    );
    assert_eq!(again, list);
}

#[test]
fn wrong_tls_settings_fail_clearly_and_write_nothing() {
    if !need_etcd("wrong_tls_settings_fail_clearly_and_write_nothing") {
        return;
    }
    let etcd = cluster();
    let tls = etcd.tls().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = settings(
        dir.path(),
        "good.toml",
        &[("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)],
    );
    let url = etcd.url(&unique_prefix());
    let prefix = &url[url.rfind('/').unwrap()..];
    ok(
        gnt(
            NET,
            &url,
            &good,
            &["add", "--network", "198.51.100.0/24", "net-a"],
        ),
        "seed",
    );

    let wrong_ca = settings(
        dir.path(),
        "wrong-ca.toml",
        &[
            ("ca", &tls.other_ca),
            ("cert", &tls.cert),
            ("key", &tls.key),
        ],
    );
    let no_cert = settings(dir.path(), "no-cert.toml", &[("ca", &tls.ca)]);
    // The same key, readable by everyone.
    let open_key = dir.path().join("open.key");
    std::fs::copy(&tls.key, &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let world = settings(
        dir.path(),
        "world.toml",
        &[("ca", &tls.ca), ("cert", &tls.cert), ("key", &open_key)],
    );
    // Another key than the certificate's (the members' own).
    let other_key = dir.path().join("other.key");
    std::fs::copy(tls.ca.with_file_name("server.key"), &other_key).unwrap();
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mismatch = settings(
        dir.path(),
        "mismatch.toml",
        &[("ca", &tls.ca), ("cert", &tls.cert), ("key", &other_key)],
    );
    let port = etcd.endpoints()[0].rsplit_once(':').unwrap().1.to_owned();
    let plain = url.replacen("etcds://", "etcd://", 1);
    // The members' certificates are for IP 127.0.0.1 only.
    let by_name = format!("etcds://localhost:{port}{prefix}");
    let absent = dir.path().join("absent.toml");
    for (what, u, s, why) in [
        (
            "a CA that signed no member",
            &url,
            &wrong_ca,
            "invalid peer certificate: UnknownIssuer (the member's certificate is not signed by the CA that the TLS settings name)",
        ),
        (
            "no client certificate",
            &url,
            &no_cert,
            "the TLS settings name none)",
        ),
        (
            "plain etcd:// to TLS members",
            &plain,
            &good,
            "(if the member serves TLS, use etcds://)",
        ),
        (
            "a name the certificate is not for",
            &by_name,
            &good,
            "certificate not valid for name \"localhost\"",
        ),
        (
            "a key others may read",
            &url,
            &world,
            "open.key: the private key is open to group or others (mode 0644)",
        ),
        ("no settings file", &url, &absent, "absent.toml: not found"),
        (
            "a key that is not the certificate's",
            &url,
            &mismatch,
            "other.key: not a usable certificate and key",
        ),
    ] {
        for (bin, args) in [
            (NET, &["list"][..]),
            (NET, &["add", "--network", "203.0.113.0/24", "net-b"]),
            (CLUSTER, &["verify"]),
        ] {
            let o = gnt(bin, u, s, args);
            assert_store_error(&format!("{what}: {args:?}"), &o, why);
        }
    }
    let nets = ok(
        gnt(NET, &url, &good, &["list", "--no-headers", "-o", "name"]),
        "list",
    );
    assert_eq!(nets.trim(), "net-a", "nothing was written");
}
