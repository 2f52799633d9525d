//! Stateless DHCPv6 (RFC 8415 §18.2.6): Information-Request → Reply with DNS servers and
//! the domain search list. The reply goes to the request's source address, so guests with
//! non-EUI-64 link-local addresses are answered too.

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, DhcpOptions, Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder, Name};
use netconf::MacAddr;
use netconf::binding::Binding;

use crate::config::DaemonSettings;
use crate::naming::{domains_for, node_link_local};
use crate::outcome::Outcome;
use netconf_sys::frame;

pub const SERVER_PORT: u16 = 547;
pub const CLIENT_PORT: u16 = 546;

pub fn parse(bytes: &[u8]) -> Option<Message> {
    if !message_sane(bytes, 0) {
        return None;
    }
    Message::decode(&mut Decoder::new(bytes)).ok()
}

/// Rejects options (at any nesting depth) whose lengths dhcproto 0.15 subtracts from
/// without checking (status code, vendor class/options): found by the fuzzer, they
/// panic with overflow checks on.
fn message_sane(msg: &[u8], depth: u8) -> bool {
    match msg.first() {
        // Relay-forward / relay-reply: 34-byte header.
        Some(12 | 13) => msg.len() < 34 || options_sane(&msg[34..], depth),
        Some(_) => msg.len() < 4 || options_sane(&msg[4..], depth),
        None => true,
    }
}

fn options_sane(mut buf: &[u8], depth: u8) -> bool {
    if depth > 8 {
        return false;
    }
    let d = depth + 1;
    while buf.len() >= 4 {
        let code = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let Some(body) = buf.get(4..4 + len) else {
            return true; // truncated: dhcproto reports the error itself
        };
        // Nested options start after each container's fixed part.
        let nested = |fixed: usize| len >= fixed && options_sane(&body[fixed..], d);
        let ok = match code {
            13 => len >= 2,
            16 => len >= 4,
            17 | 3 | 25 | 4 | 5 | 26 => match code {
                17 | 4 => nested(4),
                3 | 25 => nested(12),
                5 => nested(24),
                _ => nested(25),
            },
            9 => message_sane(body, d),
            _ => true,
        };
        if !ok {
            return false;
        }
        buf = &buf[4 + len..];
    }
    true
}

/// DUID-LL (RFC 8415 §11.4) of INDEV's MAC: stable across restarts and replies.
pub fn server_duid(indev_mac: MacAddr) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&indev_mac.0);
    d
}

const INFORMATION_REQUEST: u8 = 11;
const OPTION_CLIENTID: u16 = 1;

/// The parts of a client message a stateless server uses (RFC 8415 §8, §21.2).
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    pub msg_type: u8,
    pub xid: [u8; 3],
    pub client_id: Option<&'a [u8]>,
}

impl<'a> RequestHeader<'a> {
    /// None when the option area is not a well-formed TLV sequence.
    pub fn read(msg: &'a [u8]) -> Option<RequestHeader<'a>> {
        let (&msg_type, rest) = msg.split_first()?;
        let xid: [u8; 3] = rest.get(..3)?.try_into().ok()?;
        let mut opts = &rest[3..];
        let mut client_id = None;
        while !opts.is_empty() {
            let code = u16::from_be_bytes([*opts.first()?, *opts.get(1)?]);
            let len = usize::from(u16::from_be_bytes([*opts.get(2)?, *opts.get(3)?]));
            let body = opts.get(4..4 + len)?;
            if code == OPTION_CLIENTID && client_id.is_none() {
                client_id = Some(body);
            }
            opts = &opts[4 + len..];
        }
        Some(RequestHeader {
            msg_type,
            xid,
            client_id,
        })
    }
}

pub struct Request<'a> {
    pub src: Ipv6Addr,
    pub sport: u16,
    pub udp_payload: &'a [u8],
    pub hw_src: Option<MacAddr>,
}

pub fn handle(req: &Request<'_>, b: &Binding, cfg: &DaemonSettings, indev_mac: MacAddr) -> Outcome {
    // Only the header and the client id matter to a stateless server; reading them
    // directly keeps arbitrary other options (and dhcproto's decoding quirks) out of the way.
    let Some(msg) = RequestHeader::read(req.udp_payload) else {
        return Outcome::drop("malformed");
    };
    if !b.macspoof && req.hw_src.is_some_and(|m| m != b.mac) {
        return Outcome::drop("spoofed");
    }
    if msg.msg_type != INFORMATION_REQUEST {
        // Stateful DHCPv6 is not offered; the RA says so (M=0).
        return Outcome::drop("DHCPv6-unsupported");
    }
    if b.subnet6.is_none() {
        return Outcome::accept("DHCPv6-no-ipv6");
    }
    let mut reply = Message::new_with_id(MessageType::Reply, msg.xid);
    let mut opts = DhcpOptions::new();
    if let Some(id) = msg.client_id {
        opts.insert(DhcpOption::ClientId(id.to_vec()));
    }
    opts.insert(DhcpOption::ServerId(server_duid(indev_mac)));
    if !cfg.ipv6.nameservers.is_empty() {
        opts.insert(DhcpOption::DomainNameServers(cfg.ipv6.nameservers.clone()));
    }
    let names: Vec<Name> = domains_for(cfg, b)
        .iter()
        .filter_map(|d| Name::from_ascii(format!("{}.", d.trim_end_matches('.'))).ok())
        .collect();
    if !names.is_empty() {
        opts.insert(DhcpOption::DomainSearchList(names));
    }
    opts.insert(DhcpOption::InformationRefreshTime(
        cfg.ipv6.ra_period.get().saturating_mul(3).max(600),
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
        node_link_local(indev_mac),
        req.src,
        SERVER_PORT,
        req.sport,
        &buf,
    );
    match f {
        Some(f) => Outcome::reply("DHCPv6-INFORMATION-REQUEST", f),
        None => Outcome::drop("reply-too-large"),
    }
}
