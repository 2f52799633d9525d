//! netconf-sys: the node plumbing the tools share, and the only crate of the workspace with
//! `unsafe` (each block allowed where it is, with its SAFETY comment): the packet socket,
//! link lookups, rtnetlink dumps, requests (`rtnl`) and the link monitor, the ARP/ND frame builders, and
//! running system tools (`command`), the iptables family among them (`xtables`: tool
//! names, a bounded lock wait, errors carrying stderr, timing handed back to the caller).

// A missing SAFETY comment fails clippy (and so CI).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod command;
pub mod frame;
pub mod link;
pub mod netlink;
pub mod nftables;
pub mod packet;
pub mod rtnl;
pub mod xtables;
