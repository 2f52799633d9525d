//! IPv6 end to end: rdisc6 and the guest kernel against nfdhcpd's RAs, ndisc6 and the
//! guest kernel against its NAs, dhclient -6 -S against its DHCPv6 replies, and a flood
//! of DAD probes that must all get a verdict.

mod common;

use std::time::Duration;

use common::*;

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn rdisc6_gets_prefix_rdnss_dnssl(test: &str, mode: Mode) {
    if !need_root(test) {
        return;
    }
    let mut tb = Testbed::new(mode, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    let ifname = tb.guests[0].ifname.clone();
    let out = tb
        .guest_try(0, &["rdisc6", "-1", "-w", "2000", &ifname])
        .unwrap_or_else(|| panic!("rdisc6 got no RA\n{}", tb.daemon_log()));
    let o = squash(&out);
    assert!(o.contains(&format!("Prefix : {NET6}")), "{out}");
    assert!(
        o.contains(&format!("Recursive DNS server : {NS6}")),
        "{out}"
    );
    assert!(o.contains(&format!("DNS search list : {DOMAIN}")), "{out}");
    assert!(o.contains("Stateful other conf. : Yes"), "{out}");
    assert!(o.contains("Router preference : high"), "{out}");
    // The guest kernel forms prefix + EUI-64 from the same RAs.
    let mac: netconf::MacAddr = tb.guests[0].mac.parse().unwrap();
    let want = netconf::eui64::address(NET6.parse().unwrap(), mac).to_string();
    wait_for("the SLAAC address", Duration::from_secs(10), || {
        tb.guest_sh(0, &["ip", "-6", "addr", "show", "dev", &ifname])
            .contains(&format!("{want}/64"))
    });
    wait_for("the RS counter", Duration::from_secs(3), || {
        tb.counter("RS") >= 1
    });
}

#[test]
fn bridged_rdisc6_gets_prefix_rdnss_dnssl_and_slaac_works() {
    rdisc6_gets_prefix_rdnss_dnssl(
        "bridged_rdisc6_gets_prefix_rdnss_dnssl_and_slaac_works",
        Mode::Bridged,
    );
}

#[test]
fn routed_rdisc6_gets_prefix_rdnss_dnssl_and_slaac_works() {
    rdisc6_gets_prefix_rdnss_dnssl(
        "routed_rdisc6_gets_prefix_rdnss_dnssl_and_slaac_works",
        Mode::Routed,
    );
}

fn indev_mac(tb: &Testbed) -> String {
    let dev = match tb.mode {
        Mode::Bridged => "prv0".to_owned(),
        Mode::Routed => tb.guests[0].tap.clone(),
    };
    tb.node_sh(&["cat", &format!("/sys/class/net/{dev}/address")])
        .trim()
        .to_owned()
}

fn gateway_resolved_through_na(test: &str, mode: Mode) {
    if !need_root(test) {
        return;
    }
    let mut tb = Testbed::new(mode, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    let ifname = tb.guests[0].ifname.clone();
    let mac = indev_mac(&tb);
    // Debian's ndisc6 accepts only an NA sent from the target address.
    let out = tb
        .guest_try(0, &["ndisc6", "-1", "-w", "2000", GW6, &ifname])
        .unwrap_or_else(|| panic!("ndisc6 got no NA\n{}", tb.daemon_log()));
    assert!(
        squash(&out)
            .to_lowercase()
            .contains(&format!("target link-layer address: {mac}")),
        "{out}"
    );
    // The guest kernel resolves the gateway the same way, once an RA gave it the prefix.
    let _ = tb.guest_try(0, &["rdisc6", "-1", "-w", "2000", &ifname]);
    wait_for("the on-link prefix route", Duration::from_secs(10), || {
        tb.guest_sh(0, &["ip", "-6", "route", "show", "dev", &ifname])
            .contains(NET6)
    });
    let ping = tb.guest_try(0, &["busybox", "ping", "-6", "-c", "1", "-W", "2", GW6]);
    let neigh = tb.guest_sh(0, &["ip", "-6", "neigh", "show", GW6, "dev", &ifname]);
    assert!(
        neigh.contains(&format!("lladdr {mac}")),
        "neigh: {neigh}\nping: {ping:?}\n{}",
        tb.daemon_log()
    );
    wait_for("the NS counter", Duration::from_secs(3), || {
        tb.counter("NS") >= 2
    });
}

#[test]
fn bridged_gateway_resolved_through_na() {
    gateway_resolved_through_na("bridged_gateway_resolved_through_na", Mode::Bridged);
}

#[test]
fn routed_gateway_resolved_through_na() {
    gateway_resolved_through_na("routed_gateway_resolved_through_na", Mode::Routed);
}

fn information_request(test: &str, stable_privacy: bool) {
    if !need_root(test) {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    let ifname = tb.guests[0].ifname.clone();
    if stable_privacy {
        // A random (non-EUI-64) link-local address, as RFC 7217 guests have.
        tb.guest_sh(
            0,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ifname}.addr_gen_mode=3"),
            ],
        );
        tb.guest_sh(0, &["ip", "link", "set", &ifname, "down"]);
        tb.guest_sh(0, &["ip", "link", "set", &ifname, "up"]);
        let mac: netconf::MacAddr = tb.guests[0].mac.parse().unwrap();
        let eui = netconf::eui64::link_local(mac).to_string();
        wait_for("a link-local address", Duration::from_secs(5), || {
            tb.guest_sh(0, &["ip", "-6", "addr", "show", "dev", &ifname])
                .contains("fe80::")
        });
        assert!(
            !tb.guest_sh(0, &["ip", "-6", "addr", "show", "dev", &ifname])
                .contains(&eui)
        );
    }
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    let log = tb.path("client.log");
    let script = tb.path("dhclient6.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"dhclient6 $reason dns6=$new_dhcp6_name_servers search=$new_dhcp6_domain_search\" >> {}\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    let lf = tb.path("dh6.leases");
    std::fs::write(&lf, "").unwrap();
    let pf = tb.path("dh6.pid");
    tb.spawn_in_guest(
        0,
        &[
            "dhclient",
            "-6",
            "-S",
            "-d",
            "-v",
            "-lf",
            lf.to_str().unwrap(),
            "-pf",
            pf.to_str().unwrap(),
            "-sf",
            script.to_str().unwrap(),
            &ifname,
        ],
        &tb.path("dhclient6.out"),
    );
    wait_for("the DHCPv6 reply", Duration::from_secs(20), || {
        tb.client_log().contains(&format!("dns6={NS6} "))
    });
    let l = tb.client_log();
    assert!(l.contains(&format!("search={DOMAIN}")), "{l}");
    wait_for("the DHCPv6 counter", Duration::from_secs(3), || {
        tb.counter("DHCPv6-INFORMATION-REQUEST") >= 1
    });
}

#[test]
fn dhcpv6_information_request_gets_dns() {
    information_request("dhcpv6_information_request_gets_dns", false);
}

#[test]
fn dhcpv6_information_request_from_non_eui64_guest() {
    information_request("dhcpv6_information_request_from_non_eui64_guest", true);
}

/// 10,000 DAD probes (NS from ::) from the guest; none may stay queued (the original never
/// gave them a verdict and jammed the queue).
#[test]
fn dad_flood_leaves_no_packet_queued() {
    if !need_root("dad_flood_leaves_no_packet_queued") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    let ns = tb.guests[0].ns.clone();
    let ifname = tb.guests[0].ifname.clone();
    let mac: netconf::MacAddr = tb.guests[0].mac.parse().unwrap();
    let sent = std::thread::spawn(move || {
        // Network namespaces are per thread: this thread joins the guest's.
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let idx = netconf_sys::link::index_of(&ifname).unwrap();
        let sock = netconf_sys::packet::PacketSocket::open().unwrap();
        let mut n = 0;
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            let target: std::net::Ipv6Addr = format!(
                "2001:db8:5::{:x}:{:x}",
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]) | 1
            )
            .parse()
            .unwrap();
            let t = target.octets();
            let group = std::net::Ipv6Addr::new(
                0xff02,
                0,
                0,
                0,
                0,
                1,
                0xff00 | u16::from(t[13]),
                u16::from_be_bytes([t[14], t[15]]),
            );
            let mut body = vec![0u8; 4];
            body.extend_from_slice(&t);
            let frame = netconf_sys::frame::icmp6(
                mac,
                netconf_sys::frame::multicast_mac(group),
                std::net::Ipv6Addr::UNSPECIFIED,
                group,
                (135, 0, [0; 4]),
                &body[4..],
            )
            .expect("an NS fits a frame");
            while sock
                .send(idx, &frame, netconf_sys::packet::Wait::No)
                .is_err()
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            n += 1;
        }
        n
    })
    .join()
    .unwrap();
    assert_eq!(sent, 10_000);
    // Every queued probe got its verdict: nothing waits in any queue.
    wait_for("the queues to drain", Duration::from_secs(10), || {
        let q = tb.node_sh(&["cat", "/proc/net/netfilter/nfnetlink_queue"]);
        !q.is_empty() && q.lines().all(|l| l.split_whitespace().nth(2) == Some("0"))
    });
    let q = tb.node_sh(&["cat", "/proc/net/netfilter/nfnetlink_queue"]);
    // id_sequence of the NS queue (44) = probes that entered the queue; the rest found it
    // full and were passed on by fail-open. Every queued one was answered with a verdict
    // and counted.
    let queued: u64 = q
        .lines()
        .find(|l| l.split_whitespace().next() == Some("44"))
        .and_then(|l| l.split_whitespace().nth(7)?.parse().ok())
        .unwrap();
    assert!(queued >= 5_000, "{q}");
    wait_for(
        "every queued probe accounted",
        Duration::from_secs(5),
        || tb.counter("NS-DAD") >= queued,
    );
    eprintln!(
        "nfnetlink_queue after the flood:\n{q}NS-DAD verdicts: {}",
        tb.counter("NS-DAD")
    );
}

