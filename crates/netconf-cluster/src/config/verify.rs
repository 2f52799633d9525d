//! The invariants of a configuration that the commands rely on: every pool bit has exactly
//! one owner (an instance NIC or an external reservation) and every owner its bit, no IPv4
//! address twice in a network, no MAC twice in the cluster, network, broadcast and gateway
//! reserved, allocation ranges inside their subnet and apart, every reference (NIC → network, network → group connection, instance → group
//! and node, node → group) resolving, names unique, serial numbers sane.
//!
//! [`verify`] checks all of them and words each problem as Ganeti's `gnt-cluster verify`
//! does. [`check_commit`] runs before every commit: a configuration loaded from the
//! snapshot cache was clean when that cache was written (only clean configurations get
//! one), so it is enough to check what the command can have changed, and that is done on
//! the cache's instance index without decoding instances. A configuration parsed from TOML
//! (a hand edit, a missing cache) is checked in full.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

pub use super::finding::{Finding, Level};
use super::index;
use super::instance::{Instance, NicParams};
use super::model::{ClusterConfig, Network};
use crate::ops::instance::{MAX_NICS, normalize_vlan};
use crate::pool::{AddressPool, Kind, range_problems};
use netconf::mac::MacAddr;
use netconf::nicmode::NicMode;

/// Error codes, after Ganeti's `CV_E*` names where Ganeti has the check.
pub mod codes {
    pub const CLUSTER_CFG: &str = "ECLUSTERCFG";
    pub const DANGLING_NODES: &str = "ECLUSTERDANGLINGNODES";
    pub const DANGLING_INST: &str = "ECLUSTERDANGLINGINST";
    pub const DUP_MAC: &str = "ECLUSTERDUPMAC";
    pub const GROUP_CFG: &str = "EGROUPCFG";
    pub const NODE_CFG: &str = "ENODECFG";
    pub const NET_CFG: &str = "ENETWORKCFG";
    pub const NET_POOL: &str = "ENETWORKPOOL";
    pub const NET_DUP_IP: &str = "ENETWORKDUPIP";
    pub const INST_CFG: &str = "EINSTANCECFG";
    pub const INST_NIC: &str = "EINSTANCENIC";
    pub const SERIAL: &str = "ESERIAL";
    /// Not Ganeti's: the etcd store's name and MAC index keys (`etcd/audit.rs`).
    pub const STORE_INDEX: &str = "ECLUSTERINDEX";
}

/// Every code with what it covers, for the man page and `--ignore-errors`.
pub const CODES: [(&str, &str); 13] = [
    (codes::CLUSTER_CFG, "cluster parameters"),
    (
        codes::DANGLING_NODES,
        "a node in a node group that does not exist",
    ),
    (
        codes::DANGLING_INST,
        "an instance whose node or group does not exist",
    ),
    (codes::DUP_MAC, "a MAC address used by two NICs"),
    (codes::GROUP_CFG, "node group names and network connections"),
    (codes::NODE_CFG, "node names"),
    (
        codes::NET_CFG,
        "network names, gateways, network and broadcast addresses, allocation ranges",
    ),
    (
        codes::NET_POOL,
        "pool bits without an owner, owners without their bit",
    ),
    (
        codes::NET_DUP_IP,
        "an address used by two NICs of a network",
    ),
    (codes::INST_CFG, "instance names, nodes and groups"),
    (
        codes::INST_NIC,
        "NIC networks, connections, addresses and parameters",
    ),
    (codes::SERIAL, "serial numbers and timestamps"),
    (
        codes::STORE_INDEX,
        "etcd only: index keys of instance names and MACs",
    ),
];

