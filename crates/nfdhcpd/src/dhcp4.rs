//! DHCPv4 (RFC 2131/2132) answers from a binding: no pools, no lease state; the binding is
//! the assignment, so any REQUEST for the bound address is ACKed, even after a restart.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, DhcpOptions, Flags, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netconf::MacAddr;
use netconf::binding::Binding;

use crate::config::DaemonSettings;
use crate::naming::domain_for;
use crate::outcome::Outcome;
use netconf_sys::frame;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// BOOTP's minimum message size (RFC 1542 §3.3); some relays and clients insist on it.
const BOOTP_MIN: usize = 300;

/// The request as seen by nfdhcpd.
pub struct Request<'a> {
    /// UDP payload.
    pub bootp: &'a [u8],
    /// Ethernet source address (NFQA_HWADDR), if the kernel supplied one.
    pub hw_src: Option<MacAddr>,
}

/// Decodes a request. nfdhcpd needs the BOOTP header and options 53, 50 and 54 only, so
/// those are picked out by a strict TLV walk and only they are handed to dhcproto: its
/// decoder reads many fixed-size options without looking at their length and
/// `debug_assert!`s others, which the fuzzer turned into panics on crafted input.
pub fn parse(bootp: &[u8]) -> Option<Message> {
    let clean = sanitize(bootp)?;
    Message::decode(&mut Decoder::new(&clean)).ok()
}

/// BOOTP fixed header and magic cookie.
const OPTIONS_OFFSET: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// The header plus the options nfdhcpd uses, each with its RFC 2132 length; None when the
/// message is malformed (short, wrong cookie, broken TLVs, wrong option sizes).
fn sanitize(bootp: &[u8]) -> Option<Vec<u8>> {
    if bootp.len() < OPTIONS_OFFSET || bootp[236..240] != MAGIC {
        return None;
    }
    let mut out = bootp[..OPTIONS_OFFSET].to_vec();
    let mut i = OPTIONS_OFFSET;
    loop {
        let code = *bootp.get(i)?;
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*bootp.get(i + 1)?);
        let body = bootp.get(i + 2..i + 2 + len)?;
        let keep = match code {
            53 => Some(1),
            50 | 54 => Some(4),
            _ => None,
        };
        if let Some(size) = keep {
            if len != size {
                return None;
            }
            out.extend_from_slice(&[code, len as u8]);
            out.extend_from_slice(body);
        }
        i += 2 + len;
    }
    out.push(255);
    Some(out)
}

pub fn encode(msg: &Message) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(BOOTP_MIN);
    msg.encode(&mut Encoder::new(&mut buf)).ok()?;
    if buf.len() < BOOTP_MIN {
        buf.resize(BOOTP_MIN, 0);
    }
    Some(buf)
}

fn chaddr_mac(msg: &Message) -> Option<MacAddr> {
    // Check hlen first: dhcproto's chaddr() slices by hlen and panics beyond 16 (found
    // by the fuzzer).
    if msg.hlen() != 6 {
        return None;
    }
    let c = msg.chaddr();
    Some(MacAddr([c[0], c[1], c[2], c[3], c[4], c[5]]))
}

/// The address replies come from and option 54 names.
pub fn server_address(cfg: &DaemonSettings, b: &Binding) -> Ipv4Addr {
    if cfg.dhcp.server_on_link {
        if let Some(gw) = b.gateway {
            return gw;
        }
        if let Some(net) = b.subnet {
            return net.hosts().next().unwrap_or(net.network());
        }
    }
    cfg.dhcp.server_ip
}

