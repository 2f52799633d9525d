//! End-to-end stories: the cluster commands (gnt-network, gnt-instance), the hypervisor's
//! NIC script (snf-ifup, called as `kvm-vif-bridge` with Ganeti's environment) and nfdhcpd
//! together, with real guests (dhclient, the kernel's SLAAC, ping) in network namespaces.
//!
//! Each story builds a node namespace (bridge `prv0`, nfdhcpd with its own NFQUEUE rules)
//! and one namespace per instance behind a veth pair standing in for the TAP. Only
//! 203.0.113.0/24, 198.51.100.0/24 and 2001:db8::/32 are used. The binaries come from the
//! directory of this test executable (target/<profile>/, built by `cargo test --workspace`).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use netconf_test_support::{
    Daemon, Netns, Veth, gateway_bridge, need_root, run, run_ok as ok, skip, text, unique_name,
    wait_for, workspace_bins,
};

const TOOLS: [&str; 5] = [
    "gnt-network",
    "gnt-instance",
    "gnt-cluster",
    "snf-ifup",
    "nfdhcpd",
];

/// Root and the workspace binaries, or the SKIP line the project's rules ask for.
fn can_run(test: &str) -> Option<PathBuf> {
    if !need_root(test, "network namespaces") {
        return None;
    }
    let Some(dir) = workspace_bins(&TOOLS) else {
        skip(
            test,
            &format!(
                "{} not all built next to the test executable (run `cargo test --workspace`)",
                TOOLS.join(", ")
            ),
        );
        return None;
    };
    Some(dir)
}

/// A field of `gnt-instance info`'s NIC block ("MAC:", "IP:", "IPv6 (EUI-64):").
fn info_field(info: &str, field: &str) -> String {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in\n{info}"))
        .trim()
        .to_owned()
}

/// One cluster, one node namespace, guest namespaces; Drop kills every process in them and
/// deletes them, also when a story fails half-way.
struct Lab {
    bin: PathBuf,
    dir: tempfile::TempDir,
    node: String,
    guests: Vec<String>,
    daemon: Option<Daemon>,
    veths: Vec<Veth>,
    netns: Vec<Netns>,
}

