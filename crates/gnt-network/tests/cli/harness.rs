//! A temporary cluster per test, a `cmd` helper returning (exit code, stdout, stderr), and
//! assertions on Ganeti's error layout and on config.data staying byte-identical.
//!
//! With `NETCONF_TEST_STORE=etcd` the whole suite runs against the etcd store instead: one
//! etcd for the test process, a prefix of its own for each cluster; "config.data's bytes"
//! are then every key of the prefix with its mod revision and value. Tests about the
//! config.data file itself are file-store-only (`file_only`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NET: &str = env!("CARGO_BIN_EXE_gnt-network");
pub const GROUP: &str = env!("CARGO_BIN_EXE_gnt-group");
pub const NODE: &str = env!("CARGO_BIN_EXE_gnt-node");
pub const INST: &str = env!("CARGO_BIN_EXE_gnt-instance");
pub const CLUSTER: &str = env!("CARGO_BIN_EXE_gnt-cluster");

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One cluster: `<tmp>/config.data` (or a prefix in etcd) and `<tmp>/hooks`.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    verify_on_drop: std::sync::atomic::AtomicBool,
    /// The etcd store URL of this cluster, when the suite runs on etcd.
    store: Option<String>,
}

/// Whether this run is against the etcd store (`NETCONF_TEST_STORE=etcd`).
pub fn on_etcd() -> bool {
    std::env::var("NETCONF_TEST_STORE").is_ok_and(|v| v == "etcd")
}

/// For a test about the config.data file itself: false (and a SKIP line) on etcd.
pub fn file_only(test: &str) -> bool {
    if on_etcd() {
        netconf_test_support::skip(test, "about the config.data file (file store only)");
        return false;
    }
    true
}

