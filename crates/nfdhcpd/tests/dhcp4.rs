//! DHCPv4 end to end: real clients (ISC dhclient, BusyBox udhcpc, dhcpcd) in guest
//! namespaces against nfdhcpd in a node namespace, bridged and routed.

mod common;

use std::time::Duration;

use common::*;

#[derive(Clone, Copy, Debug)]
enum Client {
    Dhclient,
    Udhcpc,
    Dhcpcd,
}

/// Gets a lease with `client`, checks every value the binding and config imply, then
/// makes the client renew and checks the renewal was ACKed.
fn lease_and_renew(test: &str, mode: Mode, client: Client) {
    if !need_root(test) {
        return;
    }
    let mut tb = Testbed::new(mode, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    let (dh, ud) = tb.client_scripts();
    let ifname = tb.guests[0].ifname.clone();
    let out = tb.path("client.out");
    // `ip netns exec` execs the client in place, so this is the client's own PID.
    let mut client_pid = None;
    let tag = match client {
        Client::Dhclient => {
            let lf = tb.path("dh.leases");
            std::fs::write(&lf, "").unwrap();
            let pf = tb.path("dh.pid");
            tb.spawn_in_guest(
                0,
                &[
                    "dhclient",
                    "-d",
                    "-v",
                    "-lf",
                    lf.to_str().unwrap(),
                    "-pf",
                    pf.to_str().unwrap(),
                    "-sf",
                    dh.to_str().unwrap(),
                    &ifname,
                ],
                &out,
            );
            "dhclient"
        }
        Client::Udhcpc => {
            client_pid = Some(tb.spawn_in_guest(
                0,
                &[
                    "busybox",
                    "udhcpc",
                    "-f",
                    "-i",
                    &ifname,
                    "-s",
                    ud.to_str().unwrap(),
                    "-t",
                    "5",
                    "-T",
                    "1",
                ],
                &out,
            ));
            "udhcpc"
        }
        Client::Dhcpcd => {
            let conf = tb.path("dhcpcd.conf");
            let script = tb.path("dhcpcd-script.sh");
            tb.spawn_in_guest(
                0,
                &[
                    "dhcpcd",
                    "-f",
                    conf.to_str().unwrap(),
                    "-4",
                    "-B",
                    "-c",
                    script.to_str().unwrap(),
                    &ifname,
                ],
                &out,
            );
            "dhcpcd"
        }
    };
    let bound = |l: &str| {
        l.starts_with(tag)
            && (l.contains(" BOUND ") || l.contains(" bound ") || l.contains(" REBOOT "))
    };
    wait_for(&format!("{tag} to bind"), Duration::from_secs(20), || {
        tb.client_log().lines().any(bound)
    });
    let log = tb.client_log();
    let line = log.lines().find(|l| bound(l)).unwrap().to_owned();
    assert!(line.contains("ip=198.51.100.10 "), "{line}");
    match client {
        // udhcpc hands the mask over as a prefix length.
        Client::Udhcpc => assert!(line.contains("mask=24 "), "{line}"),
        _ => assert!(line.contains("mask=255.255.255.0 "), "{line}"),
    }
    assert!(line.contains(&format!("routers={GW4} ")), "{line}");
    assert!(
        line.contains(&format!("dns={} {} ", NS4[0], NS4[1])),
        "{line}"
    );
    assert!(line.contains(&format!("domain={DOMAIN}")), "{line}");
    wait_for("the address on the guest", Duration::from_secs(5), || {
        tb.guest_ipv4(0).contains("198.51.100.10/24")
    });

    // Renewal: dhclient and dhcpcd at T1 (3 s in the test config); udhcpc on SIGUSR1.
    // Signal exactly our client: the PID namespace is shared with tests running in
    // parallel, so `pidof busybox` could name another test's short-lived udhcpc.
    if let Some(pid) = client_pid {
        sh(&["kill", "-USR1", &pid.to_string()]);
    }
    let renewed = |l: &str| l.starts_with(tag) && (l.contains(" RENEW ") || l.contains(" renew "));
    wait_for(&format!("{tag} to renew"), Duration::from_secs(20), || {
        tb.client_log().lines().any(renewed)
    });
    let log = tb.client_log();
    let line = log.lines().find(|l| renewed(l)).unwrap();
    assert!(line.contains("ip=198.51.100.10 "), "{line}");
    // The renewal went through nfdhcpd: at least two REQUESTs answered.
    wait_for("status counters", Duration::from_secs(3), || {
        tb.counter("DHCPREQUEST") >= 2
    });
    assert!(tb.status().contains("tap0"), "{}", tb.status());
}

#[test]
fn bridged_dhclient_gets_binding_and_renews() {
    lease_and_renew(
        "bridged_dhclient_gets_binding_and_renews",
        Mode::Bridged,
        Client::Dhclient,
    );
}

#[test]
fn bridged_udhcpc_gets_binding_and_renews() {
    lease_and_renew(
        "bridged_udhcpc_gets_binding_and_renews",
        Mode::Bridged,
        Client::Udhcpc,
    );
}

#[test]
fn bridged_dhcpcd_gets_binding_and_renews() {
    lease_and_renew(
        "bridged_dhcpcd_gets_binding_and_renews",
        Mode::Bridged,
        Client::Dhcpcd,
    );
}

#[test]
fn routed_dhclient_gets_binding_and_renews() {
    lease_and_renew(
        "routed_dhclient_gets_binding_and_renews",
        Mode::Routed,
        Client::Dhclient,
    );
}

#[test]
fn routed_udhcpc_gets_binding_and_renews() {
    lease_and_renew(
        "routed_udhcpc_gets_binding_and_renews",
        Mode::Routed,
        Client::Udhcpc,
    );
}

#[test]
fn routed_dhcpcd_gets_binding_and_renews() {
    lease_and_renew(
        "routed_dhcpcd_gets_binding_and_renews",
        Mode::Routed,
        Client::Dhcpcd,
    );
}

#[test]
fn forged_mac_gets_nothing() {
    if !need_root("forged_mac_gets_nothing") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    // The binding names another MAC than the guest's interface has.
    let text = tb.binding_text(0, "02:00:00:00:01:99", "");
    tb.write_binding("tap0", &text);
    tb.start_daemon(&tb.config_text(""));
    assert!(
        tb.udhcpc_once(0).is_none(),
        "udhcpc got a lease with a forged MAC"
    );
    assert!(!tb.guest_ipv4(0).contains("198.51.100."));
    wait_for("spoofed counter", Duration::from_secs(3), || {
        tb.counter("spoofed") >= 1
    });
    assert_eq!(tb.counter("DHCPDISCOVER"), 0);
}

#[test]
fn macspoof_binding_serves_another_mac() {
    if !need_root("macspoof_binding_serves_another_mac") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    let text = tb.binding_text(0, "02:00:00:00:01:99", "MACSPOOF=1\n");
    tb.write_binding("tap0", &text);
    tb.start_daemon(&tb.config_text(""));
    assert!(tb.udhcpc_once(0).is_some(), "{}", tb.daemon_log());
    assert!(tb.guest_ipv4(0).contains("198.51.100.10/24"));
}

#[test]
fn unbound_tap_passes_through_to_dnsmasq() {
    if !need_root("unbound_tap_passes_through_to_dnsmasq") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 2);
    tb.bind(0); // guest 1 stays unbound
    let leases = tb.path("dnsmasq.leases");
    let dlog = tb.path("dnsmasq.log");
    tb.spawn_in_node(
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--interface=prv0",
            "--bind-interfaces",
            "--dhcp-authoritative",
            "--no-ping",
            "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,1h",
            &format!("--dhcp-leasefile={}", leases.display()),
            "--pid-file=",
            "--log-dhcp",
            &format!("--log-facility={}", dlog.display()),
        ],
        &tb.path("dnsmasq.out"),
    );
    tb.start_daemon(&tb.config_text(""));
    wait_for("dnsmasq to listen", Duration::from_secs(5), || {
        tb.node_sh(&["ss", "-uln"]).contains(":67 ")
    });
    assert!(
        tb.udhcpc_once(1).is_some(),
        "unbound guest got no lease from dnsmasq"
    );
    let a = tb.guest_ipv4(1);
    assert!(
        a.contains("198.51.100.1") && !a.contains("198.51.100.11/"),
        "{a}"
    );
    let octet: u32 = a
        .split("198.51.100.")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|o| o.parse().ok())
        .unwrap();
    assert!((100..=150).contains(&octet), "{a}");
    // The bound guest is answered by nfdhcpd; dnsmasq never sees its packets.
    assert!(tb.udhcpc_once(0).is_some());
    assert!(tb.guest_ipv4(0).contains("198.51.100.10/24"));
    let dl = std::fs::read_to_string(&dlog).unwrap_or_default();
    assert!(
        !dl.contains(&tb.guests[0].mac),
        "dnsmasq saw the bound guest:\n{dl}"
    );
    wait_for("unknown-interface counter", Duration::from_secs(3), || {
        tb.status()
            .lines()
            .any(|l| l.starts_with("unknown-interface ") && l != "unknown-interface 0")
    });
}

