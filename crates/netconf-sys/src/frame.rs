//! The Ethernet frames the tools write with a packet socket: nfdhcpd's replies, snf-ifup's
//! announcements. etherparse fills in lengths and the IP/UDP/ICMPv6 checksums (the frames
//! bypass the kernel, so nothing else would). A payload too large for one IP packet gives
//! `None`: the caller drops the request.
//!
//! The ARP/ND messages are each one plain struct with `emit` and `parse` (as smoltcp's
//! `Repr`s): the one place their layout is written, and tests check that one undoes the
//! other.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
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

pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_ADVERT: u8 = 136;
pub const OPT_SLLA: u8 = 1;
pub const OPT_TLLA: u8 = 2;

const ETHERTYPE_ARP: u16 = 0x0806;

/// The (type, body) pairs of an ND option area; stops at the first malformed option.
pub fn nd_options(mut area: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while area.len() >= 8 {
        let len = usize::from(area[1]) * 8;
        if len == 0 || len > area.len() {
            break;
        }
        out.push((area[0], &area[2..len]));
        area = &area[len..];
    }
    out
}

/// Appends one ND option, zero-padded to its unit of 8 octets.
pub fn push_nd_option(out: &mut Vec<u8>, typ: u8, body: &[u8]) {
    // Option length is in units of 8 octets, type and length included.
    let total = (body.len() + 2).div_ceil(8) * 8;
    out.push(typ);
    out.push((total / 8) as u8);
    out.extend_from_slice(body);
    out.resize(out.len() + total - 2 - body.len(), 0);
}

/// The link-layer address carried by option `want` (SLLA or TLLA) of an option area.
pub fn link_layer_option(area: &[u8], want: u8) -> Option<MacAddr> {
    nd_options(area)
        .into_iter()
        .find(|(t, b)| *t == want && b.len() >= 6)
        .map(|(_, b)| MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]))
}

/// A gratuitous ARP: an ARP request announcing `ip` at `mac` (RFC 5227 announcement form),
/// broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Garp {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

impl Garp {
    pub fn emit(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&BROADCAST_MAC.0);
        f.extend_from_slice(&self.mac.octets());
        f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        // Ethernet/IPv4, address lengths 6 and 4, operation 1 (request).
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&self.mac.octets());
        f.extend_from_slice(&self.ip.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&self.ip.octets());
        f
    }

    /// The announcement in `frame`, or None for any other frame.
    pub fn parse(frame: &[u8]) -> Option<Garp> {
        let f = frame.get(..42)?;
        if f[..6] != BROADCAST_MAC.0
            || f[12..14] != ETHERTYPE_ARP.to_be_bytes()
            || f[14..22] != [0, 1, 8, 0, 6, 4, 0, 1]
            || f[6..12] != f[22..28]
            || f[28..32] != f[38..42]
        {
            return None;
        }
        let mac = MacAddr(f[22..28].try_into().ok()?);
        let ip = Ipv4Addr::from(<[u8; 4]>::try_from(&f[28..32]).ok()?);
        Some(Garp { mac, ip })
    }
}

/// The ICMPv6 message of an Ethernet frame: addresses, type, code, bytes 5–8 and the rest;
/// None unless the frame is one with a valid checksum.
fn parse_icmp6(frame: &[u8]) -> Option<Icmp6Frame<'_>> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let etherparse::LinkSlice::Ethernet2(eth) = p.link? else {
        return None;
    };
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        return None;
    };
    let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
        return None;
    };
    let h = ip.header();
    let (src, dst) = (h.source_addr(), h.destination_addr());
    if h.hop_limit() != 255 || !icmp.is_checksum_valid(src.octets(), dst.octets()) {
        return None;
    }
    Some(Icmp6Frame {
        src_mac: MacAddr(eth.source()),
        dst_mac: MacAddr(eth.destination()),
        src,
        dst,
        typ: icmp.type_u8(),
        code: icmp.code_u8(),
        head: icmp.bytes5to8(),
        body: icmp.payload(),
    })
}

struct Icmp6Frame<'a> {
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    typ: u8,
    code: u8,
    head: [u8; 4],
    body: &'a [u8],
}

/// A Neighbor Advertisement (RFC 4861 4.4) with the target link-layer address option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvert {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_: bool,
    pub target: Ipv6Addr,
    pub target_mac: MacAddr,
}