/// At most this many problems of one kind are listed per network; the rest are counted.
const LIST_LIMIT: usize = 10;

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn push(
        &mut self,
        level: Level,
        code: &'static str,
        kind: &'static str,
        item: &str,
        msg: String,
    ) {
        self.0.push(Finding {
            level,
            code,
            kind,
            item: item.to_owned(),
            msg,
        });
    }

    fn error(&mut self, code: &'static str, kind: &'static str, item: &str, msg: String) {
        self.push(Level::Error, code, kind, item, msg);
    }

    fn warn(&mut self, code: &'static str, kind: &'static str, item: &str, msg: String) {
        self.push(Level::Warning, code, kind, item, msg);
    }

    fn has_errors(&self) -> bool {
        self.0.iter().any(|f| f.level == Level::Error)
    }

    /// Serial number and timestamps of one object.
    fn serial(
        &mut self,
        kind: &'static str,
        item: &str,
        serial: u64,
        cluster: u64,
        times: (f64, f64),
    ) {
        if serial == 0 {
            self.warn(
                codes::SERIAL,
                kind,
                item,
                "serial number is 0 (objects start at 1)".into(),
            );
        } else if serial > cluster {
            self.warn(
                codes::SERIAL,
                kind,
                item,
                format!("serial number {serial} is larger than the cluster's ({cluster})"),
            );
        }
        let (ctime, mtime) = times;
        if !(ctime.is_finite() && mtime.is_finite() && ctime >= 0.0 && mtime >= 0.0) {
            self.warn(
                codes::SERIAL,
                kind,
                item,
                "ctime or mtime is not a valid time".into(),
            );
        } else if ctime > mtime {
            self.warn(
                codes::SERIAL,
                kind,
                item,
                format!("created ({ctime:.6}) after its last change ({mtime:.6})"),
            );
        }
    }
}

/// The NICs (instance name, NIC index) holding each address of a network.
type Owners<'a> = BTreeMap<Ipv4Addr, Vec<(&'a str, usize)>>;

/// Every problem of `cfg`, in a stable order. Decodes every instance.
pub fn verify(cfg: &ClusterConfig) -> Vec<Finding> {
    let mut r = Report::default();
    heads(cfg, &mut r);
    let all = cfg.instances.all_decoded();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut macs: HashMap<MacAddr, (&str, usize)> = HashMap::new();
    let mut owners: HashMap<&str, Owners<'_>> = HashMap::new();
    for inst in all.values() {
        *names.entry(&inst.name).or_default() += 1;
        instance_local(cfg, inst, &mut r);
        for (idx, nic) in inst.nics.iter().enumerate() {
            if let Some((other, oidx)) = macs.get(&nic.mac) {
                r.error(
                    codes::DUP_MAC,
                    "instance",
                    &inst.name,
                    format!(
                        "NIC {idx} has MAC {} of instance {other} NIC {oidx}",
                        nic.mac
                    ),
                );
            } else {
                macs.insert(nic.mac, (&inst.name, idx));
            }
            if let (Some(net), Some(ip)) = (&nic.network, nic.ipv4())
                && cfg.networks.get(net).is_some_and(|n| n.contains(ip))
            {
                owners
                    .entry(net)
                    .or_default()
                    .entry(ip)
                    .or_default()
                    .push((&inst.name, idx));
            }
        }
    }
    let mut dups: Vec<&str> = names
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect();
    dups.sort_unstable();
    for name in dups {
        r.error(
            codes::INST_CFG,
            "instance",
            name,
            "name used by more than one instance".into(),
        );
    }
    let empty = BTreeMap::new();
    for (uuid, net) in &cfg.networks {
        if let Some(p) = &net.pool {
            pool(
                &net.name,
                p,
                owners.get(uuid.as_str()).unwrap_or(&empty),
                &mut r,
            );
        }
    }
    r.0
}

/// The errors of [`verify`].
pub fn errors(cfg: &ClusterConfig) -> Vec<Finding> {
    if checks_skipped() {
        return Vec::new();
    }
    verify(cfg)
        .into_iter()
        .filter(|f| f.level == Level::Error)
        .collect()
}

