//! netconf-store(7), the page of the store URL, against the code: it documents every form
//! and limit of the URL and the TLS settings file, its examples are URLs the tools accept,
//! the gnt-cluster page points to it, and it renders without a groff or man warning.

use std::path::{Path, PathBuf};
use std::process::Command;

use netconf_cluster::config::Location;
use netconf_cluster::config::etcd::url::DEFAULT_PREFIX;

fn man(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../man")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(man(name)).expect("the page")
}

/// The page with roff escapes of `-` and line breaks undone, for plain searches.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-").replace("\\e", "\\")
}

#[test]
fn store_page_documents_every_url_form_and_its_examples_parse() {
    let page = plain(&text("netconf-store.7"));
    for needle in [
        "etcd://",
        "etcds://",
        "file://",
        DEFAULT_PREFIX,
        "up to 16",
        "128 bytes",
        "NETCONF_STORE",
        "NETCONF_CONFIG",
        "NETCONF_STORE_CONFIG",
        "NETCONF_CACHE_DIR",
        "/run/netconf/etcd-heads",
        "/etc/netconf/store.toml",
        "--client-cert-auth",
        "ECLUSTERINDEX",
        "--store",
        "--config",
        "gnt-cluster copy-store",
        "--force",
        ".SH SEE ALSO",
    ] {
        assert!(page.contains(needle), "netconf-store.7 lacks {needle}");
    }
    // Every URL of the examples is one the tools take.
    let urls: Vec<&str> = page
        .split_whitespace()
        .filter(|w| {
            w.strip_prefix("etcd://")
                .or_else(|| w.strip_prefix("etcds://"))
                .is_some_and(|r| r.contains(':'))
        })
        .filter(|w| !w.contains("host"))
        .collect();
    assert!(!urls.is_empty());
    for u in urls {
        assert!(
            matches!(u.parse::<Location>(), Ok(Location::Etcd(_))),
            "netconf-store.7: example {u} does not parse"
        );
    }
    // The settings file's name and variable are the code's.
    use netconf_cluster::config::etcd::tls::{DEFAULT_SETTINGS, SETTINGS_VAR};
    assert!(page.contains(DEFAULT_SETTINGS) && page.contains(SETTINGS_VAR));
    let cluster = plain(&text("gnt-cluster.8"));
    assert!(cluster.contains(".SS copy-store") && cluster.contains("netconf-store (7)"));
}

#[test]
fn store_page_renders_without_warnings() {
    let path = man("netconf-store.7");
    let mut ran = 0;
    for (what, mut cmd) in [
        ("groff", {
            let mut c = Command::new("groff");
            c.args(["-man", "-Tutf8", "-ww", "-z"]).arg(&path);
            c
        }),
        ("man", {
            let mut c = Command::new("man");
            c.args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
                .arg(&path)
                .env("LC_ALL", "C.UTF-8")
                .env("MANROFFSEQ", "")
                .env("MANWIDTH", "80");
            c
        }),
        ("lexgrog", {
            let mut c = Command::new("lexgrog");
            c.arg(&path);
            c
        }),
    ] {
        let Ok(o) = cmd.output() else { continue };
        ran += 1;
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && err.trim().is_empty(),
            "{what} on netconf-store.7: {err}"
        );
        if what == "lexgrog" {
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains(": \"netconf-store - "), "lexgrog: {out}");
        }
    }
    if ran == 0 {
        eprintln!(
            "SKIP store_page_renders_without_warnings: neither groff, man nor lexgrog is installed (Debian: groff-base, man-db)"
        );
    }
}