impl NeighborAdvert {
    /// The unsolicited form (RFC 4861 7.2.6): from `mac`'s link-local address to
    /// all-nodes, router and override set.
    pub fn unsolicited(mac: MacAddr, target: Ipv6Addr) -> NeighborAdvert {
        NeighborAdvert {
            src_mac: mac,
            dst_mac: ALL_NODES_MAC,
            src: netconf::eui64::link_local(mac),
            dst: ALL_NODES,
            router: true,
            solicited: false,
            override_: true,
            target,
            target_mac: mac,
        }
    }

    pub fn emit(&self) -> Option<Vec<u8>> {
        let flags = u8::from(self.router) << 7
            | u8::from(self.solicited) << 6
            | u8::from(self.override_) << 5;
        let mut body = Vec::with_capacity(24);
        body.extend_from_slice(&self.target.octets());
        push_nd_option(&mut body, OPT_TLLA, &self.target_mac.0);
        icmp6(
            self.src_mac,
            self.dst_mac,
            self.src,
            self.dst,
            (NEIGHBOR_ADVERT, 0, [flags, 0, 0, 0]),
            &body,
        )
    }

    pub fn parse(frame: &[u8]) -> Option<NeighborAdvert> {
        let m = parse_icmp6(frame)?;
        if m.typ != NEIGHBOR_ADVERT || m.code != 0 || m.body.len() < 16 {
            return None;
        }
        let target = Ipv6Addr::from(<[u8; 16]>::try_from(&m.body[..16]).ok()?);
        Some(NeighborAdvert {
            src_mac: m.src_mac,
            dst_mac: m.dst_mac,
            src: m.src,
            dst: m.dst,
            router: m.head[0] & 0x80 != 0,
            solicited: m.head[0] & 0x40 != 0,
            override_: m.head[0] & 0x20 != 0,
            target,
            target_mac: link_layer_option(&m.body[16..], OPT_TLLA)?,
        })
    }
}

/// A Router Advertisement (RFC 4861 4.2). `options` are (type, body) pairs; each body is
/// padded to its 8-octet unit when emitted and comes back padded from `parse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterAdvert {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub cur_hop_limit: u8,
    /// M, O, router preference … (the second byte of the message).
    pub flags: u8,
    pub router_lifetime: u16,
    pub reachable_time: u32,
    pub retrans_timer: u32,
    pub options: Vec<(u8, Vec<u8>)>,
}

impl RouterAdvert {
    pub fn emit(&self) -> Option<Vec<u8>> {
        let lt = self.router_lifetime.to_be_bytes();
        let head = [self.cur_hop_limit, self.flags, lt[0], lt[1]];
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(&self.reachable_time.to_be_bytes());
        body.extend_from_slice(&self.retrans_timer.to_be_bytes());
        for (t, b) in &self.options {
            push_nd_option(&mut body, *t, b);
        }
        icmp6(
            self.src_mac,
            self.dst_mac,
            self.src,
            self.dst,
            (ROUTER_ADVERT, 0, head),
            &body,
        )
    }