/// Unsolicited RAs every ra_period, also to a TAP that appears after its binding.
#[test]
fn periodic_ras_reach_every_bound_tap() {
    if !need_root("periodic_ras_reach_every_bound_tap") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    let text = tb
        .binding_text(0, "02:00:00:00:01:02", "")
        .replace("vm0.", "vm1.");
    tb.write_binding("tap1", &text); // tap1 does not exist yet
    let cfg = tb
        .config_text("")
        .replace("ra_period = 600", "ra_period = 1");
    tb.start_daemon(&cfg);
    tb.add_guest(1);
    for k in 0..2 {
        let ifname = tb.guests[k].ifname.clone();
        // Three RAs in a row: more than the one RS a guest sends at link-up would get.
        let out = tb
            .guest_try(
                k,
                &[
                    "timeout",
                    "10",
                    "tcpdump",
                    "-i",
                    &ifname,
                    "-c",
                    "3",
                    "-nn",
                    "icmp6 and ip6[40] == 134",
                ],
            )
            .unwrap_or_else(|| panic!("guest {k}: fewer than 3 RAs in 10 s\n{}", tb.daemon_log()));
        assert_eq!(out.matches("router advertisement").count(), 3, "{out}");
        let mac: netconf::MacAddr = tb.guests[k].mac.parse().unwrap();
        let want = netconf::eui64::address(NET6.parse().unwrap(), mac).to_string();
        wait_for("the SLAAC address", Duration::from_secs(10), || {
            tb.guest_sh(k, &["ip", "-6", "addr", "show", "dev", &ifname])
                .contains(&format!("{want}/64"))
        });
    }
    assert!(tb.counter("RA-periodic") >= 3);
}
