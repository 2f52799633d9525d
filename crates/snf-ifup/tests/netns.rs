//! snf-ifup against the real ip, bridge, iptables, ip6tables and ebtables, in throw-away
//! namespaces: exact read-back after `up`, clean `down`, traffic through the filters, and
//! identical results for every way the tool is called. Needs root; skips otherwise.

mod common;

use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{Env, Fw, Lab, can_run, can_run_fw, nic, ok, refs, set};

const MAC1: &str = "aa:00:00:00:00:01";

fn ebt_chain(lab: &Lab, chain: &str) -> Vec<String> {
    lab.exec(&["ebtables", "-L", chain])
        .lines()
        .skip(3)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ipt_chain(lab: &Lab, tool: &str, chain: &str) -> Vec<String> {
    lab.exec(&[tool, "-S", chain])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Node with an uplink `up0` to a router namespace (`rt0`), table 100 routed through it,
/// forwarding on; returns the router namespace.
fn routed_node(lab: &mut Lab) -> String {
    let r = lab.peer("up0", "rt0");
    for a in [
        &["ip", "addr", "add", "203.0.113.1/24", "dev", "rt0"][..],
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::1/64",
            "dev",
            "rt0",
            "nodad",
        ],
        &[
            "ip",
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "203.0.113.2",
        ],
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            "2001:db8:2::2",
        ],
        &["sysctl", "-qw", "net.ipv4.conf.rt0.arp_accept=1"],
        &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        &["sysctl", "-qw", "net.ipv6.conf.rt0.accept_untracked_na=1"],
        &[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "icmp",
            "-s",
            "198.51.100.10",
        ],
        &[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "icmp",
            "-s",
            "198.51.100.99",
        ],
    ] {
        let o = lab.exec_in(&r, a);
        assert!(
            o.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for a in [
        &["ip", "addr", "add", "203.0.113.2/24", "dev", "up0"][..],
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::2/64",
            "dev",
            "up0",
            "nodad",
        ],
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            "203.0.113.1",
            "dev",
            "up0",
            "table",
            "100",
        ],
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:2::1",
            "dev",
            "up0",
            "table",
            "100",
        ],
        // Node prerequisites of a routed setup (snf-network docs): traffic from the uplink
        // uses the network's table, forwarding, proxy NDP on the uplink.
        &["ip", "rule", "add", "iif", "up0", "table", "100"],
        &["ip", "-6", "rule", "add", "iif", "up0", "table", "100"],
        &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        &["sysctl", "-qw", "net.ipv6.conf.up0.proxy_ndp=1"],
    ] {
        lab.exec(a);
    }
    r
}