#[test]
fn rules_installed_and_removed_on_sigterm() {
    if !need_root("rules_installed_and_removed_on_sigterm") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.start_daemon(&tb.config_text(""));
    let v4 = tb.node_sh(&["iptables", "-t", "mangle", "-S"]);
    assert!(v4.contains("-A PREROUTING -j nfdhcpd"), "{v4}");
    assert!(
        v4.contains(
            "-A nfdhcpd -i tap+ -p udp -m udp --dport 67 -j NFQUEUE --queue-num 42 --queue-bypass"
        ),
        "{v4}"
    );
    assert!(v4.contains("--physdev-in tap+"), "{v4}");
    let v6 = tb.node_sh(&["ip6tables", "-t", "mangle", "-S"]);
    for q in ["43", "44", "45"] {
        assert!(
            v6.contains(&format!("--queue-num {q} --queue-bypass")),
            "{v6}"
        );
    }
    let st = tb.stop_daemon().expect("daemon was running");
    assert!(st.success(), "exit status {st}\n{}", tb.daemon_log());
    assert!(
        !tb.node_sh(&["iptables", "-t", "mangle", "-S"])
            .contains("nfdhcpd")
    );
    assert!(
        !tb.node_sh(&["ip6tables", "-t", "mangle", "-S"])
            .contains("nfdhcpd")
    );
    assert!(!tb.path("status").exists());
}

