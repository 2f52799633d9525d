//! `gnt-network` operations: add, modify, remove, rename, connect, disconnect, tags.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::Feedback;
use super::parse::{check_gateway6, parse_ip4, parse_ip6, parse_net4, parse_net6};
use crate::config::{ClusterConfig, Network, NicParams, now, tags};
use crate::error::{ErrorCode, GntError, IntoGnt};
use crate::hooks::HookEnv;
use crate::pool::{AddressPool, AllocRange, Kind, range_problems};
use netconf::mac::MacPrefix;
use netconf::name::NetworkName;
use netconf::nicmode::NicMode;

/// Ganeti's keyword that clears an optional parameter in `modify`.
pub const NONE: &str = "none";

#[derive(Clone, Debug, Default)]
pub struct AddNetwork {
    pub name: String,
    pub network: Option<String>,
    pub gateway: Option<String>,
    pub network6: Option<String>,
    pub gateway6: Option<String>,
    pub mac_prefix: Option<String>,
    pub add_reserved_ips: Vec<String>,
    /// `--allocation-range` (beyond Ganeti): where `ip=pool` may allocate; none: anywhere.
    pub allocation_ranges: Vec<String>,
    pub tags: Vec<String>,
    /// Reserve node IPs and refuse overlapping subnets (`--no-conflicts-check` clears it).
    pub conflicts_check: bool,
}

const OP_ADD: &str = "OP_NETWORK_ADD";
const OP_SET: &str = "OP_NETWORK_SET_PARAMS";
const OP_CONNECT: &str = "OP_NETWORK_CONNECT";

fn parse_prefix(s: &str, op: &str) -> Result<MacPrefix, GntError> {
    if s.is_empty() {
        return Err(GntError::param(op, "mac_prefix"));
    }
    s.parse::<MacPrefix>()
        .map_err(|e| GntError::inval(e.to_string()))
}

/// The `NETWORK_*` hook variables Ganeti exports for add and modify.
pub fn network_hook_vars(n: &Network) -> Vec<(String, String)> {
    let mut v = vec![("NETWORK_NAME".to_owned(), n.name.to_string())];
    let mut opt = |k: &str, val: Option<String>| {
        if let Some(val) = val {
            v.push((k.to_owned(), val));
        }
    };
    // Ganeti leaves out what a network does not have; an L2-only network has no subnet.
    opt("NETWORK_SUBNET", n.network.map(|g| g.to_string()));
    opt("NETWORK_GATEWAY", n.gateway.map(|g| g.to_string()));
    opt("NETWORK_SUBNET6", n.network6.map(|g| g.to_string()));
    opt("NETWORK_GATEWAY6", n.gateway6.map(|g| g.to_string()));
    opt("NETWORK_MAC_PREFIX", n.mac_prefix.map(|g| g.to_string()));
    if !n.tags.is_empty() {
        v.push(("NETWORK_TAGS".to_owned(), join_tags(&n.tags)));
    }
    v
}

/// Allocation ranges as given on the command line.
fn parse_ranges<'a>(
    given: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<AllocRange>, GntError> {
    given
        .into_iter()
        .map(|s| {
            s.parse()
                .map_err(|e: crate::pool::RangeSyntax| GntError::inval(e.0))
        })
        .collect()
}

/// The first problem of `ranges` inside `net`, as a command's error.
fn check_ranges(net: ipnet::Ipv4Net, ranges: &[AllocRange]) -> Result<(), GntError> {
    match range_problems(net, ranges).into_iter().next() {
        None => Ok(()),
        Some(p) => {
            let mut chars = p.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            Err(GntError::inval(
                first.into_iter().chain(chars).collect::<String>(),
            ))
        }
    }
}

fn join_tags(t: &BTreeSet<String>) -> String {
    t.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}

fn network_env(op_code: &'static str, path: &'static str, vars: Vec<(String, String)>) -> HookEnv {
    HookEnv {
        op_code,
        path,
        object_type: "NETWORK",
        vars,
    }
}

