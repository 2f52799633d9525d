//! INSTANCE from Ganeti's environment is an instance name like any other: one that breaks
//! the rules (the issue's `vm6\nMACSPOOF=1\nIP=203.0.113.77` would have added MACSPOOF and
//! IP lines to the nfdhcpd binding) is refused before anything is planned or applied.

mod common;

use std::process::Command;

use common::{Env, Lab, can_run, nic, refs, set};
use netconf::binding::Binding;

const MAC1: &str = "aa:00:00:00:00:01";
const INJECTION: &str = "vm6\nMACSPOOF=1\nIP=203.0.113.77";

/// Bad INSTANCE values and what the error says about each.
fn bad_instances() -> Vec<(String, &'static str)> {
    vec![
        (
            INJECTION.to_owned(),
            "INSTANCE: Invalid hostname 'vm6\\nMACSPOOF=1\\nIP=203.0.113.77': contains a control character ('\\n')",
        ),
        ("a".repeat(70_000), "INSTANCE: Invalid hostname 'aaaa"),
        ("vm 6".to_owned(), "contains white space (' ')"),
        ("vm/6".to_owned(), "contains a '/'"),
        ("vm6\r".to_owned(), "contains a control character ('\\r')"),
        ("../vm6".to_owned(), "contains a '/'"),
        ("vm6=1".to_owned(), "'=' is not allowed"),
    ]
}

fn injected(tap: &str, instance: &str) -> Env {
    let mut env = nic(tap, MAC1, "198.51.100.11", "bridged", "br0", "nfdhcpd", "");
    set(&mut env, "INSTANCE", instance);
    env
}

/// Without privileges, through `--dry-run`: the plan (which would show the binding) is
/// never made, and no file appears.
#[test]
fn dry_run_refuses_a_bad_instance_before_planning() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("snf-network.toml");
    std::fs::write(&conf, "syslog = false\n").unwrap();
    for (bad, msg) in bad_instances() {
        let o = Command::new(env!("CARGO_BIN_EXE_snf-ifup"))
            .args(["--dry-run", "ganeti", "up"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SNF_NETWORK_CONFIG", &conf)
            .env("SNF_NETWORK_STATE_DIR", dir.path().join("state"))
            .env("NFDHCPD_STATE_DIR", dir.path().join("nfdhcpd"))
            .envs(refs(&injected("tap1", &bad)))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(msg), "{msg:?} not in {err}");
        assert!(err.len() < 600, "{} bytes of error", err.len());
        assert!(
            o.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(!dir.path().join("nfdhcpd").exists());
        assert!(!dir.path().join("state").exists());
    }
}

/// Xen: INSTANCE (or the domain name) names a directory below ganeti_nic_dir, so a bad
/// one is refused before any path is built from it.
#[test]
fn xen_refuses_a_bad_instance_before_reading_the_nic_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("snf-network.toml");
    std::fs::write(&conf, "syslog = false\n").unwrap();
    let nic_dir = dir.path().join("nic");
    let planted = dir.path().join("etc");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("0"), "MAC=aa:00:00:00:00:01\nMODE=routed\n").unwrap();
    for (bad, msg) in [
        (
            INJECTION,
            "INSTANCE: Invalid hostname 'vm6\\nMACSPOOF=1\\nIP=203.0.113.77'",
        ),
        (
            "../etc",
            "INSTANCE: Invalid hostname '../etc': contains a '/'",
        ),
        (
            "..",
            "INSTANCE: Invalid hostname '..': it has an empty label",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_snf-ifup"))
            .args(["--dry-run", "xen", "online"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SNF_NETWORK_CONFIG", &conf)
            .env("GANETI_NIC_DIR", &nic_dir)
            .env("vif", "vif1.0")
            .env("INSTANCE", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(msg), "{msg:?} not in {err}");
        assert!(o.stdout.is_empty());
    }
}

/// Against the real thing, as root: a bridged NIC on an nfdhcpd network, where `up`
/// writes a binding. A bad INSTANCE leaves links, firewall, state and bindings as they
/// were; the same NIC with a good name gets a binding whose HOSTNAME is one line.
#[test]
fn up_refuses_a_bad_instance_and_applies_nothing() {
    if !can_run("up_refuses_a_bad_instance_and_applies_nothing") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    let (fw0, net0) = (lab.fw_dump(), lab.net_dump());
    for (bad, msg) in bad_instances() {
        let o = lab.ifup(&refs(&injected("tap1", &bad)), &["ganeti", "up"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(msg), "{msg:?} not in {err}");
        assert_eq!(lab.fw_dump(), fw0, "{bad:?}");
        assert_eq!(lab.net_dump(), net0, "{bad:?}");
        assert!(!lab.nfdhcpd_dir().join("tap1").exists(), "{bad:?}");
        assert!(!lab.state_dir().join("tap1.toml").exists(), "{bad:?}");
    }
    // The control: the same NIC as "vm6" is configured and bound.
    lab.ifup_ok(&refs(&injected("tap1", "vm6")), &["ganeti", "up"]);
    let b = Binding::load(&lab.nfdhcpd_dir().join("tap1")).unwrap();
    assert_eq!(b.hostname, "vm6");
    assert!(!b.macspoof);
    assert_eq!(b.ip, Some("198.51.100.11".parse().unwrap()));
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert!(!lab.nfdhcpd_dir().join("tap1").exists());
    assert_eq!(lab.fw_dump(), fw0);
}