    pub fn parse(frame: &[u8]) -> Option<RouterAdvert> {
        let m = parse_icmp6(frame)?;
        if m.typ != ROUTER_ADVERT || m.code != 0 || m.body.len() < 8 {
            return None;
        }
        let word =
            |i: usize| u32::from_be_bytes([m.body[i], m.body[i + 1], m.body[i + 2], m.body[i + 3]]);
        Some(RouterAdvert {
            src_mac: m.src_mac,
            dst_mac: m.dst_mac,
            src: m.src,
            dst: m.dst,
            cur_hop_limit: m.head[0],
            flags: m.head[1],
            router_lifetime: u16::from_be_bytes([m.head[2], m.head[3]]),
            reachable_time: word(0),
            retrans_timer: word(4),
            options: nd_options(&m.body[8..])
                .into_iter()
                .map(|(t, b)| (t, b.to_vec()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut add = |b: &[u8]| {
            for c in b.chunks(2) {
                let w = if c.len() == 2 {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], 0])
                };
                sum += u32::from(w);
            }
        };
        add(&src.octets());
        add(&dst.octets());
        add(&(payload.len() as u32).to_be_bytes());
        add(&[0, 0, 0, 58]);
        add(payload);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The announcements snf-ifup sends, with the layout checks it had before the builders
    /// moved here.
    #[test]
    fn frames() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let g = Garp {
            mac,
            ip: Ipv4Addr::new(198, 51, 100, 7),
        }
        .emit();
        assert_eq!(g.len(), 42);
        assert_eq!(&g[28..32], &[198, 51, 100, 7]);
        assert_eq!(&g[38..42], &[198, 51, 100, 7]);
        let n = NeighborAdvert::unsolicited(mac, "2001:db8::7".parse().unwrap())
            .emit()
            .unwrap();
        assert_eq!(n.len(), 14 + 40 + 32);
        // A correct checksum sums (with the pseudo-header) to 0xffff, i.e. recomputes to 0.
        let src = netconf::eui64::link_local(mac);
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(icmpv6_checksum(src, dst, &n[54..]), 0);
    }

    #[test]
    fn garp_round_trips() {
        let g = Garp {
            mac: MacAddr([2, 0, 0, 0, 0, 9]),
            ip: Ipv4Addr::new(203, 0, 113, 9),
        };
        assert_eq!(Garp::parse(&g.emit()), Some(g));
        let mut other = g.emit();
        other[21] = 2; // a reply, not an announcement
        assert_eq!(Garp::parse(&other), None);
        assert_eq!(Garp::parse(&g.emit()[..41]), None);
    }

    #[test]
    fn neighbor_advert_round_trips() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let u = NeighborAdvert::unsolicited(mac, "2001:db8::7".parse().unwrap());
        let f = u.emit().unwrap();
        assert_eq!(NeighborAdvert::parse(&f), Some(u));
        // The flags byte of the unsolicited form is R|O.
        assert_eq!(f[14 + 40 + 4], 0xa0);
        let solicited = NeighborAdvert {
            src_mac: mac,
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src: "2001:db8::1".parse().unwrap(),
            dst: "fe80::2".parse().unwrap(),
            router: true,
            solicited: true,
            override_: true,
            target: "2001:db8::1".parse().unwrap(),
            target_mac: mac,
        };
        let f = solicited.emit().unwrap();
        assert_eq!(f[14 + 40 + 4], 0xe0);
        assert_eq!(NeighborAdvert::parse(&f), Some(solicited));
        // A flipped bit breaks the checksum: not parsed.
        let mut bad = f.clone();
        bad[14 + 40 + 10] ^= 1;
        assert_eq!(NeighborAdvert::parse(&bad), None);
        assert_eq!(RouterAdvert::parse(&f), None);
    }

    #[test]
    fn router_advert_round_trips() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut prefix = vec![64, 0xc0];
        prefix.extend_from_slice(&u32::MAX.to_be_bytes());
        prefix.extend_from_slice(&u32::MAX.to_be_bytes());
        prefix.extend_from_slice(&[0; 4]);
        prefix.extend_from_slice(&"2001:db8::".parse::<Ipv6Addr>().unwrap().octets());
        let ra = RouterAdvert {
            src_mac: mac,
            dst_mac: ALL_NODES_MAC,
            src: netconf::eui64::link_local(mac),
            dst: ALL_NODES,
            cur_hop_limit: 64,
            flags: 0x48,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            options: vec![(OPT_SLLA, mac.0.to_vec()), (3, prefix)],
        };
        let f = ra.emit().unwrap();
        assert_eq!(RouterAdvert::parse(&f), Some(ra));
        assert_eq!(NeighborAdvert::parse(&f), None);
        assert_eq!(link_layer_option(&f[14 + 40 + 16..], OPT_SLLA), Some(mac));
    }

    #[test]
    fn nd_options_pad_and_stop_at_garbage() {
        let mut a = Vec::new();
        push_nd_option(&mut a, 31, &[0, 0, 0, 0, 0, 1, 3]);
        assert_eq!(a.len(), 16);
        assert_eq!(nd_options(&a), [(31, &a[2..16])]);
        a.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // length 0: malformed
        assert_eq!(nd_options(&a).len(), 1);
        assert!(nd_options(&[1, 9, 0, 0, 0, 0, 0, 0]).is_empty());
    }
}
