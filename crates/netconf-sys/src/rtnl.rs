//! rtnetlink requests that change links, policy rules, routes, proxy neighbour entries and
//! bridge VLANs, in-process: on the NIC script's hot paths each `ip` or `bridge` process
//! cost more (1-3 ms to start) than everything it asked the kernel for (tens of µs).
//!
//! Each call is one request with an acknowledgement, in the form `ip`/`bridge` send it, so
//! that the kernel judges it the same way; a refusal is an [`Error`] carrying the errno and
//! the kernel's extended-ack text when it gives one.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

use crate::netlink::{self, ask_for_explanations, pad, push_attr, route_socket};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// Set in an ack's flags when extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_CAPPED: u16 = 0x100;

const RTM_NEWLINK: u16 = 16;
const RTM_SETLINK: u16 = 19;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

const IFLA_ADDRESS: u16 = 1;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_BRIDGE_FLAGS: u16 = 0;
const IFLA_BRIDGE_VLAN_INFO: u16 = 2;
const BRIDGE_FLAGS_MASTER: u16 = 1;
const BRIDGE_VLAN_INFO_PVID: u16 = 2;
const BRIDGE_VLAN_INFO_UNTAGGED: u16 = 4;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;

const FRA_IIFNAME: u16 = 3;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;
const FR_ACT_TO_TBL: u8 = 1;

const NDA_DST: u16 = 1;
const NTF_PROXY: u8 = 0x08;
const NUD_PERMANENT: u16 = 0x80;

const IFF_UP: u32 = 1;

/// Whether a request adds (or replaces) or removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create, or replace what has the same key (`ip route replace`).
    Replace,
    /// Create; an existing equal entry is an error (`ip rule add`).
    Add,
    Delete,
}

/// What the kernel refused, as `ip` would report it.
#[derive(Debug)]
pub struct Error {
    /// The positive errno.
    pub errno: i32,
    /// The kernel's own explanation (extended ack), when it gave one.
    pub message: Option<String>,
}

impl Error {
    fn os(e: &std::io::Error) -> Error {
        Error {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            message: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        netlink::fmt_error(f, self.errno, self.message.as_deref())
    }
}

impl std::error::Error for Error {}

/// A link change, as `ip link set dev X ...` (only what is `Some` or `true` changes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub mtu: Option<u32>,
    /// The bridge to enslave to (an ifindex); `Some(0)` leaves any (`nomaster`).
    pub master: Option<u32>,
    pub address: Option<[u8; 6]>,
    pub up: bool,
}

/// One NETLINK_ROUTE socket for a run of requests.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// A request under construction: header, family header, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, header: &[u8]) -> Msg {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(header);
        pad(&mut b);
        Msg(b)
    }

    fn attr(&mut self, t: u16, data: &[u8]) {
        push_attr(&mut self.0, t, data);
    }

    fn attr_u32(&mut self, t: u16, v: u32) {
        self.attr(t, &v.to_ne_bytes());
    }

    fn attr_str(&mut self, t: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(t, &v);
    }
}

fn ip_bytes(a: IpAddr) -> (u8, Vec<u8>) {
    match a {
        IpAddr::V4(v) => (libc::AF_INET as u8, v.octets().to_vec()),
        IpAddr::V6(v) => (libc::AF_INET6 as u8, v.octets().to_vec()),
    }
}

/// ifinfomsg: family, pad, type, index, flags, change.
fn ifinfo(family: u8, ifindex: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = family;
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// A routing table id in a one-byte header field: ids above 255 go in an attribute only.
fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(0)
}

