//! `netconf`: the domain of the netconf suite (networks, pools, instances, NICs) and the file
//! formats its tools share. No packets and no firewall calls live here.

pub mod binding;
pub mod config;
pub mod error;
pub mod eui64;
pub mod hookenv;
pub mod hooks;
pub mod ifname;
pub mod mac;
pub mod name;
pub mod nicenv;
pub mod nicmode;
pub mod ops;
pub mod pool;
pub mod timefmt;

pub use error::{ErrorCode, GntError};
pub use hookenv::{HookEnvError, HookNic, HookVars, InstanceHookEnv};
pub use ifname::IfName;
pub use mac::{MacAddr, MacPrefix, UnicastMac};
pub use name::{GroupName, InstanceName, NameError, NetworkName, NodeName};
pub use nicenv::{NetworkInfo, NicEnv, Vlan};
pub use nicmode::NicMode;