pub fn add(
    cfg: &mut ClusterConfig,
    a: &AddNetwork,
    fb: &mut Feedback,
) -> Result<HookEnv, GntError> {
    // Client side, then opcode validation, in Ganeti's order. Without --network (Ganeti
    // requires it) the network is L2-only, and nothing IPv4 may be given.
    if a.network.is_none() {
        for (given, option) in [
            (a.gateway.is_some(), "--gateway"),
            (!a.add_reserved_ips.is_empty(), "--add-reserved-ips"),
            (!a.allocation_ranges.is_empty(), "--allocation-range"),
        ] {
            if given {
                return Err(GntError::inval(format!(
                    "The {option} option needs an IPv4 subnet (--network); a network without one is L2-only"
                )));
            }
        }
    }
    let name = NetworkName::parse(&a.name).map_err(|e| e.into_gnt(OP_ADD, "network_name"))?;
    let net = a
        .network
        .as_deref()
        .map(|n| parse_net4(OP_ADD, "network", n))
        .transpose()?;
    let gateway = a
        .gateway
        .as_deref()
        .map(|g| parse_ip4(OP_ADD, "gateway", g))
        .transpose()?;
    let network6 = a
        .network6
        .as_deref()
        .map(|n| parse_net6(OP_ADD, "network6", n))
        .transpose()?;
    let gateway6 = a
        .gateway6
        .as_deref()
        .map(|g| parse_ip6(OP_ADD, "gateway6", g))
        .transpose()?;
    let reserved: Vec<Ipv4Addr> = a
        .add_reserved_ips
        .iter()
        .map(|ip| parse_ip4(OP_ADD, "add_reserved_ips", ip))
        .collect::<Result<_, _>>()?;
    let mac_prefix = a
        .mac_prefix
        .as_deref()
        .map(|p| parse_prefix(p, OP_ADD))
        .transpose()?;
    let ranges = parse_ranges(&a.allocation_ranges)?;

    // CheckPrereq.
    if let Ok(uuid) = cfg.network_uuid(&a.name)
        && cfg.networks[&uuid].name == a.name
    {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!(
                "Desired network name '{}' already exists as a network (UUID: {uuid})",
                a.name
            ),
        ));
    }
    let mut tag_set = BTreeSet::new();
    tags::add(&mut tag_set, &a.tags)?;
    check_gateway6(network6, gateway6)?;
    let pool = match net {
        Some(net) => Some(ipv4_pool(cfg, a, net, gateway, reserved, ranges, fb)?),
        None => None,
    };
    let t = now();
    let network = Network {
        name,
        network: net,
        gateway,
        network6,
        gateway6,
        mac_prefix,
        pool,
        tags: tag_set,
        serial_no: 1,
        ctime: t,
        mtime: t,
    };
    let vars = network_hook_vars(&network);
    cfg.networks.insert(crate::config::new_uuid(), network);
    Ok(network_env(OP_ADD, "network-add", vars))
}

/// The rest of `add` for a network with an IPv4 subnet: its checks, then its pool.
fn ipv4_pool(
    cfg: &ClusterConfig,
    a: &AddNetwork,
    net: ipnet::Ipv4Net,
    gateway: Option<Ipv4Addr>,
    reserved: Vec<Ipv4Addr>,
    ranges: Vec<AllocRange>,
    fb: &mut Feedback,
) -> Result<AddressPool, GntError> {
    check_ranges(net, &ranges)?;
    if a.conflicts_check {
        // Ganeti never checked this; two networks sharing addresses hand out duplicates.
        if let Some((other, other_net)) = cfg.networks.values().find_map(|o| {
            o.network
                .filter(|on| on.contains(&net.network()) || net.contains(&on.network()))
                .map(|on| (o, on))
        }) {
            return Err(GntError::state(format!(
                "Network {net} overlaps with network '{}' ({other_net}); use --no-conflicts-check to add it anyway",
                other.name
            )));
        }
    }

    // Exec.
    let mut pool = AddressPool::initialize(net, gateway).map_err(|e| {
        GntError::Exec(format!(
            "Cannot create IP address pool for network '{}': {e}",
            a.name
        ))
    })?;
    if a.conflicts_check {
        for node in cfg.nodes.values() {
            for ip in [node.primary_ip, node.secondary_ip].into_iter().flatten() {
                if pool.contains(ip) {
                    match pool.reserve(ip, Kind::External) {
                        Ok(()) => fb.info(format!(
                            "Reserved IP address of node '{}' ({ip})",
                            node.name
                        )),
                        Err(e) => fb.warn(format!(
                            "Cannot reserve IP address '{ip}' of node '{}': {e}",
                            node.name
                        )),
                    }
                }
            }
        }
        if let Some(ip) = cfg.cluster.master_ip.filter(|ip| pool.contains(*ip)) {
            match pool.reserve(ip, Kind::External) {
                Ok(()) => fb.info(format!("Reserved cluster master IP address ({ip})")),
                Err(e) => fb.warn(format!(
                    "Cannot reserve cluster master IP address ({ip}): {e}"
                )),
            }
        }
    }
    for ip in reserved {
        pool.reserve(ip, Kind::External)
            .map_err(|e| GntError::Exec(format!("Cannot reserve IP address '{ip}': {e}")))?;
    }
    pool.set_ranges(ranges);
    Ok(pool)
}

