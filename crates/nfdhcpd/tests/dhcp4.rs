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
    let tag = match client {
        Client::Dhclient => {
            let lf = tb.path("dh.leases");
            std::fs::write(&lf, "").unwrap();
            let pf = tb.path("dh.pid");
            tb.spawn_in_guest(
                0,
                &[
                    "dhclient", "-d", "-v", "-lf", lf.to_str().unwrap(), "-pf", pf.to_str().unwrap(),
                    "-sf", dh.to_str().unwrap(), &ifname,
                ],
                &out,
            );
            "dhclient"
        }
        Client::Udhcpc => {
            tb.spawn_in_guest(
                0,
                &["busybox", "udhcpc", "-f", "-i", &ifname, "-s", ud.to_str().unwrap(), "-t", "5", "-T", "1"],
                &out,
            );
            "udhcpc"
        }
        Client::Dhcpcd => {
            let conf = tb.path("dhcpcd.conf");
            let script = tb.path("dhcpcd-script.sh");
            tb.spawn_in_guest(
                0,
                &[
                    "dhcpcd", "-f", conf.to_str().unwrap(), "-4", "-B", "-c", script.to_str().unwrap(), &ifname,
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
    if let Client::Udhcpc = client {
        let pid = tb.guest_sh(0, &["pidof", "busybox"]);
        for p in pid.split_whitespace() {
            tb.guest_sh(0, &["kill", "-USR1", p]);
        }
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
    lease_and_renew("bridged_dhclient_gets_binding_and_renews", Mode::Bridged, Client::Dhclient);
}

#[test]
fn bridged_udhcpc_gets_binding_and_renews() {
    lease_and_renew("bridged_udhcpc_gets_binding_and_renews", Mode::Bridged, Client::Udhcpc);
}

#[test]
fn bridged_dhcpcd_gets_binding_and_renews() {
    lease_and_renew("bridged_dhcpcd_gets_binding_and_renews", Mode::Bridged, Client::Dhcpcd);
}

#[test]
fn routed_dhclient_gets_binding_and_renews() {
    lease_and_renew("routed_dhclient_gets_binding_and_renews", Mode::Routed, Client::Dhclient);
}

#[test]
fn routed_udhcpc_gets_binding_and_renews() {
    lease_and_renew("routed_udhcpc_gets_binding_and_renews", Mode::Routed, Client::Udhcpc);
}

#[test]
fn routed_dhcpcd_gets_binding_and_renews() {
    lease_and_renew("routed_dhcpcd_gets_binding_and_renews", Mode::Routed, Client::Dhcpcd);
}