impl Lab {
    fn new(bin: PathBuf) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        for d in ["snf-network", "nfdhcpd", "ganeti"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("snf-network.toml"), "syslog = false\n").unwrap();
        // The names Ganeti calls its NIC scripts by (see snf-ifup(8)).
        for name in ["kvm-vif-bridge", "kvm-ifdown-custom"] {
            std::os::unix::fs::symlink(bin.join("snf-ifup"), dir.path().join("ganeti").join(name))
                .unwrap();
        }
        std::fs::write(
            dir.path().join("dhclient-script"),
            format!(
                r#"#!/bin/sh
# Configures only the guest namespace (never /etc/resolv.conf); logs what it was given.
echo "$reason ip=$new_ip_address host=$new_host_name" >> {}/dhclient-$(ip netns identify).log
case "$reason" in
PREINIT) ip link set "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
  [ -n "$new_routers" ] && ip route replace default via "${{new_routers%% *}}" dev "$interface" ;;
esac
exit 0
"#,
                dir.path().display()
            ),
        )
        .unwrap();
        ok(Command::new("chmod")
            .arg("+x")
            .arg(dir.path().join("dhclient-script")));
        let node = Self::unique("node");
        let lab = Lab {
            bin,
            dir,
            node: node.clone(),
            guests: Vec::new(),
            daemon: None,
            veths: Vec::new(),
            netns: vec![Netns::add(&node)],
        };
        lab.node(&[
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.ip_forward=1",
            // br_netfilter is per namespace: nfdhcpd identifies bridged TAPs only with it.
            "net.bridge.bridge-nf-call-iptables=1",
            "net.bridge.bridge-nf-call-ip6tables=1",
        ]);
        lab
    }

    fn unique(tag: &str) -> String {
        unique_name("ncw", tag)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn bindings(&self) -> PathBuf {
        self.path("nfdhcpd")
    }

    /// A command with the lab's configuration and state directories (never the system's).
    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("NETCONF_CONFIG", self.path("config.data"))
            .env("SNF_NETWORK_CONFIG", self.path("snf-network.toml"))
            .env("SNF_NETWORK_STATE_DIR", self.path("snf-network"))
            .env("NFDHCPD_STATE_DIR", self.bindings());
        c
    }

    /// A workspace tool; must succeed; its stdout.
    fn tool(&self, tool: &str, args: &[&str]) -> String {
        ok(self.cmd(self.bin.join(tool)).args(args))
    }

    fn in_ns(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = self.cmd("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    fn node(&self, args: &[&str]) -> String {
        ok(&mut self.in_ns(&self.node, args))
    }

    fn guest(&self, ns: &str, args: &[&str]) -> String {
        ok(&mut self.in_ns(ns, args))
    }

    /// Bridge prv0 holding the gateway addresses, as the seed's `ip addr add … dev prv0`.
    fn bridge(&self, gw4: &str, gw6: &str) {
        gateway_bridge(&self.node, "prv0", gw4, gw6);
    }

    /// nfdhcpd in the node namespace with its own queue rules; returns once it runs.
    fn start_nfdhcpd(&mut self) {
        let d = self.dir.path().display().to_string();
        let cfg = self.path("nfdhcpd.toml");
        // server_on_link: each network's gateway is the server, as seen from its guests.
        std::fs::write(
            &cfg,
            format!(
                "[general]\npidfile = \"{d}/nfdhcpd.pid\"\ndatapath = \"{d}/nfdhcpd\"\nstatus_file = \"{d}/nfdhcpd.status\"\n\n\
                 [dhcp]\nserver_ip = \"203.0.113.1\"\nserver_on_link = true\nnameservers = [\"203.0.113.53\"]\ndomain = \"example.test\"\n\n\
                 [ipv6]\nra_period = 600\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.path("nfdhcpd.log")).unwrap();
        let daemon = Daemon::spawn(
            self.in_ns(&self.node, &[])
                .arg(self.bin.join("nfdhcpd"))
                .args(["-f", "-d", "-c"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(log),
        );
        self.daemon = Some(daemon);
        let status = self.path("nfdhcpd.status");
        wait_for("nfdhcpd to start", Duration::from_secs(10), || {
            if let Some(st) = self.daemon.as_mut().and_then(Daemon::exited) {
                panic!("nfdhcpd exited: {st}\n{}", self.nfdhcpd_log());
            }
            status.exists()
        });
    }

    fn nfdhcpd_log(&self) -> String {
        std::fs::read_to_string(self.path("nfdhcpd.log")).unwrap_or_default()
    }

    /// A counter of nfdhcpd's status file (rewritten every second).
    fn counter(&self, what: &str) -> u64 {
        std::fs::read_to_string(self.path("nfdhcpd.status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(what)).then(|| it.next()?.parse().ok())?
            })
            .unwrap_or(0)
    }

    /// A guest namespace (the VM); interfaces it gets later do SLAAC without DAD.
    fn add_guest(&mut self) -> String {
        let ns = Self::unique("vm");
        self.netns.push(Netns::add(&ns));
        self.guests.push(ns.clone());
        self.guest(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.accept_ra=2",
                "net.ipv6.conf.default.autoconf=1",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv4.conf.all.rp_filter=0",
            ],
        );
        ns
    }

    /// The hypervisor's part of a boot: TAP `tap` on the node, `nic0` with `mac` in the guest.
    fn plug(&mut self, guest: &str, tap: &str, mac: &str) {
        self.veths.push(Veth::new(tap, &self.node, "nic0", guest));
        self.guest(guest, &["ip", "link", "set", "nic0", "address", mac]);
    }

    /// Ganeti's environment for the NIC, as `snf-ifup env` computes it from config.data.
    fn nic_env(&self, tap: &str, instance: &str, nic: u32) -> Vec<(String, String)> {
        let out = self.tool(
            "snf-ifup",
            &[
                "env",
                tap,
                "--instance",
                instance,
                "--nic",
                &nic.to_string(),
            ],
        );
        out.lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("bad line {l}"));
                let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
                (k.to_owned(), v.expect("quoted value").replace(r"'\''", "'"))
            })
            .collect()
    }

    /// Runs an install name of snf-ifup in the node namespace with Ganeti's environment.
    fn nic_script(&self, script: &str, env: &[(String, String)], tap: &str) -> Output {
        let mut c = self.in_ns(&self.node, &[]);
        c.arg(self.path("ganeti").join(script)).arg(tap);
        c.envs(env.iter().map(|(k, v)| (k, v)));
        run(&mut c)
    }

    /// Boot: plug the TAP, run kvm-vif-bridge, bring the guest NIC up.
    fn boot(&mut self, guest: &str, tap: &str, instance: &str, mac: &str) -> Vec<(String, String)> {
        self.plug(guest, tap, mac);
        let env = self.nic_env(tap, instance, 0);
        let o = self.nic_script("kvm-vif-bridge", &env, tap);
        assert!(o.status.success(), "kvm-vif-bridge {tap}:\n{}", text(&o));
        self.guest(guest, &["ip", "link", "set", "nic0", "up"]);
        env
    }

    /// Shutdown: the NIC script takes the TAP down, then the TAP disappears.
    fn shutdown(&self, guest: &str, tap: &str, env: &[(String, String)]) {
        self.kill_dhclient(guest);
        let o = self.nic_script("kvm-ifdown-custom", env, tap);
        assert!(o.status.success(), "kvm-ifdown-custom {tap}:\n{}", text(&o));
        self.node(&["ip", "link", "del", tap]);
    }

    /// dhclient in the guest with a fresh lease file; the IPv4 address nic0 then has.
    fn dhclient(&self, guest: &str) -> String {
        let lf = self.path(&format!("{guest}.leases"));
        std::fs::write(&lf, "").unwrap();
        let pf = self.path(&format!("{guest}.pid"));
        let o = run(&mut self.in_ns(
            guest,
            &[
                "timeout",
                "30",
                "dhclient",
                "-1",
                "-v",
                "-lf",
                lf.to_str().unwrap(),
                "-pf",
                pf.to_str().unwrap(),
                "-sf",
                self.path("dhclient-script").to_str().unwrap(),
                "nic0",
            ],
        ));
        assert!(
            o.status.success(),
            "dhclient in {guest} got no lease:\n{}\nnfdhcpd:\n{}",
            text(&o),
            self.nfdhcpd_log()
        );
        self.ipv4(guest)
    }

    fn kill_dhclient(&self, guest: &str) {
        let pf = self.path(&format!("{guest}.pid"));
        if let Some(pid) = std::fs::read_to_string(&pf)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = std::fs::remove_file(pf);
        }
    }

    /// What the hook script saw in the guest's last DHCP answer ("BOUND ip=… host=…").
    fn last_bound(&self, guest: &str) -> String {
        std::fs::read_to_string(self.path(&format!("dhclient-{guest}.log")))
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| l.starts_with("BOUND"))
            .unwrap_or_default()
            .to_owned()
    }

    fn ipv4(&self, guest: &str) -> String {
        self.guest(guest, &["ip", "-4", "-o", "addr", "show", "dev", "nic0"])
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    fn pings(&self, ns: &str, addr: &str) -> bool {
        run(&mut self.in_ns(ns, &["ping", "-c", "2", "-i", "0.2", "-W", "2", addr]))
            .status
            .success()
    }

    /// The first global IPv6 address of nic0 once SLAAC formed it.
    fn slaac(&self, guest: &str) -> String {
        let mut addr = String::new();
        wait_for("the SLAAC address", Duration::from_secs(15), || {
            addr = self
                .guest(
                    guest,
                    &[
                        "ip", "-6", "-o", "addr", "show", "dev", "nic0", "scope", "global",
                    ],
                )
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            !addr.is_empty()
        });
        addr
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The configuration each story leaves passes `gnt-cluster verify`; asserted after
        // the clean-up below, which must run whatever the outcome.
        let verify = (!std::thread::panicking() && self.path("config.data").is_file())
            .then(|| run(self.cmd(self.bin.join("gnt-cluster")).arg("verify")));
        self.daemon = None;
        self.veths.clear();
        // dhclient daemonizes: the namespace guards find it through its namespace only.
        self.netns.clear();
        if let Some(o) = verify {
            assert!(
                o.status.success(),
                "gnt-cluster verify fails on the configuration this story left:\n{}",
                text(&o)
            );
        }
    }
}