/// Whether a configuration about to be committed keeps every invariant; its errors if not.
/// Exact for a configuration parsed from TOML or decoded in full; otherwise a check of
/// the whole cluster on the instance index proves it clean, and only a configuration it
/// cannot prove clean is verified in full (for the messages).
pub fn check_commit(cfg: &ClusterConfig) -> Result<(), Vec<Finding>> {
    if cfg.origin.skip_commit_check || checks_skipped() {
        return Ok(());
    }
    if cfg.instances.is_remote_lazy() {
        if let Some(base) = &cfg.origin.base
            && remote_clean(cfg, base)
        {
            return Ok(());
        }
    } else if !cfg.origin.parsed_from_toml && !cfg.instances.is_full() && quick_clean(cfg) {
        return Ok(());
    }
    let errors = errors(cfg);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Cluster, groups, nodes and networks (without pools): a few objects, checked exactly.
fn heads(cfg: &ClusterConfig, r: &mut Report) {
    let c = &cfg.cluster;
    let cs = c.serial_no;
    if cs == 0 {
        r.error(
            codes::CLUSTER_CFG,
            "cluster",
            "",
            "serial number is 0 (every commit adds 1, starting at 1)".into(),
        );
    }
    if let Some(why) = params_problem(&c.default_nicparams) {
        r.error(
            codes::CLUSTER_CFG,
            "cluster",
            "",
            format!("default NIC parameters: {why}"),
        );
    }

    let mut names = HashMap::new();
    for (uuid, g) in &cfg.nodegroups {
        if let Some(other) = names.insert(&g.name, uuid) {
            r.error(
                codes::GROUP_CFG,
                "group",
                &g.name,
                format!("name used by node groups {other} and {uuid}"),
            );
        }
        for (net, p) in &g.networks {
            match cfg.networks.get(net) {
                None => r.error(
                    codes::GROUP_CFG,
                    "group",
                    &g.name,
                    format!("connected to network {net}, which does not exist"),
                ),
                Some(n) => {
                    if let Some(why) = params_problem(p) {
                        r.error(
                            codes::GROUP_CFG,
                            "group",
                            &g.name,
                            format!("connection to network {}: {why}", n.name),
                        );
                    }
                }
            }
        }
        r.serial("group", &g.name, g.serial_no, cs, (g.ctime, g.mtime));
    }

    let mut names = HashMap::new();
    for (uuid, n) in &cfg.nodes {
        if let Some(other) = names.insert(&n.name, uuid) {
            r.error(
                codes::NODE_CFG,
                "node",
                &n.name,
                format!("name used by nodes {other} and {uuid}"),
            );
        }
        if !cfg.nodegroups.contains_key(&n.group) {
            r.error(
                codes::DANGLING_NODES,
                "node",
                &n.name,
                format!("belongs to node group {}, which does not exist", n.group),
            );
        }
        r.serial("node", &n.name, n.serial_no, cs, (n.ctime, n.mtime));
    }

    let mut names = HashMap::new();
    for (uuid, n) in &cfg.networks {
        let name = n.name.as_str();
        if let Some(other) = names.insert(name, uuid) {
            r.error(
                codes::NET_CFG,
                "network",
                name,
                format!("name used by networks {other} and {uuid}"),
            );
        }
        match n.subnet() {
            Some((net, pool)) => ipv4_subnet(n, net, pool, r),
            // An L2-only network: nothing of IPv4 may hang on it.
            None => {
                if n.network.is_some() || n.pool.is_some() {
                    r.error(
                        codes::NET_CFG,
                        "network",
                        name,
                        "IPv4 subnet without its address pool, or a pool without a subnet".into(),
                    );
                }
                if let Some(gw) = n.gateway {
                    r.error(
                        codes::NET_CFG,
                        "network",
                        name,
                        format!("gateway {gw} on a network without an IPv4 subnet"),
                    );
                }
            }
        }
        // As `gnt-network` accepts it: inside the IPv6 subnet, or link-local.
        if let (Some(n6), Some(g6)) = (n.network6, n.gateway6) {
            let link_local = Ipv6Net::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);
            if !n6.contains(&g6) && !link_local.is_ok_and(|l| l.contains(&g6)) {
                r.error(
                    codes::NET_CFG,
                    "network",
                    name,
                    format!("IPv6 gateway {g6} is neither inside {n6} nor link-local"),
                );
            }
        }
        r.serial("network", name, n.serial_no, cs, (n.ctime, n.mtime));
    }
    // Overlaps are allowed with --no-conflicts-check; a pool then cannot see the other's use.
    let nets: Vec<_> = cfg
        .networks
        .values()
        .filter_map(|n| n.network.map(|net| (n, net)))
        .collect();
    for (i, (a, an)) in nets.iter().enumerate() {
        for (b, bn) in &nets[i + 1..] {
            if an.contains(&bn.network()) || bn.contains(&an.network()) {
                r.warn(
                    codes::NET_CFG,
                    "network",
                    &a.name,
                    format!(
                        "{an} overlaps network {} ({bn}): their pools hand out the same addresses",
                        b.name
                    ),
                );
            }
        }
    }
}