pub fn handle(req: &Request<'_>, b: &Binding, cfg: &DaemonSettings, src_mac: MacAddr) -> Outcome {
    let Some(msg) = parse(req.bootp) else {
        return Outcome::drop("malformed");
    };
    if msg.opcode() != Opcode::BootRequest {
        return Outcome::drop("malformed");
    }
    let Some(chaddr) = chaddr_mac(&msg) else {
        return Outcome::drop("malformed");
    };
    // Both the frame's source and chaddr must be the guest's, unless spoofing is allowed.
    if !b.macspoof && (chaddr != b.mac || req.hw_src.is_some_and(|m| m != b.mac)) {
        return Outcome::drop("spoofed");
    }
    let Some(ip) = b.ip else {
        // No IPv4 for this NIC: not ours to answer.
        return Outcome::accept("no-ipv4");
    };
    let Some(mtype) = msg.opts().msg_type() else {
        return Outcome::drop("malformed");
    };
    let server = server_address(cfg, b);
    let ciaddr = msg.ciaddr();
    let (reply_type, what) = match mtype {
        MessageType::Discover => (MessageType::Offer, "DHCPDISCOVER"),
        MessageType::Request => {
            let requested = match msg.opts().get(dhcproto::v4::OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
                _ => None,
            };
            let server_id = match msg.opts().get(dhcproto::v4::OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
                _ => None,
            };
            if server_id.is_some_and(|s| s != server) {
                // SELECTING state with another server chosen (RFC 2131 §4.3.2).
                return Outcome::drop("DHCPREQUEST-other-server");
            }
            let asked = requested.unwrap_or(ciaddr);
            if asked == ip || (requested.is_none() && ciaddr.is_unspecified()) {
                (MessageType::Ack, "DHCPREQUEST")
            } else {
                (MessageType::Nak, "DHCPREQUEST-NAK")
            }
        }
        MessageType::Inform => (MessageType::Ack, "DHCPINFORM"),
        MessageType::Release => return Outcome::drop("DHCPRELEASE"),
        MessageType::Decline => return Outcome::drop("DHCPDECLINE"),
        _ => return Outcome::drop("unsupported"),
    };

    let mut reply = Message::new_with_id(
        msg.xid(),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        msg.giaddr(),
        msg.chaddr(),
    );
    reply.set_opcode(Opcode::BootReply);
    reply.set_flags(msg.flags());
    let mut opts = DhcpOptions::new();
    opts.insert(DhcpOption::MessageType(reply_type));
    opts.insert(DhcpOption::ServerIdentifier(server));
    match reply_type {
        MessageType::Nak => {
            opts.insert(DhcpOption::Message("requested address is not bound".into()));
        }
        _ => {
            if mtype == MessageType::Inform {
                reply.set_ciaddr(ciaddr);
            } else {
                reply.set_ciaddr(ciaddr);
                reply.set_yiaddr(ip);
                opts.insert(DhcpOption::AddressLeaseTime(cfg.dhcp.lease_lifetime));
                opts.insert(DhcpOption::Renewal(cfg.dhcp.lease_renewal));
                opts.insert(DhcpOption::Rebinding(cfg.rebinding()));
            }
            add_config_options(&mut opts, b, cfg);
        }
    }
    reply.set_opts(opts);
    let Some(bootp) = encode(&reply) else {
        return Outcome::drop("malformed");
    };

    // RFC 2131 §4.1, "server transmits": relay first, then a client that already has an
    // address, then broadcast when asked (or for NAK), else unicast to the new address.
    let giaddr = msg.giaddr();
    let broadcast = msg.flags().broadcast();
    let (dst_mac, dst_ip, dport) = if !giaddr.is_unspecified() {
        (req.hw_src.unwrap_or(chaddr), giaddr, SERVER_PORT)
    } else if reply_type == MessageType::Nak || broadcast {
        (frame::BROADCAST_MAC, Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else if !ciaddr.is_unspecified() {
        (chaddr, ciaddr, CLIENT_PORT)
    } else {
        (chaddr, ip, CLIENT_PORT)
    };
    match frame::udp4(src_mac, dst_mac, server, dst_ip, SERVER_PORT, dport, &bootp) {
        Some(f) => Outcome::reply(what, f),
        None => Outcome::drop("reply-too-large"),
    }
}

fn add_config_options(opts: &mut DhcpOptions, b: &Binding, cfg: &DaemonSettings) {
    if let Some(net) = b.subnet {
        opts.insert(DhcpOption::SubnetMask(net.netmask()));
        opts.insert(DhcpOption::BroadcastAddr(net.broadcast()));
    }
    if let (Some(gw), false) = (b.gateway, b.private) {
        opts.insert(DhcpOption::Router(vec![gw]));
    }
    if !cfg.dhcp.nameservers.is_empty() {
        // One option 6 holding every server (the original sent one TLV per server).
        opts.insert(DhcpOption::DomainNameServer(cfg.dhcp.nameservers.clone()));
    }
    if let Some(d) = domain_for(cfg.dhcp.domain.as_deref(), &b.hostname) {
        opts.insert(DhcpOption::DomainName(d));
    }
    if !b.hostname.is_empty() {
        opts.insert(DhcpOption::Hostname(b.hostname.clone()));
    }
    if let Some(mtu) = b.mtu {
        opts.insert(DhcpOption::InterfaceMtu(mtu.min(u32::from(u16::MAX)) as u16));
    }
}

/// The BROADCAST bit, for tests and tools building requests.
pub fn broadcast_flags() -> Flags {
    Flags::default().set_broadcast()
}
