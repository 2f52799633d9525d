//! Name computations: the instance's owner name in a forward zone, reverse (PTR) names and
//! the reverse zones a network falls into. All names are absolute, lower case, with the dot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, ensure};
use ipnet::{Ipv4Net, Ipv6Net};

/// `name` as an absolute lower-case name ending in a dot; rejects what is not a host name.
pub fn absolute(name: &str) -> Result<String> {
    let trimmed = name.trim().trim_end_matches('.').to_ascii_lowercase();
    ensure!(!trimmed.is_empty(), "empty DNS name");
    for label in trimmed.split('.') {
        ensure!(
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "invalid DNS name '{name}'"
        );
    }
    ensure!(trimmed.len() < 254, "DNS name '{name}' is too long");
    Ok(format!("{trimmed}."))
}

/// Is `name` equal to `zone` or below it? Both absolute.
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || (name.ends_with(zone) && name[..name.len() - zone.len()].ends_with('.'))
}

/// The owner name of an instance in `zone`. Ganeti instance names are often FQDNs already:
/// one that already lies in the zone is kept, any other gets the zone appended (as the
/// original hook did).
pub fn instance_fqdn(instance: &str, zone: &str) -> Result<String> {
    let name = absolute(instance)?;
    if in_zone(&name, zone) && name != zone {
        Ok(name)
    } else {
        absolute(&format!("{name}{zone}"))
    }
}

/// `d.c.b.a.in-addr.arpa.`
pub fn ptr_v4(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
}

/// The 32 nibbles of the address, least significant first, then `ip6.arpa.`.
pub fn ptr_v6(ip: Ipv6Addr) -> String {
    let mut s = String::with_capacity(72);
    for byte in ip.octets().iter().rev() {
        for nibble in [byte & 0x0f, byte >> 4] {
            s.push(char::from_digit(u32::from(nibble), 16).expect("nibble < 16"));
            s.push('.');
        }
    }
    s.push_str("ip6.arpa.");
    s
}

pub fn ptr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => ptr_v4(v4),
        IpAddr::V6(v6) => ptr_v6(v6),
    }
}

/// The reverse zone a /N IPv4 network lives in when no zone is configured: the enclosing
/// octet boundary, at most /24 (classless RFC 2317 delegation needs an explicit zone).
pub fn reverse_zone_v4(net: Ipv4Net) -> String {
    let octets = usize::from(net.prefix_len() / 8).clamp(1, 3);
    let o = net.network().octets();
    let mut labels: Vec<String> = o[..octets].iter().map(u8::to_string).collect();
    labels.reverse();
    format!("{}.in-addr.arpa.", labels.join("."))
}

/// The reverse zone of an IPv6 network when none is configured: the enclosing nibble
/// boundary (a /64 gives a 16-nibble zone).
pub fn reverse_zone_v6(net: Ipv6Net) -> String {
    let nibbles = usize::from(net.prefix_len() / 4).clamp(1, 31);
    let full = ptr_v6(net.network());
    // `full` is 32 "x." pairs then "ip6.arpa."; keep the last `nibbles` pairs.
    full[(32 - nibbles) * 2..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_reverse_names() {
        assert_eq!(
            ptr_v4("198.51.100.10".parse().unwrap()),
            "10.100.51.198.in-addr.arpa."
        );
        assert_eq!(
            reverse_zone_v4("198.51.100.0/24".parse().unwrap()),
            "100.51.198.in-addr.arpa."
        );
        assert_eq!(
            reverse_zone_v4("198.51.100.64/26".parse().unwrap()),
            "100.51.198.in-addr.arpa."
        );
        assert_eq!(
            reverse_zone_v4("10.20.0.0/16".parse().unwrap()),
            "20.10.in-addr.arpa."
        );
        assert_eq!(
            reverse_zone_v4("10.16.0.0/12".parse().unwrap()),
            "10.in-addr.arpa."
        );
    }

    #[test]
    fn ipv6_reverse_names_are_32_nibbles() {
        let ip: Ipv6Addr = "2001:db8:1::a800:ff:fe12:3456".parse().unwrap();
        assert_eq!(
            ptr_v6(ip),
            "6.5.4.3.2.1.e.f.f.f.0.0.0.0.8.a.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        assert_eq!(
            reverse_zone_v6("2001:db8:1::/64".parse().unwrap()),
            "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        assert_eq!(
            reverse_zone_v6("2001:db8::/32".parse().unwrap()),
            "8.b.d.0.1.0.0.2.ip6.arpa."
        );
        // /62 rounds down to the /60 nibble boundary.
        assert_eq!(
            reverse_zone_v6("2001:db8:0:4::/62".parse().unwrap()),
            "0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        assert!(in_zone(&ptr_v6(ip), "8.b.d.0.1.0.0.2.ip6.arpa."));
    }

    #[test]
    fn instance_names_in_zones() {
        assert_eq!(
            instance_fqdn("web1", "example.org.").unwrap(),
            "web1.example.org."
        );
        assert_eq!(
            instance_fqdn("Web1.Example.org", "example.org.").unwrap(),
            "web1.example.org."
        );
        assert_eq!(
            instance_fqdn("web1.cluster.local", "example.org.").unwrap(),
            "web1.cluster.local.example.org."
        );
        // A name that merely ends with the zone's text is not in the zone.
        assert_eq!(
            instance_fqdn("webexample.org", "example.org.").unwrap(),
            "webexample.org.example.org."
        );
        assert!(instance_fqdn("bad name", "example.org.").is_err());
        assert!(instance_fqdn("", "example.org.").is_err());
    }

    #[test]
    fn zone_membership() {
        assert!(in_zone("a.example.org.", "example.org."));
        assert!(in_zone("example.org.", "example.org."));
        assert!(!in_zone("aexample.org.", "example.org."));
        assert!(!in_zone("example.org.", "a.example.org."));
    }
}
