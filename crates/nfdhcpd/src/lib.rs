//! nfdhcpd: answers DHCPv4, Router and Neighbor Solicitations and stateless DHCPv6 for the
//! guests of one node, from per-TAP binding files, with packets diverted by NFQUEUE.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

pub mod log;

pub mod cli;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod dhcp4;
pub mod dhcp6;
pub mod lock;
pub mod naming;
pub mod ndp;
pub mod outcome;
pub mod packet;
pub mod pcap;
pub mod privs;
pub mod rules;
pub mod runfile;
pub mod stats;
pub mod table;
pub mod watch;

#[cfg(test)]
mod tests;
