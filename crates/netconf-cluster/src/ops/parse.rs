//! Opcode-level validation of command arguments, with Ganeti's texts.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::GntError;

/// An IPv4 CIDR. A bare address is a /32 (Ganeti then refuses it as too small). Host bits
/// are refused with a clear message (Ganeti 3.0 crashed on them).
pub fn parse_net4(op: &str, field: &str, s: &str) -> Result<Ipv4Net, GntError> {
    let net = match s.parse::<Ipv4Net>() {
        Ok(n) => n,
        Err(_) => match s.parse::<Ipv4Addr>() {
            Ok(a) => Ipv4Net::new(a, 32).expect("/32 is valid"),
            Err(_) => return Err(bad_netmask(s).unwrap_or_else(|| GntError::param(op, field))),
        },
    };
    if net.trunc() != net {
        return Err(GntError::inval(format!(
            "Invalid network '{s}': host bits are set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Ganeti's text for an address with an impossible prefix length (`10.0.0.0/33`), which
/// its IP library raised as an unhandled NetmaskValueError.
fn bad_netmask(s: &str) -> Option<GntError> {
    let (addr, len) = s.split_once('/')?;
    addr.parse::<Ipv4Addr>().ok()?;
    Some(GntError::inval(format!(
        "Invalid network '{s}': '{len}' is not a valid netmask"
    )))
}

pub fn parse_net6(op: &str, field: &str, s: &str) -> Result<Ipv6Net, GntError> {
    let net = s
        .parse::<Ipv6Net>()
        .map_err(|_| GntError::param(op, field))?;
    if net.trunc() != net {
        return Err(GntError::inval(format!(
            "Invalid IPv6 network '{s}': host bits are set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(net)
}

pub fn parse_ip4(op: &str, field: &str, s: &str) -> Result<Ipv4Addr, GntError> {
    s.parse().map_err(|_| GntError::param(op, field))
}

pub fn parse_ip6(op: &str, field: &str, s: &str) -> Result<Ipv6Addr, GntError> {
    s.parse().map_err(|_| GntError::param(op, field))
}

/// Ganeti's `Validate`: gateway6 inside network6 or link-local (an assertion in Ganeti,
/// which failed the job without a message).
pub fn check_gateway6(net6: Option<Ipv6Net>, gw6: Option<Ipv6Addr>) -> Result<(), GntError> {
    if let (Some(n), Some(g)) = (net6, gw6) {
        let link_local: Ipv6Net = "fe80::/10".parse().expect("constant");
        if !n.contains(&g) && !link_local.contains(&g) {
            return Err(GntError::inval(format!(
                "IPv6 gateway {g} is neither inside the IPv6 network {n} nor link-local"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_rules() {
        assert_eq!(
            parse_net4("OP", "network", "192.0.2.0/24")
                .unwrap()
                .to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            parse_net4("OP", "network", "10.0.0.0")
                .unwrap()
                .prefix_len(),
            32
        );
        assert_eq!(
            parse_net4("OP", "network", "10.0.0.0/33").unwrap_err(),
            GntError::inval("Invalid network '10.0.0.0/33': '33' is not a valid netmask")
        );
        for bad in ["foo", "300.0.0.0/24", "2001:db8::/64", ""] {
            assert_eq!(
                parse_net4("OP_NETWORK_ADD", "network", bad).unwrap_err(),
                GntError::inval("Parameter 'OP_NETWORK_ADD.network' fails validation")
            );
        }
        assert_eq!(
            parse_net4("OP", "network", "192.0.2.1/24").unwrap_err(),
            GntError::inval(
                "Invalid network '192.0.2.1/24': host bits are set (did you mean 192.0.2.0/24?)"
            )
        );
        assert!(parse_net6("OP", "network6", "2001:db8::1/64").is_err());
        check_gateway6(
            Some("2001:db8::/64".parse().unwrap()),
            Some("fe80::1".parse().unwrap()),
        )
        .unwrap();
        check_gateway6(
            Some("2001:db8::/64".parse().unwrap()),
            Some("2001:db8::1".parse().unwrap()),
        )
        .unwrap();
        assert!(
            check_gateway6(
                Some("2001:db8::/64".parse().unwrap()),
                Some("2001:db9::1".parse().unwrap())
            )
            .is_err()
        );
    }
}
