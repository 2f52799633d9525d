//! Stateless DHCPv6 (RFC 8415 §18.2.6): Information-Request → Reply with DNS servers and
//! the domain search list. The reply goes to the request's source address, so guests with
//! non-EUI-64 link-local addresses are answered too.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, DhcpOptions, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder, Name};
use netconf::MacAddr;
use netconf::binding::Binding;

use crate::config::Config;
use crate::frame;
use crate::ndp;
use crate::outcome::Outcome;

pub const SERVER_PORT: u16 = 547;
pub const CLIENT_PORT: u16 = 546;

pub fn parse(bytes: &[u8]) -> Option<Message> {
    Message::decode(&mut Decoder::new(bytes)).ok()
}

/// DUID-LL (RFC 8415 §11.4) of INDEV's MAC: stable across restarts and replies.
pub fn server_duid(indev_mac: MacAddr) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&indev_mac.0);
    d
}

pub struct Request<'a> {
    pub src: Ipv6Addr,
    pub sport: u16,
    pub udp_payload: &'a [u8],
    pub hw_src: Option<MacAddr>,
}

pub fn handle(req: &Request<'_>, b: &Binding, cfg: &Config, indev_mac: MacAddr) -> Outcome {
    let Some(msg) = parse(req.udp_payload) else {
        return Outcome::drop("malformed");
    };
    if !b.macspoof && req.hw_src.is_some_and(|m| m != b.mac) {
        return Outcome::drop("spoofed");
    }
    if msg.msg_type() != MessageType::InformationRequest {
        // Stateful DHCPv6 is not offered; the RA says so (M=0).
        return Outcome::drop("DHCPv6-unsupported");
    }
    if b.subnet6.is_none() {
        return Outcome::accept("DHCPv6-no-ipv6");
    }
    let mut reply = Message::new_with_id(MessageType::Reply, msg.xid());
    let mut opts = DhcpOptions::new();
    if let Some(DhcpOption::ClientId(id)) = msg.opts().get(OptionCode::ClientId) {
        opts.insert(DhcpOption::ClientId(id.clone()));
    }
    opts.insert(DhcpOption::ServerId(server_duid(indev_mac)));
    if !cfg.ipv6.nameservers.is_empty() {
        opts.insert(DhcpOption::DomainNameServers(cfg.ipv6.nameservers.clone()));
    }
    let names: Vec<Name> = ndp::domains_for(cfg, b)
        .iter()
        .filter_map(|d| Name::from_ascii(format!("{}.", d.trim_end_matches('.'))).ok())
        .collect();
    if !names.is_empty() {
        opts.insert(DhcpOption::DomainSearchList(names));
    }
    opts.insert(DhcpOption::InformationRefreshTime(
        cfg.ipv6.ra_period.saturating_mul(3).max(600),
    ));
    reply.set_opts(opts);
    let mut buf = Vec::with_capacity(128);
    if reply.encode(&mut Encoder::new(&mut buf)).is_err() {
        return Outcome::drop("malformed");
    }
    let dst_mac = req.hw_src.unwrap_or(b.mac);
    let f = frame::udp6(
        indev_mac,
        dst_mac,
        ndp::node_link_local(indev_mac),
        req.src,
        SERVER_PORT,
        req.sport,
        &buf,
    );
    Outcome::reply("DHCPv6-INFORMATION-REQUEST", f)
}
