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

/// With a user to switch to, the pid and status files go to a directory of their own
/// (the test's directory holds the bindings and is never given away); the harness finds
/// them through links at their usual places.
fn with_user_in_run(tb: &Testbed, user: &str) -> String {
    let d = tb.dir.path().display().to_string();
    let run = tb.path("run");
    for f in ["status", "nfdhcpd.pid"] {
        std::os::unix::fs::symlink(run.join(f), tb.path(f)).unwrap();
    }
    with_user(tb, user)
        .replace(&format!("{d}/status"), &format!("{d}/run/status"))
        .replace(&format!("{d}/nfdhcpd.pid"), &format!("{d}/run/nfdhcpd.pid"))
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
    tb.start_daemon(&with_user_in_run(&tb, "nobody"));
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

/// A start-up step that fails after the rules and the pidfile are in place (here the packet
/// socket, refused without CAP_NET_RAW) still takes both away again.
#[test]
fn failure_after_the_rules_are_installed_leaves_no_rules() {
    if !need_root("failure_after_the_rules_are_installed_leaves_no_rules") {
        return;
    }
    let tb = Testbed::new(Mode::Routed, 1);
    let cfg = tb.path("nfdhcpd.toml");
    std::fs::write(&cfg, tb.config_text("")).unwrap();
    // iptables here drives nf_tables over netlink: CAP_NET_ADMIN is all it needs, so the
    // queues are bound and the rules installed before the AF_PACKET socket is refused.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.node,
            "setpriv",
            "--bounding-set",
            "-net_raw",
        ])
        .args([env!("CARGO_BIN_EXE_nfdhcpd"), "-f", "-d", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("NFQUEUE rules installed"), "{err}");
    assert!(err.contains("opening the AF_PACKET socket"), "{err}");
    for tool in ["iptables", "ip6tables"] {
        let rules = tb.node_sh(&[tool, "-t", "mangle", "-S"]);
        assert!(!rules.contains("nfdhcpd"), "{tool}: {rules}");
    }
    assert!(!tb.path("nfdhcpd.pid").exists());
}

/// Starts the daemon with `config` and waits for `status` (not the harness's default).
fn start_with_status(tb: &Testbed, config: &str, status: &std::path::Path) -> std::process::Child {
    let cfg = tb.path("nfdhcpd.toml");
    std::fs::write(&cfg, config).unwrap();
    let log = std::fs::File::create(tb.path("nfdhcpd.log")).unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.node,
            env!("CARGO_BIN_EXE_nfdhcpd"),
            "-f",
            "-c",
        ])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("nfdhcpd to start", Duration::from_secs(10), || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("nfdhcpd exited: {st}\n{}", tb.daemon_log());
        }
        status.exists()
    });
    child
}

fn stop(mut child: std::process::Child) -> std::process::ExitStatus {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    child.wait().unwrap()
}

#[test]
fn user_equal_to_the_current_user_is_no_switch() {
    if !need_root("user_equal_to_the_current_user_is_no_switch") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    // It exited with "capset failure: Operation not permitted" after binding its queues.
    tb.start_daemon(&with_user(&tb, "root"));
    assert!(tb.udhcpc_once(0).is_some(), "{}", tb.daemon_log());
    assert!(tb.guest_ipv4(0).contains("198.51.100.10/24"));
    assert!(
        tb.daemon_log()
            .contains("running as user root (uid 0) already"),
        "{}",
        tb.daemon_log()
    );
    let st = tb.stop_daemon().expect("daemon was running");
    assert!(st.success(), "exit status {st}\n{}", tb.daemon_log());
}

#[test]
fn runtime_directories_are_created_for_the_user() {
    if !need_root("runtime_directories_are_created_for_the_user") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let nobody: u32 = sh(&["id", "-u", "nobody"]).trim().parse().unwrap();
    let tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    // Absent on a fresh machine (no systemd RuntimeDirectory): it exited with "No such
    // file or directory" for the status file's directory.
    let d = tb.dir.path().display().to_string();
    let (piddir, run) = (tb.path("run/pid"), tb.path("run/nfdhcpd"));
    let config = with_user(&tb, "nobody")
        .replace(&format!("{d}/status"), &format!("{}/status", run.display()))
        .replace(
            &format!("{d}/nfdhcpd.pid"),
            &format!("{}/nfdhcpd.pid", piddir.display()),
        );
    let child = start_with_status(&tb, &config, &run.join("status"));
    for dir in [&run, &piddir] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!(meta.uid(), nobody, "{}", dir.display());
        assert_eq!(meta.mode() & 0o7777, 0o755, "{}", dir.display());
    }
    assert!(tb.udhcpc_once(0).is_some(), "{}", tb.daemon_log());
    // The binding directory stays root's.
    assert_eq!(std::fs::metadata(tb.bindings()).unwrap().uid(), 0);
    let st = stop(child);
    assert!(st.success(), "exit status {st}\n{}", tb.daemon_log());
    assert!(!piddir.join("nfdhcpd.pid").exists());

    // Files of the daemon in the binding directory (or a parent) would give it to the
    // user: refused before anything is handed over.
    let inside = with_user(&tb, "nobody").replace(
        &format!("{d}/status"),
        &format!("{}/status", tb.bindings().display()),
    );
    let cfg = tb.path("inside.toml");
    std::fs::write(&cfg, inside).unwrap();
    let errf = tb.path("inside.err");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.node,
            env!("CARGO_BIN_EXE_nfdhcpd"),
            "-f",
            "-c",
        ])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    for _ in 0..200 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        let st = stop(child);
        panic!(
            "started ({st}) with its status file in the binding directory, now owned by uid {}",
            std::fs::metadata(tb.bindings()).unwrap().uid()
        );
    };
    let err = std::fs::read_to_string(&errf).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("must not be in the binding directory"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(tb.bindings()).unwrap().uid(), 0);
}
