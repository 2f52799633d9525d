//! `general.user`: after its privileged start the daemon runs as that user with only
//! CAP_NET_ADMIN and CAP_NET_RAW, and still serves, follows bindings and cleans up.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn with_user(tb: &Testbed, user: &str) -> String {
    tb.config_text("")
        .replacen("[general]\n", &format!("[general]\nuser = \"{user}\"\n"), 1)
}

/// The `Uid:` and `CapEff:`/`CapBnd:` lines of a task's status file.
fn creds(status: &str) -> (String, String, String) {
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (field("Uid:"), field("CapEff:"), field("CapBnd:"))
}

#[test]
fn daemon_switches_to_user_and_keeps_serving() {
    if !need_root("daemon_switches_to_user_and_keeps_serving") {
        return;
    }
    let nobody = sh(&["id", "-u", "nobody"]).trim().to_owned();
    let mut tb = Testbed::new(Mode::Bridged, 2);
    tb.bind(0);
    tb.start_daemon(&with_user(&tb, "nobody"));
    assert!(
        tb.daemon_log().contains("running as user nobody"),
        "{}",
        tb.daemon_log()
    );
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    let pid = pid.trim();
    // Every thread: uid nobody, CAP_NET_ADMIN (12) and CAP_NET_RAW (13) and nothing else.
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tasks.len() >= 4, "threads: {tasks:?}");
    for t in &tasks {
        let (uid, eff, bnd) = creds(&std::fs::read_to_string(t.join("status")).unwrap());
        assert_eq!(uid, [nobody.as_str(); 4].join(" "), "{}", t.display());
        assert_eq!(eff, "0000000000003000", "{}", t.display());
        assert_eq!(bnd, "0000000000003000", "{}", t.display());
    }

    // Still answers (verdicts need CAP_NET_ADMIN), and a binding written now is read and
    // served (inotify, raw replies) without any further privilege.
    assert!(tb.udhcpc_once(0).is_some(), "{}", tb.daemon_log());
    assert!(tb.guest_ipv4(0).contains("198.51.100.10/24"));
    tb.bind(1);
    assert!(tb.udhcpc_once(1).is_some(), "{}", tb.daemon_log());
    assert!(tb.guest_ipv4(1).contains("198.51.100.11/24"));
    // The status file is rewritten every second, still by the unprivileged daemon.
    wait_for(
        "the status file to count both leases",
        Duration::from_secs(10),
        || tb.counter("DHCPREQUEST") >= 2,
    );

    // At exit its iptables calls still have CAP_NET_ADMIN (ambient): rules gone.
    let st = tb.stop_daemon().expect("daemon was running");
    assert!(st.success(), "exit status {st}\n{}", tb.daemon_log());
    for tool in ["iptables", "ip6tables"] {
        let rules = tb.node_sh(&[tool, "-t", "mangle", "-S"]);
        assert!(!rules.contains("nfdhcpd"), "{tool}: {rules}");
    }
    assert!(!tb.path("status").exists());
    assert!(!tb.path("nfdhcpd.pid").exists());
}

#[test]
fn unknown_user_fails_before_serving_and_leaves_no_rules() {
    if !need_root("unknown_user_fails_before_serving_and_leaves_no_rules") {
        return;
    }
    let tb = Testbed::new(Mode::Routed, 1);
    let cfg = tb.path("nfdhcpd.toml");
    std::fs::write(&cfg, with_user(&tb, "no-such-user-nc")).unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.node,
            env!("CARGO_BIN_EXE_nfdhcpd"),
            "-f",
            "-c",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nfdhcpd: general.user: no such user 'no-such-user-nc'"),
        "{err}"
    );
    for tool in ["iptables", "ip6tables"] {
        let rules = tb.node_sh(&[tool, "-t", "mangle", "-S"]);
        assert!(!rules.contains("nfdhcpd"), "{tool}: {rules}");
    }
    assert!(!tb.path("nfdhcpd.pid").exists());
}