impl Cluster {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gnt-cli-test")
            .tempdir()
            .expect("temp dir");
        fs::create_dir(dir.path().join("hooks")).expect("hooks dir");
        let store = on_etcd().then(|| {
            assert!(
                Path::new(netconf_test_support::ETCD).is_file(),
                "NETCONF_TEST_STORE=etcd needs etcd (scripts/install-test-deps)"
            );
            netconf_test_support::EtcdCluster::shared().url(&netconf_test_support::unique_prefix())
        });
        Cluster {
            dir,
            verify_on_drop: std::sync::atomic::AtomicBool::new(true),
            store,
        }
    }

    /// The etcd store URL of this cluster (etcd runs only).
    pub fn store_url(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The etcd store of this cluster (etcd runs only).
    fn etcd(&self) -> Option<netconf_cluster::config::etcd::EtcdStore> {
        let url = self.store.as_ref()?;
        Some(netconf_cluster::config::etcd::EtcdStore::new(
            &url.parse().expect("test store URL"),
        ))
    }

    /// For a test that leaves an inconsistent configuration on purpose.
    pub fn skip_final_verify(&self) {
        self.verify_on_drop
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.data")
    }

    pub fn hooks(&self) -> PathBuf {
        self.dir.path().join("hooks")
    }

    /// The binary with this cluster's config (env `NETCONF_CONFIG`) and hooks directory.
    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args)
            .env("NETCONF_CONFIG", self.config())
            .env("NETCONF_HOOKS_DIR", self.hooks())
            .env("TZ", "UTC");
        match &self.store {
            // The copy of the heads, on by default, kept with the cluster (not in /run):
            // the whole suite runs through it on etcd.
            Some(url) => c
                .env("NETCONF_STORE", url)
                .env("NETCONF_CACHE_DIR", self.dir.path().join("etcd-heads")),
            None => c.env_remove("NETCONF_STORE"),
        };
        c
    }

    pub fn cmd(&self, bin: &str, args: &[&str]) -> Run {
        let o = self
            .command(bin, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, bin: &str, args: &[&str]) -> String {
        let r = self.cmd(bin, args);
        assert_eq!(
            r.code,
            0,
            "{} {args:?} failed:\nstdout: {}\nstderr: {}",
            name(bin),
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    /// `gnt-network add --network SUBNET --gateway GATEWAY NAME`, which must succeed: the
    /// network most fixtures start from.
    pub fn add_net(&self, name: &str, subnet: &str, gateway: &str) {
        self.ok(
            NET,
            &["add", "--network", subnet, "--gateway", gateway, name],
        );
    }

    pub fn bytes(&self) -> Vec<u8> {
        if let Some(store) = self.etcd() {
            return store.raw_dump().expect("etcd dump");
        }
        fs::read(self.config()).expect("config.data exists")
    }

    /// config.data's text; on etcd, the configuration rendered as config.data would be.
    pub fn text(&self) -> String {
        if self.store.is_some() {
            return netconf_cluster::config::render(&self.parsed()).expect("render");
        }
        fs::read_to_string(self.config()).expect("config.data exists")
    }

    /// Runs a command that must fail with `code` and exactly `stderr`, leaving config.data
    /// byte-identical. Returns the run (for stdout checks).
    pub fn fails(&self, bin: &str, args: &[&str], code: i32, stderr: &str) -> Run {
        let before = self.bytes();
        let r = self.cmd(bin, args);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (code, stderr),
            "{} {args:?}\nstdout: {}",
            name(bin),
            r.stdout
        );
        assert!(
            self.bytes() == before,
            "{} {args:?} failed but changed config.data",
            name(bin)
        );
        r
    }

    /// `fails` with Ganeti's OpPrereqError layout and exit code 1.
    pub fn prereq(&self, bin: &str, args: &[&str], ecode: &str, msg: &str) -> Run {
        self.fails(bin, args, 1, &prereq(ecode, msg))
    }

    /// The value of `key` in the `[cluster]` table of config.data.
    pub fn cluster_value(&self, key: &str) -> String {
        let text = self.text();
        let section = text
            .split("\n[cluster]\n")
            .nth(1)
            .expect("[cluster] table")
            .split("\n[")
            .next()
            .expect("table body");
        section
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in [cluster]"))
            .trim_matches('"')
            .to_owned()
    }

    pub fn serial(&self) -> u64 {
        self.cluster_value("serial_no").parse().expect("serial_no")
    }

    /// Parses config.data with the library's own reader (the definition of "valid").
    pub fn parsed(&self) -> netconf_cluster::config::ClusterConfig {
        if let Some(store) = self.etcd() {
            use netconf_cluster::config::Store;
            return store
                .read_versioned()
                .unwrap_or_else(|e| panic!("the etcd store does not read: {e}"))
                .0;
        }
        netconf_cluster::config::parse(&self.text(), &self.config())
            .unwrap_or_else(|e| panic!("config.data does not parse: {e}"))
    }

    /// A hook script `<hooks>/<path>-<phase>.d/<name>` with `body` (a shell script).
    pub fn hook(&self, path: &str, phase: &str, name: &str, body: &str) {
        let d = self.hooks().join(format!("{path}-{phase}.d"));
        fs::create_dir_all(&d).expect("hook dir");
        let p = d.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("hook script");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// A hook that records its environment in `<tmp>/env.<path>.<phase>`; returns that path.
    pub fn env_hook(&self, path: &str, phase: &str) -> PathBuf {
        let out = self.dir.path().join(format!("env.{path}.{phase}"));
        self.hook(
            path,
            phase,
            "10-record",
            &format!("env > '{}'", out.display()),
        );
        out
    }

    /// `gnt-network list --no-headers --separator '|' -o FIELD NET`.
    pub fn net_field(&self, net: &str, field: &str) -> String {
        self.ok(NET, &["list", "--no-headers", "-o", field, net])
            .trim_end_matches('\n')
            .to_owned()
    }

    pub fn inst_field(&self, inst: &str, field: &str) -> String {
        self.ok(INST, &["list", "--no-headers", "-o", field, inst])
            .trim_end_matches('\n')
            .to_owned()
    }
}

/// The VLANs of an instance's NICs as config.data holds them (`list` shows only those of
/// openvswitch NICs, as Ganeti does).
pub fn nic_vlans(c: &Cluster, inst: &str) -> Vec<String> {
    let cfg = c.parsed();
    let i = cfg
        .instances
        .all_decoded()
        .values()
        .find(|i| i.name == inst)
        .unwrap_or_else(|| panic!("no instance {inst}"));
    i.nics.iter().map(|n| n.vlan.to_string()).collect()
}

/// Every configuration a test leaves must pass `gnt-cluster verify`: the cheapest proof
/// that verify accepts whatever the commands build. Skipped for files that do not parse
/// (the corrupt-file tests), are not regular files, and for tests that broke the
/// configuration on purpose.
impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking()
            || !self
                .verify_on_drop
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if self.store.is_some() {
            let r = self.cmd(CLUSTER, &["verify"]);
            assert!(
                r.code == 0 || r.stderr.contains("refusing to read"),
                "gnt-cluster verify fails on the configuration this test left:\n{}{}",
                r.stdout,
                r.stderr
            );
            return;
        }
        let path = self.config();
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return;
        }
        let parses = fs::read_to_string(&path)
            .ok()
            .is_some_and(|t| netconf_cluster::config::parse(&t, &path).is_ok());
        if !parses {
            return;
        }
        let r = self.cmd(CLUSTER, &["verify"]);
        assert_eq!(
            r.code, 0,
            "gnt-cluster verify fails on the configuration this test left:\n{}{}",
            r.stdout, r.stderr
        );
    }
}

/// Ganeti's OpPrereqError as the CLI prints it (with the final newline).
pub fn prereq(ecode: &str, msg: &str) -> String {
    format!(
        "Failure: prerequisites not met for this operation:\nerror type: {ecode}, error details:\n{msg}\n"
    )
}

/// Ganeti's OpExecError as the CLI prints it.
pub fn exec_err(msg: &str) -> String {
    format!("Failure: command execution error:\n{msg}\n")
}

/// The feedback lines (`<ctime>  - WARNING: msg`) of a run's stdout, without the time.
pub fn feedback(stdout: &str, severity: &str) -> Vec<String> {
    let tag = format!("  - {severity}: ");
    stdout
        .lines()
        .filter_map(|l| l.split_once(&tag).map(|(_, m)| m.to_owned()))
        .collect()
}

/// Reads a file written by `env > file` into sorted `KEY=value` pairs.
pub fn env_file(p: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    v.sort();
    v
}

pub fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn name(bin: &str) -> &str {
    Path::new(bin)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(bin)
}

/// A cluster with net1 = 192.168.1.0/24 (gateway .1, tag nfdhcpd) connected to `default`
/// as bridged/prv0: the seed scenario.
pub fn seeded() -> Cluster {
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "192.168.1.0/24",
            "--gateway",
            "192.168.1.1",
            "--tags",
            "nfdhcpd",
            "net1",
        ],
    );
    c.ok(NET, &["connect", "net1", "bridged", "prv0"]);
    c
}
