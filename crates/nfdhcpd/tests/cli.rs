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
        "run `cargo run -p nfdhcpd --example regen-man`:\n{}",
        stale.join("\n")
    );
    let page = std::fs::read_to_string(manpage::page_path("nfdhcpd")).unwrap();
    let wrong = manpage::wrong_defaults("nfdhcpd", &page, &tools[0].1);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
