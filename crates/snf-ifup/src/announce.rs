//! Gratuitous ARP and unsolicited neighbour advertisements on the uplink, so that routers
//! and peers learn at once that a (possibly just migrated) VM is now behind this node.
//! Sent as raw frames with an AF_PACKET socket: no `arpsend`/`ndsend` (vzctl) and no
//! toggling of the global `ip_nonlocal_bind` as snf-network did.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, bail};
use netconf::{MacAddr, eui64};

use crate::node;

/// ARP request announcing `ip` at `mac` (RFC 5227 announcement form).
pub fn garp_frame(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// Unsolicited NA (RFC 4861 7.2.6) for `target` from `mac`'s link-local address to
/// all-nodes, router and override flags set, with the target link-layer option.
pub fn na_frame(mac: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    let src = eui64::link_local(mac);
    let dst: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]);
    icmp.extend_from_slice(&[0xa0, 0, 0, 0]); // R | O
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac.octets());
    let sum = icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

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

/// Sends each `(device, frame)`. One socket for all of them: closing an AF_PACKET socket
/// waits for an RCU grace period (packet_release), which costs more than the sending.
/// Returns one result per frame.
pub fn send_all(frames: &[(String, Vec<u8>)]) -> Vec<anyhow::Result<()>> {
    if frames.is_empty() {
        return Vec::new();
    }
    let fd = match PacketSocket::open() {
        Ok(fd) => fd,
        Err(e) => {
            let msg = format!("{e:#}");
            return frames
                .iter()
                .map(|_| Err(anyhow::anyhow!("{msg}")))
                .collect();
        }
    };
    frames
        .iter()
        .map(|(dev, frame)| {
            let ifindex = node::ifindex(dev).with_context(|| format!("no interface {dev}"))?;
            fd.send(ifindex, frame)
                .with_context(|| format!("sending on {dev}"))
        })
        .collect()
}

struct PacketSocket(i32);

#[allow(unsafe_code)]
impl PacketSocket {
    fn open() -> anyhow::Result<PacketSocket> {
        // SAFETY: plain socket(2); the descriptor is owned by the result and closed on drop.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
        }
        Ok(PacketSocket(fd))
    }

    fn send(&self, ifindex: i32, frame: &[u8]) -> anyhow::Result<()> {
        if frame.len() < 14 {
            bail!("frame too short");
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        sll.sll_ifindex = ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `sll` outlive the call; the lengths passed are theirs.
        let n = unsafe {
            libc::sendto(
                self.0,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("sendto");
        }
        Ok(())
    }
}

impl Drop for PacketSocket {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let g = garp_frame(mac, Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(g.len(), 42);
        assert_eq!(&g[28..32], &[198, 51, 100, 7]);
        assert_eq!(&g[38..42], &[198, 51, 100, 7]);
        let n = na_frame(mac, "2001:db8::7".parse().unwrap());
        assert_eq!(n.len(), 14 + 40 + 32);
        // A correct checksum sums (with the pseudo-header) to 0xffff, i.e. recomputes to 0.
        let src = eui64::link_local(mac);
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(icmpv6_checksum(src, dst, &n[54..]), 0);
    }
}
