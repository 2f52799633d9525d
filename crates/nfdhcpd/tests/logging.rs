//! Daemon mode with `logdir`: the original's log file (`<logdir>/nfdhcpd.log`, lines
//! stamped with their time), reopened after logrotate moved it away and sent SIGHUP, also
//! when the daemon runs as an unprivileged `user`.

mod common;

use std::time::Duration;

use common::*;

/// `2026-11-28 14:00:00,250 INFO     ...`
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 33
        && b[..23].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b',',
            _ => c.is_ascii_digit(),
        })
        && line[23..].starts_with(' ')
}

#[test]
fn daemon_logs_to_logdir_and_reopens_after_rotation() {
    if !need_root("daemon_logs_to_logdir_and_reopens_after_rotation") {
        return;
    }
    let tb = Testbed::new(Mode::Routed, 1);
    tb.bind(0);
    let logdir = tb.path("log");
    let cfg = tb.path("nfdhcpd.toml");
    // The user gets the directory of the pid and status files: one of their own, not the
    // test's directory, which holds the bindings (found through links at the usual places).
    let d = tb.dir.path().display().to_string();
    for f in ["status", "nfdhcpd.pid"] {
        std::os::unix::fs::symlink(tb.path("run").join(f), tb.path(f)).unwrap();
    }
    std::fs::write(
        &cfg,
        tb.config_text("")
            .replacen(
                "[general]\n",
                &format!(
                    "[general]\nlogdir = \"{}\"\nuser = \"nobody\"\n",
                    logdir.display()
                ),
                1,
            )
            .replace(&format!("{d}/status"), &format!("{d}/run/status"))
            .replace(&format!("{d}/nfdhcpd.pid"), &format!("{d}/run/nfdhcpd.pid")),
    )
    .unwrap();
    let launcher = std::fs::File::create(tb.path("launcher.err")).unwrap();
    assert!(tb.launch_detached(&cfg, &["-d"], launcher).success());
    wait_for("the status file", Duration::from_secs(10), || {
        tb.path("status").exists()
    });
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    let pid = pid.trim().to_owned();
    let log = logdir.join("nfdhcpd.log");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();

    assert!(tb.udhcpc_once(0).is_some(), "{}", read(&log));
    wait_for(
        "the exchange in the log file",
        Duration::from_secs(10),
        || read(&log).contains("DHCPREQUEST -> Drop, replied"),
    );
    let text = read(&log);
    assert!(text.lines().all(stamped), "{text}");
    assert!(text.contains(" INFO     running as user nobody"), "{text}");
    assert!(
        text.contains(" DEBUG    tap0: DHCPDISCOVER -> Drop, replied"),
        "{text}"
    );
    // Nothing after the detach went to the launcher's standard error.
    assert_eq!(read(&tb.path("launcher.err")), "");

    // logrotate: move the file away, then SIGHUP; the daemon (now nobody) starts a new one.
    let rotated = logdir.join("nfdhcpd.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    sh(&["kill", "-HUP", &pid]);
    wait_for("a new log file", Duration::from_secs(10), || {
        read(&log).contains("SIGHUP: rescanning")
    });
    assert!(tb.udhcpc_once(0).is_some());
    wait_for(
        "the exchange in the new file",
        Duration::from_secs(10),
        || read(&log).contains("DHCPREQUEST -> Drop, replied"),
    );
    assert!(!read(&rotated).contains("SIGHUP"), "{}", read(&rotated));
    let owner = sh(&["stat", "-c", "%U", log.to_str().unwrap()]);
    assert_eq!(owner.trim(), "nobody");

    sh(&["kill", "-TERM", &pid]);
    wait_for("the daemon to exit", Duration::from_secs(10), || {
        !tb.path("nfdhcpd.pid").exists()
    });
    assert!(read(&log).contains("exiting"), "{}", read(&log));
}

/// Runs `cmd` for at most 10 s: killed and `None` if it is still running then; otherwise
/// its exit status and standard error (through a file, not a pipe: a daemon that detached
/// but hangs would keep a pipe open).
fn run_bounded(
    cmd: &mut std::process::Command,
    dir: &std::path::Path,
) -> Option<(Option<i32>, String)> {
    netconf_test_support::run_bounded(cmd, dir, Duration::from_secs(10)).map(|r| (r.code, r.stderr))
}

#[test]
fn a_fifo_at_the_log_path_is_refused_without_blocking() {
    if !need_root("a_fifo_at_the_log_path_is_refused_without_blocking") {
        return;
    }
    let tb = Testbed::new(Mode::Routed, 1);
    tb.bind(0);
    let logdir = tb.path("log");
    std::fs::create_dir(&logdir).unwrap();
    let log = logdir.join("nfdhcpd.log");
    let cfg = tb.path("nfdhcpd.toml");
    std::fs::write(
        &cfg,
        tb.config_text("").replacen(
            "[general]\n",
            &format!("[general]\nlogdir = \"{}\"\n", logdir.display()),
            1,
        ),
    )
    .unwrap();
    let launcher = tb.path("launcher");
    std::fs::create_dir(&launcher).unwrap();
    let launch = || {
        run_bounded(
            std::process::Command::new("ip")
                .args(["netns", "exec", &tb.node, env!("CARGO_BIN_EXE_nfdhcpd")])
                .args(["-d", "-c"])
                .arg(&cfg),
            &launcher,
        )
    };

    // At start: a FIFO without a reader (opening it for writing would wait for one) is
    // refused at once, to the launcher, with the reason and a failing status.
    sh(&["mkfifo", log.to_str().unwrap()]);
    let (code, err) = launch().expect("nfdhcpd blocked on the FIFO at its log path");
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains(log.to_str().unwrap()), "{err}");
    assert!(!tb.path("nfdhcpd.pid").exists());

    // On SIGHUP: a FIFO put where the rotated file was leaves the daemon on its old file,
    // with a warning, and it goes on serving.
    std::fs::remove_file(&log).unwrap();
    let (code, err) = launch().expect("nfdhcpd did not detach");
    assert_eq!(code, Some(0), "{err}");
    wait_for("the status file", Duration::from_secs(10), || {
        tb.path("status").exists()
    });
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    let pid = pid.trim().to_owned();
    let rotated = logdir.join("nfdhcpd.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    sh(&["mkfifo", log.to_str().unwrap()]);
    sh(&["kill", "-HUP", &pid]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_for(
        "the SIGHUP in the old file",
        Duration::from_secs(10),
        || read(&rotated).contains("SIGHUP: rescanning"),
    );
    let text = read(&rotated);
    assert!(
        text.contains("WARNING  opening log file") && text.contains("not a regular file"),
        "{text}"
    );
    assert!(tb.udhcpc_once(0).is_some(), "{}", read(&rotated));
    sh(&["kill", "-TERM", &pid]);
    wait_for("the daemon to exit", Duration::from_secs(10), || {
        !tb.path("nfdhcpd.pid").exists()
    });
}
