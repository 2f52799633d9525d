//! The AF_PACKET socket complete Ethernet frames are written with (nfdhcpd's replies,
//! snf-ifup's announcements). Protocol 0: it never receives, so it costs nothing while
//! idle. nix exposes no way to build a `sockaddr_ll`, hence the small amount of libc here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct PacketSocket {
    fd: OwnedFd,
}

/// Whether [`PacketSocket::send`] may wait for room in the socket's send buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Fail with `WouldBlock` instead (a daemon's reply path).
    No,
    /// Block until the frame is queued (a one-shot tool sending a few frames).
    Yes,
}

impl PacketSocket {
    pub fn open() -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd })
    }

    /// Writes one complete Ethernet frame (destination, source, EtherType, payload) out
    /// of interface `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8], wait: Wait) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame shorter than an Ethernet header",
            ));
        }
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        sll.sll_ifindex = ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        let flags = match wait {
            Wait::No => libc::MSG_DONTWAIT,
            Wait::Yes => 0,
        };
        // SAFETY: the buffer and the address outlive the call; lengths are exact.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                flags,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Raises the receive buffer of this process's NFQUEUE netlink socket. The `nfq` crate
/// keeps its fd private, so the socket is found through /proc/self/fd and recognised by
/// its domain and protocol. Without this a burst (e.g. a flood of DAD probes) overflows
/// the default buffer and, with fail-open, those packets bypass nfdhcpd.
pub fn raise_nfqueue_rcvbuf(bytes: i32) -> io::Result<usize> {
    let mut done = 0;
    for ent in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = ent?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let get = |opt: libc::c_int| -> Option<libc::c_int> {
            let mut v: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt on an fd we may not own only reads an int; failure
            // (not a socket, closed meanwhile) is reported and ignored.
            let r = unsafe {
                libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &raw mut len)
            };
            (r == 0).then_some(v)
        };
        if get(libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
            && get(libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER)
        {
            // SAFETY: sets one int option on the socket identified above.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const bytes).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            done += 1;
        }
    }
    Ok(done)
}
