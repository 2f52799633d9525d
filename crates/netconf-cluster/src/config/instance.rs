//! One instance of `config.data` and its NICs: the element type that the instance
//! collection (`instances`), its index and the configuration are all made of.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use netconf::mac::MacAddr;
use netconf::name::InstanceName;
use netconf::nicmode::NicMode;

/// `{mode, link, vlan}` of a group connection, copied into NICs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicParams {
    pub mode: NicMode,
    pub link: String,
    #[serde(default)]
    pub vlan: String,
}

impl NicParams {
    /// Ganeti's `NICC_DEFAULTS` with Debian's build-time default bridge.
    pub fn ganeti_default() -> Self {
        NicParams {
            mode: NicMode::Bridged,
            link: "xen-br0".into(),
            vlan: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: InstanceName,
    /// Node group UUID; instances of this suite need not have a node.
    pub group: String,
    #[serde(default)]
    pub primary_node: Option<String>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    pub nics: Vec<Nic>,
    pub serial_no: u64,
    pub ctime: f64,
    pub mtime: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub uuid: String,
    #[serde(default)]
    pub name: Option<String>,
    pub mac: MacAddr,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Network UUID.
    #[serde(default)]
    pub network: Option<String>,
    pub mode: NicMode,
    pub link: String,
    #[serde(default)]
    pub vlan: String,
}

impl Nic {
    pub fn params(&self) -> NicParams {
        NicParams {
            mode: self.mode,
            link: self.link.clone(),
            vlan: self.vlan.clone(),
        }
    }

    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self.ip {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        }
    }
}
