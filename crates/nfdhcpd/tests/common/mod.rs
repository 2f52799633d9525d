//! Throw-away namespaces for the end-to-end tests: a node namespace running nfdhcpd (and
//! its iptables rules) and one namespace per guest, joined by veth pairs created directly
//! inside them. Everything is removed on drop, also when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netconf_test_support::{Daemon, Netns, Veth, gateway_bridge, unique_name};
pub use netconf_test_support::{ok as sh, try_ok as try_sh, wait_for};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Root check; prints the SKIP line the project's rules ask for.
pub fn need_root(test: &str) -> bool {
    netconf_test_support::need_root(test, "network namespaces")
}

pub fn unique(tag: &str) -> String {
    unique_name("ncd", tag)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Bridged,
    Routed,
}

pub const GW4: &str = "198.51.100.1";
pub const GW6: &str = "2001:db8:5::1";
pub const NET6: &str = "2001:db8:5::/64";
pub const NS4: [&str; 2] = ["198.51.100.53", "198.51.100.54"];
pub const NS6: &str = "2001:db8:5::53";
pub const DOMAIN: &str = "example.test";

pub struct Guest {
    pub ns: String,
    pub ifname: String,
    pub tap: String,
    pub mac: String,
}

pub struct Testbed {
    pub mode: Mode,
    pub node: String,
    pub guests: Vec<Guest>,
    pub dir: tempfile::TempDir,
    children: Vec<Daemon>,
    daemon: Option<Daemon>,
    veths: Vec<Veth>,
    netns: Vec<Netns>,
}

impl Testbed {
    /// A node namespace with `n` guests; bridged: taps on bridge `prv0` holding the gateway
    /// addresses; routed: every tap holds them itself (like proxy-ARP'd routed taps).
    pub fn new(mode: Mode, n: usize) -> Testbed {
        let node = unique("n");
        let netns = vec![Netns::add(&node)];
        let mut tb = Testbed {
            mode,
            node,
            guests: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
            daemon: None,
            veths: Vec::new(),
            netns,
        };
        tb.node_sh(&[
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ]);
        if mode == Mode::Bridged {
            tb.node_sh(&[
                "sysctl",
                "-qw",
                "net.bridge.bridge-nf-call-iptables=1",
                "net.bridge.bridge-nf-call-ip6tables=1",
            ]);
            gateway_bridge(&tb.node, "prv0", &format!("{GW4}/24"), &format!("{GW6}/64"));
        }
        for k in 0..n {
            tb.add_guest(k);
        }
        std::fs::create_dir_all(tb.bindings()).unwrap();
        tb
    }