#[derive(Clone, Debug, Default)]
pub struct ModifyNetwork {
    pub name: String,
    pub gateway: Option<String>,
    pub network6: Option<String>,
    pub gateway6: Option<String>,
    pub mac_prefix: Option<String>,
    pub add_reserved_ips: Option<Vec<String>>,
    pub remove_reserved_ips: Option<Vec<String>>,
    /// `--allocation-range`: replaces all ranges (`["none"]` clears them).
    pub allocation_ranges: Option<Vec<String>>,
    pub add_allocation_ranges: Option<Vec<String>>,
    pub remove_allocation_ranges: Option<Vec<String>>,
}

impl ModifyNetwork {
    pub fn is_empty(&self) -> bool {
        self.gateway.is_none()
            && self.network6.is_none()
            && self.gateway6.is_none()
            && self.mac_prefix.is_none()
            && self.add_reserved_ips.is_none()
            && self.remove_reserved_ips.is_none()
            && self.allocation_ranges.is_none()
            && self.add_allocation_ranges.is_none()
            && self.remove_allocation_ranges.is_none()
    }
}

/// `Some(None)` for the keyword `none`, `Some(Some(v))` for a value.
fn clearable<T>(
    v: Option<&str>,
    parse: impl Fn(&str) -> Result<T, GntError>,
) -> Result<Option<Option<T>>, GntError> {
    match v {
        None => Ok(None),
        Some(NONE) => Ok(Some(None)),
        Some(s) => parse(s).map(|x| Some(Some(x))),
    }
}