/// A network's IPv4 side: fixed reservations, gateway, allocation ranges.
fn ipv4_subnet(n: &Network, net: Ipv4Net, pool: &AddressPool, r: &mut Report) {
    let name = n.name.as_str();
    let ext = |ip: Ipv4Addr| pool.is_reserved(ip, Kind::External).unwrap_or(false);
    for (what, ip) in [
        ("network address", net.network()),
        ("broadcast address", net.broadcast()),
    ] {
        if !ext(ip) {
            r.error(
                codes::NET_CFG,
                "network",
                name,
                format!("{what} {ip} is not externally reserved"),
            );
        }
    }
    if let Some(gw) = n.gateway {
        if !net.contains(&gw) {
            r.error(
                codes::NET_CFG,
                "network",
                name,
                format!("gateway {gw} is outside {net}"),
            );
        } else if !ext(gw) {
            r.error(
                codes::NET_CFG,
                "network",
                name,
                format!("gateway {gw} is not externally reserved"),
            );
        }
    }
    // Checked here, not when the file is read, so that a hand edit is named, not refused.
    for problem in range_problems(net, pool.ranges()) {
        r.error(codes::NET_CFG, "network", name, problem);
    }
}

/// Why NIC parameters cannot be used, if they cannot.
fn params_problem(p: &NicParams) -> Option<String> {
    if p.mode == NicMode::Bridged && p.link.is_empty() {
        return Some("bridged without a link".into());
    }
    // Connections keep the VLAN as given (`100` stands for `.100`).
    match normalize_vlan(&p.vlan) {
        Ok(_) => None,
        Err(_) => Some(format!("invalid VLAN '{}'", p.vlan)),
    }
}