    pub fn add_guest(&mut self, k: usize) {
        let ns = unique("g");
        self.netns.push(Netns::add(&ns));
        let tap = format!("tap{k}");
        // Unique across concurrently running tests: dhcpcd keeps per-interface files
        // (lease, pid, control socket) outside the namespace.
        let ifname = format!(
            "ncd{:05}v{}",
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mac = format!("02:00:00:00:01:{:02x}", k + 1);
        self.guests.push(Guest {
            ns: ns.clone(),
            ifname: ifname.clone(),
            tap: tap.clone(),
            mac: mac.clone(),
        });
        self.veths.push(Veth::new(&tap, &self.node, &ifname, &ns));
        self.guest_sh(k, &["ip", "link", "set", &ifname, "address", &mac]);
        self.guest_sh(
            k,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ifname}.accept_ra=2"),
                &format!("net.ipv6.conf.{ifname}.autoconf=1"),
                &format!("net.ipv6.conf.{ifname}.accept_dad=0"),
                "net.ipv4.conf.all.rp_filter=0",
            ],
        );
        self.guest_sh(k, &["ip", "link", "set", &ifname, "up"]);
        if self.mode == Mode::Bridged {
            self.node_sh(&["ip", "link", "set", &tap, "master", "prv0"]);
        }
        self.node_sh(&["ip", "link", "set", &tap, "up"]);
        if self.mode == Mode::Routed {
            // The node holds the gateway on every tap (routed TAPs in snf-network get
            // proxy ARP instead; an address is the simplest stand-in).
            self.node_sh(&["ip", "addr", "add", &format!("{GW4}/32"), "dev", &tap]);
            self.node_sh(&[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{GW6}/128"),
                "dev",
                &tap,
                "nodad",
            ]);
            self.node_sh(&[
                "ip",
                "route",
                "add",
                &format!("198.51.100.{}/32", 10 + k),
                "dev",
                &tap,
            ]);
        }
    }

    pub fn node_sh(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.node];
        v.extend_from_slice(args);
        sh(&v)
    }

    pub fn guest_sh(&self, k: usize, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.guests[k].ns];
        v.extend_from_slice(args);
        sh(&v)
    }

    pub fn guest_try(&self, k: usize, args: &[&str]) -> Option<String> {
        let mut v = vec!["ip", "netns", "exec", &self.guests[k].ns];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn bindings(&self) -> PathBuf {
        self.path("bindings")
    }

    /// Binding text for guest `k` (IP 198.51.100.10+k), MAC overridable.
    pub fn binding_text(&self, k: usize, mac: &str, extra: &str) -> String {
        let indev = match self.mode {
            Mode::Bridged => "prv0".to_owned(),
            Mode::Routed => self.guests[k].tap.clone(),
        };
        format!(
            "INDEV={indev}\nIP=198.51.100.{}\nMAC={mac}\nHOSTNAME=vm{k}.{DOMAIN}\nTAGS=\"\"\nGATEWAY={GW4}\nSUBNET=198.51.100.0/24\nGATEWAY6={GW6}\nSUBNET6={NET6}\nEUI64=\n{extra}",
            10 + k
        )
    }

    /// Writes guest `k`'s binding the way snf-ifup does (temporary file + rename).
    pub fn bind(&self, k: usize) {
        let text = self.binding_text(k, &self.guests[k].mac, "");
        self.write_binding(&self.guests[k].tap, &text);
    }

    pub fn write_binding(&self, tap: &str, text: &str) {
        let tmp = self.bindings().join(format!(".{tap}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.bindings().join(tap)).unwrap();
    }

    pub fn config_text(&self, extra_dhcp: &str) -> String {
        format!(
            "[general]\npidfile = \"{d}/nfdhcpd.pid\"\ndatapath = \"{d}/bindings\"\nstatus_file = \"{d}/status\"\n\n\
             [dhcp]\nserver_ip = \"{GW4}\"\nnameservers = [\"{}\", \"{}\"]\ndomain = \"{DOMAIN}\"\nlease_lifetime = 3600\nlease_renewal = 3\n{extra_dhcp}\n\n\
             [ipv6]\nra_period = 600\nnameservers = [\"{NS6}\"]\ndomains = [\"{DOMAIN}\"]\n",
            NS4[0],
            NS4[1],
            d = self.dir.path().display()
        )
    }

    /// Starts nfdhcpd in the node namespace with its own rules and waits until the
    /// rules are in place.
    pub fn start_daemon(&mut self, config: &str) {
        self.start_daemon_with(config, &[]);
    }

    pub fn start_daemon_with(&mut self, config: &str, args: &[&str]) {
        let cfg = self.path("nfdhcpd.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(self.path("nfdhcpd.log")).unwrap();
        let daemon = Daemon::spawn(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.node,
                    env!("CARGO_BIN_EXE_nfdhcpd"),
                    "-f",
                    "-d",
                    "-c",
                ])
                .arg(&cfg)
                .args(args)
                .stdout(Stdio::null())
                .stderr(log),
        );
        self.daemon = Some(daemon);
        let status = self.path("status");
        wait_for("nfdhcpd to start", Duration::from_secs(10), || {
            if let Some(st) = self.daemon.as_mut().and_then(Daemon::exited) {
                panic!("nfdhcpd exited early: {st}\n{}", self.daemon_log());
            }
            status.exists()
        });
    }

    /// Runs nfdhcpd in daemon mode (no `-f`) in the node namespace with config `cfg` and
    /// `args`; returns once the launcher has detached, with its exit status.
    pub fn launch_detached(
        &self,
        cfg: &Path,
        args: &[&str],
        stderr: std::fs::File,
    ) -> std::process::ExitStatus {
        Command::new("ip")
            .args(["netns", "exec", &self.node, env!("CARGO_BIN_EXE_nfdhcpd")])
            .args(args)
            .arg("-c")
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .unwrap()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("nfdhcpd.log")).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        self.daemon.take()?.stop(Duration::from_secs(10))
    }

    pub fn status(&self) -> String {
        std::fs::read_to_string(self.path("status")).unwrap_or_default()
    }

    /// A counter of the status file's [messages] section.
    pub fn counter(&self, what: &str) -> u64 {
        self.status()
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(what)).then(|| it.next()?.parse().ok())?
            })
            .unwrap_or(0)
    }

    /// Spawns a long-running process in guest `k`'s namespace (killed on drop).
    pub fn spawn_in_guest(&mut self, k: usize, args: &[&str], log: &Path) -> u32 {
        let ns = self.guests[k].ns.clone();
        self.spawn_in(&ns, args, log)
    }

    pub fn spawn_in_node(&mut self, args: &[&str], log: &Path) {
        let ns = self.node.clone();
        self.spawn_in(&ns, args, log);
    }

    fn spawn_in(&mut self, ns: &str, args: &[&str], log: &Path) -> u32 {
        let child = Daemon::spawn_logged(
            Command::new("ip").args(["netns", "exec", ns]).args(args),
            log,
        );
        let id = child.id();
        self.children.push(child);
        id
    }

    pub fn guest_ipv4(&self, k: usize) -> String {
        self.guest_sh(
            k,
            &[
                "ip",
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                &self.guests[k].ifname,
            ],
        )
    }

    /// Writes the hook scripts real clients run: they configure only the guest namespace
    /// and log what they were given.
    pub fn client_scripts(&self) -> (PathBuf, PathBuf) {
        let log = self.path("client.log");
        let dh = self.path("dhclient-script.sh");
        std::fs::write(
            &dh,
            format!(
                r#"#!/bin/sh
echo "dhclient $reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers domain=$new_domain_name" >> {log}
case "$reason" in
PREINIT) ip link set "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
exit 0
"#,
                log = log.display()
            ),
        )
        .unwrap();
        let ud = self.path("udhcpc-script.sh");
        std::fs::write(
            &ud,
            format!(
                r#"#!/bin/sh
echo "udhcpc $1 ip=$ip mask=$mask routers=$router dns=$dns domain=$domain" >> {log}
case "$1" in
deconfig) ip -4 addr flush dev "$interface" ;;
bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
esac
exit 0
"#,
                log = log.display()
            ),
        )
        .unwrap();
        let dc = self.path("dhcpcd-script.sh");
        std::fs::write(
            &dc,
            format!(
                r#"#!/bin/sh
echo "dhcpcd $reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers domain=$new_domain_name" >> {log}
exit 0
"#,
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::write(
            self.path("dhcpcd.conf"),
            "nodelay\nnoarp\nnoipv4ll\nclientid\noption domain_name_servers, domain_name, routers, interface_mtu\nrequire dhcp_server_identifier\n",
        )
        .unwrap();
        for p in [&dh, &ud, &dc] {
            sh(&["chmod", "+x", p.to_str().unwrap()]);
        }
        (dh, ud)
    }

    /// One udhcpc exchange (exits after the lease or after 3 unanswered DISCOVERs).
    pub fn udhcpc_once(&self, k: usize) -> Option<String> {
        let (_, ud) = self.client_scripts();
        let ifname = self.guests[k].ifname.clone();
        let _ = self.guest_try(k, &["ip", "-4", "addr", "flush", "dev", &ifname]);
        self.guest_try(
            k,
            &[
                "busybox",
                "udhcpc",
                "-n",
                "-q",
                "-f",
                "-i",
                &ifname,
                "-s",
                ud.to_str().unwrap(),
                "-t",
                "3",
                "-T",
                "1",
            ],
        )
    }

    pub fn client_log(&self) -> String {
        std::fs::read_to_string(self.path("client.log")).unwrap_or_default()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Processes first, then the namespaces (their guards also kill what daemonized:
        // dhclient and dhcpcd are found through their namespace only).
        self.daemon = None;
        self.children.clear();
        self.veths.clear();
        self.netns.clear();
        // dhcpcd keeps its lease outside the namespace; remove ours.
        for g in &self.guests {
            let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{}.lease", g.ifname));
        }
    }
}
