//! Shell completion of the gnt-* tools: the words a TAB offers come from the store the
//! command line names, a missing or broken store gives no names and no error, nothing is
//! written, and the registration scripts work in the real shells (bash always; zsh and
//! fish when installed, as scripts/install-test-deps does).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NETWORK: &str = env!("CARGO_BIN_EXE_gnt-network");
const GROUP: &str = env!("CARGO_BIN_EXE_gnt-group");
const NODE: &str = env!("CARGO_BIN_EXE_gnt-node");
const INSTANCE: &str = env!("CARGO_BIN_EXE_gnt-instance");
const CLUSTER: &str = env!("CARGO_BIN_EXE_gnt-cluster");

/// A cluster with two of each kind, named so that only the store can know them.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn path(&self) -> PathBuf {
        self.dir.path().join("config.data")
    }

    fn run(&self, bin: &str, args: &[&str]) {
        let out = Command::new(bin)
            .args(args)
            .env("NETCONF_CONFIG", self.path())
            .env("NETCONF_HOOKS_DIR", self.dir.path().join("hooks"))
            .env_remove("NETCONF_COMPLETE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn seeded() -> Store {
        let s = Store {
            dir: tempfile::tempdir().unwrap(),
        };
        s.run(GROUP, &["add", "grp-b"]);
        s.run(NODE, &["add", "--primary-ip", "203.0.113.5", "node-b1"]);
        s.run(
            NODE,
            &[
                "add",
                "-g",
                "grp-b",
                "--primary-ip",
                "203.0.113.6",
                "node-b2",
            ],
        );
        s.run(NETWORK, &["add", "--network", "198.51.100.0/24", "net-b10"]);
        s.run(NETWORK, &["add", "--network", "203.0.113.0/24", "net-b9"]);
        s.run(INSTANCE, &["add", "-n", "node-b1", "--no-nics", "inst-b1"]);
        s.run(INSTANCE, &["add", "-n", "node-b2", "--no-nics", "inst-b2"]);
        s
    }

    /// Every file of the store's directory with its bytes.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        v.sort();
        v
    }
}

