//! `--help` and the man pages describe the same options, variables and configuration keys.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn man(page: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../man")
        .join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_snf-dnshook"))
        .arg("--help")
        .env_remove("SNF_DNSHOOK_CONFIG")
        .env_remove("SNF_DNSHOOK_NODE")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Words of the form `--name` / `-x` at the start of option lines.
fn help_options(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split([' ', ','])
                .take_while(|w| w.starts_with('-') || w.is_empty())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Options the OPTIONS section of the man page documents (`\-\-name`, `\-x`).
fn man_options(page: &str) -> BTreeSet<String> {
    let section = page
        .split(".SH OPTIONS")
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .expect("OPTIONS section");
    let mut out = BTreeSet::new();
    let mut lines = section.lines().peekable();
    while let Some(l) = lines.next() {
        if l == ".TP" {
            let tag = lines.next().unwrap_or_default().replace("\\-", "-");
            for w in tag.split([' ', '"', ',']) {
                if w.starts_with('-') && w.len() > 1 {
                    out.insert(w.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn help_and_man_page_list_the_same_options() {
    let h = help();
    let page = man("snf-dnshook.8");
    let from_help = help_options(&h);
    assert!(from_help.contains("--dry-run"), "{from_help:?}");
    assert_eq!(from_help, man_options(&page));
    // The defaults and variables named in --help are the ones the page names.
    for fact in [
        "SNF_DNSHOOK_CONFIG",
        "SNF_DNSHOOK_NODE",
        "/etc/snf-network/dnshook.toml",
        "GANETI_INSTANCE_PRIMARY",
        "hostname -f",
        "OP_INSTANCE_CREATE",
        "OP_INSTANCE_SET_PARAMS",
        "OP_INSTANCE_RENAME",
        "OP_INSTANCE_REMOVE",
    ] {
        assert!(h.contains(fact), "--help lacks {fact}");
        assert!(
            page.replace("\\-", "-").contains(fact),
            "snf-dnshook.8 lacks {fact}"
        );
    }
    for status in ["0 done", "1 failure", "2 usage"] {
        assert!(h.contains(status), "--help lacks exit status '{status}'");
    }
    assert!(page.contains(".SH EXIT STATUS"));
}

/// Every key snf-dnshook.toml(5) documents is accepted, and every key of a full
/// configuration is documented.
#[test]
fn config_page_documents_every_key() {
    let page = man("snf-dnshook.toml.5");
    let mut documented = BTreeSet::new();
    let mut lines = page.lines();
    while let Some(l) = lines.next() {
        if l == ".TP" {
            let tag = lines.next().unwrap_or_default();
            if let Some(rest) = tag.strip_prefix(".BR ") {
                for w in rest.split(" \" (").next().unwrap_or("").split(", ") {
                    documented.insert(w.trim_matches(['"', ' ']).to_string());
                }
            }
        }
    }
    let full = r#"
server = "127.0.0.1"
port = 53
zone = "example.org"
ttl = 300
dns_tag = ["public", "dns"]
reverse_zones = ["51.198.in-addr.arpa"]
ptr = true
node = "node1.example.org"
timeout = 3
attempts = 3
backoff = 0.5
[tsig]
name = "k"
algorithm = "hmac-sha256"
secret = "c2VjcmV0"
fudge = 300
[networks.n]
zone = "n.example.org"
ttl = 60
reverse_zone4 = "100.51.198.in-addr.arpa"
reverse_zone6 = "8.b.d.0.1.0.0.2.ip6.arpa"
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.toml");
    std::fs::write(&path, full).unwrap();
    // key_file is exclusive with secret: checked through its own file below.
    let used: BTreeSet<String> = full
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_string()))
        .chain(["key_file".to_string()])
        .collect();
    assert_eq!(documented, used, "documented keys vs keys of a full file");

    // The full file is valid: --dry-run gets past the configuration (and stops at the
    // missing hook environment, which is checked first only for the phase).
    let out = Command::new(env!("CARGO_BIN_EXE_snf-dnshook"))
        .args(["--dry-run", "--config"])
        .arg(&path)
        .env_clear()
        .env("GANETI_HOOKS_PHASE", "post")
        .env("GANETI_OP_CODE", "OP_INSTANCE_CREATE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GANETI_INSTANCE_PRIMARY is not set"),
        "{stderr}"
    );
    // And an undocumented key is refused, naming the file.
    std::fs::write(&path, format!("{full}\nbogus = 1\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snf-dnshook"))
        .arg("--config")
        .arg(&path)
        .env_clear()
        .env("GANETI_HOOKS_PHASE", "post")
        .env("GANETI_OP_CODE", "OP_INSTANCE_CREATE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("full.toml") && stderr.contains("unknown field `bogus`"),
        "{stderr}"
    );
}

/// snf-dnshook(8)'s SYNOPSIS is rendered from clap (`netconf_test_support::manpage`), and
/// the defaults it states are clap's.
#[test]
fn synopsis_is_generated_from_clap() {
    use clap::CommandFactory as _;
    use netconf_test_support::manpage;
    let tools = [("snf-dnshook", snf_dnshook::cli::Cli::command())];
    let stale = manpage::stale(&tools, &[]);
    assert!(
        stale.is_empty(),
        "run `cargo run -p snf-dnshook --example regen-man-snf-dnshook`:\n{}",
        stale.join("\n")
    );
    let page = man("snf-dnshook.8");
    let wrong = manpage::wrong_defaults("snf-dnshook", &page, &tools[0].1);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
