//! Harness for snf-ifup's namespace tests: a node namespace per test (the tool runs there
//! via `ip netns exec`), guest namespaces behind veth "TAPs", and an RAII guard that
//! deletes every namespace even when the test fails. Addresses: 198.51.100.0/24,
//! 203.0.113.0/24 and 2001:db8::/32 only.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netconf_test_support::{Netns, Veth, need_root, on_path, skip, unique_name};
pub use netconf_test_support::{ok, output as sh};

pub mod follow;
pub mod watcher;

/// True when the test can run; otherwise prints why it skips.
pub fn can_run(test: &str) -> bool {
    if !need_root(test, "network namespaces") {
        return false;
    }
    for tool in [
        "ip",
        "iptables-save",
        "ebtables-save",
        "arptables-save",
        "ping",
    ] {
        if !on_path(tool) {
            skip(
                test,
                &format!("{tool} is not installed (scripts/install-test-deps)"),
            );
            return false;
        }
    }
    true
}

/// The firewall driver a test runs snf-ifup with (`firewall` in snf-network.toml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fw {
    Iptables,
    Nftables,
}

/// [`can_run`], and for nftables also `nft`.
pub fn can_run_fw(test: &str, fw: Fw) -> bool {
    if !can_run(test) {
        return false;
    }
    if fw == Fw::Nftables && !on_path("nft") {
        skip(test, "nft is not installed (scripts/install-test-deps)");
        return false;
    }
    true
}

/// A node namespace, its guests, and a scratch directory for snf-ifup's files.
pub struct Lab {
    pub node: String,
    guests: Vec<String>,
    extra: Vec<String>,
    pub dir: tempfile::TempDir,
    prefix: String,
    pub fw: Fw,
    veths: Vec<Veth>,
    netns: Vec<Netns>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Before `dir` goes: what runs in the namespaces may still write there.
        self.veths.clear();
        self.netns.clear();
    }
}

impl Lab {
    pub fn new() -> Lab {
        let prefix = unique_name("nci", "x");
        let node = format!("{prefix}node");
        // Bridged iptables matches (physdev) need br_netfilter; on kernels where it is a
        // module, load it (global, but it only adds the bridge-nf hooks).
        if !Path::new("/proc/sys/net/bridge").exists() {
            let _ = Command::new("modprobe").arg("br_netfilter").status();
        }
        let netns = vec![Netns::add(&node)];
        let lab = Lab {
            node,
            guests: Vec::new(),
            extra: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            prefix,
            fw: Fw::Iptables,
            veths: Vec::new(),
            netns,
        };
        // Someone else's rules: they must survive every up/down untouched.
        for t in ["iptables", "ip6tables"] {
            lab.exec(&[t, "-N", "admin"]);
            lab.exec(&[
                t, "-A", "admin", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
            ]);
            lab.exec(&[t, "-A", "FORWARD", "-i", "adm0", "-j", "admin"]);
            lab.exec(&[t, "-A", "INPUT", "-i", "adm0", "-j", "ACCEPT"]);
        }
        lab.exec(&["ebtables", "-A", "FORWARD", "-i", "adm0", "-j", "ACCEPT"]);
        std::fs::write(lab.dir.path().join("snf-network.toml"), "syslog = false\n").unwrap();
        lab
    }

    /// A lab whose snf-ifup uses the firewall driver `fw`.
    pub fn with(fw: Fw) -> Lab {
        let mut lab = Lab::new();
        lab.fw = fw;
        if fw == Fw::Nftables {
            std::fs::write(
                lab.dir.path().join("snf-network.toml"),
                "syslog = false\nfirewall = \"nftables\"\n",
            )
            .unwrap();
        }
        lab
    }

    /// The rules of one of snf-ifup's nftables chains, without counters.
    pub fn nft_chain(&self, family: &str, chain: &str) -> Vec<String> {
        let o = self.exec_in(
            &self.node,
            &["nft", "-s", "list", "chain", family, "snf_ifup", chain],
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.ends_with('{') && *l != "}" && !l.starts_with("type "))
            .map(str::to_owned)
            .collect()
    }