/// What the tool answers for a bash TAB after `words` (the last one is being typed), as
/// the registration script asks it; stderr must stay empty.
fn tab(bin: &str, config: Option<&Path>, words: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--")
        .args(words)
        .env("NETCONF_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_IFS", "\n");
    match config {
        Some(c) => cmd.env("NETCONF_CONFIG", c),
        None => cmd.env_remove("NETCONF_CONFIG"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{words:?}: {out:?}");
    assert!(out.stderr.is_empty(), "{words:?} wrote to stderr: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The candidates that are not options or subcommands of the tool.
fn names(all: Vec<String>) -> Vec<String> {
    let words = [
        "add",
        "modify",
        "remove",
        "rename",
        "connect",
        "disconnect",
        "list",
        "list-fields",
        "info",
        "add-tags",
        "remove-tags",
        "list-tags",
        "assign-nodes",
        "verify",
        "help",
    ];
    all.into_iter()
        .filter(|w| !w.starts_with('-') && !words.contains(&w.as_str()))
        .collect()
}

#[test]
fn names_of_every_kind_come_from_the_store() {
    let s = Store::seeded();
    let c = Some(s.path());
    let c = c.as_deref();
    let nets = ["net-b9", "net-b10"];
    let groups = ["default", "grp-b"];
    let nodes = ["node-b1", "node-b2"];
    let insts = ["inst-b1", "inst-b2"];
    for (bin, words, want) in [
        (NETWORK, &["gnt-network", "info", ""][..], &nets[..]),
        (NETWORK, &["gnt-network", "modify", ""], &nets),
        (NETWORK, &["gnt-network", "list-tags", ""], &nets),
        (NETWORK, &["gnt-network", "add-tags", ""], &nets),
        (NETWORK, &["gnt-network", "connect", ""], &nets),
        (NETWORK, &["gnt-network", "connect", "net-b9", ""], &groups),
        (
            NETWORK,
            &["gnt-network", "disconnect", "net-b9", "default", ""],
            &groups,
        ),
        (GROUP, &["gnt-group", "info", ""], &groups),
        (GROUP, &["gnt-group", "assign-nodes", "grp-b", ""], &nodes),
        (NODE, &["gnt-node", "modify", "-g", ""], &groups),
        (NODE, &["gnt-node", "remove", ""], &nodes),
        (INSTANCE, &["gnt-instance", "modify", ""], &insts),
        (INSTANCE, &["gnt-instance", "add-tags", ""], &insts),
        (INSTANCE, &["gnt-instance", "add", "-n", ""], &nodes),
        (
            INSTANCE,
            &["gnt-instance", "add", "--node-group", ""],
            &groups,
        ),
    ] {
        assert_eq!(names(tab(bin, c, words)), want, "{words:?}");
    }
    // The engine keeps only the names that start with what was typed.
    assert_eq!(
        tab(INSTANCE, c, &["gnt-instance", "info", "inst-b2"]),
        ["inst-b2"]
    );
    assert_eq!(
        names(tab(
            NODE,
            c,
            &["gnt-node", "modify", "--node-group=grp", "node-b2"]
        )),
        ["node-b2"]
    );
    assert_eq!(
        tab(INSTANCE, c, &["gnt-instance", "add", "--node=node-b", "x"]),
        Vec::<String>::new()
    );
    // The value of `--opt=` is completed after the `=`.
    assert_eq!(
        tab(NODE, c, &["gnt-node", "modify", "--node-group=grp"]),
        ["--node-group=grp-b"]
    );
    // `--config` on the command line wins over the environment.
    let at = format!("--config={}", s.path().display());
    assert_eq!(
        names(tab(NETWORK, None, &["gnt-network", &at, "info", ""])),
        nets
    );
    assert_eq!(
        names(tab(
            NETWORK,
            Some(Path::new("/nonexistent/config.data")),
            &[
                "gnt-network",
                "--config",
                &s.path().to_string_lossy(),
                "info",
                ""
            ]
        )),
        nets
    );
    // Options and subcommands still come from clap.
    assert!(tab(NETWORK, c, &["gnt-network", "inf"]).contains(&"info".to_owned()));
    assert!(tab(CLUSTER, c, &["gnt-cluster", "ver"]).contains(&"verify".to_owned()));
}

#[test]
fn a_missing_or_broken_store_gives_no_names_and_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("config.data");
    for (what, config) in [
        ("absent", absent.clone()),
        ("a directory", dir.path().to_owned()),
    ] {
        for (bin, words) in [
            (NETWORK, &["gnt-network", "info", ""][..]),
            (GROUP, &["gnt-group", "info", ""]),
            (NODE, &["gnt-node", "remove", ""]),
            (INSTANCE, &["gnt-instance", "modify", ""]),
        ] {
            let got = tab(bin, Some(&config), words);
            assert!(names(got.clone()).is_empty(), "{what}: {words:?}: {got:?}");
            // The options are still offered.
            assert!(got.contains(&"--config".to_owned()), "{what}: {got:?}");
        }
    }
    assert!(!absent.exists(), "completion created the store");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    for broken in [&b"not toml ["[..], b"\xff\xfe binary", b""] {
        std::fs::write(&absent, broken).unwrap();
        let got = tab(INSTANCE, Some(&absent), &["gnt-instance", "modify", ""]);
        assert!(names(got.clone()).is_empty(), "{broken:?}: {got:?}");
    }
    // A FIFO in its place must not hold the TAB up.
    std::fs::remove_file(&absent).unwrap();
    nix::unistd::mkfifo(&absent, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let got = tab(NETWORK, Some(&absent), &["gnt-network", "info", ""]);
    assert!(names(got).is_empty());
}

#[test]
fn completing_writes_nothing_not_even_the_cache() {
    let s = Store::seeded();
    // Without a cache an ordinary reader would rebuild it.
    std::fs::remove_file(s.dir.path().join("config.data.cache")).unwrap();
    let before = s.files();
    let c = Some(s.path());
    for _ in 0..2 {
        assert_eq!(
            names(tab(INSTANCE, c.as_deref(), &["gnt-instance", "info", ""])),
            ["inst-b1", "inst-b2"]
        );
    }
    assert_eq!(s.files(), before);
    // And from the cache a command leaves behind, the same names.
    s.run(NETWORK, &["list"]);
    assert!(s.dir.path().join("config.data.cache").exists());
    assert_eq!(
        names(tab(INSTANCE, c.as_deref(), &["gnt-instance", "info", ""])),
        ["inst-b1", "inst-b2"]
    );
}

/// The registration script a tool prints for `shell`.
fn registration(bin: &str, shell: &str) -> String {
    let out = Command::new(bin)
        .env("NETCONF_COMPLETE", shell)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// PATH with the binaries under test first: the scripts call the tools by name.
fn path_with_bins() -> String {
    let bins = Path::new(NETWORK).parent().unwrap().display().to_string();
    format!("{bins}:{}", std::env::var("PATH").unwrap_or_default())
}

fn shell(prog: &str, args: &[&str], config: &Path) -> Option<Output> {
    match Command::new(prog)
        .args(args)
        .env("PATH", path_with_bins())
        .env("NETCONF_CONFIG", config)
        .env_remove("NETCONF_COMPLETE")
        .output()
    {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{prog}: {e}"),
    }
}

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

#[test]
fn bash_registers_and_completes_names() {
    let s = Store::seeded();
    let script = s.dir.path().join("gnt-network.bash");
    std::fs::write(&script, registration(NETWORK, "bash")).unwrap();
    // What bash does at `gnt-network info <TAB>`, then `complete -p`.
    let prog = format!(
        "source '{}'\n\
         COMP_WORDS=(gnt-network info '') COMP_CWORD=2 COMP_TYPE=9\n\
         _clap_complete_gnt_network gnt-network '' info\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n\
         complete -p gnt-network\n",
        script.display()
    );
    let out = shell("bash", &["--norc", "-c", &prog], &s.path()).expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.starts_with(&["net-b9", "net-b10"]),
        "COMPREPLY: {text}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("complete ") && l.ends_with(" gnt-network")),
        "{text}"
    );
}

#[test]
fn fish_completes_names() {
    let s = Store::seeded();
    let script = s.dir.path().join("gnt-instance.fish");
    std::fs::write(&script, registration(INSTANCE, "fish")).unwrap();
    let prog = format!(
        "source '{}'; complete -C 'gnt-instance modify '",
        script.display()
    );
    let Some(out) = shell("fish", &["--no-config", "-c", &prog], &s.path()) else {
        return skip("fish_completes_names", "fish is not installed");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let got: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(got, ["inst-b1", "inst-b2"], "{text}");
}

#[test]
fn zsh_loads_the_completion_function() {
    let s = Store::seeded();
    let dir = s.dir.path().join("zfunc");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("_gnt-node"), registration(NODE, "zsh")).unwrap();
    // As from /usr/share/zsh/vendor-completions: compinit finds `#compdef gnt-node`.
    let prog = format!(
        "fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -D; print -r -- $_comps[gnt-node]",
        dir.display()
    );
    let Some(out) = shell("zsh", &["-f", "-c", &prog], &s.path()) else {
        return skip("zsh_loads_the_completion_function", "zsh is not installed");
    };
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "_gnt-node");
    // The function itself asks the tool as the engine's zsh protocol does.
    let got = Command::new(NODE)
        .args(["--", "gnt-node", "remove", ""])
        .env("NETCONF_COMPLETE", "zsh")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_IFS", "\n")
        .env("NETCONF_CONFIG", s.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&got.stdout);
    let names: Vec<&str> = text.lines().filter(|l| l.starts_with("node-")).collect();
    assert_eq!(names, ["node-b1", "node-b2"], "{text}");
}

#[test]
fn every_tool_prints_a_script_for_each_shell() {
    for bin in [NETWORK, GROUP, NODE, INSTANCE, CLUSTER] {
        let name = Path::new(bin).file_name().unwrap().to_string_lossy();
        for sh in ["bash", "zsh", "fish"] {
            let text = registration(bin, sh);
            let calls = text.replace('"', "").contains(&format!("{name} --"));
            assert!(calls, "{name} {sh}: {text}");
            assert!(!text.contains("target/"), "{name} {sh}: a build path");
        }
    }
    // An unknown shell is an error, not a script.
    let out = Command::new(NETWORK)
        .env("NETCONF_COMPLETE", "tcsh")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// With `NETCONF_STORE` naming an etcd prefix, a TAB offers the names stored there, not those
/// of a config.data that `NETCONF_CONFIG` names at the same time.
#[test]
fn names_come_from_etcd_when_the_store_is_etcd() {
    use netconf_test_support::{EtcdCluster, need_etcd, unique_prefix};
    if !need_etcd("names_come_from_etcd_when_the_store_is_etcd") {
        return;
    }
    let url = EtcdCluster::shared().url(&unique_prefix());
    let dir = tempfile::tempdir().unwrap();
    let on_etcd = |bin: &str, args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env("NETCONF_STORE", &url)
            .env("NETCONF_CACHE_DIR", "")
            .env("NETCONF_HOOKS_DIR", dir.path().join("hooks"))
            .env_remove("NETCONF_COMPLETE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} {args:?}: {out:?}");
    };
    on_etcd(NETWORK, &["add", "--network", "198.51.100.0/24", "net-e1"]);
    on_etcd(INSTANCE, &["add", "--no-nics", "inst-e1"]);
    // A file store beside it, with other names, must not be what the TAB reads.
    let file = Store::seeded();

    let tab_etcd = |bin: &str, words: &[&str]| {
        let out = Command::new(bin)
            .arg("--")
            .args(words)
            .env("NETCONF_COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            .env("_CLAP_IFS", "\n")
            .env("NETCONF_STORE", &url)
            .env("NETCONF_CACHE_DIR", "")
            .env("NETCONF_CONFIG", file.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{words:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{words:?} wrote to stderr: {out:?}");
        names(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect(),
        )
    };
    assert_eq!(tab_etcd(NETWORK, &["gnt-network", "info", ""]), ["net-e1"]);
    assert_eq!(
        tab_etcd(INSTANCE, &["gnt-instance", "modify", ""]),
        ["inst-e1"]
    );
}

/// A TAB while `NETCONF_STORE` names an etcd that does not answer returns and offers no
/// names (the options still), with nothing on stderr: a closed port, and sixteen members
/// that accept connections but never answer (a hung etcd, a firewall that drops), where
/// trying each in turn with the commands' own timeouts would hold the shell for a minute.
#[test]
fn a_silent_or_closed_etcd_gives_no_names_and_does_not_hold_the_tab() {
    // Accepted by the kernel (the backlog), never read nor answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let members = vec![format!("127.0.0.1:{port}"); 16].join(",");
    for (what, url) in [
        ("closed", format!("etcd://127.0.0.1:{closed}/x")),
        ("silent", format!("etcd://{members}/x")),
    ] {
        let mut child = Command::new(INSTANCE)
            .args(["--", "gnt-instance", "modify", ""])
            .env("NETCONF_COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", "2")
            .env("_CLAP_IFS", "\n")
            .env("NETCONF_STORE", &url)
            .env("NETCONF_CACHE_DIR", "")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Far beyond the completion's budget, far below what the commands' timeouts add
        // up to over sixteen members: a TAB still running then is one that hangs.
        netconf_test_support::wait_within(
            &mut child,
            std::time::Duration::from_secs(30),
            &format!("{what}: the TAB while etcd stayed silent"),
        );
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{what}: {out:?}");
        assert!(out.stderr.is_empty(), "{what}: wrote to stderr: {out:?}");
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(names(got.clone()).is_empty(), "{what}: {got:?}");
        assert!(got.contains(&"--store".to_owned()), "{what}: {got:?}");
    }
    drop(silent);
}
