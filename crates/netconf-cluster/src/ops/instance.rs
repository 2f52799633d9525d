//! `gnt-instance` operations on the network side: NICs with pool addresses and generated
//! MACs, Ganeti's NIC rules (§7 of the reference), and the instance hook environment.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::Feedback;
use crate::config::{ClusterConfig, Instance, MacsInUse, Nic, NicParams, new_uuid, now, tags};
use crate::error::{ErrorCode, GntError, IntoGnt};
use crate::hooks::HookEnv;
use crate::pool::Kind;
use netconf::hookenv::{HookNic, InstanceHookEnv};
use netconf::mac::{MacAddr, MacPrefix};
use netconf::name::InstanceName;
use netconf::nicmode::NicMode;

/// Ganeti's `MAX_NICS`.
pub const MAX_NICS: usize = 8;

/// The `key=value` parameters of one `--net` option, unvalidated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicSpec {
    pub ip: Option<String>,
    pub network: Option<String>,
    pub mac: Option<String>,
    pub mode: Option<String>,
    pub link: Option<String>,
    pub vlan: Option<String>,
    pub name: Option<String>,
}

impl NicSpec {
    /// Parses `ip=pool,network=net1,...`.
    pub fn parse(s: &str) -> Result<NicSpec, GntError> {
        let mut n = NicSpec::default();
        for kv in s.split(',').filter(|x| !x.is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(GntError::inval(format!(
                    "Missing value for key '{kv}' in option --net"
                )));
            };
            let slot = match k {
                "ip" => &mut n.ip,
                "network" => &mut n.network,
                "mac" => &mut n.mac,
                "mode" => &mut n.mode,
                "link" => &mut n.link,
                "vlan" => &mut n.vlan,
                "name" => &mut n.name,
                _ => {
                    return Err(GntError::inval(format!(
                        "Unknown NIC parameter '{k}' (valid: ip, network, mac, mode, link, vlan, name)"
                    )));
                }
            };
            // Ganeti compares these keywords case-insensitively (`ip.lower() == "pool"`).
            let keywords: &[&str] = match k {
                "ip" => &["none", "auto", "pool"],
                "network" | "name" => &["none"],
                _ => &[],
            };
            *slot = Some(
                match keywords.iter().find(|kw| v.eq_ignore_ascii_case(kw)) {
                    Some(kw) => (*kw).to_owned(),
                    None => v.to_owned(),
                },
            );
        }
        Ok(n)
    }
}

/// One `--net` option of `gnt-instance modify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NicChange {
    /// Add a NIC at an index (Ganeti's `N:add`), or at the end.
    Add(Option<usize>, NicSpec),
    Modify(NicRef, NicSpec),
    Remove(NicRef),
}

/// The NIC a change is about, as Ganeti 3.0 identifies it: an index, `-1` for the last
/// one, or the NIC's name or UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NicRef {
    Index(usize),
    Last,
    Ident(String),
}

impl NicRef {
    pub fn parse(s: &str) -> Result<Self, GntError> {
        if s == "-1" {
            return Ok(NicRef::Last);
        }
        if let Ok(i) = s.parse::<i64>() {
            return usize::try_from(i)
                .map(NicRef::Index)
                .map_err(|_| GntError::inval("Not accepting negative indices other than -1"));
        }
        Ok(NicRef::Ident(s.to_owned()))
    }

