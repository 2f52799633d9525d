//! Read-only rtnetlink dumps (policy rules and routes) in-process: the routed path needs
//! them before planning, and two `ip` processes cost more than the whole read. Also the
//! link monitor `snf-ifup watch` follows removals with.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, bail};

const NETLINK_ROUTE: i32 = 0;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_GETRULE: u16 = 34;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
// Attribute numbers shared by routes (RTA_*) and rules (FRA_*) where they coincide.
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const FRA_IIFNAME: u16 = 3;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;

/// One message of a dump: the 12-byte family header and its attributes.
struct Msg {
    kind: u16,
    header: [u8; 12],
    attrs: Vec<(u16, Vec<u8>)>,
}

impl Msg {
    fn attr(&self, t: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_slice())
    }

    fn u32(&self, t: u16) -> Option<u32> {
        let v = self.attr(t)?;
        Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
    }
}

/// A policy rule with an input interface: (iif, priority, table id).
pub fn rules(v6: bool) -> anyhow::Result<Vec<(String, u32, u32)>> {
    let mut out = Vec::new();
    for m in dump(RTM_GETRULE, v6)? {
        if m.kind != RTM_NEWRULE {
            continue;
        }
        let Some(iif) = m.attr(FRA_IIFNAME) else {
            continue;
        };
        let iif = String::from_utf8_lossy(iif)
            .trim_end_matches('\0')
            .to_owned();
        let table = m.u32(FRA_TABLE).unwrap_or(u32::from(m.header[4]));
        out.push((iif, m.u32(FRA_PRIORITY).unwrap_or(0), table));
    }
    Ok(out)
}

/// Default routes with a single output device: (table id, ifindex).
pub fn default_routes(v6: bool) -> anyhow::Result<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    for m in dump(RTM_GETROUTE, v6)? {
        if m.kind != RTM_NEWROUTE || m.header[1] != 0 || m.attr(RTA_DST).is_some() {
            continue;
        }
        let Some(oif) = m.u32(RTA_OIF) else {
            continue;
        };
        let table = m.u32(RTA_TABLE).unwrap_or(u32::from(m.header[4]));
        out.push((table, oif));
    }
    Ok(out)
}

/// A NETLINK_ROUTE socket.
pub(crate) fn route_socket() -> anyhow::Result<OwnedFd> {
    socket(NETLINK_ROUTE, "netlink socket")
}

