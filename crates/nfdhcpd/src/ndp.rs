//! Neighbor Discovery (RFC 4861): Router Advertisements (solicited and periodic) and
//! Neighbor Advertisements for the gateway, the node's link-local address and the /64.

use std::net::Ipv6Addr;

use netconf::MacAddr;
use netconf::binding::Binding;

use crate::config::DaemonSettings;
use crate::frame;
use crate::naming::{dns_wire, domains_for, node_link_local};
use crate::outcome::Outcome;

pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;

const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;

/// An ICMPv6 message as received: the IPv6 addresses and the bytes after the 4-byte
/// type/code/checksum header.
pub struct Icmp6<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub typ: u8,
    pub code: u8,
    /// Bytes 5 onwards (for RS: reserved + options; for NS: reserved + target + options).
    pub rest: &'a [u8],
    pub hw_src: Option<MacAddr>,
}

/// The (type, body) pairs of an ND option area; stops at the first malformed option.
pub fn options(mut area: &[u8]) -> Vec<(u8, &[u8])> {
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

fn link_layer_option(area: &[u8], want: u8) -> Option<MacAddr> {
    options(area)
        .into_iter()
        .find(|(t, b)| *t == want && b.len() >= 6)
        .map(|(_, b)| MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]))
}

fn push_option(out: &mut Vec<u8>, typ: u8, body: &[u8]) {
    // Option length is in units of 8 octets, type and length included.
    let total = (body.len() + 2).div_ceil(8) * 8;
    out.push(typ);
    out.push((total / 8) as u8);
    out.extend_from_slice(body);
    out.resize(out.len() + total - 2 - body.len(), 0);
}

/// The Router Advertisement for one binding, or None without SUBNET6.
pub fn router_advert(
    b: &Binding,
    cfg: &DaemonSettings,
    indev_mac: MacAddr,
    managed_other: bool,
) -> Option<Vec<u8>> {
    let net = b.subnet6?;
    // O=1 when Information-Requests are answered; router preference High (01 << 3).
    let flags = if managed_other { 0x40 } else { 0 } | 0x08;
    // PRIVATE: no default route (the original ignored PRIVATE for IPv6).
    let lifetime = if b.private {
        0
    } else {
        cfg.ipv6.router_lifetime
    };
    let lt = lifetime.to_be_bytes();
    let head = [64, flags, lt[0], lt[1]];
    let mut body = vec![0u8; 8]; // reachable time, retrans timer: unspecified
    push_option(&mut body, OPT_SLLA, &indev_mac.0);
    if let Some(mtu) = b.mtu {
        let mut o = vec![0, 0];
        o.extend_from_slice(&mtu.to_be_bytes());
        push_option(&mut body, OPT_MTU, &o);
    }
    let mut pio = vec![net.prefix_len(), 0xc0]; // L and A
    pio.extend_from_slice(&u32::MAX.to_be_bytes()); // valid: infinite (the binding is static)
    pio.extend_from_slice(&u32::MAX.to_be_bytes()); // preferred
    pio.extend_from_slice(&[0; 4]);
    pio.extend_from_slice(&net.network().octets());
    push_option(&mut body, OPT_PREFIX, &pio);
    let dns_lifetime = cfg.ipv6.ra_period.get().saturating_mul(3).to_be_bytes();
    if !cfg.ipv6.nameservers.is_empty() {
        let mut o = vec![0, 0];
        o.extend_from_slice(&dns_lifetime);
        for ns in &cfg.ipv6.nameservers {
            o.extend_from_slice(&ns.octets());
        }
        push_option(&mut body, OPT_RDNSS, &o);
    }
    let domains = domains_for(cfg, b);
    if !domains.is_empty() {
        let mut o = vec![0, 0];
        o.extend_from_slice(&dns_lifetime);
        o.extend_from_slice(&dns_wire(&domains));
        push_option(&mut body, OPT_DNSSL, &o);
    }
    frame::icmp6(
        indev_mac,
        frame::ALL_NODES_MAC,
        node_link_local(indev_mac),
        frame::ALL_NODES,
        (ROUTER_ADVERT, 0, head),
        &body,
    )
}

fn spoofed(b: &Binding, hw: Option<MacAddr>) -> bool {
    !b.macspoof && hw.is_some_and(|m| m != b.mac)
}

pub fn handle_rs(
    m: &Icmp6<'_>,
    b: &Binding,
    cfg: &DaemonSettings,
    indev_mac: MacAddr,
    managed_other: bool,
) -> Outcome {
    if m.code != 0 || m.rest.len() < 4 {
        return Outcome::drop("malformed");
    }
    // The Ethernet source identifies the guest, so RS from :: or from a non-EUI-64
    // link-local address is answered too (the original derived the MAC from the address).
    let lla = link_layer_option(&m.rest[4..], OPT_SLLA);
    if spoofed(b, m.hw_src.or(lla)) || spoofed(b, lla) {
        return Outcome::drop("spoofed");
    }
    match router_advert(b, cfg, indev_mac, managed_other) {
        Some(f) => Outcome::reply("RS", f),
        None => Outcome::accept("RS-no-ipv6"),
    }
}

pub fn handle_ns(m: &Icmp6<'_>, b: &Binding, indev_mac: MacAddr) -> Outcome {
    if m.code != 0 || m.rest.len() < 20 {
        return Outcome::accept("NS-malformed");
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&m.rest[4..20]);
    let target = Ipv6Addr::from(t);
    // DAD probes come from :: and must reach the other nodes unanswered.
    if m.src.is_unspecified() {
        return Outcome::accept("NS-DAD");
    }
    let lla = link_layer_option(&m.rest[20..], OPT_SLLA);
    if spoofed(b, m.hw_src) || spoofed(b, lla) {
        return Outcome::drop("spoofed");
    }
    let Some(net) = b.subnet6 else {
        return Outcome::accept("NS-other");
    };
    let own = netconf::eui64::address(net, b.mac);
    let node_ll = node_link_local(indev_mac);
    let ours = target == node_ll
        || Some(target) == b.gateway6
        || (net.contains(&target) && target != own && target != net.network());
    if !ours {
        return Outcome::accept("NS-other");
    }
    let dst_mac = lla.or(m.hw_src).unwrap_or(b.mac);
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&target.octets());
    push_option(&mut body, OPT_TLLA, &indev_mac.0);
    // Sent from the target address: Debian's ndisc6 only accepts that (the kernel accepts
    // either). R|S|O: a router, solicited, override.
    let f = frame::icmp6(
        indev_mac,
        dst_mac,
        target,
        m.src,
        (NEIGHBOR_ADVERT, 0, [0xe0, 0, 0, 0]),
        &body,
    );
    match f {
        Some(f) => Outcome::reply("NS", f),
        None => Outcome::drop("reply-too-large"),
    }
}