    /// The index of the NIC among `nics`; `verb` names the change in an error.
    fn resolve(&self, nics: &[Nic], verb: &str) -> Result<usize, GntError> {
        match self {
            NicRef::Index(i) if *i < nics.len() => Ok(*i),
            NicRef::Index(i) => Err(GntError::inval(format!(
                "Invalid NIC index {i}, valid range is 0-{}",
                nics.len().saturating_sub(1)
            ))),
            NicRef::Last if nics.is_empty() => {
                Err(GntError::inval(format!("Instance has no NICs to {verb}")))
            }
            NicRef::Last => Ok(nics.len() - 1),
            NicRef::Ident(id) => nics
                .iter()
                .position(|n| n.uuid == *id || n.name.as_deref() == Some(id.as_str()))
                .ok_or_else(|| GntError::noent(format!("Cannot find NIC with identifier {id}"))),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct AddInstance {
    pub name: String,
    pub node: Option<String>,
    pub group: Option<String>,
    pub nics: Vec<NicSpec>,
    pub tags: Vec<String>,
    pub conflicts_check: bool,
}

/// Ganeti's VLAN syntax: `.N`, `:N[:N…]`, `.N:N[:N…]`, or `N` (meaning `.N`).
pub fn normalize_vlan(v: &str) -> Result<String, GntError> {
    let bad = || GntError::inval(format!("Specified VLAN parameter is invalid : {v}"));
    if v.is_empty() {
        return Ok(String::new());
    }
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if num(v) {
        return Ok(format!(".{v}"));
    }
    let (head, rest) = if let Some(r) = v.strip_prefix('.') {
        match r.split_once(':') {
            Some((a, b)) => (Some(a), Some(b)),
            None => (Some(r), None),
        }
    } else if let Some(r) = v.strip_prefix(':') {
        (None, Some(r))
    } else {
        return Err(bad());
    };
    if head.is_some_and(|h| !num(h)) || rest.is_some_and(|r| !r.split(':').all(num)) {
        return Err(bad());
    }
    Ok(v.to_owned())
}

/// Ganeti's `ValidateDeviceNames("NIC", …)` over (name, UUID) pairs: a name may not be
/// purely numeric, nor repeat another NIC's name or UUID.
fn validate_nic_names(nics: &[(Option<&str>, Option<&str>)]) -> Result<(), GntError> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, uuid) in nics {
        seen.extend(uuid);
        let Some(name) = name else { continue };
        if name.parse::<i64>().is_ok() {
            return Err(GntError::inval(format!(
                "Invalid name '{name}'. Purely numeric NIC names are not allowed"
            )));
        }
        if name.eq_ignore_ascii_case("none") {
            continue;
        }
        if seen.contains(name) {
            return Err(GntError::prereq(
                ErrorCode::NotUnique,
                format!("NIC name '{name}' already used"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// Ganeti's `CheckParameterSyntax` on a finished NIC parameter set.
fn check_params(p: &NicParams) -> Result<(), GntError> {
    if p.mode == NicMode::Bridged && p.link.is_empty() {
        // Ganeti raised a ConfigurationError here ("Corrupt configuration file", exit 2),
        // which blamed config.data for a command-line mistake.
        return Err(GntError::inval("Missing bridged NIC link"));
    }
    Ok(())
}

fn parse_ip(s: &str) -> Result<IpAddr, GntError> {
    s.parse()
        .map_err(|_| GntError::inval(format!("Invalid IP address '{s}'")))
}

/// An unknown NIC mode fails Ganeti's `CheckParameterSyntax` like a missing bridge link: a
/// ConfigurationError (exit code 2), misleading as that is.
/// Ganeti raised a ConfigurationError for a bad mode ("Corrupt configuration file",
/// exit 2), blaming config.data for a command-line mistake: here it is wrong_input.
fn parse_mode(s: &str) -> Result<NicMode, GntError> {
    s.parse::<NicMode>()
        .map_err(|e| GntError::inval(e.to_string()))
}

/// A random MAC with `prefix`, unique among `used` (which it joins).
pub fn generate_mac(prefix: MacPrefix, used: &mut MacsInUse) -> Result<MacAddr, GntError> {
    for _ in 0..64 {
        let mut low = [0u8; 3];
        getrandom::fill(&mut low)
            .map_err(|e| GntError::Exec(format!("Cannot read random bytes: {e}")))?;
        let mac = MacAddr::from_prefix(prefix, low);
        if used.insert(mac) {
            return Ok(mac);
        }
    }
    Err(GntError::prereq(
        ErrorCode::NotUnique,
        format!("Not able to generate a new MAC address with prefix {prefix}: too many in use"),
    ))
}

/// The MAC prefix for a NIC on `network` (the network's, else the cluster's).
fn prefix_for(cfg: &ClusterConfig, network: Option<&str>) -> MacPrefix {
    network
        .and_then(|n| cfg.networks.get(n))
        .and_then(|n| n.mac_prefix)
        .unwrap_or(cfg.cluster.mac_prefix)
}

/// Where an instance lives: (group UUID, node UUID, a name for messages).
fn placement(
    cfg: &ClusterConfig,
    node: Option<&str>,
    group: Option<&str>,
) -> Result<(String, Option<String>), GntError> {
    match (node, group) {
        (Some(_), Some(_)) => Err(GntError::inval(
            "Give either a node (-n) or a node group (-g), not both",
        )),
        (Some(n), None) => {
            let u = cfg.node_uuid(n)?;
            Ok((cfg.nodes[&u].group.clone(), Some(u)))
        }
        (None, Some(g)) => Ok((cfg.group_uuid(g)?, None)),
        (None, None) => Ok((cfg.group_uuid("default")?, None)),
    }
}

/// "node's <node> nodegroup" or "node group '<g>'" for Ganeti's netparams message.
fn where_text(cfg: &ClusterConfig, group: &str, node: Option<&str>) -> String {
    match node.and_then(|n| cfg.nodes.get(n)) {
        Some(n) => format!("node's {} nodegroup", n.name),
        None => format!("node group '{}'", cfg.nodegroups[group].name),
    }
}

/// The network-less NIC conflict check of Ganeti (`conflicts_check`).
fn check_ip_not_in_connected(cfg: &ClusterConfig, group: &str, ip: IpAddr) -> Result<(), GntError> {
    let IpAddr::V4(v4) = ip else { return Ok(()) };
    for net_uuid in cfg.nodegroups[group].networks.keys() {
        if let Some(net) = cfg.networks.get(net_uuid)
            && net.contains(v4)
        {
            return Err(GntError::state(format!(
                "The requested IP address ({ip}) belongs to network {}, but the target NIC does not.",
                net.name
            )));
        }
    }
    Ok(())
}

pub fn add(
    cfg: &mut ClusterConfig,
    a: &AddInstance,
    fb: &mut Feedback,
) -> Result<HookEnv, GntError> {
    let name = InstanceName::parse(&a.name)
        .map_err(|e| e.into_gnt("OP_INSTANCE_CREATE", "instance_name"))?;
    if cfg.instances.key_by_name(&name).is_some() {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!("Instance '{name}' is already in the cluster"),
        ));
    }
    if a.nics.len() > MAX_NICS {
        return Err(GntError::inval(format!(
            "Instance has too many network interfaces ({}), cannot add more",
            a.nics.len()
        )));
    }
    let mut inst_tags = BTreeSet::new();
    tags::add(&mut inst_tags, &a.tags)?;
    let (group, node) = placement(cfg, a.node.as_deref(), a.group.as_deref())?;
    validate_nic_names(
        &a.nics
            .iter()
            .map(|n| (n.name.as_deref(), None))
            .collect::<Vec<_>>(),
    )?;
    let mut used_macs = cfg.macs_in_use();
    let mut nics = Vec::new();
    for (idx, spec) in a.nics.iter().enumerate() {
        let nic = new_nic(
            cfg,
            idx,
            spec,
            &group,
            node.as_deref(),
            a.conflicts_check,
            &mut used_macs,
            fb,
        )?;
        nics.push(nic);
    }
    let t = now();
    let inst = Instance {
        name,
        group,
        primary_node: node,
        tags: inst_tags,
        nics,
        serial_no: 1,
        ctime: t,
        mtime: t,
    };
    let mut vars = vec![("ADD_MODE".to_owned(), "create".to_owned())];
    vars.extend(instance_hook_vars(cfg, &inst));
    cfg.instances.insert(new_uuid(), inst);
    Ok(instance_env("OP_INSTANCE_CREATE", "instance-add", vars))
}

/// Builds a NIC for add (create, or modify's `add`), reserving its IP and MAC in `cfg`.
#[allow(clippy::too_many_arguments)]
fn new_nic(
    cfg: &mut ClusterConfig,
    idx: usize,
    spec: &NicSpec,
    group: &str,
    node: Option<&str>,
    conflicts_check: bool,
    used_macs: &mut MacsInUse,
    fb: &mut Feedback,
) -> Result<Nic, GntError> {
    let network = match spec.network.as_deref() {
        None | Some("none") | Some("") => None,
        Some(n) => Some(cfg.network_uuid(n)?),
    };
    if network.is_some() && (spec.mode.is_some() || spec.link.is_some()) {
        return Err(GntError::inval(
            "If network is given, no mode or link is allowed to be passed",
        ));
    }
    let mode = spec
        .mode
        .as_deref()
        .filter(|m| *m != "auto")
        .map(parse_mode)
        .transpose()?;
    enum Ip {
        None,
        Pool,
        Given(IpAddr),
    }
    let ip = match spec.ip.as_deref() {
        None | Some("none") => Ip::None,
        Some("auto") => {
            return Err(GntError::inval(
                "IP address set to auto but name checks have been skipped",
            ));
        }
        Some("pool") if network.is_none() => {
            return Err(GntError::inval(
                "if ip=pool, parameter network must be passed too",
            ));
        }
        Some("pool") => Ip::Pool,
        Some(s) => Ip::Given(parse_ip(s)?),
    };
    let vlan = spec.vlan.as_deref().map(normalize_vlan).transpose()?;
    let mac = match spec.mac.as_deref() {
        None | Some("auto") | Some("generate") => None,
        Some(m) => {
            let mac: MacAddr = m
                .parse()
                .map_err(|_| GntError::inval(format!("Invalid MAC address '{m}'")))?;
            if !used_macs.insert(mac) {
                return Err(GntError::prereq(
                    ErrorCode::NotUnique,
                    format!("MAC address {mac} already in use in cluster"),
                ));
            }
            Some(mac)
        }
    };
    let name = spec.name.clone().filter(|n| n != "none");

    let (params, ip) = if let Some(net_uuid) = &network {
        let net_name = cfg.networks[net_uuid].name.clone();
        let Some(p) = cfg.nodegroups[group].networks.get(net_uuid).cloned() else {
            return Err(GntError::inval(format!(
                "No netparams found for network {net_name}. Probably not connected to {}",
                where_text(cfg, group, node)
            )));
        };
        fb.info(format!(
            "NIC/{idx} inherits netparams ['{}', '{}', '{}']",
            p.mode, p.link, p.vlan
        ));
        let pool = &mut cfg.networks.get_mut(net_uuid).expect("resolved").pool;
        let pool = match (pool.as_mut(), &ip) {
            (None, Ip::Given(addr)) => return Err(no_subnet(&net_name, idx, Some(*addr))),
            (None, Ip::Pool) => return Err(no_subnet(&net_name, idx, None)),
            (pool, _) => pool,
        };
        let ip = match (ip, pool) {
            (Ip::None, _) | (_, None) => None,
            (Ip::Pool, Some(pool)) => {
                let ip = pool.allocate().map_err(|_| {
                    GntError::state(format!(
                        "Unable to get a free IP for NIC {idx} from the address pool"
                    ))
                })?;
                fb.info(format!("Chose IP {ip} from network {net_name}"));
                Some(IpAddr::V4(ip))
            }
            (Ip::Given(ip), Some(pool)) => {
                reserve_given(pool, ip, conflicts_check).map_err(|()| {
                    GntError::prereq(
                        ErrorCode::NotUnique,
                        format!("IP address {ip} already in use or does not belong to network {net_name}"),
                    )
                })?;
                Some(ip)
            }
        };
        (p, ip)
    } else {
        let d = &cfg.cluster.default_nicparams;
        let p = NicParams {
            mode: mode.unwrap_or(d.mode),
            link: spec.link.clone().unwrap_or_else(|| d.link.clone()),
            vlan: vlan.unwrap_or_else(|| d.vlan.clone()),
        };
        let ip = match ip {
            Ip::Given(ip) => Some(ip),
            _ => None,
        };
        if p.mode == NicMode::Routed && ip.is_none() {
            return Err(GntError::inval(
                "Routed nic mode requires an ip address if not attached to a network",
            ));
        }
        if let (Some(ip), true) = (ip, conflicts_check) {
            check_ip_not_in_connected(cfg, group, ip)?;
        }
        check_params(&p)?;
        (p, ip)
    };
    let mac = match mac {
        Some(m) => m,
        None => generate_mac(prefix_for(cfg, network.as_deref()), used_macs)?,
    };
    Ok(Nic {
        uuid: new_uuid(),
        name,
        mac,
        ip,
        network,
        mode: params.mode,
        link: params.link,
        vlan: params.vlan,
    })
}

/// The refusal of an address on an L2-only network: `ip=pool` (`given` is `None`) as a
/// pool that cannot give one (the class and code of a full pool), an explicit address as
/// wrong input.
fn no_subnet(net_name: &str, idx: usize, given: Option<IpAddr>) -> GntError {
    match given {
        Some(addr) => GntError::inval(format!(
            "Network {net_name} has no IPv4 subnet: NIC {idx} cannot have the IP address {addr}"
        )),
        None => GntError::state(format!(
            "Network {net_name} has no IPv4 subnet and no address pool: NIC {idx} cannot use ip=pool"
        )),
    }
}

/// Ganeti's `ReserveIp`: never an address used by an instance; an externally reserved one
/// only without the conflicts check.
fn reserve_given(pool: &mut crate::pool::AddressPool, ip: IpAddr, check: bool) -> Result<(), ()> {
    let IpAddr::V4(v4) = ip else { return Err(()) };
    if !pool.contains(v4) || pool.is_reserved(v4, Kind::Instance).unwrap_or(true) {
        return Err(());
    }
    if check && pool.is_reserved(v4, Kind::External).unwrap_or(true) {
        return Err(());
    }
    pool.reserve(v4, Kind::Instance).map_err(|_| ())
}

/// Releases a NIC's address from its network, if it has both.
fn release_nic_ip(cfg: &mut ClusterConfig, nic: &Nic) {
    if let (Some(net), Some(ip)) = (&nic.network, nic.ipv4())
        && let Some(pool) = cfg.networks.get_mut(net).and_then(|n| n.pool.as_mut())
    {
        let _ = pool.release(ip, Kind::Instance);
    }
}

pub fn modify(
    cfg: &mut ClusterConfig,
    name: &str,
    changes: &[NicChange],
    conflicts_check: bool,
    fb: &mut Feedback,
) -> Result<HookEnv, GntError> {
    if changes.is_empty() {
        return Err(GntError::Usage(
            "Please give at least one of the parameters.".into(),
        ));
    }
    let uuid = cfg.instance_uuid(name)?;
    let mut inst = cfg.instances.get_cloned(&uuid).expect("looked up");
    let group = inst.group.clone();
    let node = inst.primary_node.clone();
    let mut used_macs = cfg.macs_in_use();
    for change in changes {
        match change {
            NicChange::Add(at, spec) => {
                if inst.nics.len() >= MAX_NICS {
                    return Err(GntError::inval(format!(
                        "Instance has too many network interfaces ({}), cannot add more",
                        inst.nics.len() + 1
                    )));
                }
                if spec.ip.as_deref() == Some("pool")
                    && matches!(spec.network.as_deref(), None | Some("none"))
                {
                    return Err(GntError::inval(
                        "If ip=pool, parameter network cannot be none",
                    ));
                }
                let idx = at.unwrap_or(inst.nics.len());
                if idx > inst.nics.len() {
                    return Err(GntError::inval(format!(
                        "Invalid NIC index {idx} for add, valid range is 0-{}",
                        inst.nics.len()
                    )));
                }
                let nic = new_nic(
                    cfg,
                    idx,
                    spec,
                    &group,
                    node.as_deref(),
                    conflicts_check,
                    &mut used_macs,
                    fb,
                )?;
                inst.nics.insert(idx, nic);
            }
            NicChange::Remove(which) => {
                let i = which.resolve(&inst.nics, "remove")?;
                let nic = inst.nics.remove(i);
                release_nic_ip(cfg, &nic);
                used_macs.remove(&nic.mac);
            }
            NicChange::Modify(which, spec) => {
                let i = which.resolve(&inst.nics, "modify")?;
                let old = inst.nics[i].clone();
                let new = modify_nic(
                    cfg,
                    i,
                    &old,
                    spec,
                    &group,
                    conflicts_check,
                    &mut used_macs,
                    fb,
                )?;
                inst.nics[i] = new;
            }
        }
    }
    validate_nic_names(
        &inst
            .nics
            .iter()
            .map(|n| (n.name.as_deref(), Some(n.uuid.as_str())))
            .collect::<Vec<_>>(),
    )?;
    inst.serial_no += 1;
    inst.mtime = now();
    let vars = instance_hook_vars(cfg, &inst);
    cfg.instances.insert(uuid, inst);
    Ok(instance_env(
        "OP_INSTANCE_SET_PARAMS",
        "instance-modify",
        vars,
    ))
}

#[allow(clippy::too_many_arguments)]
fn modify_nic(
    cfg: &mut ClusterConfig,
    idx: usize,
    old: &Nic,
    spec: &NicSpec,
    group: &str,
    conflicts_check: bool,
    used_macs: &mut MacsInUse,
    fb: &mut Feedback,
) -> Result<Nic, GntError> {
    let net_given = spec.network.as_deref().filter(|n| *n != "none");
    if net_given.is_some() && (spec.mode.is_some() || spec.link.is_some()) {
        return Err(GntError::inval(
            "If network is given mode or link should not",
        ));
    }
    if spec.mac.as_deref() == Some("auto") {
        return Err(GntError::inval(
            "'auto' is not a valid MAC address when modifying an existing NIC",
        ));
    }
    let new_network = match spec.network.as_deref() {
        None => old.network.clone(),
        Some("none") | Some("") => None,
        Some(n) => Some(cfg.network_uuid(n)?),
    };
    enum Ip {
        Keep,
        None,
        Pool,
        Given(IpAddr),
    }
    let ip_req = match spec.ip.as_deref() {
        None => Ip::Keep,
        Some("none") => Ip::None,
        Some("pool") => Ip::Pool,
        Some(s) => Ip::Given(parse_ip(s)?),
    };
    let mut nic = old.clone();
    if let Some(n) = &spec.name {
        nic.name = (n != "none").then(|| n.clone());
    }
    let net_changed = new_network != old.network;
    // Ganeti compares the (ip, network) pair by value: repeating the current address is
    // no change.
    let ip_changed = match &ip_req {
        Ip::Keep => false,
        Ip::None => old.ip.is_some(),
        Ip::Given(ip) => old.ip != Some(*ip),
        Ip::Pool => true,
    };

    // Link-layer parameters.
    if let Some(nu) = &new_network {
        if !net_changed && !ip_changed && (spec.mode.is_some() || spec.link.is_some()) {
            return Err(GntError::inval(
                "Not allowed to change link or mode of a NIC that is connected to a network",
            ));
        }
        let Some(p) = cfg.nodegroups[group].networks.get(nu).cloned() else {
            return Err(GntError::inval(format!(
                "No netparams found for the network {}, probably not connected",
                cfg.networks[nu].name
            )));
        };
        if net_changed {
            fb.info(format!(
                "NIC/{idx} inherits netparams ['{}', '{}', '{}']",
                p.mode, p.link, p.vlan
            ));
        }
        nic.mode = p.mode;
        nic.link = p.link;
        nic.vlan = p.vlan;
    } else {
        if let Some(m) = spec.mode.as_deref() {
            nic.mode = parse_mode(m)?;
        }
        if let Some(l) = &spec.link {
            nic.link.clone_from(l);
        }
        check_params(&nic.params())?;
    }
    if let Some(v) = spec.vlan.as_deref()
        && new_network.is_none()
    {
        nic.vlan = normalize_vlan(v)?;
    }

    // Addresses, only if (ip, network) changed: take the new one, then release the old one
    // (in Ganeti's order, so `ip=pool` never hands the NIC back its own address).
    let new_ip: Option<IpAddr> = match &ip_req {
        Ip::Keep => old.ip,
        Ip::None => None,
        Ip::Given(ip) => Some(*ip),
        Ip::Pool => None,
    };
    if net_changed || ip_changed {
        nic.ip = match (&ip_req, &new_network) {
            (Ip::Pool, None) => return Err(GntError::inval("ip=pool, but no network found")),
            (Ip::Pool, Some(nu)) => {
                let net = cfg.networks.get_mut(nu).expect("resolved");
                let Some(pool) = net.pool.as_mut() else {
                    return Err(no_subnet(&net.name, idx, None));
                };
                let ip = pool.allocate().map_err(|_| {
                    GntError::state("Unable to get a free IP from the address pool")
                })?;
                fb.info(format!(
                    "Chose IP {ip} from network {}",
                    cfg.networks[nu].name
                ));
                Some(IpAddr::V4(ip))
            }
            (_, Some(nu)) => match new_ip {
                None => None,
                Some(ip) => {
                    let net = cfg.networks.get_mut(nu).expect("resolved");
                    let net_name = net.name.clone();
                    let Some(pool) = net.pool.as_mut() else {
                        return Err(no_subnet(&net_name, idx, Some(ip)));
                    };
                    reserve_given(pool, ip, conflicts_check).map_err(|()| {
                        GntError::prereq(
                            ErrorCode::NotUnique,
                            format!("IP {ip} not available in network {net_name}"),
                        )
                    })?;
                    fb.info(format!("Reserving IP {ip} in network {net_name}"));
                    Some(ip)
                }
            },
            (_, None) => {
                if let (Some(ip), true) = (new_ip, conflicts_check) {
                    check_ip_not_in_connected(cfg, group, ip)?;
                }
                new_ip
            }
        };
        release_nic_ip(cfg, old);
    }
    if nic.mode == NicMode::Routed && nic.ip.is_none() && new_network.is_none() {
        return Err(GntError::inval(
            "Cannot set the NIC IP address to None on a routed NIC if not attached to a network",
        ));
    }
    nic.network = new_network;

    // MAC: explicit, generate, or a new one when the network's prefix changes.
    let old_prefix = prefix_for(cfg, old.network.as_deref());
    let new_prefix = prefix_for(cfg, nic.network.as_deref());
    match spec.mac.as_deref() {
        Some("generate") => {
            used_macs.remove(&old.mac);
            nic.mac = generate_mac(new_prefix, used_macs)?;
        }
        Some(m) => {
            let mac: MacAddr = m
                .parse()
                .map_err(|_| GntError::inval(format!("Invalid MAC address '{m}'")))?;
            if mac != old.mac {
                if used_macs.contains(&mac) {
                    return Err(GntError::prereq(
                        ErrorCode::NotUnique,
                        format!("MAC address '{mac}' already in use in cluster"),
                    ));
                }
                used_macs.remove(&old.mac);
                used_macs.insert(mac);
                nic.mac = mac;
            }
        }
        None if net_changed && old_prefix != new_prefix => {
            used_macs.remove(&old.mac);
            nic.mac = generate_mac(new_prefix, used_macs)?;
        }
        None => {}
    }
    Ok(nic)
}

pub fn remove(cfg: &mut ClusterConfig, name: &str) -> Result<HookEnv, GntError> {
    let uuid = cfg.instance_uuid(name)?;
    let inst = cfg.instances.remove(&uuid).expect("looked up");
    for nic in &inst.nics {
        release_nic_ip(cfg, nic);
    }
    let vars = instance_hook_vars(cfg, &inst);
    Ok(instance_env("OP_INSTANCE_REMOVE", "instance-remove", vars))
}

pub fn rename(cfg: &mut ClusterConfig, old: &str, new: &str) -> Result<HookEnv, GntError> {
    let new = InstanceName::parse(new).map_err(|e| e.into_gnt("OP_INSTANCE_RENAME", "new_name"))?;
    let uuid = cfg.instance_uuid(old)?;
    if cfg.instances.key_by_name(&new).is_some() {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!("Instance '{new}' is already in the cluster"),
        ));
    }
    // Ganeti's rename hooks describe the instance under its old name, plus the new one.
    let inst = cfg.instances.get_cloned(&uuid).expect("looked up");
    let mut view = hook_view(cfg, &inst);
    view.new_name = Some(new.clone());
    let vars = view.to_env();
    let inst = cfg.instances.get_mut(&uuid).expect("looked up");
    inst.name = new;
    inst.serial_no += 1;
    inst.mtime = now();
    Ok(instance_env("OP_INSTANCE_RENAME", "instance-rename", vars))
}

pub fn add_tags(cfg: &mut ClusterConfig, name: &str, new: &[String]) -> Result<(), GntError> {
    change_tags(cfg, name, |t| tags::add(t, new))
}

pub fn remove_tags(cfg: &mut ClusterConfig, name: &str, old: &[String]) -> Result<(), GntError> {
    change_tags(cfg, name, |t| tags::remove(t, old))
}

/// `change` on the tags of instance `name`; a change counts as a modification of it.
fn change_tags(
    cfg: &mut ClusterConfig,
    name: &str,
    change: impl FnOnce(&mut BTreeSet<String>) -> Result<(), GntError>,
) -> Result<(), GntError> {
    let uuid = cfg.instance_uuid(name)?;
    let inst = cfg.instances.get_mut(&uuid).expect("looked up");
    change(&mut inst.tags)?;
    inst.serial_no += 1;
    inst.mtime = now();
    Ok(())
}

fn instance_env(op_code: &'static str, path: &'static str, vars: Vec<(String, String)>) -> HookEnv {
    HookEnv {
        op_code,
        path,
        object_type: "INSTANCE",
        vars,
    }
}

/// The node an instance runs on for hooks: its primary node, else the master (this suite
/// also manages instances that were placed only in a group).
pub fn primary_name(cfg: &ClusterConfig, inst: &Instance) -> String {
    inst.primary_node
        .as_ref()
        .and_then(|n| cfg.nodes.get(n))
        .map_or_else(|| cfg.cluster.master_node.clone(), |n| n.name.to_string())
}

/// Ganeti's `BuildInstanceHookEnv`, network side (without the `GANETI_` prefix).
pub fn instance_hook_vars(cfg: &ClusterConfig, inst: &Instance) -> Vec<(String, String)> {
    hook_view(cfg, inst).to_env()
}

/// The instance as its hooks see it.
pub fn hook_view(cfg: &ClusterConfig, inst: &Instance) -> InstanceHookEnv {
    InstanceHookEnv {
        name: inst.name.clone(),
        primary: primary_name(cfg, inst),
        tags: inst.tags.iter().cloned().collect(),
        nics: inst.nics.iter().map(|nic| hook_nic(cfg, nic)).collect(),
        new_name: None,
    }
}

fn hook_nic(cfg: &ClusterConfig, nic: &Nic) -> HookNic {
    let set = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let mut h = HookNic {
        name: nic.name.clone(),
        uuid: set(&nic.uuid),
        ip: nic.ip,
        mac: Some(nic.mac),
        mode: Some(nic.mode),
        link: set(&nic.link),
        vlan: set(&nic.vlan),
        bridge: matches!(nic.mode, NicMode::Bridged | NicMode::OpenVSwitch)
            .then(|| nic.link.clone()),
        ..HookNic::default()
    };
    if let Some((nu, n)) = nic
        .network
        .as_ref()
        .and_then(|u| cfg.networks.get(u).map(|n| (u, n)))
    {
        h.network = Some(n.name.to_string());
        h.network_uuid = set(nu);
        h.network_tags = n.tags.iter().cloned().collect();
        h.subnet = n.network;
        h.gateway = n.gateway;
        h.subnet6 = n.network6;
        h.gateway6 = n.gateway6;
        h.mac_prefix = n.mac_prefix;
    }
    h
}

/// IPv4 address of an instance NIC, for callers that want it typed.
pub fn nic_ipv4(nic: &Nic) -> Option<Ipv4Addr> {
    nic.ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Store, transaction, with_each_store};

    /// What the operations write is what a hook decodes: every instance operation's
    /// variables read back through `InstanceHookEnv::from_env` as the instance's view.
    #[test]
    fn hook_variables_decode_to_the_instance_they_describe() {
        with_each_store(hook_variables_decode_in);
    }

    fn hook_variables_decode_in(store: &dyn Store) {
        use crate::ops::network;
        use netconf::hookenv::HookVars;
        let mut fb = Feedback::default();
        let net = network::AddNetwork {
            name: "net1".into(),
            network: Some("198.51.100.0/24".into()),
            gateway: Some("198.51.100.1".into()),
            network6: Some("2001:db8:1::/64".into()),
            mac_prefix: Some("aa:00:01".into()),
            tags: vec!["public".into()],
            conflicts_check: true,
            ..Default::default()
        };
        transaction(store, |cfg| network::add(cfg, &net, &mut fb)).unwrap();
        let raw = network::RawNicParams {
            link: Some("br0".into()),
            ..Default::default()
        };
        transaction(store, |cfg| {
            network::connect(cfg, "net1", &raw, &[], true, &mut fb)
        })
        .unwrap();
        let spec = AddInstance {
            name: "web1.example.org".into(),
            nics: vec![
                NicSpec::parse("ip=pool,network=net1,name=eth0").unwrap(),
                NicSpec::parse("mode=routed,link=rt1,ip=2001:db8:2::5,vlan=100").unwrap(),
            ],
            tags: vec!["b".into(), "a".into()],
            conflicts_check: true,
            ..Default::default()
        };
        let decode = |env: &HookEnv| {
            InstanceHookEnv::from_env(&HookVars::from_pairs(env.vars.clone())).unwrap()
        };
        let env = transaction(store, |cfg| add(cfg, &spec, &mut fb)).unwrap();
        let cfg = store.read().unwrap();
        let uuid = cfg.instance_uuid("web1.example.org").unwrap();
        let inst = cfg.instances.get_cloned(&uuid).unwrap();
        let view = decode(&env);
        assert_eq!(view, hook_view(&cfg, &inst));
        assert_eq!(view.nics[0].network.as_deref(), Some("net1"));
        assert_eq!(view.nics[0].bridge.as_deref(), Some("br0"));
        assert_eq!(view.nics[1].ip, Some("2001:db8:2::5".parse().unwrap()));

        let env = transaction(store, |cfg| {
            rename(cfg, "web1.example.org", "web2.example.org")
        })
        .unwrap();
        let cfg = store.read().unwrap();
        let mut want = hook_view(&cfg, &inst);
        want.new_name = Some(InstanceName::check("web2.example.org".into()).unwrap());
        assert_eq!(decode(&env), want);

        let env = transaction(store, |cfg| remove(cfg, "web2.example.org")).unwrap();
        assert_eq!(decode(&env).name.as_str(), "web2.example.org");
        assert_eq!(decode(&env).nics.len(), 2);
    }

    #[test]
    fn vlan_forms() {
        assert_eq!(normalize_vlan("100").unwrap(), ".100");
        for ok in [".1", ":1", ":1:2", ".1:2:3", ""] {
            normalize_vlan(ok).unwrap();
        }
        // Ganeti's testVLanFormat.
        for bad in [".pinky", ":bunny", ":1:pinky", "bunny"] {
            assert_eq!(
                normalize_vlan(bad).unwrap_err(),
                GntError::inval(format!("Specified VLAN parameter is invalid : {bad}"))
            );
        }
    }

    #[test]
    fn nic_spec_parsing() {
        let s = NicSpec::parse("ip=pool,network=net1").unwrap();
        assert_eq!(s.ip.as_deref(), Some("pool"));
        assert_eq!(s.network.as_deref(), Some("net1"));
        let s = NicSpec::parse("ip=Pool,network=NONE,name=None,link=None").unwrap();
        assert_eq!(
            (s.ip.as_deref(), s.network.as_deref(), s.name.as_deref()),
            (Some("pool"), Some("none"), Some("none"))
        );
        assert_eq!(
            s.link.as_deref(),
            Some("None"),
            "links are names, not keywords"
        );
        assert!(NicSpec::parse("bogus=1").is_err());
        assert!(NicSpec::parse("ip").is_err());
    }
}
