//! `gnt-network`: Ganeti 3.0's command line, output layouts and error texts.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;
use netconf::NicMode;
use netconf_cluster::GntError;
use netconf_cluster::config::{ClusterConfig, Network, Store};
use netconf_cluster::ops::network::{self as ops, AddNetwork, ModifyNetwork, RawNicParams};
use netconf_cluster::pool::AddressPool;

use crate::common::{
    FormatArg, Global, JobOpts, ListArgs, ListFieldsArgs, TagArgs, change_tags, finish, list,
    list_fields, mutate, print_info, print_tags, split_list,
};
use crate::complete;
use crate::sort::keys_by_name;
use crate::table::{self, Field, Join, Kind, Value};

#[derive(Parser, Debug)]
#[command(
    name = "gnt-network",
    version,
    about = "Ganeti network administration (netconf)",
    long_about = "Manages cluster networks: IPv4 address pools, gateways, IPv6 subnets, MAC prefixes, \
                  reserved addresses, tags and their connections to node groups. Works on the \
                  file-locked config.data (see --config)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Add a network.
    Add(AddArgs),
    /// Change a network's gateway, IPv6 settings, MAC prefix or reserved addresses.
    Modify(ModifyArgs),
    /// Remove a network (it must be disconnected from every group).
    Remove {
        /// Accepted for compatibility; removal never asks.
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::networks))]
        network: String,
    },
    /// Rename a network.
    Rename {
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::networks))]
        old: String,
        new: String,
    },
    /// Connect a network to node groups (all groups when none are named).
    Connect(ConnectArgs),
    /// Disconnect a network from node groups (all groups when none are named).
    Disconnect {
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::networks))]
        network: String,
        #[arg(add = ArgValueCandidates::new(complete::groups))]
        groups: Vec<String>,
    },
    /// List networks.
    List {
        #[command(flatten)]
        opts: ListArgs,
        #[arg(add = ArgValueCandidates::new(complete::networks))]
        networks: Vec<String>,
    },
    /// List the fields `list` knows.
    ListFields(ListFieldsArgs),
    /// Show networks in detail (all networks when none are named).
    Info {
        #[command(flatten)]
        format: FormatArg,
        #[arg(add = ArgValueCandidates::new(complete::networks))]
        networks: Vec<String>,
    },
    /// Add tags to a network.
    AddTags(TagArgs),
    /// Remove tags from a network.
    RemoveTags(TagArgs),
    /// List a network's tags.
    ListTags {
        #[arg(add = ArgValueCandidates::new(complete::networks))]
        network: String,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// IPv4 subnet in CIDR form, /16 to /30; without it the network is L2-only.
    #[arg(long, value_name = "CIDR")]
    pub network: Option<String>,
    /// IPv4 gateway; reserved externally.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Addresses to reserve externally, comma separated.
    #[arg(long, value_name = "IP,IP")]
    pub add_reserved_ips: Option<String>,
    /// Let ip=pool allocate only from START to END (repeatable; default: the whole subnet).
    #[arg(long, value_name = "START-END")]
    pub allocation_range: Vec<String>,
    /// IPv6 subnet in CIDR form.
    #[arg(long, value_name = "CIDR6")]
    pub network6: Option<String>,
    /// IPv6 gateway (inside the IPv6 subnet or link-local).
    #[arg(long, value_name = "IP6")]
    pub gateway6: Option<String>,
    /// MAC prefix of NICs in this network (three octets).
    #[arg(short = 'm', long, value_name = "XX:XX:XX")]
    pub mac_prefix: Option<String>,
    /// Tags, comma separated.
    #[arg(long, value_name = "TAG,TAG")]
    pub tags: Option<String>,
    /// Neither reserve node addresses nor refuse a subnet overlapping another network.
    #[arg(long)]
    pub no_conflicts_check: bool,
    #[command(flatten)]
    pub jobs: JobOpts,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct ModifyArgs {
    /// New IPv4 gateway, or `none`.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Addresses to reserve externally, comma separated.
    #[arg(long, value_name = "IP,IP")]
    pub add_reserved_ips: Option<String>,
    /// Addresses to release from the external reservations, comma separated.
    #[arg(long, value_name = "IP,IP")]
    pub remove_reserved_ips: Option<String>,
    /// Replace the allocation ranges (repeatable), or `none` for the whole subnet.
    #[arg(long, value_name = "START-END")]
    pub allocation_range: Vec<String>,
    /// Allocation ranges (START-END) to add, comma separated.
    #[arg(long, value_name = "RANGE,RANGE")]
    pub add_allocation_ranges: Option<String>,
    /// Allocation ranges (START-END) to remove, comma separated.
    #[arg(long, value_name = "RANGE,RANGE")]
    pub remove_allocation_ranges: Option<String>,
    /// New IPv6 subnet, or `none`.
    #[arg(long, value_name = "CIDR6")]
    pub network6: Option<String>,
    /// New IPv6 gateway, or `none`.
    #[arg(long, value_name = "IP6")]
    pub gateway6: Option<String>,
    /// New MAC prefix, or `none`.
    #[arg(short = 'm', long, value_name = "XX:XX:XX")]
    pub mac_prefix: Option<String>,
    #[command(flatten)]
    pub jobs: JobOpts,
    #[arg(add = ArgValueCandidates::new(complete::networks))]
    pub network: String,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// NIC parameters of the connection: mode=M,link=L,vlan=V (defaults: the cluster's).
    #[arg(
        short = 'N',
        long = "nic-parameters",
        value_name = "mode=M,link=L,vlan=V"
    )]
    pub nic_parameters: Option<String>,
    /// Skip the check for instance addresses already inside the subnet.
    #[arg(long)]
    pub no_conflicts_check: bool,
    #[command(flatten)]
    pub jobs: JobOpts,
    /// NETWORK [GROUP…], or the old form NETWORK MODE LINK [GROUP…].
    #[arg(required = true, value_name = "ARGS", add = ArgValueCandidates::new(complete::network_then_groups))]
    pub args: Vec<String>,
}