/// A netlink socket of `protocol` (`what` names it in errors).
#[allow(unsafe_code)]
pub(crate) fn socket(protocol: libc::c_int, what: &str) -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| what.to_owned());
    }
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sets the int socket option `opt` at `level`.
#[allow(unsafe_code)]
pub(crate) fn set_int_option(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: `value` is a c_int that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets a socket buffer to `size` bytes with `force_opt` (SO_RCVBUFFORCE or
/// SO_SNDBUFFORCE: allowed with CAP_NET_ADMIN), else with `opt`, where the unprivileged
/// limit applies; a buffer that stays smaller only costs speed.
pub(crate) fn set_buffer(fd: &OwnedFd, force_opt: libc::c_int, opt: libc::c_int, size: usize) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    for opt in [force_opt, opt] {
        if set_int_option(fd, libc::SOL_SOCKET, opt, size).is_ok() {
            break;
        }
    }
}

/// Sends one datagram to the kernel.
#[allow(unsafe_code)]
pub(crate) fn send(fd: &OwnedFd, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `data` is valid for reads of its length; no address means the kernel.
    let n = unsafe { libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Receives one datagram into `buf`, again when a signal interrupts the wait.
#[allow(unsafe_code)]
pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> std::io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(usize::try_from(n).unwrap_or(0));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// A kernel error as the netlink users show it: the kernel's explanation (extended ack),
/// when it gave one, then the errno's text.
pub(crate) fn fmt_error(
    f: &mut std::fmt::Formatter<'_>,
    errno: i32,
    message: Option<&str>,
) -> std::fmt::Result {
    let io = std::io::Error::from_raw_os_error(errno);
    match message {
        Some(m) => write!(f, "{m} ({io})"),
        None => write!(f, "{io}"),
    }
}

const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// Asks the kernel for explanations with errors, and errors without a copy of the
/// request (the error bodies `ext_ack` readers expect).
pub(crate) fn ask_for_explanations(fd: &OwnedFd) {
    for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
        // An old kernel refuses the options, which only costs the explanations.
        let _ = set_int_option(fd, libc::SOL_NETLINK, opt, 1);
    }
}

/// Appends attribute `t` holding `data` (length, type, data, padding) to a message being
/// built.
pub(crate) fn push_attr(b: &mut Vec<u8>, t: u16, data: &[u8]) {
    let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&t.to_ne_bytes());
    b.extend_from_slice(data);
    pad(b);
}

/// Pads a message or attribute being built to netlink's 4-byte alignment.
pub(crate) fn pad(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

#[allow(unsafe_code)]
fn dump(kind: u16, v6: bool) -> anyhow::Result<Vec<Msg>> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
    let fd = route_socket()?;
    let mut req = Vec::with_capacity(28);
    req.extend_from_slice(&28u32.to_ne_bytes());
    req.extend_from_slice(&kind.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.push(family);
    req.extend_from_slice(&[0; 11]);
    send(&fd, &req).context("netlink send")?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink recv");
        }
        let mut data = &buf[..n as usize];
        while data.len() >= 16 {
            let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
            let t = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
            if len < 16 || len > data.len() {
                bail!("malformed netlink message");
            }
            match t {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    // The error code follows the header; a message too short to hold it
                    // is refused rather than read past its end.
                    let Some(code) = data[..len]
                        .get(16..20)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_ne_bytes)
                    else {
                        bail!("malformed netlink error message");
                    };
                    if code != 0 {
                        return Err(std::io::Error::from_raw_os_error(-code))
                            .context("netlink dump");
                    }
                }
                _ if len >= 28 => out.push(parse(t, &data[16..len])),
                _ => {}
            }
            data = &data[align(len).min(data.len())..];
        }
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn parse(kind: u16, body: &[u8]) -> Msg {
    let mut header = [0u8; 12];
    header.copy_from_slice(&body[..12]);
    let mut attrs = Vec::new();
    let mut rest = &body[12..];
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let t = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            break;
        }
        attrs.push((t, rest[4..len].to_vec()));
        rest = &rest[align(len).min(rest.len())..];
    }
    Msg {
        kind,
        header,
        attrs,
    }
}

const RTM_DELLINK: u16 = 17;
const RTMGRP_LINK: u32 = 1;
const IFLA_IFNAME: u16 = 3;

/// What a [`LinkMonitor`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvents {
    /// Links removed: (ifindex, name).
    Deleted(Vec<(u32, String)>),
    /// The kernel dropped notifications (ENOBUFS): the caller must look at everything.
    Overflow,
}