fn guest_routed(lab: &mut Lab, tap: &str, mac: &str) -> String {
    let g = lab.guest(tap, mac);
    for a in [
        &["ip", "addr", "add", "198.51.100.10/24", "dev", "eth1"][..],
        &["ip", "route", "add", "default", "via", "198.51.100.1"],
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:1:0:a800:ff:fe00:10/64",
            "dev",
            "eth1",
            "nodad",
        ],
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fe80::ce47:52ff:fe4e:4554",
            "dev",
            "eth1",
        ],
    ] {
        let o = lab.exec_in(&g, a);
        assert!(
            o.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    g
}

fn router_count(lab: &Lab, r: &str, src: &str) -> u64 {
    let out = lab.exec_in(r, &["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains(src))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bridged_up_exact_idempotent_and_down_restores() {
    bridged_up_exact_idempotent_and_down_restores_with(Fw::Iptables);
}

#[test]
fn bridged_up_exact_idempotent_and_down_restores_nftables() {
    bridged_up_exact_idempotent_and_down_restores_with(Fw::Nftables);
}

fn bridged_up_exact_idempotent_and_down_restores_with(fw: Fw) {
    if !can_run_fw("bridged_up_exact_idempotent_and_down_restores", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    lab.bridge("br0", 1400);
    lab.guest("tap1", MAC1);
    let fw0 = lab.fw_dump();
    // `masq` and unknown tags (`public`) change nothing.
    let env = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "public masq",
        "",
    );
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    let link = lab.exec(&["ip", "-o", "link", "show", "tap1"]);
    assert!(link.contains("master br0"), "{link}");
    assert!(link.contains(" mtu 1400 "), "{link}");
    assert!(link.contains(",UP"), "{link}");
    // No tags that need rules: the firewall is untouched, no binding.
    assert_eq!(lab.fw_dump(), fw0);
    assert!(!lab.nfdhcpd_dir().join("tap1").exists());
    assert!(lab.state_dir().join("tap1.toml").exists());
    let (fw1, net1) = (lab.fw_dump(), lab.net_dump());
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert_eq!(lab.fw_dump(), fw1);
    assert_eq!(lab.net_dump(), net1);
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(lab.fw_dump(), fw0);
    assert!(
        !lab.exec(&["ip", "-o", "link", "show", "tap1"])
            .contains("master")
    );
    assert!(!lab.state_dir().join("tap1.toml").exists());
}

/// snf-network's site hook: run after `up` with the same arguments and Ganeti's
/// environment; a failing hook fails the `up` and leaves nothing configured.
#[test]
fn ifup_extra_hook_runs_after_up_and_its_failure_rolls_back() {
    use std::os::unix::fs::PermissionsExt;
    if !can_run("ifup_extra_hook_runs_after_up_and_its_failure_rolls_back") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    let fw0 = lab.fw_dump();
    let hook = lab.dir.path().join("ifup-extra");
    let seen = lab.dir.path().join("seen");
    let script = |exit: u8| {
        format!(
            "#!/bin/sh\necho \"$* $INSTANCE $INTERFACE $(ip -o link show tap1 | grep -o 'master br0')\" >> {}\nexit {exit}\n",
            seen.display()
        )
    };
    std::fs::write(&hook, script(0)).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        lab.dir.path().join("snf-network.toml"),
        format!("syslog = false\nifup_extra = \"{}\"\n", hook.display()),
    )
    .unwrap();
    let env = nic("tap1", MAC1, "198.51.100.11", "bridged", "br0", "", "");
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "ganeti up vm1.example.org tap1 master br0\n",
        "the hook runs once the NIC is up, with the same arguments and environment"
    );
    lab.ifup_ok(&[], &["down", "tap1"]);

    // Not executable: not run.
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o644)).unwrap();
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert_eq!(std::fs::read_to_string(&seen).unwrap().lines().count(), 1);
    lab.ifup_ok(&[], &["down", "tap1"]);

    // Failing: the up fails and is undone.
    std::fs::write(&hook, script(3)).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = lab.ifup(&refs(&env), &["ganeti", "up"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ifup-extra failed (exit status: 3)"), "{err}");
    assert_eq!(std::fs::read_to_string(&seen).unwrap().lines().count(), 2);
    assert!(
        !lab.exec(&["ip", "-o", "link", "show", "tap1"])
            .contains("master")
    );
    assert!(!lab.state_dir().join("tap1.toml").exists());
    assert_eq!(lab.fw_dump(), fw0);
}

#[test]
fn bridged_vlan_forms_and_refusal() {
    if !can_run("bridged_vlan_forms_and_refusal") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br1", 1500);
    lab.guest("tap1", MAC1);
    lab.guest("tap2", "aa:00:00:00:00:02");
    if lab.vlan_bridge("br0") {
        let mut env = nic("tap1", MAC1, "198.51.100.11", "bridged", "br0", "", "");
        set(&mut env, "VLAN", ".100:200:300");
        lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
        let v = lab.exec(&["bridge", "-j", "vlan", "show", "dev", "tap1"]);
        assert!(
            v.contains(r#"{"vlan":100,"flags":["PVID","Egress Untagged"]}"#),
            "{v}"
        );
        assert!(
            v.contains(r#"{"vlan":200}"#) && v.contains(r#"{"vlan":300}"#),
            "{v}"
        );
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP bridged_vlan_forms_and_refusal (VLAN part): this kernel has no bridge VLAN filtering"
        );
    }

    // A VLAN on a bridge without filtering: Ganeti's error, nothing left behind.
    let fw0 = lab.fw_dump();
    let mut env = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        "bridged",
        "br1",
        "private-filtered",
        "",
    );
    set(&mut env, "VLAN", ".100");
    let o = lab.ifup(&refs(&env), &["ganeti", "up"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Instance vm1.example.org NIC 0 configured for VLAN support, but bridge br1 has VLAN filtering disabled"),
        "{err}"
    );
    assert!(
        !lab.exec(&["ip", "-o", "link", "show", "tap2"])
            .contains("master")
    );
    assert!(!lab.state_dir().join("tap2.toml").exists());
    assert_eq!(lab.fw_dump(), fw0);
}

#[test]
fn routed_up_exact_traffic_announcements_and_down() {
    routed_up_exact_traffic_announcements_and_down_with(Fw::Iptables);
}

#[test]
fn routed_up_exact_traffic_announcements_and_down_nftables() {
    routed_up_exact_traffic_announcements_and_down_with(Fw::Nftables);
}

fn routed_up_exact_traffic_announcements_and_down_with(fw: Fw) {
    if !can_run_fw("routed_up_exact_traffic_announcements_and_down", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    let r = routed_node(&mut lab);
    let g = guest_routed(&mut lab, "tap1", "aa:00:00:00:00:10");
    let fw0 = lab.fw_dump();
    let net0 = lab.net_dump();
    let env = nic(
        "tap1",
        "aa:00:00:00:00:10",
        "198.51.100.10",
        "routed",
        "100",
        "nfdhcpd ip-less-routed",
        "synnefo:network:0:limited",
    );
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);

    let link = lab.exec(&["ip", "-o", "link", "show", "tap1"]);
    assert!(link.contains("link/ether cc:47:52:4e:45:54"), "{link}");
    assert!(
        lab.exec(&["ip", "-4", "rule"])
            .contains("iif tap1 lookup 100")
    );
    assert!(
        lab.exec(&["ip", "-6", "rule"])
            .contains("iif tap1 lookup 100")
    );
    assert!(
        lab.exec(&["ip", "route", "show", "table", "100"])
            .contains("198.51.100.10 dev tap1 proto static")
    );
    let eui = "2001:db8:1:0:a800:ff:fe00:10";
    assert!(
        lab.exec(&["ip", "-6", "route", "show", "table", "100"])
            .contains(&format!("{eui} dev tap1 proto static"))
    );
    assert!(
        lab.exec(&["ip", "-6", "neigh", "show", "proxy"])
            .contains(&format!("{eui} dev up0 proxy"))
    );
    for (k, v) in [
        ("net.ipv4.conf.tap1.proxy_arp", "1"),
        ("net.ipv4.conf.tap1.forwarding", "1"),
        ("net.ipv6.conf.tap1.proxy_ndp", "1"),
        ("net.ipv6.conf.tap1.forwarding", "1"),
    ] {
        assert_eq!(lab.sysctl(k), v, "{k}");
    }
    if fw == Fw::Nftables {
        assert_eq!(
            lab.nft_chain("inet", "from4-tap1"),
            ["ip saddr != 198.51.100.10 drop"]
        );
        assert_eq!(
            lab.nft_chain("inet", "from6-tap1"),
            [format!("ip6 saddr != {eui} drop")]
        );
        assert_eq!(lab.nft_chain("inet", "to4-tap1"), ["jump snf-limited4"]);
        let limited = lab.nft_chain("inet", "snf-limited4");
        assert_eq!(limited.len(), 7, "{limited:?}");
        assert_eq!(limited[0], "ct state established,related accept");
        assert_eq!(limited[6], "drop");
        assert_eq!(
            lab.nft_chain("arp", "mangle-tap1"),
            ["arp operation request arp saddr ip set 198.51.100.1"]
        );
    } else {
        assert_eq!(
            ipt_chain(&lab, "iptables", "SNF-FROM-tap1"),
            [
                "-N SNF-FROM-tap1",
                "-A SNF-FROM-tap1 ! -s 198.51.100.10/32 -j DROP"
            ]
        );
        assert_eq!(
            ipt_chain(&lab, "ip6tables", "SNF-FROM-tap1"),
            [
                "-N SNF-FROM-tap1",
                &format!("-A SNF-FROM-tap1 ! -s {eui}/128 -j DROP")
            ]
        );
        assert_eq!(
            ipt_chain(&lab, "iptables", "SNF-TO-tap1"),
            ["-N SNF-TO-tap1", "-A SNF-TO-tap1 -j snf-limited"]
        );
        assert_eq!(
            ipt_chain(&lab, "iptables", "snf-limited"),
            [
                "-N snf-limited",
                "-A snf-limited -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A snf-limited -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT",
                "-A snf-limited -p tcp -m tcp --dport 22 -j ACCEPT",
                "-A snf-limited -p tcp -m tcp --dport 3389 -j ACCEPT",
                "-A snf-limited -p udp -m udp --sport 53 -j ACCEPT",
                "-A snf-limited -p icmp -j ACCEPT",
                "-A snf-limited -j DROP"
            ]
        );
        let fwd = ipt_chain(&lab, "iptables", "FORWARD");
        assert_eq!(
            &fwd[1..4],
            [
                "-A FORWARD -i tap1 -m comment --comment snf-ifup -j SNF-FROM-tap1",
                "-A FORWARD -o tap1 -m comment --comment snf-ifup -j SNF-TO-tap1",
                "-A FORWARD -i adm0 -j admin"
            ]
        );
    }
    assert_eq!(
        std::fs::read_to_string(lab.nfdhcpd_dir().join("tap1")).unwrap(),
        format!(
            "INDEV=tap1\nIP=198.51.100.10\nMAC=aa:00:00:00:00:10\nHOSTNAME=vm1.example.org\nTAGS=\"synnefo:network:0:limited\"\nGATEWAY=198.51.100.1\nSUBNET=198.51.100.0/24\nGATEWAY6=2001:db8:1::1\nSUBNET6=2001:db8:1::/64\nEUI64={eui}\n"
        )
    );
    // The router learnt from the gratuitous ARP and the unsolicited NA that the VM's
    // addresses are behind the node's uplink.
    let up0 = lab
        .exec(&["cat", "/sys/class/net/up0/address"])
        .trim()
        .to_owned();
    let learnt = |args: &[&str]| {
        (0..20).any(|_| {
            let o = lab.exec_in(&r, args);
            let ok = String::from_utf8_lossy(&o.stdout).contains(&up0);
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            ok
        })
    };
    assert!(
        learnt(&["ip", "neigh", "show", "198.51.100.10"]),
        "no gratuitous ARP seen"
    );
    assert!(
        learnt(&["ip", "-6", "neigh", "show", eui]),
        "no unsolicited NA seen"
    );

    // Traffic both ways through the node, IPv4 and IPv6 (limited profile allows ICMP).
    assert!(
        lab.ping_ok(&g, "203.0.113.1", &[]),
        "IPv4 through the routed TAP"
    );
    assert!(
        lab.ping_ok(&g, "2001:db8:2::1", &[]),
        "IPv6 through the routed TAP"
    );

    // The node's own ARP requests into the TAP carry the gateway's address: one
    // arptables rule, which matches when the node has to resolve the VM again.
    if fw == Fw::Nftables {
        lab.exec(&["ip", "neigh", "flush", "dev", "tap1"]);
        assert!(lab.ping_ok(&r, "198.51.100.10", &[]), "router to the VM");
        let fw1 = lab.fw_dump();
        lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
        assert_eq!(lab.fw_dump(), fw1, "up twice");
    } else {
        let arp_rule = "-A OUTPUT -j mangle -o tap1 --opcode 1 --mangle-ip-s 198.51.100.1";
        let arp_rules = || -> Vec<String> {
            lab.exec(&["arptables-save"])
                .lines()
                .filter(|l| l.starts_with("-A "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(arp_rules(), [arp_rule]);
        lab.exec(&["ip", "neigh", "flush", "dev", "tap1"]);
        assert!(lab.ping_ok(&r, "198.51.100.10", &[]), "router to the VM");
        let counters = lab.exec(&["arptables", "-L", "OUTPUT", "-v", "-n"]);
        assert!(!counters.contains("pcnt=0 "), "{counters}");
        // Another up keeps exactly one copy.
        lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
        assert_eq!(arp_rules(), [arp_rule]);
    }

    lab.ifup_ok(&refs(&env), &["ganeti", "down"]);
    assert_eq!(lab.fw_dump(), fw0);
    let net = lab.net_dump();
    assert!(!net.contains("iif tap1"), "{net}");
    assert!(!net.contains("dev tap1 proto static"), "{net}");
    assert!(!net.contains(&format!("{eui} dev up0")), "{net}");
    assert_eq!(lab.sysctl("net.ipv4.conf.tap1.proxy_arp"), "0");
    assert!(!lab.nfdhcpd_dir().join("tap1").exists());
    // Only the TAP's MAC and link state differ from before `up`.
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.contains("tap1"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&net), strip(&net0));
}

#[test]
fn routed_spoof_protected_drops_forged_ip_and_mac() {
    routed_spoof_protected_drops_forged_ip_and_mac_with(Fw::Iptables);
}

#[test]
fn routed_spoof_protected_drops_forged_ip_and_mac_nftables() {
    routed_spoof_protected_drops_forged_ip_and_mac_with(Fw::Nftables);
}

fn routed_spoof_protected_drops_forged_ip_and_mac_with(fw: Fw) {
    if !can_run_fw("routed_spoof_protected_drops_forged_ip_and_mac", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    let r = routed_node(&mut lab);
    let g = guest_routed(&mut lab, "tap1", "aa:00:00:00:00:10");
    let fw0 = lab.fw_dump();
    let env = nic(
        "tap1",
        "aa:00:00:00:00:10",
        "198.51.100.10",
        "routed",
        "100",
        "spoof-protected",
        "",
    );
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    if fw == Fw::Nftables {
        assert_eq!(
            lab.nft_chain("inet", "from4-tap1"),
            [
                "ether saddr != aa:00:00:00:00:10 drop",
                "udp sport 67 drop",
                "ip saddr 0.0.0.0 udp dport 67 return",
                "ip saddr != 198.51.100.10 drop",
            ]
        );
        assert_eq!(lab.nft_chain("inet", "from6-tap1").len(), 7);
    } else {
        assert_eq!(
            ipt_chain(&lab, "iptables", "SNF-FROM-tap1"),
            [
                "-N SNF-FROM-tap1",
                "-A SNF-FROM-tap1 -m mac ! --mac-source aa:00:00:00:00:10 -j DROP",
                "-A SNF-FROM-tap1 -p udp -m udp --sport 67 -j DROP",
                "-A SNF-FROM-tap1 -s 0.0.0.0/32 -p udp -m udp --dport 67 -j RETURN",
                "-A SNF-FROM-tap1 ! -s 198.51.100.10/32 -j DROP",
            ]
        );
        assert_eq!(
            ipt_chain(&lab, "ip6tables", "SNF-FROM-tap1"),
            [
                "-N SNF-FROM-tap1",
                "-A SNF-FROM-tap1 -m mac ! --mac-source aa:00:00:00:00:10 -j DROP",
                "-A SNF-FROM-tap1 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
                "-A SNF-FROM-tap1 -p udp -m udp --sport 547 -j DROP",
                "-A SNF-FROM-tap1 -s 2001:db8:1:0:a800:ff:fe00:10/128 -j RETURN",
                "-A SNF-FROM-tap1 -s fe80::a800:ff:fe00:10/128 -j RETURN",
                "-A SNF-FROM-tap1 -s ::/128 -p ipv6-icmp -j RETURN",
                "-A SNF-FROM-tap1 -j DROP",
            ]
        );
    }
    // up twice: the same tables and links.
    let (fw1, net1) = (lab.fw_dump(), lab.net_dump());
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert_eq!(lab.fw_dump(), fw1);
    assert_eq!(lab.net_dump(), net1);
    if fw == Fw::Iptables {
        let v6 = ipt_chain(&lab, "ip6tables", "SNF-FROM-tap1");
        assert!(
            v6.contains(
                &"-A SNF-FROM-tap1 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP".to_owned()
            ),
            "{v6:?}"
        );
        assert!(ipt_chain(&lab, "iptables", "INPUT").contains(
            &"-A INPUT -i tap1 -m comment --comment snf-ifup -j SNF-FROM-tap1".to_owned()
        ));
    }

    assert!(
        lab.ping_ok(&g, "203.0.113.1", &[]),
        "the real address passes"
    );
    let real = router_count(&lab, &r, "198.51.100.10");
    assert!(real >= 1);
    ok(&[
        "ip",
        "-n",
        &g,
        "addr",
        "add",
        "198.51.100.99/32",
        "dev",
        "eth1",
    ]);
    assert!(
        !lab.ping(&g, "203.0.113.1", &["-I", "198.51.100.99"]),
        "forged source IP"
    );
    assert_eq!(
        router_count(&lab, &r, "198.51.100.99"),
        0,
        "a forged packet reached the router"
    );
    ok(&[
        "ip",
        "-n",
        &g,
        "link",
        "set",
        "eth1",
        "address",
        "aa:00:00:00:00:66",
    ]);
    assert!(!lab.ping(&g, "203.0.113.1", &[]), "forged source MAC");
    assert_eq!(router_count(&lab, &r, "198.51.100.10"), real);
    ok(&[
        "ip",
        "-n",
        &g,
        "link",
        "set",
        "eth1",
        "address",
        "aa:00:00:00:00:10",
    ]);
    assert!(
        lab.ping_ok(&g, "203.0.113.1", &[]),
        "the real MAC passes again"
    );
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(lab.fw_dump(), fw0);
}

#[test]
fn bridged_spoof_protected_exact_rules_and_traffic() {
    bridged_spoof_protected_exact_rules_and_traffic_with(Fw::Iptables);
}

#[test]
fn bridged_spoof_protected_exact_rules_and_traffic_nftables() {
    bridged_spoof_protected_exact_rules_and_traffic_with(Fw::Nftables);
}

fn bridged_spoof_protected_exact_rules_and_traffic_with(fw: Fw) {
    if !can_run_fw("bridged_spoof_protected_exact_rules_and_traffic", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    lab.bridge("br0", 1500);
    let g1 = lab.guest_with_ip("tap1", MAC1, "198.51.100.11");
    let g2 = lab.guest_with_ip("tap2", "aa:00:00:00:00:02", "198.51.100.12");
    let fw0 = lab.fw_dump();
    let e1 = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "spoof-protected nfdhcpd",
        "synnefo:network:0:unprotected",
    );
    let e2 = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        "bridged",
        "br0",
        "",
        "synnefo:network:0:unprotected",
    );
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    lab.ifup_ok(&refs(&e2), &["ganeti", "up"]);
    if fw == Fw::Nftables {
        let from = lab.nft_chain("bridge", "from-tap1");
        assert_eq!(from.len(), 15, "{from:?}");
        assert_eq!(from[0], "ether saddr != aa:00:00:00:00:01 drop");
        assert_eq!(from[8], "ip saddr 198.51.100.11 return", "{from:?}");
        assert_eq!(
            lab.nft_chain("bridge", "to4-tap1"),
            ["jump snf-unprotected4"]
        );
        assert_eq!(lab.nft_chain("bridge", "snf-unprotected4"), ["accept"]);
    } else {
        assert_eq!(
            ebt_chain(&lab, "SNF-FROM-tap1"),
            [
                "-s ! aa:00:00:00:00:01 -j DROP",
                "-p 802_1Q -j DROP",
                "-p IPv4 --ip-proto udp --ip-sport 67 -j DROP",
                "-p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type router-advertisement -j DROP",
                "-p IPv6 --ip6-proto udp --ip6-sport 547 -j DROP",
                "-p ARP --arp-mac-src ! aa:00:00:00:00:01 -j DROP",
                "-p ARP --arp-ip-src 0.0.0.0 -j RETURN",
                "-p ARP --arp-ip-src ! 198.51.100.11 -j DROP",
                "-p IPv4 --ip-src 198.51.100.11 -j RETURN",
                "-p IPv4 --ip-src 0.0.0.0 --ip-proto udp --ip-dport 67 -j RETURN",
                "-p IPv4 -j DROP",
                "-p IPv6 --ip6-src 2001:db8:1:0:a800:ff:fe00:1 -j RETURN",
                "-p IPv6 --ip6-src fe80::a800:ff:fe00:1 -j RETURN",
                "-p IPv6 --ip6-src :: --ip6-proto ipv6-icmp -j RETURN",
                "-p IPv6 -j DROP",
            ]
        );
    }
    let (fw1, net1) = (lab.fw_dump(), lab.net_dump());
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    assert_eq!(lab.fw_dump(), fw1, "up twice");
    assert_eq!(lab.net_dump(), net1, "up twice");
    if fw == Fw::Iptables {
        let fwd = ebt_chain(&lab, "FORWARD");
        assert_eq!(fwd[0], "-i tap1 -j SNF-FROM-tap1");
        assert!(ebt_chain(&lab, "INPUT").contains(&"-i tap1 -j SNF-FROM-tap1".to_owned()));
        assert_eq!(
            ipt_chain(&lab, "iptables", "snf-unprotected"),
            ["-N snf-unprotected", "-A snf-unprotected -j ACCEPT"]
        );
        // Jumps are inserted at the top: tap2's (brought up last) above tap1's, above the
        // admin's rules.
        assert_eq!(
            ipt_chain(&lab, "iptables", "FORWARD")[1..4],
            [
                "-A FORWARD -m physdev --physdev-out tap2 --physdev-is-bridged -m comment --comment snf-ifup -j SNF-TO-tap2",
                "-A FORWARD -m physdev --physdev-out tap1 --physdev-is-bridged -m comment --comment snf-ifup -j SNF-TO-tap1",
                "-A FORWARD -i adm0 -j admin",
            ]
        );
    }
    assert!(
        std::fs::read_to_string(lab.nfdhcpd_dir().join("tap1"))
            .unwrap()
            .starts_with(
                "INDEV=br0\nIP=198.51.100.11\nMAC=aa:00:00:00:00:01\nHOSTNAME=vm1.example.org\n"
            )
    );

    // g2 counts what arrives from the forged address.
    let count = |lab: &Lab| -> u64 {
        let o = lab.exec_in(&g2, &["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("198.51.100.99"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    ok(&[
        "ip",
        "netns",
        "exec",
        &g2,
        "iptables",
        "-A",
        "INPUT",
        "-s",
        "198.51.100.99",
    ]);
    assert!(
        lab.ping_ok(&g1, "198.51.100.12", &[]),
        "real MAC and IP pass"
    );
    ok(&[
        "ip",
        "-n",
        &g1,
        "addr",
        "add",
        "198.51.100.99/24",
        "dev",
        "eth1",
    ]);
    assert!(
        !lab.ping(&g1, "198.51.100.12", &["-I", "198.51.100.99"]),
        "forged source IP"
    );
    assert_eq!(count(&lab), 0);
    ok(&[
        "ip",
        "-n",
        &g1,
        "link",
        "set",
        "eth1",
        "address",
        "aa:00:00:00:00:77",
    ]);
    assert!(!lab.ping(&g1, "198.51.100.12", &[]), "forged source MAC");
    ok(&["ip", "-n", &g1, "link", "set", "eth1", "address", MAC1]);
    assert!(
        lab.ping_ok(&g1, "198.51.100.12", &[]),
        "real MAC passes again"
    );

    lab.ifup_ok(&[], &["down", "tap1"]);
    // tap2 still uses the profile chain: it stays, and so do tap2's rules.
    if fw == Fw::Nftables {
        assert_eq!(lab.nft_chain("bridge", "snf-unprotected4"), ["accept"]);
        assert_eq!(
            lab.nft_chain("bridge", "to4-tap2"),
            ["jump snf-unprotected4"]
        );
        assert!(!lab.fw_dump().contains("from-tap1"));
    } else {
        assert_eq!(
            ipt_chain(&lab, "iptables", "snf-unprotected"),
            ["-N snf-unprotected", "-A snf-unprotected -j ACCEPT"]
        );
        assert!(lab.fw_dump().contains("SNF-TO-tap2 -j snf-unprotected"));
    }
    lab.ifup_ok(&[], &["down", "tap2"]);
    assert_eq!(lab.fw_dump(), fw0);
    assert!(!lab.nfdhcpd_dir().join("tap1").exists());
}

#[test]
fn private_filtered_isolates_mac_prefixes() {
    private_filtered_isolates_mac_prefixes_with(Fw::Iptables);
}

#[test]
fn private_filtered_isolates_mac_prefixes_nftables() {
    private_filtered_isolates_mac_prefixes_with(Fw::Nftables);
}

fn private_filtered_isolates_mac_prefixes_with(fw: Fw) {
    if !can_run_fw("private_filtered_isolates_mac_prefixes", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    lab.bridge("br0", 1500);
    // Under the mask ff:ff:f0:00:00:00 the first two share a prefix, the third does not.
    let guests = [
        ("tap1", "aa:00:00:00:00:01", "198.51.100.11"),
        ("tap2", "aa:00:00:00:00:02", "198.51.100.12"),
        ("tap3", "aa:00:10:00:00:03", "198.51.100.13"),
    ];
    let g: Vec<String> = guests
        .iter()
        .map(|(t, m, ip)| lab.guest_with_ip(t, m, ip))
        .collect();
    let fw0 = lab.fw_dump();
    for tag in ["private-filtered", "mac-filtered"] {
        for (t, m, ip) in guests {
            lab.ifup_ok(
                &refs(&nic(t, m, ip, "bridged", "br0", tag, "")),
                &["ganeti", "up"],
            );
        }
        if fw == Fw::Nftables {
            assert_eq!(
                lab.nft_chain("bridge", "to-tap3"),
                ["ether saddr & ff:ff:f0:00:00:00 != aa:00:10:00:00:00 drop"]
            );
        } else {
            assert_eq!(
                ebt_chain(&lab, "SNF-FROM-tap1"),
                ["-s ! aa:00:00:00:00:01 -j DROP"]
            );
            assert_eq!(
                ebt_chain(&lab, "SNF-TO-tap3"),
                ["-s ! aa:00:10:00:00:00/ff:ff:f0:00:00:00 -j DROP"]
            );
            let jumps = ebt_chain(&lab, "OUTPUT");
            assert!(
                jumps.contains(&"-o tap1 -j SNF-TO-tap1".to_owned()),
                "{jumps:?}"
            );
        }
        assert!(
            lab.ping_ok(&g[0], "198.51.100.12", &[]),
            "same prefix ({tag})"
        );
        assert!(
            !lab.ping(&g[0], "198.51.100.13", &[]),
            "other prefix ({tag})"
        );
        assert!(
            !lab.ping(&g[2], "198.51.100.11", &[]),
            "other prefix ({tag})"
        );
        for (t, _, _) in guests {
            lab.ifup_ok(&[], &["down", t]);
        }
        assert_eq!(lab.fw_dump(), fw0);
    }
    // Control: the same guests without the tag reach each other.
    for (t, m, ip) in guests {
        lab.ifup_ok(
            &refs(&nic(t, m, ip, "bridged", "br0", "", "")),
            &["ganeti", "up"],
        );
    }
    assert!(lab.ping_ok(&g[0], "198.51.100.13", &[]), "without the tag");
}

/// Ganeti's Xen NIC file (layout of Ganeti's _WriteNICInfoFile) for `env`.
fn xen_file(env: &Env) -> String {
    let get = |k: &str| {
        env.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut s = format!("TAGS=\"{}\"\n", get("TAGS").replace(' ', "\\ "));
    for k in [
        "NETWORK_NAME",
        "NETWORK_UUID",
        "NETWORK_TAGS",
        "NETWORK_SUBNET",
        "NETWORK_GATEWAY",
        "NETWORK_SUBNET6",
        "NETWORK_GATEWAY6",
        "NETWORK_MAC_PREFIX",
    ] {
        s.push_str(&format!("{k}=\"{}\"\n", get(k)));
    }
    for k in [
        "MAC",
        "IP",
        "INTERFACE_INDEX",
        "INTERFACE_UUID",
        "MODE",
        "LINK",
        "VLAN",
    ] {
        s.push_str(&format!("{k}={}\n", get(k)));
    }
    s
}

/// Writes config.data (network net1 connected bridged to br0, instance vm1.example.org
/// with one NIC in it) through netconf's store, as gnt-network and gnt-instance would;
/// returns Ganeti's environment for that NIC on TAP `tap`.
fn write_config(path: &Path, tap: &str, net_tags: &[&str], inst_tags: &[&str]) -> Env {
    use netconf_cluster::config::{open, transaction};
    use netconf_cluster::ops::{self, Feedback};
    let store = open(path);
    let mut fb = Feedback::default();
    transaction(&store, |cfg| {
        ops::network::add(
            cfg,
            &ops::network::AddNetwork {
                name: "net1".into(),
                network: Some("198.51.100.0/24".into()),
                gateway: Some("198.51.100.1".into()),
                network6: Some("2001:db8:1::/64".into()),
                gateway6: Some("2001:db8:1::1".into()),
                mac_prefix: Some("aa:00:00".into()),
                tags: net_tags.iter().map(|t| (*t).to_owned()).collect(),
                ..Default::default()
            },
            &mut fb,
        )?;
        let raw = ops::network::RawNicParams {
            mode: Some("bridged".into()),
            link: Some("br0".into()),
            vlan: None,
        };
        ops::network::connect(cfg, "net1", &raw, &[], false, &mut fb)?;
        let spec =
            ops::instance::NicSpec::parse(&format!("network=net1,ip=198.51.100.11,mac={MAC1}"))?;
        ops::instance::add(
            cfg,
            &ops::instance::AddInstance {
                name: "vm1.example.org".into(),
                nics: vec![spec],
                tags: inst_tags.iter().map(|t| (*t).to_owned()).collect(),
                ..Default::default()
            },
            &mut fb,
        )?;
        Ok(())
    })
    .expect("write config.data");
    let cfg = netconf_cluster::config::Store::read(&store).unwrap();
    let inst = cfg.instances.all_decoded().values().next().unwrap();
    let nu = cfg.network_uuid("net1").unwrap();
    let mut env = nic(
        tap,
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        &net_tags.join(" "),
        &inst_tags.join(" "),
    );
    set(&mut env, "INTERFACE_UUID", &inst.nics[0].uuid);
    set(&mut env, "NETWORK_UUID", &nu);
    env
}

#[test]
fn every_entry_point_gives_the_same_result() {
    if !can_run("every_entry_point_gives_the_same_result") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1450);
    let vif = "vif1.0";
    lab.guest(vif, MAC1);
    let fw0 = lab.fw_dump();
    let config = lab.dir.path().join("config.data");
    // Sorted, as config.data keeps tags as sets.
    let env = write_config(
        &config,
        vif,
        &["nfdhcpd", "private-filtered", "spoof-protected"],
        &["blue", "synnefo:network:0:protected"],
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_snf-ifup"));
    let links = lab.dir.path().join("links");
    for d in ["ganeti/network/bridged", "xen"] {
        std::fs::create_dir_all(links.join(d)).unwrap();
    }
    for name in [
        "ganeti/kvm-vif-bridge",
        "ganeti/kvm-ifup-custom",
        "ganeti/kvm-ifdown-custom",
        "ganeti/network/bridged/up",
        "ganeti/network/bridged/down",
        "xen/vif-custom",
    ] {
        symlink(bin, links.join(name)).unwrap();
    }
    let nicfile = lab.nic_dir().join("vm1.example.org");
    std::fs::create_dir_all(&nicfile).unwrap();
    std::fs::write(nicfile.join("0"), xen_file(&env)).unwrap();
    // The domain name comes from the configured command (here instead of `xl domname`).
    std::fs::write(
        lab.dir.path().join("snf-network.toml"),
        "syslog = false\nxen_domname = [\"sh\", \"-c\", 'test \"$1\" = 1 && echo vm1.example.org', \"domname\"]\n",
    )
    .unwrap();

    let mut env_action = env.clone();
    set(&mut env_action, "ACTION", "up");
    let mut env_post = env_action.clone();
    set(&mut env_post, "MIGRATION_PHASE", "post");
    let xen_env: Env = vec![
        ("vif".into(), vif.into()),
        ("XENBUS_PATH".into(), "backend/vif/1/0".into()),
    ];
    let standalone_env: Env = vec![("NETCONF_CONFIG".into(), config.display().to_string())];
    type Call<'a> = (
        &'a str,
        std::path::PathBuf,
        &'a Env,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let calls: Vec<Call> = vec![
        (
            "ganeti subcommand",
            bin.into(),
            &env,
            vec!["ganeti", "up"],
            vec!["ganeti", "down"],
        ),
        (
            "kvm-vif-bridge (Ganeti 3.0)",
            links.join("ganeti/kvm-vif-bridge"),
            &env,
            vec![vif],
            vec![],
        ),
        (
            "kvm-ifup-custom (GRNET)",
            links.join("ganeti/kvm-ifup-custom"),
            &env,
            vec![vif],
            vec![],
        ),
        (
            "network/bridged/up (Ganeti 3.2)",
            links.join("ganeti/network/bridged/up"),
            &env_post,
            vec![],
            vec![],
        ),
        (
            "ACTION=up (Ganeti 3.2)",
            bin.into(),
            &env_action,
            vec!["ganeti"],
            vec!["ganeti", "down", vif],
        ),
        (
            "vif-custom (Xen)",
            links.join("xen/vif-custom"),
            &xen_env,
            vec!["online"],
            vec!["offline"],
        ),
        (
            "xen subcommand",
            bin.into(),
            &xen_env,
            vec!["xen", "add"],
            vec!["xen", "remove"],
        ),
        (
            "standalone (config.data)",
            bin.into(),
            &standalone_env,
            vec!["up", vif, "--instance", "vm1.example.org", "--nic", "0"],
            vec!["down", vif],
        ),
        (
            "standalone --config",
            bin.into(),
            &xen_env,
            vec![
                "up",
                vif,
                "--instance",
                "vm1.example.org",
                "--nic",
                "0",
                "--config",
                config.to_str().unwrap(),
            ],
            vec!["down", vif],
        ),
    ];
    let down_as: Vec<(std::path::PathBuf, &Env, Vec<&str>)> = vec![
        (links.join("ganeti/kvm-ifdown-custom"), &env, vec![vif, "1"]),
        (links.join("ganeti/network/bridged/down"), &env, vec![]),
    ];
    let mut reference: Option<(String, String, String, String)> = None;
    for (i, (what, prog, e, up_args, down_args)) in calls.iter().enumerate() {
        let o = lab.ifup_as(prog, &refs(e), up_args);
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let st = std::fs::read_to_string(lab.state_dir().join(format!("{vif}.toml"))).unwrap();
        let env_line = st
            .lines()
            .find(|l| l.starts_with("env = "))
            .unwrap()
            .to_owned();
        let got = (
            lab.fw_dump(),
            lab.net_dump(),
            std::fs::read_to_string(lab.nfdhcpd_dir().join(vif)).unwrap(),
            env_line,
        );
        match &reference {
            None => reference = Some(got),
            Some(r) => assert_eq!(&got, r, "{what} differs from {}", calls[0].0),
        }
        // Take it down with the matching down entry point (or an install name).
        let o = if down_args.is_empty() {
            let (p, de, da) = &down_as[i % down_as.len()];
            lab.ifup_as(p, &refs(de), da)
        } else {
            lab.ifup_as(prog, &refs(e), down_args)
        };
        assert!(
            o.status.success(),
            "{what} down: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(lab.fw_dump(), fw0, "{what} down");
        assert!(!lab.nfdhcpd_dir().join(vif).exists());
    }
    // The standalone path's errors name what is wrong.
    let o = lab.ifup(
        &refs(&standalone_env),
        &["up", vif, "--instance", "vm1.example.org", "--nic", "3"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Instance 'vm1.example.org' has no NIC 3 (it has 1)")
    );
    let o = lab.ifup(
        &refs(&standalone_env),
        &["up", vif, "--instance", "vm9", "--nic", "0"],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Instance 'vm9' not known"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn down_after_partial_up_failed_up_and_missing_state() {
    if !can_run("down_after_partial_up_failed_up_and_missing_state") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    let fw0 = lab.fw_dump();
    let env = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "private-filtered nfdhcpd",
        "synnefo:network:0:protected",
    );

    // A failing step (the binding directory cannot be created) rolls everything back.
    let blocker = lab.dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let mut bad = refs(&env);
    let bad_dir = blocker.join("nfdhcpd").display().to_string();
    bad.push(("NFDHCPD_STATE_DIR", &bad_dir));
    let o = lab.ifup(&bad, &["ganeti", "up"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot configure tap1; changes rolled back")
            && err.contains("cannot write binding"),
        "{err}"
    );
    assert_eq!(lab.fw_dump(), fw0);
    assert!(
        !lab.exec(&["ip", "-o", "link", "show", "tap1"])
            .contains("master")
    );
    assert!(!lab.state_dir().join("tap1.toml").exists());

    // Half of an `up` (jumps and the binding gone, as after an interruption): down
    // removes the rest and succeeds.
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    lab.exec(&[
        "ebtables",
        "-D",
        "OUTPUT",
        "-o",
        "tap1",
        "-j",
        "SNF-TO-tap1",
    ]);
    lab.exec(&[
        "ebtables",
        "-D",
        "FORWARD",
        "-o",
        "tap1",
        "-j",
        "SNF-TO-tap1",
    ]);
    lab.exec(&["ebtables", "-F", "SNF-TO-tap1"]);
    lab.exec(&["ebtables", "-X", "SNF-TO-tap1"]);
    std::fs::remove_file(lab.nfdhcpd_dir().join("tap1")).unwrap();
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(lab.fw_dump(), fw0);

    // Without any state file, down still finds this TAP's chains by name.
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    std::fs::remove_file(lab.state_dir().join("tap1.toml")).unwrap();
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(lab.fw_dump(), fw0);
    assert!(!lab.nfdhcpd_dir().join("tap1").exists());
    // And on a TAP that was never configured.
    lab.ifup_ok(&[], &["down", "tap1"]);
}

#[test]
fn reapply_all_rebuilds_after_a_firewall_reload_and_status() {
    reapply_all_rebuilds_after_a_firewall_reload_and_status_with(Fw::Iptables);
}

#[test]
fn reapply_all_rebuilds_after_a_firewall_reload_and_status_nftables() {
    reapply_all_rebuilds_after_a_firewall_reload_and_status_with(Fw::Nftables);
}

fn reapply_all_rebuilds_after_a_firewall_reload_and_status_with(fw: Fw) {
    if !can_run_fw(
        "reapply_all_rebuilds_after_a_firewall_reload_and_status",
        fw,
    ) {
        return;
    }
    let mut lab = Lab::with(fw);
    let _r = routed_node(&mut lab);
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    guest_routed(&mut lab, "tap2", "aa:00:00:00:00:10");
    let saved: Vec<String> = ["iptables-save", "ip6tables-save", "ebtables-save"]
        .iter()
        .map(|t| lab.exec(&[t]))
        .collect();
    lab.ifup_ok(
        &refs(&nic(
            "tap1",
            MAC1,
            "198.51.100.11",
            "bridged",
            "br0",
            "private-filtered spoof-protected nfdhcpd",
            "synnefo:network:0:protected",
        )),
        &["ganeti", "up"],
    );
    lab.ifup_ok(
        &refs(&nic(
            "tap2",
            "aa:00:00:00:00:10",
            "198.51.100.10",
            "routed",
            "100",
            "ip-less-routed nfdhcpd",
            "synnefo:network:0:limited",
        )),
        &["ganeti", "up"],
    );
    let (fw1, net1) = (lab.fw_dump(), lab.net_dump());
    let ours1 = if fw == Fw::Nftables {
        lab.nft_ours()
    } else {
        String::new()
    };
    let b1 = std::fs::read_to_string(lab.nfdhcpd_dir().join("tap2")).unwrap();

    // A firewall reload restores the admin's saved rules; a routing reset drops our rules.
    if fw == Fw::Nftables {
        // nftables.service's reload starts with a flush of the whole ruleset.
        lab.exec(&["nft", "flush", "ruleset"]);
    }
    for (t, s) in ["iptables-restore", "ip6tables-restore", "ebtables-restore"]
        .iter()
        .zip(&saved)
    {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &lab.node, t]);
        c.stdin(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }
    lab.exec(&["ip", "rule", "del", "iif", "tap2", "table", "100"]);
    std::fs::remove_file(lab.nfdhcpd_dir().join("tap2")).unwrap();
    assert_ne!(lab.fw_dump(), fw1);

    if fw == Fw::Nftables {
        assert_eq!(lab.nft_ours(), "", "the reload removed our tables");
    }
    lab.ifup_ok(&[], &["reapply", "--all"]);
    if fw == Fw::Nftables {
        // iptables-nft recreates its own tables in another order after the flush: only
        // ours are compared.
        assert_eq!(lab.nft_ours(), ours1);
    } else {
        assert_eq!(lab.fw_dump(), fw1);
    }
    assert_eq!(lab.net_dump(), net1);
    assert_eq!(
        std::fs::read_to_string(lab.nfdhcpd_dir().join("tap2")).unwrap(),
        b1
    );

    let st = lab.ifup_ok(&[], &["status"]);
    if fw == Fw::Nftables {
        // This kernel (and others without nft_queue) cannot queue from nftables: status
        // says so, whatever the answer, and nfdhcpd stays on iptables.
        assert!(
            st.starts_with("firewall: nftables (nft queue supported; ")
                || st.starts_with("firewall: nftables (nft queue unsupported; "),
            "{st}"
        );
    } else {
        assert!(st.starts_with("firewall: iptables\n"), "{st}");
    }
    assert!(
        st.contains("tap1: instance vm1.example.org NIC 0 mode bridged link br0"),
        "{st}"
    );
    let line = if fw == Fw::Nftables {
        "nft bridge snf_ifup: chain from-tap1"
    } else {
        "ebtables: chain SNF-FROM-tap1: 15 rules, 2 jumps"
    };
    assert!(st.contains(line), "{st}");
    assert!(
        st.contains("tap2: instance vm1.example.org NIC 0 mode routed link 100"),
        "{st}"
    );
    assert!(
        st.contains("ip rule: 32765: iif tap2 lookup 100") || st.contains("iif tap2 lookup 100"),
        "{st}"
    );
    let o = lab.ifup(&[], &["status", "tap9"]);
    assert_eq!(o.status.code(), Some(1));

    // A NIC whose TAP is gone (VM stopped without `down`) is skipped with a warning.
    lab.exec(&["ip", "link", "del", "tap1"]);
    let o = lab.ifup(&[], &["reapply", "--all"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("tap1 no longer exists; skipped"));
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert!(!lab.fw_dump().contains("tap1"));
}

#[test]
fn errors_dry_run_and_openvswitch() {
    if !can_run("errors_dry_run_and_openvswitch") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    // The veth's own MAC is random, and one in 64 random MACs starts with `fe` already
    // (then, rightly, nothing is changed): give it one that needs the change.
    lab.exec(&[
        "ip",
        "link",
        "set",
        "dev",
        "tap1",
        "address",
        "0a:00:00:12:34:56",
    ]);
    let fw0 = lab.fw_dump();
    let net0 = lab.net_dump();
    let env = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "private-filtered nfdhcpd",
        "",
    );

    let out = lab.ifup_ok(&refs(&env), &["--dry-run", "ganeti", "up"]);
    for needle in [
        // The TAP's own MAC with `fe` first, so that the bridge never takes it.
        "# ip -4 -batch -\nlink set dev tap1 address fe:00:00:12:34:56\n",
        "\nlink set dev tap1 mtu 1500\nlink set dev tap1 master br0\nlink set dev tap1 up\n",
        "# ebtables-restore --noflush\n*filter\n-N SNF-FROM-tap1\n-P SNF-FROM-tap1 RETURN\n",
        "-I FORWARD 1 -i tap1 -j SNF-FROM-tap1\n",
        "INDEV=br0\n",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert_eq!(lab.fw_dump(), fw0);
    assert_eq!(lab.net_dump(), net0);
    assert!(!lab.state_dir().join("tap1.toml").exists());

    // Tag names come from snf-network.toml ($SNF_NETWORK_CONFIG).
    let conf = lab.dir.path().join("snf-network.toml");
    std::fs::write(
        &conf,
        "syslog = false\n[tags]\nmac_filtered = [\"isolated\"]\n",
    )
    .unwrap();
    let mut e = env.clone();
    set(&mut e, "NETWORK_TAGS", "isolated");
    let out = lab.ifup_ok(&refs(&e), &["--dry-run", "ganeti", "up"]);
    assert!(
        out.contains("-A SNF-TO-tap1 -s ! aa:00:00:00:00:01/ff:ff:f0:00:00:00 -j DROP"),
        "{out}"
    );
    set(&mut e, "NETWORK_TAGS", "private-filtered");
    let out = lab.ifup_ok(&refs(&e), &["--dry-run", "ganeti", "up"]);
    assert!(!out.contains("ebtables"), "{out}");
    std::fs::write(&conf, "mac_mask = \"nonsense\"\n").unwrap();
    let o = lab.ifup(&refs(&e), &["ganeti", "up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid configuration"));
    std::fs::write(&conf, "syslog = false\n").unwrap();

    // Bad input: a clear message and exit 1, never a panic.
    let mut e = env.clone();
    e.retain(|(k, _)| k != "MAC");
    let o = lab.ifup(&refs(&e), &["ganeti", "up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("invalid Ganeti NIC environment: MAC is missing")
    );
    let mut e = env;
    set(&mut e, "NETWORK_SUBNET", "198.51.100.0/33");
    let o = lab.ifup(&refs(&e), &["ganeti", "up"]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("NETWORK_SUBNET: invalid IPv4 subnet '198.51.100.0/33'")
    );
    let o = lab.ifup(&[("vif", "tap1")], &["xen", "online"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not of the form vif<domid>.<devid>"));
    let o = lab.ifup(
        &refs(&nic(
            "tap9",
            MAC1,
            "198.51.100.11",
            "bridged",
            "br0",
            "",
            "",
        )),
        &["ganeti", "up"],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("interface tap9 does not exist"));
    let o = lab.ifup(
        &refs(&nic(
            "tap1",
            MAC1,
            "198.51.100.11",
            "bridged",
            "br7",
            "",
            "",
        )),
        &["ganeti", "up"],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("bridge br7 does not exist"));

    // Open vSwitch absent (a PATH without ovs-vsctl, also where it is installed): a clear
    // error, nothing changed.
    let path = lab.path_without("ovs-vsctl");
    let mut e = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "openvswitch",
        "ovsbr0",
        "",
        "",
    );
    set(&mut e, "PATH", &path);
    let o = lab.ifup(&refs(&e), &["ganeti", "up"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mode openvswitch needs Open vSwitch, but ovs-vsctl was not found in PATH"),
        "{err}"
    );
    assert_eq!(lab.fw_dump(), fw0);
    assert_eq!(lab.net_dump(), net0);
}

#[test]
fn ganeti_32_pre_migration_phase_announces_nothing() {
    if !can_run("ganeti_32_pre_migration_phase_announces_nothing") {
        return;
    }
    let mut lab = Lab::new();
    let r = routed_node(&mut lab);
    lab.guest("tap1", "aa:00:00:00:00:10");
    let mut env = nic(
        "tap1",
        "aa:00:00:00:00:10",
        "198.51.100.10",
        "routed",
        "100",
        "",
        "",
    );
    set(&mut env, "ACTION", "up");
    set(&mut env, "MIGRATION_PHASE", "pre");
    lab.ifup_ok(&refs(&env), &["ganeti"]);
    let up0 = lab
        .exec(&["cat", "/sys/class/net/up0/address"])
        .trim()
        .to_owned();
    let seen = |lab: &Lab| {
        let o = lab.exec_in(&r, &["ip", "neigh", "show", "198.51.100.10"]);
        String::from_utf8_lossy(&o.stdout).contains(&up0)
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!seen(&lab), "announced before the migration");
    // The routes are there all the same.
    assert!(
        lab.exec(&["ip", "-4", "rule"])
            .contains("iif tap1 lookup 100")
    );
    set(&mut env, "MIGRATION_PHASE", "post");
    lab.ifup_ok(&refs(&env), &["ganeti"]);
    assert!(
        (0..20).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            seen(&lab)
        }),
        "no gratuitous ARP after the migration"
    );
    set(&mut env, "MIGRATION_PHASE", "during");
    let o = lab.ifup(&refs(&env), &["ganeti"]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("MIGRATION_PHASE must be pre or post, not 'during'")
    );
}

#[test]
fn bridged_profile_filters_traffic_towards_the_vm() {
    bridged_profile_filters_traffic_towards_the_vm_with(Fw::Iptables);
}

/// Under nftables the bridge family marks the packets towards a port with a profile and
/// the inet family, which br_netfilter runs on bridged packets and which has conntrack
/// (the bridge family has none without nf_conntrack_bridge), applies the profile: the
/// same traffic passes and is dropped as with iptables' physdev match.
#[test]
fn bridged_profile_filters_traffic_towards_the_vm_nftables() {
    bridged_profile_filters_traffic_towards_the_vm_with(Fw::Nftables);
}

fn bridged_profile_filters_traffic_towards_the_vm_with(fw: Fw) {
    if !can_run_fw("bridged_profile_filters_traffic_towards_the_vm", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    lab.bridge("br0", 1500);
    let g1 = lab.guest_with_ip("tap1", MAC1, "198.51.100.11");
    let g2 = lab.guest_with_ip("tap2", "aa:00:00:00:00:02", "198.51.100.12");
    for (g, ip) in [(&g1, "2001:db8:1::11/64"), (&g2, "2001:db8:1::12/64")] {
        ok(&["ip", "-n", g, "addr", "add", ip, "dev", "eth1", "nodad"]);
    }
    let e1 = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "",
        "synnefo:network:0:protected",
    );
    let e2 = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        "bridged",
        "br0",
        "",
        "",
    );
    let fw0 = lab.fw_dump();
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    lab.ifup_ok(&refs(&e2), &["ganeti", "up"]);
    // g1 counts the UDP datagrams that reach it.
    for t in ["iptables", "ip6tables"] {
        ok(&[
            "ip", "netns", "exec", &g1, t, "-A", "INPUT", "-p", "udp", "--dport", "9999",
        ]);
    }
    let count = |tool: &str| -> u64 {
        let o = lab.exec_in(&g1, &[tool, "-L", "INPUT", "-v", "-n", "-x"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("dpt:9999"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    // One datagram from g2 to g1 (bash's /dev/udp: no extra tool).
    let send = |to: &str, dport: &str| {
        let script = format!("exec 3<>/dev/udp/{to}/{dport}; echo x >&3");
        lab.exec_in(&g2, &["bash", "-c", &script])
    };
    // Bridged frames leaving the node still marked would show here (a table of the
    // test's own in the node namespace, after br_netfilter's FORWARD, before POSTROUTING).
    // The mark itself is not seen in g1: it does not cross namespaces.
    // (all packets, marked packets)
    let marked = || -> Vec<u64> {
        let o = lab.exec(&["nft", "list", "chain", "bridge", "marks", "post"]);
        o.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let i = w.iter().position(|x| *x == "packets")?;
                w.get(i + 1)?.parse().ok()
            })
            .collect()
    };
    lab.exec(&["nft", "add", "table", "bridge", "marks"]);
    lab.exec(&[
        "nft",
        "add chain bridge marks post { type filter hook postrouting priority 0; }",
    ]);
    // (Only what g2 sends: the node's own IGMP/MLD reports carry a tail-room reservation
    // that shares its field with the mark.)
    lab.exec(&[
        "nft",
        "add rule bridge marks post ether saddr aa:00:00:00:00:02 counter",
    ]);
    lab.exec(&[
        "nft",
        "add rule bridge marks post ether saddr aa:00:00:00:00:02 meta mark != 0 counter",
    ]);
    for (to, tool) in [
        ("198.51.100.11", "iptables"),
        ("2001:db8:1::11", "ip6tables"),
    ] {
        assert!(
            lab.ping_ok(&g2, to, &[]),
            "ICMP to {to} passes the protected profile"
        );
        send(to, "9999");
        send(to, "9998");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(
            count(tool),
            0,
            "a new UDP flow towards the VM ({to}) passed the protected profile"
        );
    }
    let m = marked();
    assert!(
        m.len() == 2 && m[0] > 0 && m[1] == 0,
        "bridged packets left with snf-ifup's mark: {m:?}"
    );
    if fw == Fw::Iptables {
        // The profile's DROP counted it (br_netfilter sent the bridged frame through FORWARD).
        let drops = lab.exec(&["iptables", "-L", "snf-protected", "-v", "-n", "-x"]);
        let dropped: u64 = drops
            .lines()
            .rfind(|l| l.contains("DROP"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(dropped >= 2, "{drops}");
    }
    // Without the profile the same datagrams arrive.
    let e1 = nic("tap1", MAC1, "198.51.100.11", "bridged", "br0", "", "");
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    for (to, tool) in [
        ("198.51.100.11", "iptables"),
        ("2001:db8:1::11", "ip6tables"),
    ] {
        send(to, "9999");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(
            count(tool),
            1,
            "without a profile the datagram to {to} arrives"
        );
    }
    lab.exec(&["nft", "delete", "table", "bridge", "marks"]);
    // The profile back on, then both NICs down: the tables are as before the first `up`.
    let e1 = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "",
        "synnefo:network:0:limited",
    );
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    lab.ifup_ok(&[], &["down", "tap1"]);
    lab.ifup_ok(&[], &["down", "tap2"]);
    assert_eq!(lab.fw_dump(), fw0);
}

#[test]
fn bridged_and_routed_profiles_live_side_by_side() {
    bridged_and_routed_profiles_live_side_by_side_with(Fw::Iptables);
}

/// Under nftables a bridge port's profile lives in the inet table that routed NICs use:
/// the last routed NIC's `down` must not take it away.
#[test]
fn bridged_and_routed_profiles_live_side_by_side_nftables() {
    bridged_and_routed_profiles_live_side_by_side_with(Fw::Nftables);
}

fn bridged_and_routed_profiles_live_side_by_side_with(fw: Fw) {
    if !can_run_fw("bridged_and_routed_profiles_live_side_by_side", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    let _r = routed_node(&mut lab);
    lab.bridge("br0", 1500);
    let g1 = lab.guest_with_ip("tap1", MAC1, "198.51.100.11");
    let g3 = lab.guest_with_ip("tap3", "aa:00:00:00:00:03", "198.51.100.13");
    guest_routed(&mut lab, "tap2", "aa:00:00:00:00:10");
    let fw0 = lab.fw_dump();
    let bridged =
        |tap: &str, mac: &str, ip: &str, tags: &str| nic(tap, mac, ip, "bridged", "br0", "", tags);
    let e1 = bridged("tap1", MAC1, "198.51.100.11", "synnefo:network:0:protected");
    let e3 = bridged("tap3", "aa:00:00:00:00:03", "198.51.100.13", "");
    let e2 = nic(
        "tap2",
        "aa:00:00:00:00:10",
        "198.51.100.10",
        "routed",
        "100",
        "",
        "synnefo:network:0:protected",
    );
    // The routed NIC first: the bridged profile joins the table it made.
    lab.ifup_ok(&refs(&e2), &["ganeti", "up"]);
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    lab.ifup_ok(&refs(&e3), &["ganeti", "up"]);
    lab.ifup_ok(&[], &["down", "tap2"]);
    ok(&[
        "ip", "netns", "exec", &g1, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "9999",
    ]);
    let count = || -> u64 {
        let o = lab.exec_in(&g1, &["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("dpt:9999"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let send = || {
        let script = "exec 3<>/dev/udp/198.51.100.11/9999; echo x >&3";
        lab.exec_in(&g3, &["bash", "-c", script])
    };
    assert!(lab.ping_ok(&g3, "198.51.100.11", &[]), "ICMP passes");
    send();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(count(), 0, "the bridged profile went with the routed NIC");
    if fw == Fw::Nftables {
        assert!(lab.nft_ours().contains("chain snf-protected-br4 {"));
    }
    lab.ifup_ok(&[], &["down", "tap1"]);
    lab.ifup_ok(&[], &["down", "tap3"]);
    assert_eq!(lab.fw_dump(), fw0);
}

/// Under nftables `up` and `down` of one NIC trust its recorded state and snf-ifup's index
/// of its tables; when the kernel disagrees (a table deleted behind snf-ifup's back, the
/// index lost) the transaction fails as a whole and is recomputed from the ruleset.
#[test]
fn nftables_record_mismatch_falls_back_to_the_ruleset() {
    if !can_run_fw(
        "nftables_record_mismatch_falls_back_to_the_ruleset",
        Fw::Nftables,
    ) {
        return;
    }
    let mut lab = Lab::with(Fw::Nftables);
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    lab.guest("tap2", "aa:00:00:00:00:02");
    let fw0 = lab.fw_dump();
    let e1 = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "private-filtered",
        "",
    );
    // --dry-run prints the transaction and changes nothing.
    let out = lab.ifup_ok(&refs(&e1), &["--dry-run", "ganeti", "up"]);
    assert!(
        out.contains("# nft -f -\n")
            && out.contains("add element bridge snf_ifup fwd_iif { \"tap1\" : jump from-tap1 }\n"),
        "{out}"
    );
    assert_eq!(lab.fw_dump(), fw0);
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    assert_eq!(
        lab.nft_chain("bridge", "from-tap1"),
        ["ether saddr != aa:00:00:00:00:01 drop"]
    );
    // The table goes behind snf-ifup's back; a changed `up` rebuilds it.
    lab.exec(&["nft", "delete", "table", "bridge", "snf_ifup"]);
    let mut e1b = e1;
    set(&mut e1b, "NETWORK_TAGS", "private-filtered spoof-protected");
    lab.ifup_ok(&refs(&e1b), &["ganeti", "up"]);
    assert_eq!(lab.nft_chain("bridge", "from-tap1").len(), 15);
    assert_eq!(
        lab.nft_chain("bridge", "to-tap1"),
        ["ether saddr & ff:ff:f0:00:00:00 != aa:00:00:00:00:00 drop"]
    );
    // Without the index `down` reads the ruleset, and leaves tap2's rules alone.
    let e2 = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        "bridged",
        "br0",
        "private-filtered",
        "",
    );
    lab.ifup_ok(&refs(&e2), &["ganeti", "up"]);
    std::fs::remove_file(lab.state_dir().join(".nftables-index")).unwrap();
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert!(!lab.nft_ours().contains("tap1"));
    assert_eq!(
        lab.nft_chain("bridge", "from-tap2"),
        ["ether saddr != aa:00:00:00:00:02 drop"]
    );
    lab.ifup_ok(&[], &["down", "tap2"]);
    assert_eq!(lab.fw_dump(), fw0);
}

/// A NIC keeps the driver that applied its rules: after `firewall` changed, `down` removes
/// them with that driver, and `up` moves them to the new one.
#[test]
fn changing_the_firewall_driver_moves_a_nics_rules() {
    if !can_run_fw(
        "changing_the_firewall_driver_moves_a_nics_rules",
        Fw::Nftables,
    ) {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    let conf = lab.dir.path().join("snf-network.toml");
    let fw0 = lab.fw_dump();
    let e1 = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "private-filtered spoof-protected",
        "",
    );
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    assert_eq!(ebt_chain(&lab, "SNF-TO-tap1").len(), 1);
    std::fs::write(&conf, "syslog = false\nfirewall = \"nftables\"\n").unwrap();
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    assert!(!lab.exec(&["ebtables-save"]).contains("tap1"));
    assert_eq!(lab.nft_chain("bridge", "from-tap1").len(), 15);
    // Back to iptables: `down` still uses nftables for this NIC.
    std::fs::write(&conf, "syslog = false\n").unwrap();
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(lab.nft_ours(), "");
    // (ebtables-nft keeps the base chains it created; the ebtables dump is what counts.)
    assert_eq!(lab.fw_dump(), fw0);
    // `reapply` moves them too.
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    assert_eq!(ebt_chain(&lab, "SNF-TO-tap1").len(), 1);
    std::fs::write(&conf, "syslog = false\nfirewall = \"nftables\"\n").unwrap();
    lab.ifup_ok(&[], &["reapply", "--all"]);
    assert!(!lab.exec(&["ebtables-save"]).contains("tap1"));
    assert_eq!(lab.nft_chain("bridge", "from-tap1").len(), 15);
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(lab.nft_ours(), "");
    assert_eq!(lab.fw_dump(), fw0);
}

/// `auto` takes nftables where the kernel has everything the rules may need (conntrack in
/// the inet family, the packet mark in the bridge family: not bridge conntrack, which this
/// machine's kernel lacks), checked over netlink: a node without `nft` gets nftables as
/// well, and `up`, `status` and `down` work there without it.
#[test]
fn auto_driver_follows_what_the_node_supports() {
    if !can_run_fw("auto_driver_follows_what_the_node_supports", Fw::Nftables) {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    std::fs::write(
        lab.dir.path().join("snf-network.toml"),
        "syslog = false\nfirewall = \"auto\"\n",
    )
    .unwrap();
    let e1 = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "private-filtered",
        "synnefo:network:0:protected",
    );
    lab.ifup_ok(&refs(&e1), &["ganeti", "up"]);
    let st = lab.ifup_ok(&[], &["status"]);
    if lab.nft_takes_profiles() {
        assert!(st.starts_with("firewall: nftables"), "{st}");
        assert!(lab.nft_ours().contains("from-tap1"));
        assert!(lab.nft_ours().contains("snf-protected-br4"));
    } else {
        assert!(st.starts_with("firewall: iptables\n"), "{st}");
        assert_eq!(ebt_chain(&lab, "SNF-FROM-tap1").len(), 1);
        assert_eq!(lab.nft_ours(), "");
    }
    lab.ifup_ok(&[], &["down", "tap1"]);
    if !lab.nft_takes_profiles() {
        return;
    }
    // Without nft in PATH: still nftables, its chains listed, and `down` removes them.
    let path = lab.path_without("nft");
    let mut up_env = refs(&e1);
    up_env.push(("PATH", &path));
    lab.ifup_ok(&up_env, &["ganeti", "up"]);
    let st = lab.ifup_ok(&[("PATH", &path)], &["status"]);
    assert!(st.starts_with("firewall: nftables"), "{st}");
    assert!(st.contains("nft bridge snf_ifup: chain from-tap1"), "{st}");
    lab.ifup_ok(&[("PATH", &path)], &["down", "tap1"]);
    assert_eq!(lab.nft_ours(), "");
}

/// snf-ifup(8)'s JSON OUTPUT rendered back into the text of `status`.
fn status_text_of(j: &serde_json::Value) -> String {
    use serde_json::Value as J;
    let s = |v: &J| -> String {
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not a string"))
            .to_owned()
    };
    let keys = |v: &J| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let mut t = String::new();
    let fw = &j["firewall"];
    assert_eq!(keys(j), ["firewall", "nics"]);
    match (s(&fw["driver"]).as_str(), &fw["nft_queue"]) {
        ("iptables", J::Null) => t += "firewall: iptables\n",
        ("nftables", J::Bool(q)) => {
            t += &format!(
                "firewall: nftables (nft queue {}; nfdhcpd's NFQUEUE rules use iptables)\n",
                if *q { "supported" } else { "unsupported" }
            );
        }
        other => panic!("firewall {other:?}"),
    }
    for n in j["nics"].as_array().unwrap() {
        assert_eq!(
            keys(n),
            [
                "tap",
                "configured",
                "error",
                "instance",
                "nic",
                "mode",
                "link",
                "complete",
                "network_tags",
                "device",
                "firewall",
                "ip_rules",
                "ip6_rules",
                "routes",
                "neighbour_proxies",
                "arptables",
                "binding"
            ]
        );
        let tap = s(&n["tap"]);
        let configured = n["configured"].as_bool().expect("configured is a boolean");
        if !n["error"].is_null() {
            assert!(configured && n["instance"].is_null());
            t += &format!("{tap}: {}\n", s(&n["error"]));
        } else if configured {
            t += &format!(
                "{tap}: instance {} NIC {} mode {} link {}{}\n",
                s(&n["instance"]),
                n["nic"].as_u64().expect("a NIC index"),
                s(&n["mode"]),
                n["link"].as_str().unwrap_or("-"),
                if n["complete"].as_bool().expect("complete is a boolean") {
                    ""
                } else {
                    " (incomplete up)"
                }
            );
        } else {
            assert!(n["instance"].is_null() && n["complete"].is_null());
            t += &format!("{tap}: not configured by snf-ifup\n");
        }
        let tags: Vec<String> = n["network_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        if !tags.is_empty() {
            t += &format!("  network tags: {}\n", tags.join(" "));
        }
        let dev = &n["device"];
        if dev["present"].as_bool().expect("present is a boolean") {
            t += &format!("  link: master {}\n", dev["master"].as_str().unwrap_or("-"));
        } else {
            assert!(dev["master"].is_null());
            t += "  link: absent\n";
        }
        for l in n["firewall"].as_array().unwrap() {
            t += &format!("  {}\n", s(l));
        }
        for (key, cmd) in [("ip_rules", "ip rule"), ("ip6_rules", "ip -6 rule")] {
            for r in n[key].as_array().unwrap() {
                t += &format!(
                    "  {cmd}: {}: iif {tap} lookup {}\n",
                    r["priority"].as_u64().expect("a priority"),
                    r["table"].as_u64().expect("a table id")
                );
            }
        }
        for r in n["routes"].as_array().unwrap() {
            t += &format!(
                "  route: {} dev {tap} table {}\n",
                s(&r["destination"]),
                s(&r["table"])
            );
        }
        for p in n["neighbour_proxies"].as_array().unwrap() {
            t += &format!(
                "  neighbour proxy: {} dev {}\n",
                s(&p["address"]),
                s(&p["dev"])
            );
        }
        for r in n["arptables"].as_array().unwrap() {
            t += &format!("  arptables: OUTPUT {}\n", s(r));
        }
        if !n["binding"].is_null() {
            t += &format!("  binding: {}\n", s(&n["binding"]));
        }
    }
    t
}

/// `status` and `status --output-format json` of the same node: same exit status, and
/// the JSON rendered by the man page's rules is the text.
fn status_agrees(lab: &Lab, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["status"];
    a.extend_from_slice(args);
    let text = lab.ifup(&[], &a);
    a.insert(1, "--output-format=json");
    let json = lab.ifup(&[], &a);
    assert_eq!(
        text.status.code(),
        json.status.code(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&json.stdout)));
    assert_eq!(status_text_of(&j), String::from_utf8_lossy(&text.stdout));
    j
}

#[test]
fn status_json_agrees_with_the_text() {
    status_json_agrees_with_the_text_with(Fw::Iptables);
}

#[test]
fn status_json_agrees_with_the_text_nftables() {
    status_json_agrees_with_the_text_with(Fw::Nftables);
}

fn status_json_agrees_with_the_text_with(fw: Fw) {
    if !can_run_fw("status_json_agrees_with_the_text", fw) {
        return;
    }
    let mut lab = Lab::with(fw);
    let _r = routed_node(&mut lab);
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    guest_routed(&mut lab, "tap2", "aa:00:00:00:00:10");
    lab.ifup_ok(
        &refs(&nic(
            "tap1",
            MAC1,
            "198.51.100.11",
            "bridged",
            "br0",
            "private-filtered nfdhcpd",
            "",
        )),
        &["ganeti", "up"],
    );
    lab.ifup_ok(
        &refs(&nic(
            "tap2",
            "aa:00:00:00:00:10",
            "198.51.100.10",
            "routed",
            "100",
            "ip-less-routed nfdhcpd",
            "synnefo:network:0:limited",
        )),
        &["ganeti", "up"],
    );
    let j = status_agrees(&lab, &[]);
    let nics = j["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 2);
    assert_eq!(
        j["firewall"]["driver"],
        if fw == Fw::Nftables {
            "nftables"
        } else {
            "iptables"
        }
    );
    let (t1, t2) = (&nics[0], &nics[1]);
    assert_eq!(
        (t1["tap"].as_str(), t1["nic"].as_u64()),
        (Some("tap1"), Some(0))
    );
    assert_eq!(t1["device"]["master"], "br0");
    assert_eq!(t1["complete"], true);
    assert_eq!(
        t1["network_tags"],
        serde_json::json!(["private-filtered", "nfdhcpd"])
    );
    assert!(!t1["firewall"].as_array().unwrap().is_empty());
    // The routed NIC's policy rule, routes, proxies and binding are typed.
    assert!(t2["ip_rules"][0]["priority"].is_u64(), "{t2}");
    assert_eq!(t2["ip_rules"][0]["table"], 100);
    assert!(!t2["routes"].as_array().unwrap().is_empty(), "{t2}");
    assert!(t2["binding"].as_str().unwrap().ends_with("/tap2"));
    status_agrees(&lab, &["tap2"]);

    // A TAP without state, and a recorded NIC refused today: exit 1 in both forms.
    let j = status_agrees(&lab, &["tap9"]);
    assert_eq!(j["nics"][0]["configured"], false);
    assert!(j["nics"][0]["instance"].is_null());
    let p = lab.state_dir().join("tap1.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let bad = text.replace("\"IP\", \"198.51.100.11\"", "\"IP\", \"198.51.100.1\"");
    assert_ne!(bad, text);
    std::fs::write(&p, bad).unwrap();
    let j = status_agrees(&lab, &[]);
    assert!(
        j["nics"][0]["error"]
            .as_str()
            .unwrap()
            .contains("198.51.100.1 is the gateway"),
        "{j}"
    );
    lab.ifup_ok(&[], &["down", "tap1"]);
    lab.ifup_ok(&[], &["down", "tap2"]);
    // Nothing recorded: an empty array.
    let j = status_agrees(&lab, &[]);
    assert_eq!(j["nics"], serde_json::json!([]));
}
