//! `netconf-cluster`: the control plane of the netconf suite: the cluster configuration
//! (`config.data`) and its store, the operations behind the commands, address pools, hooks
//! and Ganeti's error classes. The node-side contracts it builds on live in `netconf`.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

pub mod config;
pub mod error;
pub mod hooks;
pub mod nicenv;
pub mod ops;
pub mod pool;

pub use error::{ErrorCode, GntError, IntoGnt};
pub use nicenv::NicEnvFromConfig;