impl Rtnl {
    pub fn open() -> anyhow::Result<Rtnl> {
        let fd = route_socket()?;
        ask_for_explanations(&fd);
        Ok(Rtnl {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// `ip link set dev <ifindex> [address A] [mtu M] [master B|nomaster] [up]`.
    pub fn link_set(&mut self, ifindex: u32, c: &LinkChange) -> Result<(), Error> {
        let (flags, change) = if c.up { (IFF_UP, IFF_UP) } else { (0, 0) };
        let mut m = Msg::new(
            RTM_NEWLINK,
            0,
            &ifinfo(libc::AF_UNSPEC as u8, ifindex, flags, change),
        );
        if let Some(a) = c.address {
            m.attr(IFLA_ADDRESS, &a);
        }
        if let Some(mtu) = c.mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        if let Some(b) = c.master {
            m.attr_u32(IFLA_MASTER, b);
        }
        self.request(m)
    }

    /// `ip rule add iif <iif> table <table>` (the kernel picks the priority) or
    /// `ip rule del [priority P] iif <iif> lookup <table>`.
    pub fn rule(
        &mut self,
        op: Op,
        v6: bool,
        iif: &str,
        priority: Option<u32>,
        table: u32,
    ) -> Result<(), Error> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
        let (kind, flags, action) = match op {
            Op::Add => (RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, FR_ACT_TO_TBL),
            Op::Replace => (RTM_NEWRULE, NLM_F_CREATE | NLM_F_REPLACE, FR_ACT_TO_TBL),
            Op::Delete => (RTM_DELRULE, 0, 0),
        };
        // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
        let mut h = [0u8; 12];
        h[0] = family;
        h[4] = table_byte(table);
        h[7] = action;
        let mut m = Msg::new(kind, flags, &h);
        m.attr_str(FRA_IIFNAME, iif);
        if let Some(p) = priority {
            m.attr_u32(FRA_PRIORITY, p);
        }
        m.attr_u32(FRA_TABLE, table);
        self.request(m)
    }

    /// `ip route replace <dst>/<len> dev <oif> table <table> proto static` (a route on
    /// the link, no gateway) or `ip route del <dst>/<len> dev <oif> table <table>`.
    pub fn route(
        &mut self,
        op: Op,
        dst: IpAddr,
        prefix: u8,
        oif: u32,
        table: u32,
    ) -> Result<(), Error> {
        let (family, addr) = ip_bytes(dst);
        let (kind, flags) = match op {
            Op::Replace => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE),
            Op::Add => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL),
            Op::Delete => (RTM_DELROUTE, 0),
        };
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let mut h = [0u8; 12];
        h[0] = family;
        h[1] = prefix;
        h[4] = table_byte(table);
        if op == Op::Delete {
            // Any protocol, scope and type match, as with `ip route del`.
            h[6] = RT_SCOPE_NOWHERE;
        } else {
            h[5] = RTPROT_STATIC;
            h[6] = if dst.is_ipv4() {
                RT_SCOPE_LINK
            } else {
                RT_SCOPE_UNIVERSE
            };
            h[7] = RTN_UNICAST;
        }
        let mut m = Msg::new(kind, flags, &h);
        m.attr_u32(RTA_TABLE, table);
        m.attr(RTA_DST, &addr);
        m.attr_u32(RTA_OIF, oif);
        self.request(m)
    }

    /// `ip neigh replace proxy <addr> dev <ifindex>` or `ip neigh del proxy ...`.
    pub fn neigh_proxy(&mut self, op: Op, addr: IpAddr, ifindex: u32) -> Result<(), Error> {
        let (family, bytes) = ip_bytes(addr);
        let (kind, flags) = match op {
            Op::Replace => (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE),
            Op::Add => (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL),
            Op::Delete => (RTM_DELNEIGH, 0),
        };
        // ndmsg: family, pad, pad (u16), ifindex, state (u16), flags, type.
        let mut h = [0u8; 12];
        h[0] = family;
        h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        h[8..10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes());
        h[10] = NTF_PROXY;
        let mut m = Msg::new(kind, flags, &h);
        m.attr(NDA_DST, &bytes);
        self.request(m)
    }

    /// `bridge vlan add dev <ifindex> vid <vid> [pvid untagged] master`.
    pub fn bridge_vlan_add(
        &mut self,
        ifindex: u32,
        vid: u16,
        pvid_untagged: bool,
    ) -> Result<(), Error> {
        let mut m = Msg::new(
            RTM_SETLINK,
            0,
            &ifinfo(libc::AF_BRIDGE as u8, ifindex, 0, 0),
        );
        let mut spec = Msg(Vec::new());
        spec.attr(IFLA_BRIDGE_FLAGS, &BRIDGE_FLAGS_MASTER.to_ne_bytes());
        let flags = if pvid_untagged {
            BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED
        } else {
            0
        };
        let mut info = flags.to_ne_bytes().to_vec();
        info.extend_from_slice(&vid.to_ne_bytes());
        spec.attr(IFLA_BRIDGE_VLAN_INFO, &info);
        m.attr(IFLA_AF_SPEC, &spec.0);
        self.request(m)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, mut m: Msg) -> Result<(), Error> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = u32::try_from(m.0.len()).unwrap_or(u32::MAX);
        m.0[0..4].copy_from_slice(&len.to_ne_bytes());
        m.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        netlink::send(&self.fd, &m.0).map_err(|e| Error::os(&e))?;
        loop {
            let n = netlink::recv(&self.fd, &mut self.buf, 0).map_err(|e| Error::os(&e))?;
            let data = &self.buf[..n];
            if let Some(r) = ack_of(data, seq) {
                return r;
            }
        }
    }
}

