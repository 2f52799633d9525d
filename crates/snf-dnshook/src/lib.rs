//! `snf-dnshook`: a Ganeti instance hook that keeps the A, AAAA and PTR records of an
//! instance's public NICs in sync, with RFC 2136 UPDATEs signed with TSIG.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

pub mod cli;
pub mod client;
pub mod config;
#[cfg(test)]
mod fake;
pub mod files;
pub mod hookenv;
pub mod keyfile;
pub mod names;
pub mod plan;
pub mod sync;
pub mod tsig;
pub mod update;
pub mod wire;