    /// Whether nftables can hold a bridged firewall profile here: conntrack in the inet
    /// family and the packet mark in the bridge family; checked with `nft -c`, nothing is
    /// applied.
    pub fn nft_takes_profiles(&self) -> bool {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.node, "nft", "-c", "-f", "-"]);
        c.stdin(std::process::Stdio::piped());
        c.stderr(std::process::Stdio::null());
        let Ok(mut child) = c.spawn() else {
            return false;
        };
        let probe = "add table inet probe\nadd chain inet probe c\nadd rule inet probe c ct state established accept\n\
            add table bridge probe\nadd chain bridge probe c\nadd rule bridge probe c meta mark set meta mark & 0xffcfffff | 0x00100000\n";
        let _ = child
            .stdin
            .take()
            .map(|mut i| i.write_all(probe.as_bytes()));
        child.wait().is_ok_and(|s| s.success())
    }

    /// snf-ifup's own nftables tables, without counters.
    pub fn nft_ours(&self) -> String {
        let mut out = String::new();
        let mut ours = false;
        for l in self.exec(&["nft", "-s", "list", "ruleset"]).lines() {
            if l.starts_with("table ") {
                ours = l.ends_with(" snf_ifup {");
            }
            if ours {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Runs a command inside the node namespace and requires success.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.node];
        v.extend_from_slice(args);
        ok(&v)
    }

    pub fn exec_in(&self, ns: &str, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// A PATH that finds everything the current one does except `tool`: a directory of
    /// symlinks (the first of each name wins, as in a lookup), to see how the tool's absence
    /// is reported on a machine that has it.
    pub fn path_without(&self, tool: &str) -> String {
        let bin = self.dir.path().join(format!("path-without-{tool}"));
        std::fs::create_dir_all(&bin).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        for d in std::env::split_paths(&path) {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let link = bin.join(&name);
                if name != tool && !link.exists() {
                    let _ = std::os::unix::fs::symlink(e.path(), link);
                }
            }
        }
        bin.to_string_lossy().into_owned()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn nfdhcpd_dir(&self) -> PathBuf {
        self.dir.path().join("nfdhcpd")
    }

    pub fn nic_dir(&self) -> PathBuf {
        self.dir.path().join("nic")
    }

    pub fn bridge(&self, name: &str, mtu: u32) {
        self.exec(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        self.exec(&["ip", "link", "set", name, "mtu", &mtu.to_string(), "up"]);
    }

    /// A VLAN-filtering bridge; false when the kernel cannot make one.
    pub fn vlan_bridge(&self, name: &str) -> bool {
        let o = self.exec_in(
            &self.node,
            &[
                "ip",
                "link",
                "add",
                name,
                "type",
                "bridge",
                "vlan_filtering",
                "1",
            ],
        );
        if !o.status.success() {
            return false;
        }
        self.exec(&["ip", "link", "set", name, "up"]);
        true
    }

    /// A guest namespace whose `eth1` is the peer of `tap` in the node.
    pub fn guest(&mut self, tap: &str, mac: &str) -> String {
        let g = format!("{}g{}", self.prefix, self.guests.len());
        self.netns.push(Netns::add(&g));
        self.guests.push(g.clone());
        self.veths.push(Veth::new(tap, &self.node, "eth1", &g));
        ok(&["ip", "-n", &g, "link", "set", "eth1", "address", mac]);
        ok(&["ip", "-n", &g, "link", "set", "eth1", "up"]);
        g
    }

    /// A guest as [`Lab::guest`] with `ip`/24 on its eth1.
    pub fn guest_with_ip(&mut self, tap: &str, mac: &str, ip: &str) -> String {
        let g = self.guest(tap, mac);
        ok(&[
            "ip",
            "-n",
            &g,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth1",
        ]);
        g
    }

    /// Another namespace linked to the node by `node_if` <-> `far_if`.
    pub fn peer(&mut self, node_if: &str, far_if: &str) -> String {
        let p = format!("{}p{}", self.prefix, self.extra.len());
        self.netns.push(Netns::add(&p));
        self.extra.push(p.clone());
        self.veths.push(Veth::new(node_if, &self.node, far_if, &p));
        ok(&["ip", "-n", &p, "link", "set", far_if, "up"]);
        self.exec(&["ip", "link", "set", node_if, "up"]);
        p
    }

    fn base_cmd(&self, env: &[(&str, &str)], program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.node]);
        c.arg(program);
        c.args(args);
        // Only what a hypervisor would pass, plus our directories.
        c.env_clear();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        c.env(
            "SNF_NETWORK_CONFIG",
            self.dir.path().join("snf-network.toml"),
        );
        c.env("SNF_NETWORK_STATE_DIR", self.state_dir());
        c.env("NFDHCPD_STATE_DIR", self.nfdhcpd_dir());
        c.env("GANETI_NIC_DIR", self.nic_dir());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// The command `ifup` runs, to be spawned (a long-running `watch`).
    pub fn ifup_command(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        self.base_cmd(env, Path::new(env!("CARGO_BIN_EXE_snf-ifup")), args)
    }

    /// Runs snf-ifup (or one of its install names) in the node with `env`.
    pub fn ifup_as(&self, program: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.base_cmd(env, program, args)
            .output()
            .expect("run snf-ifup")
    }

    pub fn ifup(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.ifup_as(Path::new(env!("CARGO_BIN_EXE_snf-ifup")), env, args)
    }

    /// Like `ifup` but requires success.
    pub fn ifup_ok(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let o = self.ifup(env, args);
        assert!(
            o.status.success(),
            "snf-ifup {args:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// iptables, ip6tables, ebtables and arptables filter dumps without comments and counters.
    pub fn fw_dump(&self) -> String {
        let mut s = String::new();
        for t in [
            "iptables-save",
            "ip6tables-save",
            "ebtables-save",
            "arptables-save",
        ] {
            for line in self.exec(&[t]).lines() {
                if line.starts_with('#') {
                    continue;
                }
                // The nf_tables arp table stays once used; only its rules matter.
                if t == "arptables-save" && !line.starts_with("-A ") {
                    continue;
                }
                let l = match line.find(" [") {
                    Some(i) if line.starts_with(':') => &line[..i],
                    _ => line,
                };
                s.push_str(l);
                s.push('\n');
            }
        }
        if self.fw == Fw::Nftables {
            s.push_str("# nft -s list ruleset\n");
            s.push_str(&self.exec(&["nft", "-s", "list", "ruleset"]));
        }
        s
    }

    /// Link, routing and neighbour state of the node, for comparisons.
    pub fn net_dump(&self) -> String {
        let mut s = String::new();
        for args in [
            &["ip", "-d", "-o", "link", "show"][..],
            &["ip", "-4", "rule", "show"],
            &["ip", "-6", "rule", "show"],
            &["ip", "-4", "route", "show", "table", "all"],
            &["ip", "-6", "route", "show", "table", "all"],
            &["ip", "-6", "neigh", "show", "proxy"],
            &["bridge", "vlan", "show"],
        ] {
            s.push_str(&self.exec(args));
        }
        // Volatile fields (operstate, DAD-dependent link-local routes) would make equal
        // states differ.
        s.lines()
            .filter(|l| !l.contains("fe80") && !l.contains("expires"))
            .map(|l| {
                let l = l.split(" qlen").next().unwrap_or(l);
                let mut words: Vec<&str> = l.split(' ').collect();
                if let Some(i) = words.iter().position(|w| *w == "state")
                    && i + 1 < words.len()
                {
                    words.drain(i..=i + 1);
                }
                words.join(" ") + "\n"
            })
            .collect()
    }

    pub fn sysctl(&self, name: &str) -> String {
        self.exec(&["sysctl", "-n", name]).trim().to_owned()
    }

    /// One echo request; true if answered within a second.
    pub fn ping(&self, from: &str, to: &str, extra: &[&str]) -> bool {
        let mut v = vec!["ping", "-c", "1", "-W", "1"];
        v.extend_from_slice(extra);
        v.push(to);
        self.exec_in(from, &v).status.success()
    }

    /// Up to three echo requests (neighbour discovery may eat the first); true if one is
    /// answered.
    pub fn ping_ok(&self, from: &str, to: &str, extra: &[&str]) -> bool {
        (0..3).any(|_| self.ping(from, to, extra))
    }
}

/// A NIC's environment as owned pairs, and the borrowed form `Lab::ifup` takes.
pub type Env = Vec<(String, String)>;

pub fn refs(env: &Env) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Ganeti's environment for NIC 0 of vm1 on net1 (198.51.100.0/24, 2001:db8:1::/64).
pub fn nic(
    tap: &str,
    mac: &str,
    ip: &str,
    mode: &str,
    link: &str,
    net_tags: &str,
    tags: &str,
) -> Env {
    let mut v: Env = [
        ("INSTANCE", "vm1.example.org"),
        ("INTERFACE", tap),
        ("INTERFACE_INDEX", "0"),
        ("INTERFACE_UUID", "5e0c7a52-0000-4000-8000-000000000001"),
        ("MAC", mac),
        ("IP", ip),
        ("MODE", mode),
        ("LINK", link),
        ("VLAN", ""),
        ("TAGS", tags),
        ("NETWORK_NAME", "net1"),
        ("NETWORK_UUID", "a1b2c3d4-0000-4000-8000-000000000002"),
        ("NETWORK_TAGS", net_tags),
        ("NETWORK_SUBNET", "198.51.100.0/24"),
        ("NETWORK_GATEWAY", "198.51.100.1"),
        ("NETWORK_SUBNET6", "2001:db8:1::/64"),
        ("NETWORK_GATEWAY6", "2001:db8:1::1"),
        ("NETWORK_MAC_PREFIX", "aa:00:00"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if mode == "bridged" {
        v.push(("BRIDGE".into(), link.into()));
    }
    v
}

/// Sets (or replaces) one variable of `env`.
pub fn set(env: &mut Env, k: &str, val: &str) {
    env.retain(|(a, _)| a != k);
    env.push((k.to_owned(), val.to_owned()));
}
