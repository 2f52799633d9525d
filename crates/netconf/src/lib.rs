//! `netconf`: the node-side contracts of the netconf suite: names, MAC addresses, NIC modes,
//! the NIC and instance hook environments and the binding files its tools share. No
//! packets, no firewall calls and no cluster store live here (that is `netconf-cluster`).
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

pub mod binding;
pub mod eui64;
pub mod hookenv;
pub mod ifname;
pub mod mac;
pub mod name;
pub mod nicenv;
pub mod nicmode;
pub mod textfile;
pub mod timefmt;

pub use hookenv::{HookEnvError, HookNic, HookVars, InstanceHookEnv};
pub use ifname::IfName;
pub use mac::{MacAddr, MacPrefix, UnicastMac};
pub use name::{GroupName, InstanceName, NameError, NetworkName, NodeName};
pub use nicenv::{NetworkInfo, NicEnv, Vlan};
pub use nicmode::NicMode;