/// The cluster of the talk: net1 (IPv4 pool, then an IPv6 subnet) bridged on prv0 with
/// the nfdhcpd tag, inst1 with a pool address; the node with prv0 and nfdhcpd.
fn seed_cluster(lab: &mut Lab) -> String {
    lab.tool(
        "gnt-network",
        &[
            "add",
            "--network",
            "203.0.113.0/24",
            "--gateway",
            "203.0.113.1",
            "--tags",
            "nfdhcpd",
            "net1",
        ],
    );
    lab.tool(
        "gnt-network",
        &[
            "modify",
            "--network6",
            "2001:db8:1::/64",
            "--gateway6",
            "2001:db8:1::1",
            "net1",
        ],
    );
    lab.tool("gnt-network", &["connect", "net1", "bridged", "prv0"]);
    lab.tool(
        "gnt-instance",
        &["add", "--net", "0:ip=pool,network=net1", "inst1"],
    );
    lab.bridge("203.0.113.1/24", "2001:db8:1::1/64");
    lab.start_nfdhcpd();
    lab.tool("gnt-instance", &["info", "inst1"])
}

/// The talk's "Hands on gnt-network", asserted: pool address, DHCP through nfdhcpd, ping
/// both ways, the same address after a reboot, SLAAC equal to the EUI-64 address.
#[test]
fn hands_on_gnt_network_story() {
    let Some(bin) = can_run("hands_on_gnt_network_story") else {
        return;
    };
    let mut lab = Lab::new(bin);
    let info = seed_cluster(&mut lab);
    let mac = info_field(&info, "MAC:");
    assert_eq!(info_field(&info, "IP:"), "203.0.113.2", "{info}");
    let eui64 = info_field(&info, "IPv6 (EUI-64):");
    let want: std::net::Ipv6Addr =
        netconf::eui64::address("2001:db8:1::/64".parse().unwrap(), mac.parse().unwrap());
    assert_eq!(eui64.parse::<std::net::Ipv6Addr>().unwrap(), want);
    let net = lab.tool("gnt-network", &["info", "net1"]);
    assert!(net.contains("inst1: 0:203.0.113.2"), "{net}");
    assert!(net.contains("default (mode:bridged link:prv0"), "{net}");

    let vm = lab.add_guest();
    let env = lab.boot(&vm, "tap0", "inst1", &mac);
    let binding = std::fs::read_to_string(lab.bindings().join("tap0")).unwrap();
    assert!(binding.contains("IP=203.0.113.2\n"), "{binding}");
    assert!(binding.contains(&format!("EUI64={eui64}\n")), "{binding}");
    assert_eq!(lab.dhclient(&vm), "203.0.113.2/24");
    assert!(
        lab.last_bound(&vm).contains("host=inst1"),
        "{}",
        lab.last_bound(&vm)
    );
    assert!(lab.pings(&lab.node, "203.0.113.2"), "node -> guest");
    assert!(lab.pings(&vm, "203.0.113.1"), "guest -> node");
    assert_eq!(lab.slaac(&vm), format!("{eui64}/64"));
    assert!(lab.pings(&lab.node, &eui64), "node -> guest over IPv6");

    // Reboot: the TAP goes and comes back; a client that remembers nothing gets the same.
    lab.shutdown(&vm, "tap0", &env);
    assert!(!lab.bindings().join("tap0").exists(), "binding left behind");
    let gone = run(&mut lab.in_ns(&vm, &["ip", "link", "show", "nic0"]));
    assert!(
        !gone.status.success(),
        "the guest NIC did not go with the TAP"
    );
    lab.boot(&vm, "tap0", "inst1", &mac);
    assert_eq!(lab.dhclient(&vm), "203.0.113.2/24");
    assert!(
        lab.pings(&lab.node, "203.0.113.2"),
        "node -> guest after reboot"
    );
    assert_eq!(lab.slaac(&vm), format!("{eui64}/64"));
    wait_for("nfdhcpd's counters", Duration::from_secs(3), || {
        lab.counter("DHCPDISCOVER") >= 2 && lab.counter("DHCPREQUEST") >= 2
    });
}

