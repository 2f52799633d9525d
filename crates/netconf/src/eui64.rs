//! Modified EUI-64 interface identifiers (RFC 4291 appendix A) from a NIC's MAC.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::mac::MacAddr;

/// The 64-bit interface identifier: MAC with `ff:fe` in the middle and the U/L bit flipped.
pub fn interface_id(mac: MacAddr) -> [u8; 8] {
    let m = mac.octets();
    [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
}

/// The SLAAC address of `mac` in `net` (the upper 64 bits of `net`, then the identifier).
/// Ganeti and snf-network do this for any prefix length; only a /64 is what SLAAC forms.
pub fn address(net: Ipv6Net, mac: MacAddr) -> Ipv6Addr {
    let mut o = net.network().octets();
    o[8..].copy_from_slice(&interface_id(mac));
    Ipv6Addr::from(o)
}

/// The link-local address `fe80::/64` + EUI-64 of `mac`.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let net: Ipv6Net = "fe80::/64".parse().expect("constant");
    address(net, mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mac: MacAddr = "aa:00:00:12:34:56".parse().unwrap();
        let net: Ipv6Net = "2001:db8:1::/64".parse().unwrap();
        assert_eq!(
            address(net, mac),
            "2001:db8:1:0:a800:ff:fe12:3456"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(
            link_local("52:54:00:ab:cd:ef".parse().unwrap()),
            "fe80::5054:ff:feab:cdef".parse::<Ipv6Addr>().unwrap()
        );
    }
}