#[test]
fn no_rules_leaves_the_firewall_alone() {
    if !need_root("no_rules_leaves_the_firewall_alone") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.start_daemon_with(&tb.config_text(""), &["--no-rules"]);
    assert!(
        !tb.node_sh(&["iptables", "-t", "mangle", "-S"])
            .contains("nfdhcpd")
    );
    // Without rules nothing is queued: the guest gets nothing (no other server).
    tb.bind(0);
    assert!(tb.udhcpc_once(0).is_none());
    // The operator's own rule (reference B11) makes it work.
    tb.node_sh(&[
        "iptables",
        "-t",
        "mangle",
        "-A",
        "PREROUTING",
        "-i",
        "tap+",
        "-p",
        "udp",
        "--dport",
        "67",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "42",
    ]);
    assert!(tb.udhcpc_once(0).is_some());
    assert!(tb.stop_daemon().unwrap().success());
}

#[test]
fn daemon_mode_detaches_serves_and_stops_on_sigterm() {
    if !need_root("daemon_mode_detaches_serves_and_stops_on_sigterm") {
        return;
    }
    let tb = Testbed::new(Mode::Routed, 1);
    tb.bind(0);
    let cfg = tb.path("nfdhcpd.toml");
    std::fs::write(&cfg, tb.config_text("")).unwrap();
    let log = std::fs::File::create(tb.path("nfdhcpd.log")).unwrap();
    // Without -f the launcher returns at once and the daemon lives on.
    assert!(tb.launch_detached(&cfg, &[], log).success());
    wait_for("the status file", Duration::from_secs(10), || {
        tb.path("status").exists()
    });
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    let pid = pid.trim().to_owned();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(tb.udhcpc_once(0).is_some(), "{}", tb.daemon_log());
    // --status talks about the running daemon (the file is refreshed every second).
    wait_for(
        "--status to show the exchange",
        Duration::from_secs(5),
        || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
                .args(["-c", cfg.to_str().unwrap(), "--status"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            out.status.success()
                && text.contains(&format!("pid {pid}\n"))
                && text.contains("DHCPDISCOVER")
        },
    );
    sh(&["kill", "-TERM", &pid]);
    // Gone, or a zombie waiting for init to reap it.
    wait_for("the daemon to exit", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
            .unwrap_or(true)
    });
    assert!(
        !tb.node_sh(&["iptables", "-t", "mangle", "-S"])
            .contains("nfdhcpd")
    );
    assert!(!tb.path("nfdhcpd.pid").exists());
}

/// A client coming back with a lease for an address that is no longer bound (INIT-REBOOT)
/// is NAKed and then gets the bound address.
#[test]
fn stale_lease_is_naked_then_rebound() {
    if !need_root("stale_lease_is_naked_then_rebound") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    let (dh, _) = tb.client_scripts();
    let ifname = tb.guests[0].ifname.clone();
    let lf = tb.path("dh.leases");
    std::fs::write(&lf, "").unwrap();
    let dhclient = |pf: &str| {
        tb.guest_try(
            0,
            &[
                "timeout",
                "20",
                "dhclient",
                "-1",
                "-lf",
                lf.to_str().unwrap(),
                "-pf",
                pf,
                "-sf",
                dh.to_str().unwrap(),
                &ifname,
            ],
        )
    };
    let pf1 = tb.path("dh1.pid");
    assert!(dhclient(pf1.to_str().unwrap()).is_some());
    assert!(tb.guest_ipv4(0).contains("198.51.100.10/24"));
    // dhclient -1 daemonizes after binding; stop it, keep its lease file.
    let pid = std::fs::read_to_string(&pf1).unwrap();
    tb.guest_sh(0, &["kill", pid.trim()]);
    let text = tb
        .binding_text(0, &tb.guests[0].mac, "")
        .replace("IP=198.51.100.10", "IP=198.51.100.20");
    tb.write_binding("tap0", &text);
    let pf2 = tb.path("dh2.pid");
    assert!(dhclient(pf2.to_str().unwrap()).is_some());
    assert!(
        tb.guest_ipv4(0).contains("198.51.100.20/24"),
        "{}",
        tb.guest_ipv4(0)
    );
    wait_for("the NAK counter", Duration::from_secs(3), || {
        tb.counter("DHCPREQUEST-NAK") >= 1
    });
    let log = tb.client_log();
    assert!(
        log.lines().any(
            |l| l.contains("BOUND ip=198.51.100.20 ") || l.contains("REBOOT ip=198.51.100.20 ")
        ),
        "{log}"
    );
}