/// A NETLINK_ROUTE socket subscribed to link notifications (RTNLGRP_LINK).
pub struct LinkMonitor {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl LinkMonitor {
    #[allow(unsafe_code)]
    pub fn open() -> anyhow::Result<LinkMonitor> {
        let fd = route_socket()?;
        // A large receive buffer makes overflows (and the rescans they cost) rare when many
        // links go at once.
        set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 4 << 20);
        // SAFETY: an all-zero sockaddr_nl is valid; the fields are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        // SAFETY: `addr` is a valid sockaddr_nl of the given length.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink bind (RTNLGRP_LINK)");
        }
        Ok(LinkMonitor {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits for the next notifications.
    pub fn recv(&mut self) -> anyhow::Result<LinkEvents> {
        match recv(&self.fd, &mut self.buf, 0) {
            Ok(n) => Ok(LinkEvents::Deleted(deleted_links(&self.buf[..n]))),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(LinkEvents::Overflow),
            Err(e) => Err(e).context("netlink recv"),
        }
    }
}

/// The (ifindex, name) of every RTM_DELLINK in one datagram; anything malformed ends the
/// walk (the kernel does not send it, and a short read loses nothing we act on blindly:
/// every teardown checks the link again).
fn deleted_links(mut data: &[u8]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < 16 || len > data.len() {
            break;
        }
        // ifinfomsg: family, pad, type (u16), index (i32), flags, change; then attributes.
        let body = &data[16..len];
        if kind == RTM_DELLINK && body.len() >= 16 {
            let index = u32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
            let mut rest = &body[16..];
            while rest.len() >= 4 {
                let alen = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
                let t = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
                if alen < 4 || alen > rest.len() {
                    break;
                }
                if t == IFLA_IFNAME {
                    let name = String::from_utf8_lossy(&rest[4..alen])
                        .trim_end_matches('\0')
                        .to_owned();
                    out.push((index, name));
                    break;
                }
                rest = &rest[align(alen).min(rest.len())..];
            }
        }
        data = &data[align(len).min(data.len())..];
    }
    out
}

/// The id of routing table `name` (a number, a built-in name or one from rt_tables).
pub fn table_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    match name {
        "main" => return Some(254),
        "local" => return Some(255),
        "default" => return Some(253),
        _ => {}
    }
    let mut files = vec![
        "/etc/iproute2/rt_tables".to_owned(),
        "/usr/share/iproute2/rt_tables".to_owned(),
    ];
    if let Ok(rd) = fs::read_dir("/etc/iproute2/rt_tables.d") {
        files.extend(
            rd.flatten()
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".conf")),
        );
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if let (Some(id), Some(n)) = (w.next(), w.next())
                && n == name
                && !id.starts_with('#')
            {
                return id.parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(table_id("100"), Some(100));
        assert_eq!(table_id("main"), Some(254));
        assert_eq!(table_id("no-such-table-anywhere"), None);
        assert_eq!(crate::link::name_of(1).as_deref(), Some("lo"));
    }

    #[test]
    fn deleted_links_are_read_from_notifications() {
        let msg = |kind: u16, index: u32, name: &[u8]| {
            let mut attr = Vec::new();
            let alen = 4 + name.len() + 1;
            attr.extend_from_slice(&(alen as u16).to_ne_bytes());
            attr.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
            attr.extend_from_slice(name);
            attr.push(0);
            while attr.len() % 4 != 0 {
                attr.push(0);
            }
            let mut m = Vec::new();
            let len = 16 + 16 + attr.len();
            m.extend_from_slice(&(len as u32).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.extend_from_slice(&[0, 0, 1, 0]);
            m.extend_from_slice(&index.to_ne_bytes());
            m.extend_from_slice(&[0; 8]);
            m.extend_from_slice(&attr);
            m
        };
        let mut d = msg(16, 3, b"tap0");
        d.extend(msg(RTM_DELLINK, 7, b"tap12"));
        d.extend(msg(RTM_DELLINK, 9, b"vif1.0"));
        assert_eq!(
            deleted_links(&d),
            [(7, "tap12".to_owned()), (9, "vif1.0".to_owned())]
        );
        // Truncated or garbage input: what parsed so far, no panic.
        assert_eq!(deleted_links(&d[..d.len() - 3]).len(), 1);
        assert!(deleted_links(&[0xff; 40]).is_empty());
        assert!(deleted_links(&[]).is_empty());
    }

    #[test]
    fn attributes_parse() {
        // fib_rule_hdr (table 0) + FRA_IIFNAME "tap1\0" + FRA_PRIORITY 32765 + FRA_TABLE 100.
        let mut b = vec![2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        b.extend_from_slice(&[9, 0, 3, 0, b't', b'a', b'p', b'1', 0, 0, 0, 0]);
        b.extend_from_slice(&[8, 0, 6, 0]);
        b.extend_from_slice(&32765u32.to_ne_bytes());
        b.extend_from_slice(&[8, 0, 15, 0]);
        b.extend_from_slice(&100u32.to_ne_bytes());
        let m = parse(RTM_NEWRULE, &b);
        assert_eq!(m.attr(FRA_IIFNAME), Some(&b"tap1\0"[..]));
        assert_eq!(m.u32(FRA_PRIORITY), Some(32765));
        assert_eq!(m.u32(FRA_TABLE), Some(100));
        assert_eq!(m.u32(RTA_OIF), None);
    }
}
