//! The objects of `config.data`: cluster, node groups, nodes, networks, instances and NICs.
//! Maps are keyed by UUID, as in Ganeti, so renames touch one object only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::finding::Finding;
use super::instance::{Instance, NicParams};
use super::instances::{Instances, MacsInUse};
use crate::error::GntError;
use crate::pool::{AddressPool, AllocRange};
use netconf::mac::MacPrefix;
use netconf::name::{GroupName, NetworkName, NodeName, printable};

/// The format version this build writes; a file with a larger one is refused.
pub const CONFIG_VERSION: u32 = 1;

/// Seconds since the epoch with microseconds, as Ganeti's `ctime`/`mtime`. Rounded to the
/// microsecond so that the value survives config.data's six-decimal form exactly.
pub fn now() -> f64 {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    micros as f64 / 1e6
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub version: u32,
    pub cluster: Cluster,
    #[serde(default)]
    pub nodegroups: BTreeMap<String, NodeGroup>,
    #[serde(default)]
    pub nodes: BTreeMap<String, Node>,
    #[serde(default)]
    pub networks: BTreeMap<String, Network>,
    #[serde(default)]
    pub instances: Instances,
    /// Where this configuration came from; not part of its content.
    #[serde(skip)]
    pub origin: Origin,
}

/// How a configuration was loaded. A configuration parsed from config.data's TOML (a hand
/// edit, a missing or stale cache) is checked in full before anything is built on it; one
/// loaded from the snapshot cache was checked when that cache was written.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub(super) parsed_from_toml: bool,
    /// Set by a repair that commits what it fixed although other problems remain.
    pub(super) skip_commit_check: bool,
    /// The errors `verify` found when the configuration was parsed from TOML by the store.
    pub(super) errors: Vec<Finding>,
    /// The groups, nodes and networks of the snapshot this was read from, for a store
    /// whose instances are read on demand: the commit check compares against them.
    pub(crate) base: Option<Arc<Heads>>,
}

/// The objects of a cluster besides its instances, as one snapshot held them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Heads {
    pub(crate) nodegroups: BTreeMap<String, NodeGroup>,
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) networks: BTreeMap<String, Network>,
}

/// Provenance is not content: a configuration equals its parsed copy.
impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Origin {
    pub fn parsed_from_toml(&self) -> bool {
        self.parsed_from_toml
    }

    /// What `verify` found wrong with the configuration as the store parsed it.
    pub fn errors(&self) -> &[Finding] {
        &self.errors
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    /// Node that runs the commands and hooks (`GANETI_MASTER`).
    pub master_node: String,
    pub mac_prefix: MacPrefix,
    /// NIC parameters of NICs without a network, when not given (`nicparams.default`).
    pub default_nicparams: NicParams,
    #[serde(default)]
    pub master_ip: Option<Ipv4Addr>,
    pub serial_no: u64,
    pub ctime: f64,
    pub mtime: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub name: GroupName,
    /// Connected networks: network UUID → netparams.
    #[serde(default)]
    pub networks: BTreeMap<String, NicParams>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    pub serial_no: u64,
    pub ctime: f64,
    pub mtime: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: NodeName,
    /// Node group UUID.
    pub group: String,
    #[serde(default)]
    pub primary_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub secondary_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    pub serial_no: u64,
    pub ctime: f64,
    pub mtime: f64,
}

/// The user-facing parameters of a network (everything but the pool and bookkeeping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    /// `None`: an L2-only network (no IPv4 subnet, no pool).
    pub network: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub network6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac_prefix: Option<MacPrefix>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NetworkRepr", into = "NetworkRepr")]
pub struct Network {
    pub name: NetworkName,
    /// The IPv4 subnet; `None` for an L2-only network (beyond Ganeti), which has no
    /// gateway, pool, reservations or allocation ranges either: `pool` is `Some` exactly
    /// when `network` is (checked when loaded and by `verify`).
    pub network: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub network6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac_prefix: Option<MacPrefix>,
    pub pool: Option<AddressPool>,
    pub tags: BTreeSet<String>,
    pub serial_no: u64,
    pub ctime: f64,
    pub mtime: f64,
}

/// The stored form: the pool as two compact bitmaps.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRepr {
    name: NetworkName,
    /// Absent for an L2-only network, with the gateway, reservations and ranges.
    #[serde(default)]
    network: Option<Ipv4Net>,
    #[serde(default)]
    gateway: Option<Ipv4Addr>,
    #[serde(default)]
    network6: Option<Ipv6Net>,
    #[serde(default)]
    gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    mac_prefix: Option<MacPrefix>,
    /// Offsets used by instances (`2-5,9`), or Ganeti's `0`/`1` string.
    #[serde(default)]
    reservations: Option<String>,
    /// Offsets reserved externally.
    #[serde(default)]
    ext_reservations: Option<String>,
    /// Where `ip=pool` may allocate (`["198.51.100.100-198.51.100.150"]`); absent: the
    /// whole subnet. Written only when there are ranges, so files without stay Ganeti's
    /// shape; always present in the cache's positional encoding.
    #[serde(default)]
    allocation_ranges: Vec<AllocRange>,
    #[serde(default)]
    tags: BTreeSet<String>,
    serial_no: u64,
    ctime: f64,
    mtime: f64,
}