pub fn modify(
    cfg: &mut ClusterConfig,
    m: &ModifyNetwork,
    fb: &mut Feedback,
) -> Result<HookEnv, GntError> {
    if m.is_empty() {
        return Err(GntError::Usage(
            "Please give at least one of the parameters.".into(),
        ));
    }
    let gateway = clearable(m.gateway.as_deref(), |s| parse_ip4(OP_SET, "gateway", s))?;
    let network6 = clearable(m.network6.as_deref(), |s| parse_net6(OP_SET, "network6", s))?;
    let gateway6 = clearable(m.gateway6.as_deref(), |s| parse_ip6(OP_SET, "gateway6", s))?;
    let mac_prefix = clearable(m.mac_prefix.as_deref(), |s| parse_prefix(s, OP_SET))?;
    let parse_list = |l: &Option<Vec<String>>, field: &str| -> Result<Vec<Ipv4Addr>, GntError> {
        l.iter()
            .flatten()
            .map(|s| parse_ip4(OP_SET, field, s))
            .collect()
    };
    let add_ips = parse_list(&m.add_reserved_ips, "add_reserved_ips")?;
    let remove_ips = parse_list(&m.remove_reserved_ips, "remove_reserved_ips")?;
    if m.allocation_ranges.is_some()
        && (m.add_allocation_ranges.is_some() || m.remove_allocation_ranges.is_some())
    {
        return Err(GntError::inval(
            "Cannot set and add/remove allocation ranges at once",
        ));
    }
    let set_ranges = match m.allocation_ranges.as_deref() {
        None => None,
        Some([one]) if one == NONE => Some(Vec::new()),
        Some(list) if list.iter().any(|r| r == NONE) => {
            return Err(GntError::inval(
                "--allocation-range none clears the ranges and cannot be given with ranges",
            ));
        }
        Some(list) => Some(parse_ranges(list)?),
    };
    let add_ranges = parse_ranges(m.add_allocation_ranges.iter().flatten())?;
    let remove_ranges = parse_ranges(m.remove_allocation_ranges.iter().flatten())?;

    let uuid = cfg.network_uuid(&m.name)?;
    let net = cfg.networks.get_mut(&uuid).expect("looked up");
    if gateway.is_some() && (m.add_reserved_ips.is_some() || m.remove_reserved_ips.is_some()) {
        return Err(GntError::inval(
            "Cannot modify gateway and reserved ips at once",
        ));
    }

    // CheckPrereq on a copy; the network is replaced only when everything held.
    let mut new = net.clone();
    let mut pending_warnings = Vec::new();
    let ranges_given = set_ranges.is_some() || !add_ranges.is_empty() || !remove_ranges.is_empty();
    let (Some(subnet), Some(pool)) = (new.network, new.pool.as_mut()) else {
        // L2-only: only `--gateway none` (nothing to clear) is harmless.
        for (given, what) in [
            (matches!(gateway, Some(Some(_))), "a gateway"),
            (
                m.add_reserved_ips.is_some() || m.remove_reserved_ips.is_some(),
                "reserved IP addresses",
            ),
            (ranges_given, "allocation ranges"),
        ] {
            if given {
                return Err(GntError::inval(format!(
                    "Network '{}' has no IPv4 subnet: it cannot have {what}",
                    new.name
                )));
            }
        }
        modify_common(&mut new, mac_prefix, network6, gateway6)?;
        return Ok(commit_modify(net, new, pending_warnings, fb));
    };
    if let Some(gw) = gateway {
        match gw {
            Some(ip) if new.gateway == Some(ip) => {
                pending_warnings.push(format!("Gateway is already {ip}"))
            }
            Some(ip) => {
                if pool
                    .is_reserved(ip, Kind::Instance)
                    .map_err(|e| GntError::inval(e.to_string()))?
                {
                    return Err(GntError::state(format!(
                        "Gateway IP address '{ip}' is already reserved"
                    )));
                }
                // Ganeti reserved it blindly and the job crashed; refuse up front.
                if pool.is_reserved(ip, Kind::External).unwrap_or(false) {
                    return Err(GntError::state(format!(
                        "Gateway IP address '{ip}' is already externally reserved; remove it from the reserved IPs first"
                    )));
                }
                pool.reserve(ip, Kind::External)
                    .map_err(|e| GntError::Exec(e.to_string()))?;
                if let Some(old) = new.gateway {
                    let _ = pool.release(old, Kind::External);
                }
                new.gateway = Some(ip);
            }
            None => {
                // `--gateway none` also releases the old gateway's address.
                if let Some(old) = new.gateway.take() {
                    let _ = pool.release(old, Kind::External);
                }
            }
        }
    }
    if m.remove_reserved_ips.is_some() {
        let first = subnet.network();
        let last = subnet.broadcast();
        let protected: Vec<String> = remove_ips
            .iter()
            .filter(|ip| **ip == first || **ip == last)
            .map(ToString::to_string)
            .collect();
        if !protected.is_empty() {
            return Err(GntError::inval(format!(
                "Cannot unreserve the network or broadcast address of {subnet}: {}",
                protected.join(", ")
            )));
        }
    }
    for ip in &add_ips {
        if let Err(e) = pool.reserve(*ip, Kind::External) {
            pending_warnings.push(format!("Cannot reserve IP address {ip}: {e}"));
        }
    }
    for ip in &remove_ips {
        if new.gateway == Some(*ip) {
            pending_warnings.push("Cannot unreserve Gateway's IP".to_owned());
            continue;
        }
        if let Err(e) = pool.release(*ip, Kind::External) {
            pending_warnings.push(format!("Cannot release IP address {ip}: {e}"));
        }
    }
    if ranges_given {
        let mut ranges = set_ranges.unwrap_or_else(|| pool.ranges().to_vec());
        for r in &remove_ranges {
            // Unlike a reserved address, a range that is not there is an error: going on
            // would leave the pool allocating where the operator meant it to stop.
            let Some(i) = ranges.iter().position(|x| x == r) else {
                return Err(GntError::inval(format!(
                    "Allocation range {r} is not set on network '{}'",
                    new.name
                )));
            };
            ranges.remove(i);
        }
        ranges.extend(add_ranges);
        check_ranges(subnet, &ranges)?;
        pool.set_ranges(ranges);
    }
    modify_common(&mut new, mac_prefix, network6, gateway6)?;
    Ok(commit_modify(net, new, pending_warnings, fb))
}

