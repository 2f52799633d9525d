//! Gratuitous ARP and unsolicited neighbour advertisements on the uplink, so that routers
//! and peers learn at once that a (possibly just migrated) VM is now behind this node.
//! Sent as raw frames with an AF_PACKET socket: no `arpsend`/`ndsend` (vzctl) and no
//! toggling of the global `ip_nonlocal_bind` as snf-network did. The frames are built and
//! the socket is driven by netconf-sys.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Context;
use netconf::MacAddr;
use netconf_sys::frame::{Garp, NeighborAdvert};
use netconf_sys::packet::{PacketSocket, Wait};

use crate::node;

/// ARP request announcing `ip` at `mac` (RFC 5227 announcement form).
pub fn garp_frame(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    Garp { mac, ip }.emit()
}

/// Unsolicited NA (RFC 4861 7.2.6) for `target` from `mac`'s link-local address to
/// all-nodes, router and override flags set, with the target link-layer option. (An NA
/// always fits a frame; were it not built, the empty frame is refused when sent.)
pub fn na_frame(mac: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    NeighborAdvert::unsolicited(mac, target)
        .emit()
        .unwrap_or_default()
}

/// Sends each `(device, frame)`. One socket for all of them: closing an AF_PACKET socket
/// waits for an RCU grace period (packet_release), which costs more than the sending.
/// That wait (about 10 ms here) is most of what a routed `up` costs beyond a bridged one,
/// and it cannot be avoided: no other socket sends an ARP frame. It stays on the caller's
/// thread: the wait starts at the close, which follows the frames, which follow the routes,
/// and what `up` does after it is too short to hide it (a closing thread gained 0.2 ms,
/// less than the noise). Returns one result per frame.
pub fn send_all(frames: &[(String, Vec<u8>)]) -> Vec<anyhow::Result<()>> {
    if frames.is_empty() {
        return Vec::new();
    }
    let fd = match PacketSocket::open().context("AF_PACKET socket") {
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
            fd.send(ifindex, frame, Wait::Yes)
                .context("sendto")
                .with_context(|| format!("sending on {dev}"))
        })
        .collect()
}