/// What one instance must hold on its own: its group and node, its NICs' networks,
/// connections, addresses, names and parameters.
fn instance_local(cfg: &ClusterConfig, inst: &Instance, r: &mut Report) {
    let name = inst.name.as_str();
    let group = cfg.nodegroups.get(&inst.group);
    if group.is_none() {
        r.error(
            codes::DANGLING_INST,
            "instance",
            name,
            format!("belongs to node group {}, which does not exist", inst.group),
        );
    }
    if let Some(node) = &inst.primary_node {
        match cfg.nodes.get(node) {
            None => r.error(
                codes::DANGLING_INST,
                "instance",
                name,
                format!("primary node {node} does not exist"),
            ),
            Some(n) if n.group != inst.group => r.error(
                codes::INST_CFG,
                "instance",
                name,
                format!(
                    "primary node {} is in node group {}, the instance in {}",
                    n.name,
                    group_name(cfg, &n.group),
                    group_name(cfg, &inst.group)
                ),
            ),
            Some(_) => {}
        }
    }
    if inst.nics.len() > MAX_NICS {
        r.error(
            codes::INST_CFG,
            "instance",
            name,
            format!(
                "has {} NICs, at most {MAX_NICS} are allowed",
                inst.nics.len()
            ),
        );
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for nic in &inst.nics {
        if !seen.insert(&nic.uuid) {
            r.error(
                codes::INST_CFG,
                "instance",
                name,
                format!("NIC UUID {} used twice", nic.uuid),
            );
        }
    }
    for (idx, nic) in inst.nics.iter().enumerate() {
        if let Some(n) = &nic.name {
            if n.parse::<i64>().is_ok() {
                r.error(
                    codes::INST_NIC,
                    "instance",
                    name,
                    format!("NIC {idx} has the numeric name '{n}'"),
                );
            } else if !seen.insert(n) {
                r.error(
                    codes::INST_NIC,
                    "instance",
                    name,
                    format!("NIC {idx} name '{n}' is not unique"),
                );
            }
        }
        if let Some(why) = params_problem(&nic.params()) {
            r.error(
                codes::INST_NIC,
                "instance",
                name,
                format!("NIC {idx}: {why}"),
            );
        }
        let Some(net_uuid) = &nic.network else {
            if nic.mode == NicMode::Routed && nic.ip.is_none() {
                r.warn(
                    codes::INST_NIC,
                    "instance",
                    name,
                    format!("NIC {idx} is routed without an IP address or a network"),
                );
            }
            if let (Some(ip), Some(g)) = (nic.ipv4(), group) {
                for nu in g.networks.keys() {
                    if let Some(n) = cfg.networks.get(nu).filter(|n| n.contains(ip)) {
                        r.warn(
                            codes::INST_NIC,
                            "instance",
                            name,
                            format!(
                                "NIC {idx} has IP {ip} of network {}, but is not on it",
                                n.name
                            ),
                        );
                    }
                }
            }
            continue;
        };
        let Some(net) = cfg.networks.get(net_uuid) else {
            r.error(
                codes::INST_NIC,
                "instance",
                name,
                format!("NIC {idx} is on network {net_uuid}, which does not exist"),
            );
            continue;
        };
        match group.map(|g| g.networks.get(net_uuid)) {
            Some(None) => r.error(
                codes::INST_NIC,
                "instance",
                name,
                format!(
                    "NIC {idx} is on network {}, which is not connected to node group {}",
                    net.name,
                    group_name(cfg, &inst.group)
                ),
            ),
            Some(Some(p)) if *p != nic.params() => r.warn(
                codes::INST_NIC,
                "instance",
                name,
                format!(
                    "NIC {idx} has (mode:{} link:{} vlan:{}), network {}'s connection to node group {} has (mode:{} link:{} vlan:{})",
                    nic.mode, nic.link, nic.vlan, net.name, group_name(cfg, &inst.group), p.mode, p.link, p.vlan
                ),
            ),
            _ => {}
        }
        match nic.ip {
            Some(IpAddr::V6(ip)) => r.error(
                codes::INST_NIC,
                "instance",
                name,
                format!(
                    "NIC {idx} on network {} has the IPv6 address {ip}; pools hold IPv4 addresses",
                    net.name
                ),
            ),
            Some(IpAddr::V4(ip)) if !net.contains(ip) => r.error(
                codes::INST_NIC,
                "instance",
                name,
                match net.network {
                    Some(subnet) => {
                        format!(
                            "NIC {idx} has IP {ip}, outside network {} ({subnet})",
                            net.name
                        )
                    }
                    None => format!(
                        "NIC {idx} has IP {ip}, but network {} has no IPv4 subnet",
                        net.name
                    ),
                },
            ),
            _ => {}
        }
    }
    r.serial(
        "instance",
        name,
        inst.serial_no,
        cfg.cluster.serial_no,
        (inst.ctime, inst.mtime),
    );
}

fn group_name<'a>(cfg: &'a ClusterConfig, uuid: &'a str) -> &'a str {
    cfg.nodegroups.get(uuid).map_or(uuid, |g| g.name.as_str())
}

/// One network's pool against the NICs that have addresses in it.
fn pool(name: &str, pool: &AddressPool, owners: &Owners<'_>, r: &mut Report) {
    // By instance name, not by UUID: the same file always reads the same.
    let who = |o: &[(&str, usize)]| {
        let mut o = o.to_vec();
        o.sort_unstable();
        o.iter()
            .map(|(i, n)| format!("instance {i} NIC {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut unmarked = Vec::new();
    for (ip, o) in owners {
        if o.len() > 1 {
            r.error(
                codes::NET_DUP_IP,
                "network",
                name,
                format!("IP {ip} is used by {}", who(o)),
            );
        }
        if !pool.is_reserved(*ip, Kind::Instance).unwrap_or(false) {
            unmarked.push(format!("{ip} ({})", who(o)));
        } else if pool.is_reserved(*ip, Kind::External).unwrap_or(false) {
            r.warn(
                codes::NET_POOL,
                "network",
                name,
                format!("IP {ip} of {} is also externally reserved", who(o)),
            );
        }
    }
    let leaked: Vec<String> = pool
        .instance_reservations()
        .into_iter()
        .filter(|ip| !owners.contains_key(ip))
        .map(|ip| ip.to_string())
        .collect();
    for (list, what) in [
        (
            unmarked,
            "not marked as used in the pool, which can hand them out again",
        ),
        (leaked, "marked as used by an instance, but no NIC has them"),
    ] {
        for chunk in list.chunks(LIST_LIMIT).take(1) {
            let more = list.len() - chunk.len();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            r.error(
                codes::NET_POOL,
                "network",
                name,
                format!("addresses {what}: {}{tail}", chunk.join(", ")),
            );
        }
    }
}

/// The whole cluster on the instance index: true if it proves every invariant that
/// spans instances (pools, MACs, references). Instances changed since load are checked
/// in full; the others were when the configuration was committed.
fn quick_clean(cfg: &ClusterConfig) -> bool {
    let mut r = Report::default();
    heads(cfg, &mut r);
    for (_, inst) in cfg.instances.changed() {
        instance_local(cfg, inst, &mut r);
    }
    if r.has_errors() {
        return false;
    }
    // Hints stand for UUIDs; should two collide, the exact check decides. Sorted vectors,
    // not hash maps: 10,000 instances make 40,000 look-ups, and hashing them cost more
    // than the rest of the scan.
    // `None`: an L2-only network, on which no NIC may have an address.
    let mut nets: Vec<(u32, &str, Option<AddressPool>)> = Vec::with_capacity(cfg.networks.len());
    for (uuid, n) in &cfg.networks {
        let fresh = match n.network {
            Some(net) => match AddressPool::empty(net) {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
            None => None,
        };
        nets.push((index::hint(uuid), uuid, fresh));
    }
    nets.sort_unstable_by_key(|n| n.0);
    let mut groups: Vec<u32> = cfg.nodegroups.keys().map(|g| index::hint(g)).collect();
    groups.sort_unstable();
    let mut nodes: Vec<(u32, u32)> = cfg
        .nodes
        .iter()
        .map(|(u, n)| (index::hint(u), index::hint(&n.group)))
        .collect();
    nodes.sort_unstable();
    let unique = |v: Vec<u32>| v.windows(2).all(|w| w[0] != w[1]);
    if !unique(nets.iter().map(|n| n.0).collect())
        || !unique(groups.clone())
        || !unique(nodes.iter().map(|n| n.0).collect())
    {
        return false;
    }
    let mut conns: Vec<(u32, u32)> = cfg
        .nodegroups
        .iter()
        .flat_map(|(g, grp)| {
            grp.networks
                .keys()
                .map(move |n| (index::hint(g), index::hint(n)))
        })
        .collect();
    conns.sort_unstable();
    // The stored instances' MACs were unique when committed: only the changed instances'
    // MACs can clash, and each must be seen exactly once.
    let mut watch: Vec<(MacAddr, u32)> = cfg
        .instances
        .changed()
        .flat_map(|(_, i)| i.nics.iter().map(|n| (n.mac, 0)))
        .collect();
    watch.sort_unstable();
    let mut ok = true;
    // Neighbouring instances mostly share group and node: their check is remembered.
    let mut placed_ok: Option<(u32, u32)> = None;
    cfg.instances.for_each_summary(|group, node, nics| {
        if !ok {
            return;
        }
        if placed_ok != Some((group, node)) {
            let node_ok = node == 0
                || nodes
                    .binary_search_by_key(&node, |n| n.0)
                    .is_ok_and(|i| nodes[i].1 == group);
            if groups.binary_search(&group).is_err() || !node_ok {
                ok = false;
                return;
            }
            placed_ok = Some((group, node));
        }
        for (mac, net, ip) in nics {
            if let Ok(i) = watch.binary_search_by_key(&mac, |w| w.0) {
                watch[i].1 += 1;
            }
            if net == 0 {
                continue;
            }
            let Ok(i) = nets.binary_search_by_key(&net, |n| n.0) else {
                ok = false;
                return;
            };
            if conns.binary_search(&(group, net)).is_err() {
                ok = false;
                return;
            }
            // Outside the subnet or a second owner: both refuse.
            if let Some(ip) = ip
                && nets[i]
                    .2
                    .as_mut()
                    .is_none_or(|p| p.reserve(ip, Kind::Instance).is_err())
            {
                ok = false;
                return;
            }
        }
    });
    if !ok {
        return false;
    }
    for (_, uuid, fresh) in &nets {
        let same = match (&cfg.networks[*uuid].pool, fresh) {
            (Some(p), Some(fresh)) => p.same_bits(fresh, Kind::Instance),
            (None, None) => true,
            _ => false,
        };
        if !same {
            return false;
        }
    }
    // A MAC given twice among the changed instances sits twice in `watch`, counted once.
    watch.windows(2).all(|w| w[0].0 != w[1].0) && watch.iter().all(|w| w.1 == 1)
}

/// A configuration whose instances live in a remote store (etcd) and were read only in
/// part, against the snapshot it was read from (`base`): true if it proves every
/// invariant. Reading every instance to check a change of one would cost a large cluster
/// more than the whole command may, and is not needed: the snapshot kept every invariant
/// (each commit was checked so, back to a copy that was verified in full), so by induction
/// it is enough that
///  * the heads (cluster, groups, nodes, networks) are clean, and none of them that an
///    unchanged instance may lean on went away (a group, node or network, a connection, a
///    node's group, a subnet; otherwise the full check runs);
///  * each changed instance is clean on its own, and no name or MAC is given twice among
///    them (against the other instances the store's name and MAC index keys, created
///    only if absent within the commit's transaction, keep them unique);
///  * each network's pool changed by exactly the addresses the changed instances gave up
///    and took: then every bit still has exactly one owner, and no address taken is held
///    by an instance that did not change (its bit was set, so taking it changes nothing
///    and the counts differ).
///
/// A hand edit of the store that broke an invariant is not seen here; `gnt-cluster
/// verify` reads everything and reports it.
fn remote_clean(cfg: &ClusterConfig, base: &super::model::Heads) -> bool {
    let Some(remote) = cfg.instances.remote() else {
        return false;
    };
    let mut r = Report::default();
    heads(cfg, &mut r);
    if r.has_errors() {
        return false;
    }
    let kept_groups = base.nodegroups.iter().all(|(u, g)| {
        cfg.nodegroups
            .get(u)
            .is_some_and(|n| g.networks.keys().all(|k| n.networks.contains_key(k)))
    });
    let kept_nodes = base
        .nodes
        .iter()
        .all(|(u, n)| cfg.nodes.get(u).is_some_and(|m| m.group == n.group));
    let kept_nets = base
        .networks
        .iter()
        .all(|(u, n)| cfg.networks.get(u).is_some_and(|m| m.network == n.network));
    if !(kept_groups && kept_nodes && kept_nets) {
        return false;
    }
    let mut names: HashSet<&str> = HashSet::new();
    let mut macs: HashSet<MacAddr> = HashSet::new();
    // Per network: addresses given up and taken by the changed instances.
    let mut freed: HashMap<&str, Vec<Ipv4Addr>> = HashMap::new();
    let mut taken: HashMap<&str, Vec<Ipv4Addr>> = HashMap::new();
    let olds: Vec<(Option<Instance>, Option<&Instance>)> = cfg
        .instances
        .overlay()
        .iter()
        // Never read: absent at the snapshot, which the commit compares.
        .map(|(k, v)| (remote.known(k).flatten(), v.as_ref()))
        .collect();
    for (old, new) in &olds {
        if let Some(i) = new {
            instance_local(cfg, i, &mut r);
            if !names.insert(i.name.as_str()) || i.nics.iter().any(|n| !macs.insert(n.mac)) {
                return false;
            }
        }
        for (inst, into) in [(old.as_ref(), &mut freed), (*new, &mut taken)] {
            for nic in inst.iter().flat_map(|i| &i.nics) {
                if let (Some(net), Some(ip)) = (&nic.network, nic.ipv4()) {
                    into.entry(net.as_str()).or_default().push(ip);
                }
            }
        }
    }
    if r.has_errors() {
        return false;
    }
    for (uuid, net) in &cfg.networks {
        let (f, t) = (freed.get(uuid.as_str()), taken.get(uuid.as_str()));
        let old = base.networks.get(uuid);
        if f.is_none() && t.is_none() && old.is_some_and(|o| o.pool == net.pool) {
            continue;
        }
        let Some(new_pool) = &net.pool else {
            // An L2-only network: no NIC on it may have an address.
            if t.is_some() {
                return false;
            }
            continue;
        };
        let mut expect = match old.and_then(|o| o.pool.clone()) {
            Some(p) => p,
            None => match net.network.map(AddressPool::empty) {
                Some(Ok(p)) => p,
                _ => return false,
            },
        };
        for ip in f.into_iter().flatten() {
            if expect.release(*ip, Kind::Instance).is_err() {
                return false;
            }
        }
        for ip in t.into_iter().flatten() {
            if expect.reserve(*ip, Kind::Instance).is_err() {
                return false;
            }
        }
        if !expect.same_bits(new_pool, Kind::Instance) {
            return false;
        }
    }
    // Addresses on networks that are gone were refused above (a network went away).
    freed
        .keys()
        .chain(taken.keys())
        .all(|n| cfg.networks.contains_key(*n))
}

/// One change `repair_pools` made (or would make).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    pub network: String,
    pub msg: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network {}: {}", self.network, self.msg)
    }
}

/// Rebuilds every pool's instance bits from the NICs on the network, and reserves network,
/// broadcast and gateway addresses externally where they are not. External reservations
/// are owners in their own right and are kept. What pools cannot fix (an address used by
/// two NICs, one outside its network) is left to the operator; `verify` still reports it.
pub fn repair_pools(cfg: &mut ClusterConfig) -> Vec<Repair> {
    let mut used: HashMap<String, BTreeMap<Ipv4Addr, (String, usize)>> = HashMap::new();
    for inst in cfg.instances.all_decoded().values() {
        for (idx, nic) in inst.nics.iter().enumerate() {
            if let (Some(net), Some(ip)) = (&nic.network, nic.ipv4()) {
                used.entry(net.clone())
                    .or_default()
                    .entry(ip)
                    .or_insert_with(|| (inst.name.to_string(), idx));
            }
        }
    }
    let mut out = Vec::new();
    let t = super::model::now();
    for (uuid, net) in cfg.networks.iter_mut() {
        // An L2-only network has no pool to repair.
        let (Some(subnet), Some(pool)) = (net.network, net.pool.as_mut()) else {
            continue;
        };
        let mut changes = Vec::new();
        let empty = BTreeMap::new();
        let owners = used.get(uuid).unwrap_or(&empty);
        for ip in pool.instance_reservations() {
            if !owners.contains_key(&ip) && pool.release(ip, Kind::Instance).is_ok() {
                changes.push(format!("released {ip}, which no NIC has"));
            }
        }
        for (ip, (inst, idx)) in owners {
            if pool.is_reserved(*ip, Kind::Instance) == Ok(false)
                && pool.reserve(*ip, Kind::Instance).is_ok()
            {
                changes.push(format!("marked {ip} as used by instance {inst} NIC {idx}"));
            }
        }
        let mut fixed = vec![
            ("network address", subnet.network()),
            ("broadcast address", subnet.broadcast()),
        ];
        fixed.extend(net.gateway.map(|g| ("gateway", g)));
        for (what, ip) in fixed {
            if pool.is_reserved(ip, Kind::External) == Ok(false)
                && pool.reserve(ip, Kind::External).is_ok()
            {
                changes.push(format!("reserved the {what} {ip} externally"));
            }
        }
        if !changes.is_empty() {
            net.serial_no += 1;
            net.mtime = t;
        }
        out.extend(changes.into_iter().map(|msg| Repair {
            network: net.name.to_string(),
            msg,
        }));
    }
    out
}

#[cfg(test)]
thread_local! {
    static SKIP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// For the store's own tests, whose synthetic instances point at objects that do not exist.
#[cfg(test)]
pub(super) fn skip_checks_in_this_thread() {
    SKIP.with(|s| s.set(true));
}

fn checks_skipped() -> bool {
    #[cfg(test)]
    if SKIP.with(|s| s.get()) {
        return true;
    }
    false
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