/// An L2-only network (no IPv4 subnet, beyond Ganeti) carries a NIC end to end: the NIC
/// has no IPv4 address, snf-ifup bridges it and writes a binding without one, and the
/// guest forms its SLAAC address from nfdhcpd's router advertisement while a real DHCPv4
/// client gets no lease (nfdhcpd leaves the request unanswered), although the bridge holds
/// an IPv4 address and nfdhcpd serves DHCPv4 on it.
#[test]
fn an_l2_only_network_carries_a_nic_with_slaac_and_no_ipv4_lease() {
    let Some(bin) = can_run("an_l2_only_network_carries_a_nic_with_slaac_and_no_ipv4_lease") else {
        return;
    };
    let mut lab = Lab::new(bin);
    lab.tool(
        "gnt-network",
        &[
            "add",
            "--network6",
            "2001:db8:7::/64",
            "--gateway6",
            "2001:db8:7::1",
            "--tags",
            "nfdhcpd",
            "l2net",
        ],
    );
    lab.tool("gnt-network", &["connect", "l2net", "bridged", "prv0"]);
    lab.tool(
        "gnt-instance",
        &["add", "--net", "0:network=l2net", "inst1"],
    );
    let info = lab.tool("gnt-instance", &["info", "inst1"]);
    assert_eq!(info_field(&info, "IP:"), "None", "{info}");
    let mac = info_field(&info, "MAC:");
    let eui64 = info_field(&info, "IPv6 (EUI-64):");
    let net = lab.tool("gnt-network", &["info", "l2net"]);
    assert!(
        net.contains(
            "  Subnet: None
"
        ) && !net.contains("Usage map"),
        "{net}"
    );
    lab.bridge("203.0.113.1/24", "2001:db8:7::1/64");
    lab.start_nfdhcpd();

    let vm = lab.add_guest();
    let env = lab.boot(&vm, "tap0", "inst1", &mac);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // As for any NIC without an address: no IP, and the network has no IPv4 subnet.
    assert_eq!((get("IP"), get("NETWORK_SUBNET")), (None, None), "{env:?}");
    assert_eq!(get("NETWORK_SUBNET6"), Some("2001:db8:7::/64"), "{env:?}");
    let binding = std::fs::read_to_string(lab.bindings().join("tap0")).unwrap();
    for line in ["IP=\n", "SUBNET=\n", "GATEWAY=\n", "INDEV=prv0\n"] {
        assert!(binding.contains(line), "{line:?} not in\n{binding}");
    }
    assert!(binding.contains(&format!("EUI64={eui64}\n")), "{binding}");
    // No IPv4 route or neighbour entry for the NIC on the node.
    assert!(
        !lab.node(&["ip", "-4", "route", "show", "table", "all"])
            .contains("tap0"),
        "IPv4 route for tap0"
    );

    // SLAAC from nfdhcpd's RA: the EUI-64 address gnt-instance info shows; reachable.
    assert_eq!(lab.slaac(&vm), format!("{eui64}/64"));
    assert!(lab.pings(&lab.node, &eui64), "node -> guest over IPv6");
    assert!(lab.pings(&vm, "2001:db8:7::1"), "guest -> node over IPv6");

    // A real DHCPv4 client (dhclient with the lab's hook script), one try of 8 seconds in
    // the foreground: nfdhcpd sees its requests and gives no lease.
    let lf = lab.path("l2.leases");
    std::fs::write(&lf, "").unwrap();
    let o = run(&mut lab.in_ns(
        &vm,
        &[
            "timeout",
            "8",
            "dhclient",
            "-1",
            "-d",
            "-v",
            "-lf",
            lf.to_str().unwrap(),
            "-pf",
            lab.path("l2.pid").to_str().unwrap(),
            "-sf",
            lab.path("dhclient-script").to_str().unwrap(),
            "nic0",
        ],
    ));
    assert!(!o.status.success(), "dhclient got a lease:\n{}", text(&o));
    let out = text(&o);
    assert!(out.contains("DHCPDISCOVER on nic0"), "{out}");
    assert!(
        !out.contains("DHCPOFFER") && !out.contains("bound to"),
        "{out}"
    );
    assert_eq!(lab.last_bound(&vm), "", "the hook script was given a lease");
    assert_eq!(lab.ipv4(&vm), "", "nic0 has an IPv4 address");
    assert_eq!(
        std::fs::read_to_string(&lf).unwrap(),
        "",
        "a lease was stored"
    );
    wait_for(
        "nfdhcpd to count the requests",
        Duration::from_secs(3),
        || lab.counter("DHCPDISCOVER") == 0 && lab.counter("no-ipv4") >= 1,
    );
    lab.shutdown(&vm, "tap0", &env);
    assert!(!lab.bindings().join("tap0").exists(), "binding left behind");
}