pub fn main() -> ExitCode {
    complete::handle::<Cli>(Some(complete::Kind::Network));
    finish(run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = cli.global.store();
    match cli.cmd {
        Cmd::Add(a) => {
            let args = AddNetwork {
                name: a.name,
                network: a.network,
                gateway: a.gateway,
                network6: a.network6,
                gateway6: a.gateway6,
                mac_prefix: a.mac_prefix,
                add_reserved_ips: a
                    .add_reserved_ips
                    .as_deref()
                    .map(split_list)
                    .unwrap_or_default(),
                allocation_ranges: a.allocation_range,
                tags: a.tags.as_deref().map(split_list).unwrap_or_default(),
                conflicts_check: !a.no_conflicts_check,
            };
            mutate(&store, &a.jobs, "network-add", |cfg, fb| {
                Ok(((), vec![ops::add(cfg, &args, fb)?]))
            })?;
        }
        Cmd::Modify(m) => {
            let args = ModifyNetwork {
                name: m.network,
                gateway: m.gateway,
                network6: m.network6,
                gateway6: m.gateway6,
                mac_prefix: m.mac_prefix,
                add_reserved_ips: m.add_reserved_ips.as_deref().map(split_list),
                remove_reserved_ips: m.remove_reserved_ips.as_deref().map(split_list),
                allocation_ranges: (!m.allocation_range.is_empty()).then_some(m.allocation_range),
                add_allocation_ranges: m.add_allocation_ranges.as_deref().map(split_list),
                remove_allocation_ranges: m.remove_allocation_ranges.as_deref().map(split_list),
            };
            if args.is_empty() {
                // Ganeti's client refuses before submitting anything.
                return Err(
                    GntError::Usage("Please give at least one of the parameters.".into()).into(),
                );
            }
            mutate(&store, &m.jobs, "network-modify", |cfg, fb| {
                Ok(((), vec![ops::modify(cfg, &args, fb)?]))
            })?;
        }
        Cmd::Remove { jobs, network, .. } => {
            mutate(&store, &jobs, "network-remove", |cfg, fb| {
                Ok(((), vec![ops::remove(cfg, &network, fb)?]))
            })?;
        }
        Cmd::Rename { jobs, old, new } => {
            mutate(&store, &jobs, "network-rename", |cfg, _| {
                Ok(((), vec![ops::rename(cfg, &old, &new)?]))
            })?;
        }
        Cmd::Connect(c) => connect(&store, c)?,
        Cmd::Disconnect {
            jobs,
            network,
            groups,
        } => {
            mutate(&store, &jobs, "network-disconnect", |cfg, fb| {
                Ok(((), ops::disconnect(cfg, &network, &groups, fb)?))
            })?;
        }
        Cmd::List { opts, networks } => {
            let cfg = store.read()?;
            return list(
                &all_fields(),
                &DEFAULT_FIELDS,
                &opts,
                || resolve(&cfg, &networks),
                |u, f| value(&cfg, u, &cfg.networks[u], f),
            );
        }
        // Named fields are looked up among all; the full listing stays Ganeti's.
        Cmd::ListFields(a) if a.fields.is_empty() => return list_fields(&FIELDS, &a),
        Cmd::ListFields(a) => return list_fields(&all_fields(), &a),
        Cmd::Info { format, networks } => {
            let cfg = store.read()?;
            print_info(
                &format,
                &resolve(&cfg, &networks)?,
                |u| info_json(&cfg, u),
                |u| info(&cfg, u),
            )?;
        }
        Cmd::AddTags(a) => change_tags(&store, "network-add-tags", &a, ops::add_tags)?,
        Cmd::RemoveTags(a) => change_tags(&store, "network-remove-tags", &a, ops::remove_tags)?,
        Cmd::ListTags { network } => {
            let cfg = store.read()?;
            let uuid = cfg.network_uuid(&network)?;
            print_tags(&cfg.networks[&uuid].tags)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `-N` key=value pairs.
fn parse_nic_params(s: &str) -> Result<RawNicParams, GntError> {
    let mut p = RawNicParams::default();
    for kv in split_list(s) {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(GntError::inval(format!(
                "Missing value for key '{kv}' in option --nic-parameters"
            )));
        };
        match k {
            "mode" => p.mode = Some(v.to_owned()),
            "link" => p.link = Some(v.to_owned()),
            "vlan" => p.vlan = Some(v.to_owned()),
            _ => {
                return Err(GntError::inval(format!(
                    "Unknown parameter '{k}' in --nic-parameters (valid: mode, link, vlan)"
                )));
            }
        }
    }
    Ok(p)
}

/// Both syntaxes of `connect`. The old positional form (Ganeti 2.7–2.10) is taken only
/// when the second argument is a NIC mode and no group has that name; when both readings
/// are possible the command refuses instead of guessing.
fn connect(store: &dyn Store, c: ConnectArgs) -> anyhow::Result<()> {
    let mut args = c.args;
    let network = args.remove(0);
    let (raw, groups) = match c.nic_parameters {
        Some(n) => (parse_nic_params(&n)?, args),
        None if args.len() >= 2 && args[0].parse::<NicMode>().is_ok() => {
            let cfg = store.read()?;
            if cfg.group_uuid(&args[0]).is_ok() {
                return Err(GntError::inval(format!(
                    "Ambiguous arguments: '{}' is both a NIC mode and a node group; use -N mode=M,link=L {network} GROUP...",
                    args[0]
                ))
                .into());
            }
            let mode = args.remove(0);
            let link = args.remove(0);
            (
                RawNicParams {
                    mode: Some(mode),
                    link: Some(link),
                    vlan: None,
                },
                args,
            )
        }
        None => (RawNicParams::default(), args),
    };
    mutate(store, &c.jobs, "network-connect", |cfg, fb| {
        Ok((
            (),
            ops::connect(cfg, &network, &raw, &groups, !c.no_conflicts_check, fb)?,
        ))
    })?;
    Ok(())
}

/// Networks named on the command line (UUID or name), or all of them nice-sorted.
fn resolve(cfg: &ClusterConfig, names: &[String]) -> Result<Vec<String>, GntError> {
    if names.is_empty() {
        return Ok(keys_by_name(
            cfg.networks.iter().map(|(u, n)| (u, n.name.as_str())),
        ));
    }
    names
        .iter()
        .map(|n| {
            cfg.network_uuid(n)
                .map_err(|_| GntError::noent(format!("Network name {n} not found")))
        })
        .collect()
}

use crate::table::field as f;

pub const FIELDS: [Field; 19] = [
    f("name", "Network", Kind::Text, "Name"),
    f("network", "Subnet", Kind::Text, "IPv4 subnet"),
    f("gateway", "Gateway", Kind::Other, "IPv4 gateway"),
    f("network6", "IPv6Subnet", Kind::Other, "IPv6 subnet"),
    f("gateway6", "IPv6Gateway", Kind::Other, "IPv6 gateway"),
    f("mac_prefix", "MacPrefix", Kind::Other, "MAC address prefix"),
    f(
        "free_count",
        "FreeCount",
        Kind::Number,
        "Number of available addresses",
    ),
    f("map", "Map", Kind::Text, "Actual mapping"),
    f(
        "reserved_count",
        "ReservedCount",
        Kind::Number,
        "Number of reserved addresses",
    ),
    f(
        "group_list",
        "GroupList",
        Kind::Other,
        "List of nodegroups (group name, NIC mode, NIC link)",
    ),
    f(
        "group_cnt",
        "NodeGroups",
        Kind::Number,
        "Number of nodegroups",
    ),
    f(
        "inst_list",
        "InstanceList",
        Kind::Other,
        "List of instances",
    ),
    f("inst_cnt", "Instances", Kind::Number, "Number of instances"),
    f(
        "external_reservations",
        "ExternalReservations",
        Kind::Text,
        "External reservations",
    ),
    f("ctime", "CTime", Kind::Timestamp, "Creation timestamp"),
    f("mtime", "MTime", Kind::Timestamp, "Modification timestamp"),
    f("uuid", "UUID", Kind::Text, "Network UUID"),
    f(
        "serial_no",
        "SerialNo",
        Kind::Number,
        "Network object serial number, incremented on each modification",
    ),
    f("tags", "Tags", Kind::Other, "Tags"),
];

/// Fields beyond Ganeti 3.0's. `list -o` and `list-fields NAME` know them; `list-fields`
/// without names leaves them out, so that its output stays Ganeti's byte for byte.
pub const EXTRA_FIELDS: [Field; 1] = [f(
    "alloc_ranges",
    "AllocRanges",
    Kind::Text,
    "Allocation ranges of ip=pool (none: the whole subnet)",
)];

/// Ganeti's fields, then ours.
fn all_fields() -> Vec<Field> {
    FIELDS.iter().chain(&EXTRA_FIELDS).copied().collect()
}

const DEFAULT_FIELDS: [&str; 6] = [
    "name",
    "network",
    "gateway",
    "mac_prefix",
    "group_list",
    "tags",
];

fn opt<T: ToString>(v: Option<T>) -> Value {
    v.map_or(Value::Unavail, |x| Value::Text(x.to_string()))
}

/// Groups connected to network `uuid`, in group-map order: (name, params).
fn connections<'a>(
    cfg: &'a ClusterConfig,
    uuid: &'a str,
) -> impl Iterator<Item = (&'a str, &'a netconf_cluster::config::NicParams)> {
    cfg.nodegroups
        .values()
        .filter_map(move |g| g.networks.get(uuid).map(|p| (g.name.as_str(), p)))
}

fn value(cfg: &ClusterConfig, uuid: &str, n: &Network, field: &str) -> Value {
    // An L2-only network has no pool: its pool fields are unavailable, as its subnet.
    let pool = |f: &dyn Fn(&AddressPool) -> Value| n.pool.as_ref().map_or(Value::Unavail, f);
    match field {
        "name" => Value::Text(n.name.to_string()),
        "network" => opt(n.network),
        "gateway" => opt(n.gateway),
        "network6" => opt(n.network6),
        "gateway6" => opt(n.gateway6),
        "mac_prefix" => opt(n.mac_prefix),
        "free_count" => pool(&|p| Value::Number(p.free_count() as i64)),
        "map" => pool(&|p| Value::Text(p.map())),
        "reserved_count" => pool(&|p| Value::Number(p.reserved_count() as i64)),
        "group_list" => Value::Shaped(
            connections(cfg, uuid)
                .map(|(g, p)| format!("{g} ({}, {}, {})", p.mode, p.link, p.vlan))
                .collect::<Vec<_>>()
                .join(", "),
            serde_json::Value::Array(
                connections(cfg, uuid)
                    .map(|(g, p)| table::connection_json("group", g, p))
                    .collect(),
            ),
        ),
        "group_cnt" => Value::Number(connections(cfg, uuid).count() as i64),
        "inst_list" => Value::list(
            cfg.instances_on_network(uuid)
                .into_iter()
                .map(|(_, i)| i.name),
            Join::With(","),
        ),
        "inst_cnt" => Value::Number(cfg.instances_on_network(uuid).len() as i64),
        "external_reservations" => {
            pool(&|p| Value::list(p.external_reservations(), Join::With(", ")))
        }
        "alloc_ranges" => pool(&|p| Value::list(p.ranges(), Join::With(", "))),
        "ctime" => Value::Time(n.ctime),
        "mtime" => Value::Time(n.mtime),
        "uuid" => Value::Text(uuid.to_owned()),
        "serial_no" => Value::Number(n.serial_no as i64),
        "tags" => Value::list(&n.tags, Join::With(",")),
        _ => Value::Unavail,
    }
}

fn join_ips(ips: &[std::net::Ipv4Addr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_ranges(pool: &AddressPool) -> String {
    let v: Vec<String> = pool.ranges().iter().map(ToString::to_string).collect();
    v.join(", ")
}

/// Ganeti 3.0.2's `gnt-network info` block for one network; allocation ranges, when a
/// network has them, add a line and a map character of their own. An L2-only network
/// shows `Subnet: None` and no pool lines (size, free, usage map, reservations): it has
/// no pool, and Ganeti's block would divide by its size.
pub fn info(cfg: &ClusterConfig, uuid: &str) -> String {
    use std::fmt::Write;
    let n = &cfg.networks[uuid];
    let none = |v: Option<String>| v.unwrap_or_else(|| "None".into());
    let mut s = String::new();
    let _ = writeln!(s, "Network name: {}", n.name);
    let _ = writeln!(s, "UUID: {uuid}");
    let _ = writeln!(s, "Serial number: {}", n.serial_no);
    let _ = writeln!(s, "  Subnet: {}", none(n.network.map(|g| g.to_string())));
    let _ = writeln!(s, "  Gateway: {}", none(n.gateway.map(|g| g.to_string())));
    let _ = writeln!(
        s,
        "  IPv6 Subnet: {}",
        none(n.network6.map(|g| g.to_string()))
    );
    let _ = writeln!(
        s,
        "  IPv6 Gateway: {}",
        none(n.gateway6.map(|g| g.to_string()))
    );
    let _ = writeln!(
        s,
        "  Mac Prefix: {}",
        none(n.mac_prefix.map(|g| g.to_string()))
    );
    if let Some(pool) = &n.pool {
        info_pool(&mut s, pool);
    }
    let groups: Vec<_> = connections(cfg, uuid).collect();
    if groups.is_empty() {
        let _ = writeln!(s, "  not connected to any node group");
    } else {
        let _ = writeln!(s, "  connected to node groups:");
        for (g, p) in groups {
            let _ = writeln!(
                s,
                "    {g} (mode:{} link:{} vlan:{})",
                p.mode, p.link, p.vlan
            );
        }
    }
    let insts = cfg.instances_on_network(uuid);
    if insts.is_empty() {
        let _ = writeln!(s, "  not used by any instances");
    } else {
        let _ = writeln!(s, "  used by {} instances:", insts.len());
        for (_, inst) in insts {
            let nics: Vec<String> = inst
                .nics
                .iter()
                .enumerate()
                .filter(|(_, nic)| nic.network.as_deref() == Some(uuid))
                .map(|(i, nic)| {
                    format!(
                        "{i}:{}",
                        nic.ip
                            .map_or_else(|| "None".to_owned(), |ip| ip.to_string())
                    )
                })
                .collect();
            let _ = writeln!(s, "    {}: {}", inst.name, nics.join(", "));
        }
    }
    s
}

/// The pool lines of `info`: ranges, size, free count, usage map, reservations.
fn info_pool(s: &mut String, pool: &AddressPool) {
    use std::fmt::Write;
    let ranged = !pool.ranges().is_empty();
    if ranged {
        let _ = writeln!(s, "  Allocation ranges: {}", join_ranges(pool));
    }
    let free = pool.free_count();
    let _ = writeln!(s, "  Size: {}", pool.size());
    // Of what ip=pool may hand out: the ranges, or (as Ganeti) the whole subnet.
    let of = pool.allocatable_size();
    let pct = if of == 0 {
        0.0
    } else {
        free as f64 * 100.0 / of as f64
    };
    let _ = writeln!(s, "  Free: {free} ({pct:.2}%)");
    let _ = writeln!(s, "  Usage map:");
    let map = pool.map();
    for (i, chunk) in map.as_bytes().chunks(64).enumerate() {
        let start = i * 64;
        let chunk = std::str::from_utf8(chunk).unwrap_or_default();
        let _ = writeln!(s, "     {start:>4} {chunk:<64} {}", start + 63);
    }
    if ranged {
        let _ = writeln!(
            s,
            "         (X) used    (.) free    (-) outside the allocation ranges"
        );
    } else {
        let _ = writeln!(s, "         (X) used    (.) free");
    }
    let ext = pool.external_reservations();
    if !ext.is_empty() {
        let _ = writeln!(s, "  externally reserved IPs:");
        for line in table::wrap(&join_ips(&ext), 64) {
            let _ = writeln!(s, "    {line}");
        }
    }
}

/// `info --output-format json` of one network: the keys of the text block in snake case,
/// typed (see JSON OUTPUT in gnt-network(8)).
pub fn info_json(cfg: &ClusterConfig, uuid: &str) -> serde_json::Value {
    use serde_json::{Value as J, json};
    let n = &cfg.networks[uuid];
    let text = |v: Option<String>| v.map_or(J::Null, J::String);
    // An L2-only network's pool keys are null.
    let pool = |f: &dyn Fn(&AddressPool) -> J| n.pool.as_ref().map_or(J::Null, f);
    let instances: Vec<J> = cfg
        .instances_on_network(uuid)
        .into_iter()
        .map(|(_, inst)| {
            let nics: Vec<J> = inst
                .nics
                .iter()
                .enumerate()
                .filter(|(_, nic)| nic.network.as_deref() == Some(uuid))
                .map(|(i, nic)| json!({"index": i, "ip": text(nic.ip.map(|ip| ip.to_string()))}))
                .collect();
            json!({"name": inst.name.to_string(), "nics": nics})
        })
        .collect();
    json!({
        "network_name": n.name.to_string(),
        "uuid": uuid,
        "serial_number": n.serial_no,
        "subnet": text(n.network.map(|g| g.to_string())),
        "gateway": text(n.gateway.map(|g| g.to_string())),
        "ipv6_subnet": text(n.network6.map(|g| g.to_string())),
        "ipv6_gateway": text(n.gateway6.map(|g| g.to_string())),
        "mac_prefix": text(n.mac_prefix.map(|g| g.to_string())),
        "allocation_ranges": pool(&|p| if p.ranges().is_empty() {
            J::Null
        } else {
            J::Array(p.ranges().iter().map(|r| J::String(r.to_string())).collect())
        }),
        "size": pool(&|p| p.size().into()),
        "free": pool(&|p| p.free_count().into()),
        "usage_map": pool(&|p| p.map().into()),
        "externally_reserved_ips": pool(&|p| p
            .external_reservations()
            .iter()
            .map(|ip| J::String(ip.to_string()))
            .collect()),
        "node_groups": connections(cfg, uuid)
            .map(|(g, p)| table::connection_json("group", g, p))
            .collect::<Vec<_>>(),
        "instances": instances,
    })
}
