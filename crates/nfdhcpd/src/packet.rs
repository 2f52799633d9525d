//! Classifies a queued IP packet (the NFQUEUE payload starts at the IP header) and hands it
//! to the protocol that answers it.

use std::net::Ipv6Addr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use netconf::MacAddr;
use netconf::binding::Binding;

use crate::config::DaemonSettings;
use crate::outcome::Outcome;
use crate::{dhcp4, dhcp6, ndp};

/// What a queued packet is, with the parts the handlers need.
#[derive(Debug)]
pub enum Kind<'a> {
    Dhcp4 {
        bootp: &'a [u8],
    },
    Icmp6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        typ: u8,
        code: u8,
        rest: &'a [u8],
    },
    Dhcp6 {
        src: Ipv6Addr,
        sport: u16,
        payload: &'a [u8],
    },
    /// Anything else: not for nfdhcpd.
    Other,
}

pub fn classify(payload: &[u8]) -> Kind<'_> {
    let Ok(p) = SlicedPacket::from_ip(payload) else {
        return Kind::Other;
    };
    match (&p.net, &p.transport) {
        (Some(NetSlice::Ipv4(_)), Some(TransportSlice::Udp(u)))
            if u.destination_port() == dhcp4::SERVER_PORT =>
        {
            Kind::Dhcp4 { bootp: u.payload() }
        }
        (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(i))) => {
            let h = ip.header();
            let s = i.slice();
            Kind::Icmp6 {
                src: h.source_addr(),
                dst: h.destination_addr(),
                typ: i.type_u8(),
                code: i.code_u8(),
                rest: &s[4..],
            }
        }
        (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Udp(u)))
            if u.destination_port() == dhcp6::SERVER_PORT =>
        {
            Kind::Dhcp6 {
                src: ip.header().source_addr(),
                sport: u.source_port(),
                payload: u.payload(),
            }
        }
        _ => Kind::Other,
    }
}

/// Whether nfdhcpd answers this kind at all with the given configuration.
pub fn wanted(kind: &Kind<'_>, cfg: &DaemonSettings) -> bool {
    let plan = cfg.ipv6.plan;
    match kind {
        Kind::Dhcp4 { .. } => cfg.dhcp.enable_dhcp,
        Kind::Icmp6 { typ, .. } => {
            plan.is_some() && (*typ == ndp::ROUTER_SOLICIT || *typ == ndp::NEIGHBOR_SOLICIT)
        }
        Kind::Dhcp6 { .. } => plan.is_some_and(|p| p.dhcpv6_queue.is_some()),
        Kind::Other => false,
    }
}

/// Answers a packet from a bound TAP. `indev_mac` is the source MAC of replies.
pub fn handle(
    kind: &Kind<'_>,
    hw_src: Option<MacAddr>,
    b: &Binding,
    cfg: &DaemonSettings,
    indev_mac: MacAddr,
) -> Outcome {
    let managed_other = cfg.answers_dhcpv6();
    match *kind {
        Kind::Dhcp4 { bootp } => {
            dhcp4::handle(&dhcp4::Request { bootp, hw_src }, b, cfg, indev_mac)
        }
        Kind::Icmp6 {
            src,
            dst,
            typ,
            code,
            rest,
        } => {
            let m = ndp::Icmp6 {
                src,
                dst,
                typ,
                code,
                rest,
                hw_src,
            };
            match typ {
                ndp::ROUTER_SOLICIT => ndp::handle_rs(&m, b, cfg, indev_mac, managed_other),
                ndp::NEIGHBOR_SOLICIT => ndp::handle_ns(&m, b, indev_mac),
                _ => Outcome::accept("other"),
            }
        }
        Kind::Dhcp6 {
            src,
            sport,
            payload,
        } => dhcp6::handle(
            &dhcp6::Request {
                src,
                sport,
                udp_payload: payload,
                hw_src,
            },
            b,
            cfg,
            indev_mac,
        ),
        Kind::Other => Outcome::accept("other"),
    }
}
