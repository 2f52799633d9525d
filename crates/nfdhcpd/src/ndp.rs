//! Neighbor Discovery (RFC 4861): Router Advertisements (solicited and periodic) and
//! Neighbor Advertisements for the gateway, the node's link-local address and the /64.

use std::net::Ipv6Addr;

use netconf::MacAddr;
use netconf::binding::Binding;
use netconf_sys::frame::{self, NeighborAdvert, OPT_SLLA, RouterAdvert, link_layer_option};

use crate::config::DaemonSettings;
use crate::naming::{dns_wire, domains_for, node_link_local};
use crate::outcome::Outcome;

pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = frame::ROUTER_ADVERT;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = frame::NEIGHBOR_ADVERT;

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

pub use netconf_sys::frame::nd_options as options;

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
    let mut options = vec![(OPT_SLLA, indev_mac.0.to_vec())];
    if let Some(mtu) = b.mtu {
        let mut o = vec![0, 0];
        o.extend_from_slice(&mtu.to_be_bytes());
        options.push((OPT_MTU, o));
    }
    let mut pio = vec![net.prefix_len(), 0xc0]; // L and A
    pio.extend_from_slice(&u32::MAX.to_be_bytes()); // valid: infinite (the binding is static)
    pio.extend_from_slice(&u32::MAX.to_be_bytes()); // preferred
    pio.extend_from_slice(&[0; 4]);
    pio.extend_from_slice(&net.network().octets());
    options.push((OPT_PREFIX, pio));
    let dns_lifetime = cfg.ipv6.ra_period.get().saturating_mul(3).to_be_bytes();
    if !cfg.ipv6.nameservers.is_empty() {
        let mut o = vec![0, 0];
        o.extend_from_slice(&dns_lifetime);
        for ns in &cfg.ipv6.nameservers {
            o.extend_from_slice(&ns.octets());
        }
        options.push((OPT_RDNSS, o));
    }
    let domains = domains_for(cfg, b);
    if !domains.is_empty() {
        let mut o = vec![0, 0];
        o.extend_from_slice(&dns_lifetime);
        o.extend_from_slice(&dns_wire(&domains));
        options.push((OPT_DNSSL, o));
    }
    RouterAdvert {
        src_mac: indev_mac,
        dst_mac: frame::ALL_NODES_MAC,
        src: node_link_local(indev_mac),
        dst: frame::ALL_NODES,
        cur_hop_limit: 64,
        flags,
        router_lifetime: lifetime,
        // Reachable time, retrans timer: unspecified.
        reachable_time: 0,
        retrans_timer: 0,
        options,
    }
    .emit()
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
    // Sent from the target address: Debian's ndisc6 only accepts that (the kernel accepts
    // either). R|S|O: a router, solicited, override.
    let f = NeighborAdvert {
        src_mac: indev_mac,
        dst_mac,
        src: target,
        dst: m.src,
        router: true,
        solicited: true,
        override_: true,
        target,
        target_mac: indev_mac,
    }
    .emit();
    match f {
        Some(f) => Outcome::reply("NS", f),
        None => Outcome::drop("reply-too-large"),
    }
}