/// What `modify` changes on every network, with or without an IPv4 subnet.
fn modify_common(
    new: &mut Network,
    mac_prefix: Option<Option<MacPrefix>>,
    network6: Option<Option<ipnet::Ipv6Net>>,
    gateway6: Option<Option<std::net::Ipv6Addr>>,
) -> Result<(), GntError> {
    if let Some(p) = mac_prefix {
        new.mac_prefix = p;
    }
    if let Some(n6) = network6 {
        new.network6 = n6;
    }
    if let Some(g6) = gateway6 {
        new.gateway6 = g6;
    }
    check_gateway6(new.network6, new.gateway6)
}

fn commit_modify(
    net: &mut Network,
    mut new: Network,
    pending_warnings: Vec<String>,
    fb: &mut Feedback,
) -> HookEnv {
    for w in pending_warnings {
        fb.warn(w);
    }
    new.serial_no += 1;
    new.mtime = now();
    let vars = network_hook_vars(&new);
    *net = new;
    network_env(OP_SET, "network-modify", vars)
}

/// Group names connected to a network, sorted.
fn connected_groups(cfg: &ClusterConfig, uuid: &str) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .nodegroups
        .values()
        .filter(|g| g.networks.contains_key(uuid))
        .map(|g| g.name.to_string())
        .collect();
    v.sort();
    v
}

pub fn remove(cfg: &mut ClusterConfig, name: &str, fb: &mut Feedback) -> Result<HookEnv, GntError> {
    let uuid = cfg.network_uuid(name)?;
    let net_name = cfg.networks[&uuid].name.to_string();
    let groups = connected_groups(cfg, &uuid);
    if !groups.is_empty() {
        fb.warn(format!(
            "Network '{net_name}' is connected to the following node groups: {}",
            groups.join(", ")
        ));
        return Err(GntError::state("Network still connected"));
    }
    // Ganeti relied on disconnect alone; NICs can still point here after group moves.
    let users: Vec<String> = cfg
        .instances_on_network(&uuid)
        .into_iter()
        .map(|(_, i)| i.name.into_string())
        .collect();
    if !users.is_empty() {
        return Err(GntError::state(format!(
            "Network '{net_name}' is still used by instances: {}",
            users.join(", ")
        )));
    }
    cfg.networks.remove(&uuid);
    Ok(network_env(
        "OP_NETWORK_REMOVE",
        "network-remove",
        vec![("NETWORK_NAME".into(), net_name)],
    ))
}

pub fn rename(cfg: &mut ClusterConfig, old: &str, new: &str) -> Result<HookEnv, GntError> {
    let new = NetworkName::parse(new).map_err(|e| e.into_gnt("OP_NETWORK_RENAME", "new_name"))?;
    let uuid = cfg.network_uuid(old)?;
    if let Some((other, _)) = cfg.networks.iter().find(|(_, n)| n.name == new) {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!("Desired new name '{new}' clashes with existing network (UUID: {other})"),
        ));
    }
    let net = cfg.networks.get_mut(&uuid).expect("looked up");
    let old_name = std::mem::replace(&mut net.name, new.clone());
    net.serial_no += 1;
    net.mtime = now();
    Ok(network_env(
        "OP_NETWORK_RENAME",
        "network-rename",
        vec![
            ("OLD_NAME".into(), old_name.into_string()),
            ("NEW_NAME".into(), new.into_string()),
        ],
    ))
}

/// `-N mode=…,link=…,vlan=…` before defaults are filled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawNicParams {
    pub mode: Option<String>,
    pub link: Option<String>,
    pub vlan: Option<String>,
}

/// Fills `raw` over the cluster defaults and validates it as Ganeti's opcode does (but
/// refusing `pool`, which Ganeti's NIC mode list let through).
pub fn connection_params(cfg: &ClusterConfig, raw: &RawNicParams) -> Result<NicParams, GntError> {
    fill_params(&cfg.cluster.default_nicparams, raw)
}

