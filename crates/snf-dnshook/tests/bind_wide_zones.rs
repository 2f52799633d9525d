//! Reverse zones wider than the network's /24 or /64, not listed in the configuration: the
//! hook finds the zone the real BIND serves (from the SOA it names, or after a NOTAUTH) and
//! says so on stderr.

mod support;

use support::*;

const FWD: &str = "example.org";
// A /16 holding 198.51.100.0/24 and a /48 holding 2001:db8:1::/64.
const REV4: &str = "51.198.in-addr.arpa";
const REV6: &str = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";

const fn nic(ip: &'static str) -> Nic {
    Nic {
        ip: Some(ip),
        mac: "aa:00:00:ab:cd:ef",
        network: "pub",
        subnet: Some("198.51.100.0/24"),
        subnet6: Some("2001:db8:1::/64"),
        tags: "public",
    }
}

const PTR6: &str = "f.e.d.c.b.a.e.f.f.f.0.0.0.0.8.a.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";

fn run(hook: &Hook, op: &str, ip: &'static str) -> String {
    let out = hook.run(&ganeti_env(op, "post", "web1", None, NODE, &[nic(ip)]), &[]);
    let stderr = out.stderr_text();
    assert!(out.status.success(), "{op}: {stderr}");
    stderr
}

#[test]
fn ptrs_go_to_a_served_16_and_48_reverse_zone() {
    if skip_reason("ptrs_go_to_a_served_16_and_48_reverse_zone").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4), Zone::new(REV6)], &[KEY]);
    let hook = named.hook(
        "dnshook.toml",
        &config(named.port, &format!("zone = \"{FWD}\"")),
    );

    // Add: the PTR reads come back NXDOMAIN with the wide zone's SOA.
    let log = run(&hook, "OP_INSTANCE_CREATE", "198.51.100.10");
    assert!(
        log.contains(
            "snf-dnshook: web1: reverse zone 100.51.198.in-addr.arpa. is not served; the \
             server puts 10.100.51.198.in-addr.arpa. in zone 51.198.in-addr.arpa.: using it"
        ),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "reverse zone 0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. is not served; the server \
             puts {PTR6} in zone {REV6}.: using it"
        )),
        "{log}"
    );
    assert_eq!(
        named.zone_records(REV4),
        ["10.100.51.198.in-addr.arpa. PTR web1.example.org."]
    );
    assert_eq!(
        named.zone_records(REV6),
        [format!("{PTR6} PTR web1.example.org.")]
    );
    // Again: the PTRs exist, nothing to send, nothing learned.
    let serials = [named.serial(REV4), named.serial(REV6)];
    assert_eq!(run(&hook, "OP_INSTANCE_CREATE", "198.51.100.10"), "");
    assert_eq!([named.serial(REV4), named.serial(REV6)], serials);

    // Modify: the stale PTR's read finds the record (no SOA); its UPDATE in the derived
    // zone is refused with NOTAUTH, and the server's zone is used.
    let log = run(&hook, "OP_INSTANCE_SET_PARAMS", "198.51.100.11");
    assert!(
        log.contains(
            "the server puts 10.100.51.198.in-addr.arpa. in zone 51.198.in-addr.arpa.: using it"
        ),
        "{log}"
    );
    assert_eq!(
        named.zone_records(REV4),
        ["11.100.51.198.in-addr.arpa. PTR web1.example.org."]
    );
    assert_eq!(named.dig("web1.example.org", "A"), ["198.51.100.11"]);

    // Remove: every record goes, in both wide zones.
    run(&hook, "OP_INSTANCE_REMOVE", "198.51.100.11");
    assert!(named.zone_records(REV4).is_empty());
    assert!(named.zone_records(REV6).is_empty());
    assert!(named.zone_records(FWD).is_empty());
}
