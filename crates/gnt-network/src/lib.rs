//! The command-line front ends of the netconf control plane: argument parsing and
//! Ganeti's output layouts. The domain (checks, changes, hooks' variables) is `netconf`.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

pub mod cluster_cli;
pub mod common;
pub mod complete;
pub mod global;
pub mod group_cli;
pub mod instance_cli;
pub mod manpage;
pub mod network_cli;
pub mod node_cli;
pub mod sort;
pub mod table;