/// The outcome an acknowledgement in `data` gives request `seq`, if it holds one.
fn ack_of(mut data: &[u8], seq: u32) -> Option<Result<(), Error>> {
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let flags = u16::from_ne_bytes([data[6], data[7]]);
        let mseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        if len < 16 || len > data.len() {
            return Some(Err(Error {
                errno: libc::EBADMSG,
                message: Some("malformed netlink answer".to_owned()),
            }));
        }
        if kind == NLMSG_ERROR && mseq == seq {
            let body = &data[16..len];
            let Some(code) = body
                .get(0..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            else {
                return Some(Err(Error {
                    errno: libc::EBADMSG,
                    message: Some("malformed netlink error message".to_owned()),
                }));
            };
            if code == 0 {
                return Some(Ok(()));
            }
            return Some(Err(Error {
                errno: code.checked_neg().unwrap_or(libc::EIO),
                message: (flags & NLM_F_ACK_TLVS != 0)
                    .then(|| ext_ack_message(body, flags & NLM_F_CAPPED != 0))
                    .flatten(),
            }));
        }
        data = &data[((len + 3) & !3).min(data.len())..];
    }
    None
}

/// The NLMSGERR_ATTR_MSG of an error body: the code, the request echoed (its header only
/// when capped), then attributes.
fn ext_ack_message(body: &[u8], capped: bool) -> Option<String> {
    let echoed = if capped {
        16
    } else {
        let b = body.get(4..8)?;
        (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize + 3) & !3
    };
    let mut rest = body.get(4usize.checked_add(echoed)?..)?;
    while rest.len() >= 4 {
        let alen = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let t = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if alen < 4 || alen > rest.len() {
            return None;
        }
        if t == NLMSGERR_ATTR_MSG {
            let s = String::from_utf8_lossy(&rest[4..alen])
                .trim_end_matches('\0')
                .to_owned();
            return (!s.is_empty()).then_some(s);
        }
        rest = &rest[((alen + 3) & !3).min(rest.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_msg(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
        let mut attrs = Vec::new();
        if let Some(t) = text {
            let mut m = Msg(Vec::new());
            m.attr_str(NLMSGERR_ATTR_MSG, t);
            attrs = m.0;
        }
        let len = 16 + 4 + 16 + attrs.len();
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        let flags = if text.is_some() {
            NLM_F_ACK_TLVS | NLM_F_CAPPED
        } else {
            NLM_F_CAPPED
        };
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&code.to_ne_bytes());
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&attrs);
        b
    }

    #[test]
    fn acks_are_matched_by_sequence() {
        let mut d = err_msg(6, -libc::EEXIST, None);
        d.extend(err_msg(7, 0, None));
        assert!(matches!(ack_of(&d, 7), Some(Ok(()))));
        let e = ack_of(&d, 6).unwrap().unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        assert!(ack_of(&d, 8).is_none());
    }

    #[test]
    fn extended_ack_text_is_kept() {
        let d = err_msg(1, -libc::EINVAL, Some("Nexthop device is not up"));
        let e = ack_of(&d, 1).unwrap().unwrap_err();
        assert_eq!(e.message.as_deref(), Some("Nexthop device is not up"));
        assert!(
            e.to_string().starts_with("Nexthop device is not up ("),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(ack_of(&[0xff; 40], 1), Some(Err(_))));
        assert!(ack_of(&[], 1).is_none());
        let d = err_msg(1, -libc::EINVAL, Some("x"));
        // Truncated inside the attributes: the errno stands, the text is dropped.
        let mut t = d[..d.len() - 4].to_vec();
        t[0..4].copy_from_slice(&((d.len() - 4) as u32).to_ne_bytes());
        let e = ack_of(&t, 1).unwrap().unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
    }
}