/// Two instances in two networks on one node: net1 bridged on prv0, net2 routed (table
/// 100) with ip-less-routed. Both get their address from nfdhcpd, reach their gateway, and
/// reach each other through the node; the routed NIC's source check drops a spoofed source.
#[test]
fn two_instances_in_a_bridged_and_a_routed_network() {
    let Some(bin) = can_run("two_instances_in_a_bridged_and_a_routed_network") else {
        return;
    };
    let mut lab = Lab::new(bin);
    let info1 = seed_cluster(&mut lab);
    lab.tool(
        "gnt-network",
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--network6",
            "2001:db8:2::/64",
            "--gateway6",
            "2001:db8:2::1",
            "--tags",
            "nfdhcpd,ip-less-routed",
            "net2",
        ],
    );
    lab.tool("gnt-network", &["connect", "net2", "routed", "100"]);
    lab.tool(
        "gnt-instance",
        &["add", "--net", "0:ip=pool,network=net2", "inst2"],
    );
    let info2 = lab.tool("gnt-instance", &["info", "inst2"]);
    assert_eq!(info_field(&info2, "IP:"), "198.51.100.2", "{info2}");
    assert_eq!(info_field(&info2, "mode:"), "routed", "{info2}");
    // The administrator's part of a routed network: its gateway lives on the node's uplink
    // (a port-less bridge here: the kernel has no dummy links), and traffic to the routed
    // subnet goes through table 100, where snf-ifup puts the per-NIC routes.
    lab.node(&["ip", "link", "add", "up0", "type", "bridge"]);
    lab.node(&["ip", "addr", "add", "198.51.100.1/32", "dev", "up0"]);
    lab.node(&["ip", "link", "set", "up0", "up"]);
    lab.node(&[
        "ip",
        "rule",
        "add",
        "to",
        "198.51.100.0/24",
        "lookup",
        "100",
    ]);

    let vm1 = lab.add_guest();
    lab.boot(&vm1, "tap0", "inst1", &info_field(&info1, "MAC:"));
    let vm2 = lab.add_guest();
    lab.boot(&vm2, "tap1", "inst2", &info_field(&info2, "MAC:"));
    let b2 = std::fs::read_to_string(lab.bindings().join("tap1")).unwrap();
    assert!(b2.contains("INDEV=tap1\n"), "routed binding: {b2}");
    assert!(b2.contains("GATEWAY=198.51.100.1\n"), "{b2}");

    assert_eq!(lab.dhclient(&vm1), "203.0.113.2/24");
    assert_eq!(lab.dhclient(&vm2), "198.51.100.2/24");
    assert!(lab.pings(&vm1, "203.0.113.1"), "vm1 -> its gateway");
    assert!(
        lab.pings(&vm2, "198.51.100.1"),
        "vm2 -> its gateway (proxy ARP)"
    );
    assert!(
        lab.pings(&vm2, "203.0.113.2"),
        "vm2 -> vm1 through the node"
    );
    assert!(
        lab.pings(&vm1, "198.51.100.2"),
        "vm1 -> vm2 through the node"
    );
    assert_eq!(
        lab.slaac(&vm2),
        format!("{}/64", info_field(&info2, "IPv6 (EUI-64):"))
    );

    // ip-less-routed: only the NIC's own source address is forwarded from tap1.
    let chain = lab.node(&["iptables", "-S", "SNF-FROM-tap1"]);
    assert!(chain.contains("198.51.100.2"), "{chain}");
    let dropped = |lab: &Lab| -> u64 {
        lab.node(&["iptables", "-L", "SNF-FROM-tap1", "-v", "-n", "-x"])
            .lines()
            .filter(|l| l.contains("DROP"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let before = dropped(&lab);
    lab.guest(
        &vm2,
        &["ip", "addr", "add", "198.51.100.99/32", "dev", "nic0"],
    );
    let spoof = run(&mut lab.in_ns(
        &vm2,
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "198.51.100.99",
            "203.0.113.2",
        ],
    ));
    assert!(!spoof.status.success(), "spoofed source got through");
    assert!(
        dropped(&lab) >= before + 2,
        "{}",
        lab.node(&["iptables", "-L", "SNF-FROM-tap1", "-v", "-n"])
    );
}

/// Removing an instance: after `gnt-instance remove` and the shutdown's NIC script the
/// binding is gone, the address is back in the pool, and a DHCP request from the old TAP
/// reaches nfdhcpd but is not answered.
#[test]
fn removed_instance_is_no_longer_answered() {
    let Some(bin) = can_run("removed_instance_is_no_longer_answered") else {
        return;
    };
    let mut lab = Lab::new(bin);
    let info = seed_cluster(&mut lab);
    let mac = info_field(&info, "MAC:");
    let vm = lab.add_guest();
    let env = lab.boot(&vm, "tap0", "inst1", &mac);
    assert_eq!(lab.dhclient(&vm), "203.0.113.2/24");

    lab.tool("gnt-instance", &["remove", "inst1"]);
    lab.kill_dhclient(&vm);
    let o = lab.nic_script("kvm-ifdown-custom", &env, "tap0");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!lab.bindings().join("tap0").exists(), "binding left behind");
    let net = lab.tool("gnt-network", &["info", "net1"]);
    assert!(!net.contains("inst1"), "{net}");
    assert!(net.contains("Free: 253"), "{net}");
    let o = run(lab.cmd(lab.bin.join("snf-ifup")).args([
        "env",
        "tap0",
        "--instance",
        "inst1",
        "--nic",
        "0",
    ]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // The VM lingers on the bridge without a binding: its DISCOVERs are queued and dropped.
    lab.node(&["ip", "link", "set", "tap0", "master", "prv0", "up"]);
    lab.guest(&vm, &["ip", "-4", "addr", "flush", "dev", "nic0"]);
    std::thread::sleep(Duration::from_millis(1200));
    let before = lab.counter("unknown-interface");
    let o = run(&mut lab.in_ns(
        &vm,
        &[
            "busybox",
            "udhcpc",
            "-n",
            "-q",
            "-f",
            "-i",
            "nic0",
            "-s",
            "/bin/true",
            "-t",
            "3",
            "-T",
            "1",
        ],
    ));
    assert!(!o.status.success(), "udhcpc got a lease:\n{}", text(&o));
    assert_eq!(lab.ipv4(&vm), "");
    wait_for(
        "nfdhcpd to count the unanswered DISCOVERs",
        Duration::from_secs(3),
        || lab.counter("unknown-interface") >= before + 3,
    );
    assert!(
        lab.nfdhcpd_log()
            .contains("tap0: no binding, packet accepted"),
        "{}",
        lab.nfdhcpd_log()
    );
}

/// Where the node reads the cluster from: the lab's config.data, or etcd at a URL.
#[derive(Clone, Copy)]
enum StoreAt<'a> {
    File,
    Etcd(&'a str),
}

/// `program args` in the node namespace, reading the cluster from `store`.
fn in_node(lab: &Lab, store: StoreAt, program: PathBuf, args: &[&str]) -> Command {
    let mut c = lab.in_ns(&lab.node, &[]);
    c.arg(program).args(args);
    if let StoreAt::Etcd(url) = store {
        c.env("NETCONF_STORE", url).env("NETCONF_CACHE_DIR", "");
    }
    c
}

/// Issue 14.4, told on either store: inst1's NIC (MAC `mac`) comes up from the store
/// (`snf-ifup up --instance`) and `snf-ifup watch` runs on the node; `gnt-instance modify`
/// (another process, as another node would run it) gives the instance another address,
/// the watcher re-applies the NIC (no reboot, no NIC script), nfdhcpd serves the new
/// binding, and the guest's next DHCP exchange gets it. Returns the guest and the watcher
/// (the caller keeps it running while the story goes on).
fn guest_renews_to_a_modified_address(
    lab: &mut Lab,
    store: StoreAt,
    mac: &str,
) -> (String, Daemon) {
    let vm = lab.add_guest();
    lab.plug(&vm, "tap0", mac);
    let snf_ifup = lab.bin.join("snf-ifup");
    ok(&mut in_node(
        lab,
        store,
        snf_ifup.clone(),
        &["up", "tap0", "--instance", "inst1", "--nic", "0"],
    ));
    lab.guest(&vm, &["ip", "link", "set", "nic0", "up"]);
    let log = lab.path("watch.log");
    let watcher = Daemon::spawn_logged(&mut in_node(lab, store, snf_ifup, &["watch"]), &log);
    let said = |what: &str| std::fs::read_to_string(&log).is_ok_and(|l| l.contains(what));
    wait_for("snf-ifup watch to start", Duration::from_secs(10), || {
        said("watching for removed interfaces")
    });
    assert_eq!(lab.dhclient(&vm), "203.0.113.2/24");

    let t0 = std::time::Instant::now();
    ok(&mut in_node(
        lab,
        store,
        lab.bin.join("gnt-instance"),
        &["modify", "--net", "0:ip=203.0.113.50", "inst1"],
    ));
    let binding = lab.bindings().join("tap0");
    wait_for(
        "the binding to follow the store",
        Duration::from_secs(5),
        || std::fs::read_to_string(&binding).is_ok_and(|b| b.contains("IP=203.0.113.50\n")),
    );
    eprintln!(
        "binding rewritten {} ms after gnt-instance modify started ({})",
        t0.elapsed().as_millis(),
        match store {
            StoreAt::File => "config.data",
            StoreAt::Etcd(_) => "etcd",
        }
    );
    assert!(
        said("changed in the cluster store (IP"),
        "{:?}",
        std::fs::read_to_string(&log)
    );

    // The guest's DHCP client starts over (as after its lease ran out): the new address.
    lab.kill_dhclient(&vm);
    lab.guest(&vm, &["ip", "-4", "addr", "flush", "dev", "nic0"]);
    assert_eq!(lab.dhclient(&vm), "203.0.113.50/24");
    assert!(
        lab.last_bound(&vm).contains("ip=203.0.113.50 host=inst1"),
        "{}",
        lab.last_bound(&vm)
    );
    (vm, watcher)
}

/// Issue 14.4 on config.data.
#[test]
fn guest_renews_to_an_address_changed_in_the_store() {
    let Some(bin) = can_run("guest_renews_to_an_address_changed_in_the_store") else {
        return;
    };
    let mut lab = Lab::new(bin);
    let info = seed_cluster(&mut lab);
    let mac = info_field(&info, "MAC:");
    // Declared after the lab: stopped before its namespaces go.
    let (_vm, _watcher) = guest_renews_to_a_modified_address(&mut lab, StoreAt::File, &mac);
    assert!(lab.pings(&lab.node, "203.0.113.50"), "node -> guest");
}

/// Issue 14.4 and 14.5 on etcd: the cluster seeded in config.data is copied to a real
/// 3-member etcd (running in the node namespace, on its loopback) with `gnt-cluster
/// copy-store`, and the story of [`guest_renews_to_a_modified_address`] is told on it
/// (`--store` throughout). With every member killed, the NIC comes up again from the
/// node's local snapshot, and the guest still gets its address.
#[test]
fn guest_renews_to_an_address_changed_in_etcd() {
    let test = "guest_renews_to_an_address_changed_in_etcd";
    let Some(bin) = can_run(test) else {
        return;
    };
    if !netconf_test_support::need_etcd(test) {
        return;
    }
    if !netconf_test_support::on_path("etcdctl") {
        skip(test, "needs etcdctl (Debian's etcd-client)");
        return;
    }
    let mut lab = Lab::new(bin);
    let info = seed_cluster(&mut lab);
    let mac = info_field(&info, "MAC:");
    // Declared after the lab: the members stop before its namespaces go.
    let mut etcd = netconf_test_support::EtcdInNetns::start(&lab.node, &lab.path("etcd"));
    let url = etcd.url("/cluster1");
    let store = StoreAt::Etcd(&url);
    let config = lab.path("config.data");
    ok(&mut in_node(
        &lab,
        store,
        lab.bin.join("gnt-cluster"),
        &[
            "copy-store",
            "--from",
            config.to_str().unwrap(),
            "--to",
            &url,
        ],
    ));
    // From here on config.data is not the cluster: a node reading it would see no change.
    std::fs::remove_file(&config).unwrap();

    // Declared after the members: the watcher stops first.
    let (vm, _watcher) = guest_renews_to_a_modified_address(&mut lab, store, &mac);

    // etcd is down: the VM "reboots" (its NIC is taken down and brought up again) from
    // the node's local snapshot, which the watcher wrote at the modify's revision.
    let snapshot = lab.path("snf-network/store/cluster.data");
    wait_for("the local snapshot", Duration::from_secs(5), || {
        std::fs::read_to_string(&snapshot).is_ok_and(|s| s.contains("203.0.113.50"))
    });
    for i in 0..3 {
        etcd.kill(i);
    }
    lab.kill_dhclient(&vm);
    let snf_ifup = lab.bin.join("snf-ifup");
    ok(&mut in_node(
        &lab,
        store,
        snf_ifup.clone(),
        &["down", "tap0"],
    ));
    assert!(!lab.bindings().join("tap0").exists());
    let o = run(&mut in_node(
        &lab,
        store,
        snf_ifup,
        &["up", "tap0", "--instance", "inst1", "--nic", "0"],
    ));
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("using the local snapshot"), "{err}");
    lab.guest(&vm, &["ip", "-4", "addr", "flush", "dev", "nic0"]);
    assert_eq!(lab.dhclient(&vm), "203.0.113.50/24");
}

/// Renaming an instance: the NIC environment and the binding follow the new name, and
/// after a reboot the guest gets the same address with the new host name.
#[test]
fn renamed_instance_keeps_its_address_under_the_new_name() {
    let Some(bin) = can_run("renamed_instance_keeps_its_address_under_the_new_name") else {
        return;
    };
    let mut lab = Lab::new(bin);
    let info = seed_cluster(&mut lab);
    let mac = info_field(&info, "MAC:");
    let vm = lab.add_guest();
    let env = lab.boot(&vm, "tap0", "inst1", &mac);
    assert_eq!(lab.dhclient(&vm), "203.0.113.2/24");
    assert!(
        lab.last_bound(&vm).contains("host=inst1"),
        "{}",
        lab.last_bound(&vm)
    );

    lab.tool("gnt-instance", &["rename", "inst1", "web1"]);
    let net = lab.tool("gnt-network", &["info", "net1"]);
    assert!(net.contains("web1: 0:203.0.113.2"), "{net}");
    let o = run(lab.cmd(lab.bin.join("snf-ifup")).args([
        "env",
        "tap0",
        "--instance",
        "inst1",
        "--nic",
        "0",
    ]));
    assert_eq!(
        o.status.code(),
        Some(1),
        "old name still known: {}",
        text(&o)
    );

    lab.shutdown(&vm, "tap0", &env);
    let env = lab.boot(&vm, "tap0", "web1", &mac);
    assert!(
        env.contains(&("INSTANCE".to_owned(), "web1".to_owned())),
        "{env:?}"
    );
    let binding = std::fs::read_to_string(lab.bindings().join("tap0")).unwrap();
    assert!(binding.contains("HOSTNAME=web1\n"), "{binding}");
    assert_eq!(lab.dhclient(&vm), "203.0.113.2/24");
    assert!(
        lab.last_bound(&vm).contains("host=web1"),
        "{}",
        lab.last_bound(&vm)
    );
    assert!(lab.pings(&lab.node, "203.0.113.2"));
}

/// README's first command, against the freshly built tools: `scripts/walkthrough` shows the
/// story's milestones, exits 0, and leaves none of its namespaces behind.
#[test]
fn walkthrough_script_shows_the_story() {
    let Some(bin) = can_run("walkthrough_script_shows_the_story") else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/walkthrough");
    let o = run(Command::new(script).env("NETCONF_BIN_DIR", &bin));
    let out = text(&o);
    assert!(o.status.success(), "walkthrough failed:\n{out}");
    for milestone in [
        "+ gnt-network add --network 203.0.113.0/24 --gateway 203.0.113.1 --tags nfdhcpd net1",
        "+ gnt-instance add --net 0:ip=pool,network=net1 inst1",
        "DHCPACK of 203.0.113.2 from 203.0.113.1",
        "OK   node -> guest ping works",
        "OK   guest -> node (gateway) ping works",
        "OK   same address after the reboot: 203.0.113.2/24",
        "equals the EUI-64 address of gnt-instance info",
        "walkthrough: all checks passed",
    ] {
        assert!(out.contains(milestone), "no '{milestone}' in\n{out}");
    }
    let node = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("node:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the node namespace's name")
        .to_owned();
    let left = ok(Command::new("ip").args(["netns", "list"]));
    assert!(!left.contains(&node), "{node} left behind:\n{left}");
}
