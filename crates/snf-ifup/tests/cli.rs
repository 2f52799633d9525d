//! The command line without privileges: `--help` and the man page agree, usage errors.

use std::io::Write as _;
use std::process::Command;

/// The shipped settings, which are the defaults (a device such as /dev/null is refused).
const DEFAULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/snf-network.toml");

fn snf_ifup(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_snf-ifup"))
        .args(args)
        .env("SNF_NETWORK_CONFIG", DEFAULTS)
        .output()
        .unwrap()
}

fn man() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/snf-ifup.8")).unwrap()
}

/// Long options and subcommands shown by `--help` for `args`.
fn help_words(args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("--help");
    let out = String::from_utf8(snf_ifup(&a).stdout).unwrap();
    let mut words = Vec::new();
    let mut in_commands = false;
    for line in out.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            match line.split_whitespace().next() {
                Some(w) if line.starts_with("  ") && w != "help" => words.push(w.to_owned()),
                _ => in_commands = false,
            }
        }
        for w in line.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
            if w.starts_with("--") && w.len() > 2 && w != "--help" && w != "--version" {
                words.push(w.to_owned());
            }
        }
    }
    words.sort();
    words.dedup();
    words
}

#[test]
fn help_and_man_page_agree() {
    let man = man().replace("\\-", "-");
    let top = help_words(&[]);
    assert!(top.contains(&"reapply".to_owned()), "{top:?}");
    for w in &top {
        assert!(man.contains(w.as_str()), "man page lacks {w}");
    }
    for cmd in [
        "up", "env", "down", "ganeti", "xen", "reapply", "status", "watch",
    ] {
        assert!(
            man.contains(&format!(".SS {cmd}\n")),
            "no section for {cmd}"
        );
        for w in help_words(&[cmd]) {
            assert!(man.contains(w.as_str()), "man page lacks {w} of {cmd}");
        }
    }
    for name in [
        "kvm-vif-bridge",
        "kvm-ifup-custom",
        "kvm-ifdown-custom",
        "vif-custom",
        "network/<mode>/up",
    ] {
        assert!(man.contains(name), "man page lacks install name {name}");
    }
}

#[test]
fn usage_errors_exit_2_and_bad_names_exit_1() {
    let o = snf_ifup(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = snf_ifup(&["reapply"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reapply needs --all or TAP names"));
    let o = snf_ifup(&["down", "a234567890123456"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("longer than 15 bytes"));
    let o = Command::new(env!("CARGO_BIN_EXE_snf-ifup"))
        .args(["ganeti", "up", "tap0"])
        .env_clear()
        .env("SNF_NETWORK_CONFIG", DEFAULTS)
        .env("INTERFACE", "tap0")
        .env("ACTION", "sideways")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = Command::new(env!("CARGO_BIN_EXE_snf-ifup"))
        .args(["ganeti"])
        .env_clear()
        .env("SNF_NETWORK_CONFIG", DEFAULTS)
        .env("ACTION", "sideways")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ACTION must be up or down, not 'sideways'")
    );
}

/// groff (all warnings), man --warnings and lexgrog accept snf-ifup's pages.
#[test]
fn pages_render_without_warnings() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../man/");
    let mut checked = 0;
    for (page, name) in [
        ("snf-ifup.8", "snf-ifup"),
        ("nfdhcpd-binding.5", "nfdhcpd-binding"),
        ("snf-network.toml.5", "snf-network.toml"),
    ] {
        let path = format!("{dir}{page}");
        let runs: [(&str, Vec<&str>); 3] = [
            ("groff", vec!["-man", "-Tutf8", "-ww", "-z", &path]),
            (
                "man",
                vec!["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", &path],
            ),
            ("lexgrog", vec![&path]),
        ];
        for (tool, args) in runs {
            let Ok(o) = Command::new(tool)
                .args(&args)
                .env("LC_ALL", "C.UTF-8")
                .env("MANWIDTH", "80")
                .output()
            else {
                continue;
            };
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() && err.trim().is_empty(),
                "{tool} on {page}: {err}"
            );
            if tool == "lexgrog" {
                assert!(
                    String::from_utf8_lossy(&o.stdout).contains(&format!(": \"{name} - ")),
                    "whatis entry of {page}"
                );
            }
            checked += 1;
        }
    }
    if checked == 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP pages_render_without_warnings: groff, man and lexgrog are not installed"
        );
    }
}

