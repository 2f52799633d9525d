//! netconf-sys: the node plumbing the tools share, and the only crate of the workspace with
//! `unsafe` (each block allowed where it is, with its SAFETY comment): the packet socket,
//! link lookups, rtnetlink dumps and the link monitor, and the ARP/ND frame builders.

// A missing SAFETY comment fails clippy (and so CI).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod frame;
pub mod link;
pub mod netlink;
pub mod packet;