/// `raw` filled over `d`: the cluster defaults for a new connection, the current
/// parameters when a connected group is connected again (so only what is given changes).
fn fill_params(d: &NicParams, raw: &RawNicParams) -> Result<NicParams, GntError> {
    let mode = match &raw.mode {
        None => d.mode,
        Some(m) => m
            .parse::<NicMode>()
            .map_err(|_| GntError::param(OP_CONNECT, "network_mode"))?,
    };
    let link = raw.link.clone().unwrap_or_else(|| d.link.clone());
    if link.is_empty() {
        return Err(GntError::param(OP_CONNECT, "network_link"));
    }
    let vlan = raw.vlan.clone().unwrap_or_else(|| d.vlan.clone());
    Ok(NicParams { mode, link, vlan })
}

/// The groups named, or all of them (sorted by name) when none are.
fn target_groups(cfg: &ClusterConfig, groups: &[String]) -> Result<Vec<String>, GntError> {
    if groups.is_empty() {
        let mut all: Vec<(&str, &String)> = cfg
            .nodegroups
            .iter()
            .map(|(u, g)| (g.name.as_str(), u))
            .collect();
        all.sort();
        return Ok(all.into_iter().map(|(_, u)| u.clone()).collect());
    }
    groups.iter().map(|g| cfg.group_uuid(g)).collect()
}

/// `inst: nic0/ip, …` for NICs of the `candidates` in `group` that match `pred`.
fn nic_conflicts(
    candidates: &[(String, crate::config::Instance)],
    group: &str,
    pred: impl Fn(&crate::config::Nic) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (_, inst) in candidates.iter().filter(|(_, i)| i.group == group) {
        for (idx, nic) in inst.nics.iter().enumerate() {
            if pred(nic) {
                let ip = nic
                    .ip
                    .map_or_else(|| "None".to_owned(), |ip| ip.to_string());
                out.push(format!("{}: nic{idx}/{ip}", inst.name));
            }
        }
    }
    out
}

const CONFLICT: &str =
    "Conflicting IP addresses found;  remove/modify the corresponding network interfaces";

pub fn connect(
    cfg: &mut ClusterConfig,
    name: &str,
    raw: &RawNicParams,
    groups: &[String],
    conflicts_check: bool,
    fb: &mut Feedback,
) -> Result<Vec<HookEnv>, GntError> {
    let uuid = cfg.network_uuid(name)?;
    let fresh = connection_params(cfg, raw)?;
    let targets = target_groups(cfg, groups)?;
    let net = cfg.networks[&uuid].clone();
    let mut envs = Vec::new();
    for g in targets {
        let group_name = cfg.nodegroups[&g].name.to_string();
        let params = match cfg.nodegroups[&g].networks.get(&uuid) {
            Some(old) => fill_params(old, raw)?,
            None => fresh.clone(),
        };
        if let Some(old) = cfg.nodegroups[&g].networks.get(&uuid)
            && *old == params
        {
            fb.warn(format!(
                "Network '{}' is already mapped to group '{group_name}'",
                net.name
            ));
            continue;
        }
        let reconnect = cfg.nodegroups[&g].networks.contains_key(&uuid);
        // An L2-only network has no addresses to conflict with.
        if conflicts_check && let Some(subnet) = net.network {
            // Only instances with an address in the network can conflict; the index
            // finds them without decoding the others.
            let candidates = cfg.instances.with_ipv4_in(subnet);
            let conflicts = nic_conflicts(&candidates, &g, |nic| {
                nic.network.as_deref() != Some(uuid.as_str())
                    && nic.ipv4().is_some_and(|ip| subnet.contains(&ip))
            });
            if !conflicts.is_empty() {
                fb.warn(format!(
                    "IP addresses from network '{}', which is about to connect to node group '{group_name}', are in use: {}",
                    net.name,
                    conflicts.join(", ")
                ));
                return Err(GntError::state(CONFLICT));
            }
        }
        if reconnect {
            // Ganeti ignored new parameters on reconnect (issue #1552); here they replace
            // the old ones, and NICs that copied the old ones follow.
            let old = cfg.nodegroups[&g].networks[&uuid].clone();
            let mut moved = 0;
            // The copies `on_network` decoded are changed and put back: no second decode.
            for (key, mut inst) in cfg
                .instances
                .on_network(&uuid)
                .into_iter()
                .filter(|(_, i)| i.group == g)
            {
                for nic in inst
                    .nics
                    .iter_mut()
                    .filter(|n| n.network.as_deref() == Some(uuid.as_str()))
                {
                    nic.mode = params.mode;
                    nic.link = params.link.clone();
                    nic.vlan = params.vlan.clone();
                    moved += 1;
                }
                cfg.instances.insert(key, inst);
            }
            fb.info(format!(
                "Network '{}' in group '{group_name}': parameters changed from (mode:{} link:{} vlan:{}) to (mode:{} link:{} vlan:{}); {moved} NIC(s) updated",
                net.name, old.mode, old.link, old.vlan, params.mode, params.link, params.vlan
            ));
        }
        let group = cfg.nodegroups.get_mut(&g).expect("target");
        group.networks.insert(uuid.clone(), params.clone());
        group.serial_no += 1;
        group.mtime = now();
        envs.push(network_env(
            OP_CONNECT,
            "network-connect",
            vec![
                ("GROUP_NAME".into(), group_name),
                ("GROUP_NETWORK_MODE".into(), params.mode.to_string()),
                ("GROUP_NETWORK_LINK".into(), params.link.clone()),
                ("GROUP_NETWORK_VLAN".into(), params.vlan.clone()),
                ("NETWORK_NAME".into(), net.name.to_string()),
                ("NETWORK_UUID".into(), uuid.clone()),
            ],
        ));
    }
    Ok(envs)
}