/// `env` prints, as shell assignments, the variables Ganeti would export for a NIC of
/// config.data; a shell evaluating them gets the values back unchanged.
#[test]
fn env_prints_ganeti_variables_from_config_data() {
    use netconf_cluster::config::{open, transaction};
    use netconf_cluster::ops::{self, Feedback};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.data");
    let store = open(&config);
    let mut fb = Feedback::default();
    transaction(&store, |cfg| {
        ops::network::add(
            cfg,
            &ops::network::AddNetwork {
                name: "net1".into(),
                network: Some("203.0.113.0/24".into()),
                gateway: Some("203.0.113.1".into()),
                network6: Some("2001:db8:1::/64".into()),
                gateway6: Some("2001:db8:1::1".into()),
                tags: vec!["nfdhcpd".into(), "spoof-protected".into()],
                ..Default::default()
            },
            &mut fb,
        )?;
        let raw = ops::network::RawNicParams {
            mode: Some("bridged".into()),
            link: Some("prv0".into()),
            vlan: None,
        };
        ops::network::connect(cfg, "net1", &raw, &[], false, &mut fb)?;
        let spec =
            ops::instance::NicSpec::parse("network=net1,ip=203.0.113.7,mac=aa:00:00:12:34:56")?;
        ops::instance::add(
            cfg,
            &ops::instance::AddInstance {
                name: "inst1".into(),
                nics: vec![spec],
                tags: vec!["blue".into(), "synnefo:network:0:protected".into()],
                ..Default::default()
            },
            &mut fb,
        )?;
        Ok(())
    })
    .unwrap();
    let cfg_arg = config.to_str().unwrap();
    let o = snf_ifup(&[
        "env",
        "tap0",
        "--instance",
        "inst1",
        "--nic",
        "0",
        "--config",
        cfg_arg,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let probe = "for v in INSTANCE INTERFACE INTERFACE_INDEX MAC IP MODE LINK BRIDGE TAGS \
                 NETWORK_NAME NETWORK_TAGS NETWORK_SUBNET NETWORK_GATEWAY NETWORK_SUBNET6 \
                 NETWORK_GATEWAY6; do eval \"printf '%s=%s\\n' $v \\\"\\$$v\\\"\"; done";
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("eval \"$NIC\"; {probe}"))
        .env("NIC", &text)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "INSTANCE=inst1\nINTERFACE=tap0\nINTERFACE_INDEX=0\nMAC=aa:00:00:12:34:56\n\
         IP=203.0.113.7\nMODE=bridged\nLINK=prv0\nBRIDGE=prv0\nTAGS=blue synnefo:network:0:protected\n\
         NETWORK_NAME=net1\nNETWORK_TAGS=nfdhcpd spoof-protected\n\
         NETWORK_SUBNET=203.0.113.0/24\nNETWORK_GATEWAY=203.0.113.1\n\
         NETWORK_SUBNET6=2001:db8:1::/64\nNETWORK_GATEWAY6=2001:db8:1::1\n",
        "{text}"
    );
    let o = snf_ifup(&[
        "env",
        "tap0",
        "--instance",
        "nosuch",
        "--nic",
        "0",
        "--config",
        cfg_arg,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch"));
}

// The binary's command line (no `crate::` paths in it); only the derived `Command` is used.
#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod snf_ifup_cli;

/// snf-ifup(8)'s SYNOPSIS and every command's synopsis are rendered from clap
/// (`netconf_test_support::manpage`), and the defaults the page states are clap's.
#[test]
fn synopses_are_generated_from_clap() {
    use clap::CommandFactory as _;
    use netconf_test_support::manpage;
    let tools = [("snf-ifup", snf_ifup_cli::Cli::command())];
    let stale = manpage::stale(&tools, &[]);
    assert!(
        stale.is_empty(),
        "run `cargo run -p snf-ifup --example regen-man-snf-ifup`:\n{}",
        stale.join("\n")
    );
    let wrong = manpage::wrong_defaults("snf-ifup", &man(), &tools[0].1);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