impl TryFrom<NetworkRepr> for Network {
    type Error = String;
    fn try_from(r: NetworkRepr) -> Result<Self, String> {
        let pool = match (r.network, &r.reservations, &r.ext_reservations) {
            (Some(net), Some(inst), Some(ext)) => {
                if net != net.trunc() {
                    return Err(format!("network {}: {net} has host bits set", r.name));
                }
                let mut pool = AddressPool::from_stored(net, inst, ext)
                    .map_err(|e| format!("network {}: {e}", r.name))?;
                pool.set_ranges(r.allocation_ranges);
                Some(pool)
            }
            (Some(_), _, _) => {
                return Err(format!(
                    "network {}: missing field `reservations` or `ext_reservations`",
                    r.name
                ));
            }
            // A gateway alone is kept, for `verify` to name it.
            (None, None, None) if r.allocation_ranges.is_empty() => None,
            (None, ..) => {
                return Err(format!(
                    "network {}: reservations or allocation ranges without an IPv4 subnet",
                    r.name
                ));
            }
        };
        Ok(Network {
            name: r.name,
            network: r.network,
            gateway: r.gateway,
            network6: r.network6,
            gateway6: r.gateway6,
            mac_prefix: r.mac_prefix,
            pool,
            tags: r.tags,
            serial_no: r.serial_no,
            ctime: r.ctime,
            mtime: r.mtime,
        })
    }
}

impl Network {
    /// The IPv4 subnet and its pool; `None` for an L2-only network.
    pub fn subnet(&self) -> Option<(Ipv4Net, &AddressPool)> {
        self.network.zip(self.pool.as_ref())
    }

    /// Whether `ip` lies in the IPv4 subnet (never, for an L2-only network).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.network.is_some_and(|n| n.contains(&ip))
    }
}

impl From<Network> for NetworkRepr {
    fn from(n: Network) -> Self {
        let (reservations, ext_reservations) = match n.pool.as_ref().map(AddressPool::to_stored) {
            Some((inst, ext)) => (Some(inst), Some(ext)),
            None => (None, None),
        };
        NetworkRepr {
            name: n.name,
            network: n.network,
            gateway: n.gateway,
            network6: n.network6,
            gateway6: n.gateway6,
            mac_prefix: n.mac_prefix,
            reservations,
            ext_reservations,
            allocation_ranges: n
                .pool
                .as_ref()
                .map_or_else(Vec::new, |p| p.ranges().to_vec()),
            tags: n.tags,
            serial_no: n.serial_no,
            ctime: n.ctime,
            mtime: n.mtime,
        }
    }
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl ClusterConfig {
    /// A fresh cluster: this host as master, one `default` group.
    pub fn new() -> Self {
        let t = now();
        let host = this_host();
        let mut nodegroups = BTreeMap::new();
        nodegroups.insert(
            new_uuid(),
            NodeGroup {
                name: GroupName::default_group(),
                networks: BTreeMap::new(),
                tags: BTreeSet::new(),
                serial_no: 1,
                ctime: t,
                mtime: t,
            },
        );
        ClusterConfig {
            version: CONFIG_VERSION,
            cluster: Cluster {
                name: host.clone(),
                master_node: host,
                mac_prefix: MacPrefix::DEFAULT,
                default_nicparams: NicParams::ganeti_default(),
                master_ip: None,
                serial_no: 1,
                ctime: t,
                mtime: t,
            },
            nodegroups,
            nodes: BTreeMap::new(),
            networks: BTreeMap::new(),
            instances: Instances::default(),
            origin: Origin::default(),
        }
    }

    /// UUID of the network called `name` (a UUID is accepted too, as Ganeti does). The
    /// lookups' errors show `name` escaped: it is the user's text, not a checked name.
    pub fn network_uuid(&self, name: &str) -> Result<String, GntError> {
        find(&self.networks, name, |n| n.name.as_str())
            .ok_or_else(|| GntError::noent(format!("Network '{}' not found", printable(name))))
    }

    pub fn group_uuid(&self, name: &str) -> Result<String, GntError> {
        find(&self.nodegroups, name, |g| g.name.as_str())
            .ok_or_else(|| GntError::noent(format!("Node group '{}' not found", printable(name))))
    }

    pub fn node_uuid(&self, name: &str) -> Result<String, GntError> {
        find(&self.nodes, name, |n| n.name.as_str())
            .ok_or_else(|| GntError::noent(format!("Node '{}' not found", printable(name))))
    }

    pub fn instance_uuid(&self, name: &str) -> Result<String, GntError> {
        self.instances
            .key_of(name)
            .ok_or_else(|| GntError::noent(format!("Instance '{}' not known", printable(name))))
    }

    /// Instances whose NICs use network `net_uuid`, in UUID (map) order as Ganeti 3.0.
    pub fn instances_on_network(&self, net_uuid: &str) -> Vec<(String, Instance)> {
        self.instances.on_network(net_uuid)
    }

    /// Lets the next commit of this configuration skip the invariant check: for a repair
    /// that fixes what it can and leaves the rest to `gnt-cluster verify`.
    pub fn skip_commit_check(&mut self) {
        self.origin.skip_commit_check = true;
    }

    /// The MACs in use by instance NICs (looked up one by one in a remote store).
    pub fn macs_in_use(&self) -> MacsInUse {
        self.instances.macs_in_use()
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self::new()
    }
}

fn find<T>(map: &BTreeMap<String, T>, key: &str, name: impl Fn(&T) -> &str) -> Option<String> {
    if map.contains_key(key) {
        return Some(key.to_owned());
    }
    map.iter()
        .find(|(_, v)| name(v) == key)
        .map(|(k, _)| k.clone())
}