pub fn disconnect(
    cfg: &mut ClusterConfig,
    name: &str,
    groups: &[String],
    fb: &mut Feedback,
) -> Result<Vec<HookEnv>, GntError> {
    let uuid = cfg.network_uuid(name)?;
    let net_name = cfg.networks[&uuid].name.to_string();
    let targets = target_groups(cfg, groups)?;
    let mut envs = Vec::new();
    for g in targets {
        let group_name = cfg.nodegroups[&g].name.to_string();
        let Some(params) = cfg.nodegroups[&g].networks.get(&uuid).cloned() else {
            fb.warn(format!(
                "Network '{net_name}' is not mapped to group '{group_name}'"
            ));
            continue;
        };
        let users = nic_conflicts(&cfg.instances.on_network(&uuid), &g, |nic| {
            nic.network.as_deref() == Some(uuid.as_str())
        });
        if !users.is_empty() {
            fb.warn(format!(
                "IP addresses from network '{net_name}', which is about to disconnect from node group '{group_name}', are in use: {}",
                users.join(", ")
            ));
            return Err(GntError::state(CONFLICT));
        }
        let group = cfg.nodegroups.get_mut(&g).expect("target");
        group.networks.remove(&uuid);
        group.serial_no += 1;
        group.mtime = now();
        envs.push(network_env(
            "OP_NETWORK_DISCONNECT",
            "network-disconnect",
            vec![
                ("GROUP_NAME".into(), group_name),
                ("GROUP_NETWORK_MODE".into(), params.mode.to_string()),
                ("GROUP_NETWORK_LINK".into(), params.link),
                ("GROUP_NETWORK_VLAN".into(), params.vlan),
                ("NETWORK_NAME".into(), net_name.clone()),
                ("NETWORK_UUID".into(), uuid.clone()),
            ],
        ));
    }
    Ok(envs)
}

pub fn add_tags(cfg: &mut ClusterConfig, name: &str, new: &[String]) -> Result<(), GntError> {
    change_tags(cfg, name, |t| tags::add(t, new))
}

pub fn remove_tags(cfg: &mut ClusterConfig, name: &str, old: &[String]) -> Result<(), GntError> {
    change_tags(cfg, name, |t| tags::remove(t, old))
}

/// `change` on the tags of network `name`; a change counts as a modification of it.
fn change_tags(
    cfg: &mut ClusterConfig,
    name: &str,
    change: impl FnOnce(&mut BTreeSet<String>) -> Result<(), GntError>,
) -> Result<(), GntError> {
    let uuid = cfg.network_uuid(name)?;
    let net = cfg.networks.get_mut(&uuid).expect("looked up");
    change(&mut net.tags)?;
    net.serial_no += 1;
    net.mtime = now();
    Ok(())
}

#[cfg(test)]
mod ranges_tests;
