//! The command line: configuration checking, clear errors, --status without a daemon, and
//! the man page documenting every option --help lists.

use std::process::Command;

fn nfdhcpd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
        .args(args)
        .output()
        .unwrap()
}

fn example() -> String {
    format!("{}/examples/nfdhcpd.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_config_accepts_the_example() {
    let out = nfdhcpd(&["-c", &example(), "--check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queues 42, 43, 44, 45"));
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[dhcp]\nserver_ip = \"1.2.3\"\n").unwrap();
    let out = nfdhcpd(&["-c", p.to_str().unwrap(), "--check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("nfdhcpd: in ") && err.contains("server_ip"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    let out = nfdhcpd(&["-c", "/nonexistent/nfdhcpd.toml", "--check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/nfdhcpd.toml"));
    std::fs::write(&p, "[ipv6]\nmode = \"dhcpv6\"\n").unwrap();
    let out = nfdhcpd(&["-c", p.to_str().unwrap(), "--check-config"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not implemented"));
    std::fs::write(&p, "[general]\nuser = \"no-such-user-nc\"\n").unwrap();
    let out = nfdhcpd(&["-c", p.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("general.user: no such user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&p, "[general]\nuser = \"nobody\"\n").unwrap();
    assert!(
        nfdhcpd(&["-c", p.to_str().unwrap(), "--check-config"])
            .status
            .success()
    );
}

#[test]
fn status_without_daemon_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        format!(
            "[general]\nstatus_file = \"{}/status\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = nfdhcpd(&["-c", p.to_str().unwrap(), "--status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

/// `--status` with something else than the daemon's file at the status path: a FIFO (no
/// writer: a plain read would wait for ever), a file far larger than any status, a
/// symbolic link (the directory may be the daemon's user's), a directory. Each is refused
/// with a clear error and exit 1, at once.
#[test]
fn status_refuses_what_the_daemon_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[general]\nstatus_file = \"{}\"\n", status.display()),
    )
    .unwrap();
    let real = dir.path().join("real");
    std::fs::write(&real, format!("pid {}\n", std::process::id())).unwrap();
    let make: [(&str, &dyn Fn()); 4] = [
        ("not a regular file", &|| {
            nix::unistd::mkfifo(&status, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }),
        ("larger than 4096 KiB", &|| {
            let f = std::fs::File::create(&status).unwrap();
            f.set_len((4 << 20) + 1).unwrap();
        }),
        ("a symbolic link", &|| {
            std::os::unix::fs::symlink(&real, &status).unwrap();
        }),
        ("not a regular file", &|| {
            std::fs::create_dir(&status).unwrap()
        }),
    ];
    for (why, make) in make {
        make();
        // A bounded run, so that a read that blocks fails the test instead of hanging it.
        let run = netconf_test_support::run_within(
            Command::new(env!("CARGO_BIN_EXE_nfdhcpd")).args([
                "-c",
                cfg.to_str().unwrap(),
                "--status",
            ]),
            dir.path(),
            std::time::Duration::from_secs(60),
            why,
        );
        let (code, err) = (run.code, run.stderr);
        assert_eq!(code, Some(1), "{why}: {err}");
        assert!(
            err.contains(&format!("reading {}", status.display())),
            "{err}"
        );
        assert!(err.contains(why), "{why}: {err}");
        assert!(run.stdout.is_empty(), "{why}");
        if status.is_dir() {
            std::fs::remove_dir(&status).unwrap();
        } else {
            std::fs::remove_file(&status).unwrap();
        }
    }
}

/// Runs nfdhcpd with `args`, at most 10 s (a read that blocks on a FIFO fails the test
/// instead of hanging it): its exit code, stdout and stderr.
fn run_bounded(dir: &std::path::Path, args: &[&str], what: &str) -> (Option<i32>, String, String) {
    let run = netconf_test_support::run_within(
        Command::new(env!("CARGO_BIN_EXE_nfdhcpd")).args(args),
        dir,
        std::time::Duration::from_secs(10),
        what,
    );
    (run.code, run.stdout, run.stderr)
}

/// The settings file (`-c`, read by `--check-config` and before anything else) and the
/// old `nfdhcpd.conf` of `--convert-config`: a FIFO there (directly or behind a link), a
/// directory, or a file over 1 MiB is refused at once, exit 1, with the path and the
/// reason; a link to a real file is followed (configuration management makes those).
#[test]
fn settings_files_are_regular_bounded_and_never_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let at = d.join("settings");
    let fifo = d.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let old = d.join("nfdhcpd.conf");
    std::fs::write(&old, "[dhcp]\nenable_dhcp = True\n").unwrap();
    let make: [(&str, &dyn Fn()); 4] = [
        ("not a regular file", &|| {
            nix::unistd::mkfifo(&at, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }),
        ("not a regular file", &|| {
            std::os::unix::fs::symlink(&fifo, &at).unwrap();
        }),
        ("not a regular file", &|| std::fs::create_dir(&at).unwrap()),
        ("larger than 1024 KiB", &|| {
            // Comments only: valid TOML and INI but for its size.
            let line = format!("# {}\n", "x".repeat(1021));
            std::fs::write(&at, line.repeat(1025)).unwrap();
        }),
    ];
    for (why, make) in make {
        make();
        for flag in ["--check-config", "--convert-config"] {
            let args: Vec<&str> = if flag == "--check-config" {
                vec!["-c", at.to_str().unwrap(), flag]
            } else {
                vec![flag, at.to_str().unwrap()]
            };
            let (code, out, err) = run_bounded(d, &args, why);
            assert_eq!(code, Some(1), "{flag} {why}: {err}");
            assert!(
                err.starts_with(&format!("nfdhcpd: reading {}: {why}", at.display())),
                "{flag} {why}: {err}"
            );
            assert!(out.is_empty(), "{flag} {why}: {out}");
        }
        if at.is_dir() {
            std::fs::remove_dir(&at).unwrap();
        } else {
            std::fs::remove_file(&at).unwrap();
        }
    }
    // Links to real files are followed, for both.
    std::os::unix::fs::symlink(example(), &at).unwrap();
    let (code, out, err) = run_bounded(d, &["-c", at.to_str().unwrap(), "--check-config"], "link");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("queues 42, 43, 44, 45"), "{out}");
    std::fs::remove_file(&at).unwrap();
    std::os::unix::fs::symlink(&old, &at).unwrap();
    let (code, out, err) = run_bounded(d, &["--convert-config", at.to_str().unwrap()], "link");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("enable_dhcp = true"), "{out}");
}

#[test]
fn man_page_documents_every_option() {
    let help = String::from_utf8(nfdhcpd(&["--help"]).stdout).unwrap();
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/nfdhcpd.8"))
        .unwrap()
        .replace("\\-", "-");
    let mut n = 0;
    for word in help.split(|c: char| c.is_whitespace() || c == ',') {
        if word.starts_with("--") || (word.len() == 2 && word.starts_with('-')) {
            assert!(man.contains(word), "man page lacks {word}");
            n += 1;
        }
    }
    assert!(n >= 8, "{help}");
    let man5 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../man/nfdhcpd.toml.5"
    ))
    .unwrap()
    .replace("\\-", "-");
    // Every key of the example configuration is documented.
    for line in std::fs::read_to_string(example()).unwrap().lines() {
        let l = line.trim_start_matches('#').trim();
        if let Some((k, _)) = l.split_once(" = ") {
            assert!(man5.contains(k.trim()), "nfdhcpd.toml(5) lacks {k}");
        }
    }
}

/// nfdhcpd(8)'s SYNOPSIS is rendered from clap (`netconf_test_support::manpage`), and the
/// defaults it states are clap's.
#[test]
fn synopsis_is_generated_from_clap() {
    use clap::CommandFactory as _;
    use netconf_test_support::manpage;
    let tools = [("nfdhcpd", nfdhcpd::cli::Cli::command())];
    let stale = manpage::stale(&tools, &[]);
    assert!(
        stale.is_empty(),
        "run `cargo run -p nfdhcpd --example regen-man-nfdhcpd`:\n{}",
        stale.join("\n")
    );
    let page = std::fs::read_to_string(manpage::page_path("nfdhcpd")).unwrap();
    let wrong = manpage::wrong_defaults("nfdhcpd", &page, &tools[0].1);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
