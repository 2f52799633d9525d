//! Builds the Ethernet frames nfdhcpd writes on a TAP: etherparse fills in lengths and the
//! IP/UDP/ICMPv6 checksums (the reply bypasses the kernel, so nothing else would). A
//! payload too large for one IP packet gives `None`: the caller drops the request.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;
use netconf::MacAddr;

pub const BROADCAST_MAC: MacAddr = MacAddr([0xff; 6]);
/// 33:33:00:00:00:01, the Ethernet group of ff02::1.
pub const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

#[allow(clippy::too_many_arguments)]
pub fn udp4(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).ok()?;
    Some(out)
}

#[allow(clippy::too_many_arguments)]
pub fn udp6(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv6(src.octets(), dst.octets(), 255)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).ok()?;
    Some(out)
}

/// An ICMPv6 message; `head` is bytes 5–8 of the ICMPv6 header, `body` what follows.
pub fn icmp6(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    (typ, code, head): (u8, u8, [u8; 4]),
    body: &[u8],
) -> Option<Vec<u8>> {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv6(src.octets(), dst.octets(), 255)
        .icmpv6_raw(typ, code, head);
    let mut out = Vec::with_capacity(b.size(body.len()));
    b.write(&mut out, body).ok()?;
    Some(out)
}

/// The Ethernet group address of an IPv6 multicast address (RFC 2464 §7).
pub fn multicast_mac(ip: Ipv6Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}
