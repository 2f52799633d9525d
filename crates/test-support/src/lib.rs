//! What the suite's namespace tests share: the root/skip check, running commands with their
//! output shown on failure, bounded waiting (for a condition, or for a child that must end
//! on its own), and RAII guards for network namespaces, veth
//! pairs created directly inside them, daemons, and real etcd clusters on loopback. Every guard cleans up on drop, also
//! when the test panics half-way, so that nothing a test made outlives it.
//!
//! The harnesses of each crate keep their own domain (nfdhcpd's testbed, snf-ifup's lab,
//! BIND for snf-dnshook, the cluster stories) and build on these pieces.
//!
//! `manpage` renders the parts of the man pages that clap knows; each tool's
//! `regen-man-<crate>` example and man page test use it.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

mod bins;
mod bounded;
mod bridge;
mod cmd;
mod daemon;
mod etcd;
mod etcd_ns;
pub mod manpage;
mod netns;
mod skip;
mod wait;

pub use bins::workspace_bins;
pub use bounded::{Bounded, run_bounded, run_within, wait_bounded, wait_within};
pub use bridge::gateway_bridge;
pub use cmd::{ok, output, run, run_ok, text, try_ok};
pub use daemon::Daemon;
pub use etcd::{ETCD, EtcdCluster, EtcdTls, need_etcd, unique_prefix};
pub use etcd_ns::EtcdInNetns;
pub use netns::{Netns, Veth, unique_name};
pub use skip::{is_root, need_root, on_path, skip};
pub use wait::wait_for;
