//! `gnt-instance`, network side: instance NICs, their addresses and MACs, tags, hooks.
//! Options of Ganeti's `gnt-instance` that are not about networking are accepted (so
//! operators' command lines paste as they are) and ignored with one warning.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;
use netconf::eui64;
use netconf::nicmode::NicMode;
use netconf_cluster::GntError;
use netconf_cluster::config::{ClusterConfig, Instance, Store};
use netconf_cluster::ops::instance::{self as ops, AddInstance, NicChange, NicRef, NicSpec};

use crate::common::{
    FormatArg, Global, JobOpts, ListArgs, ListFieldsArgs, TagArgs, change_tags, finish, list,
    list_fields, mutate, out, print_info, print_tags, split_list,
};
use crate::complete;
use crate::sort::keys_by_name;
use crate::table::{Field, Join, Kind, Value};
use netconf::timefmt::format_time;

#[derive(Parser, Debug)]
#[command(
    name = "gnt-instance",
    version,
    about = "Instance administration, network side (netconf)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Ganeti options this suite does not act on (disks, OS, hypervisor, start-up).
#[derive(Args, Debug, Default)]
pub struct Ignored {
    #[arg(short = 't', long = "disk-template", hide = true)]
    disk_template: Option<String>,
    #[arg(short = 'o', long = "os-type", hide = true)]
    os: Option<String>,
    #[arg(long = "disk", hide = true)]
    disk: Vec<String>,
    #[arg(short = 's', long = "os-size", hide = true)]
    os_size: Option<String>,
    #[arg(short = 'B', long = "backend-parameters", hide = true)]
    beparams: Option<String>,
    #[arg(short = 'H', long = "hypervisor-parameters", hide = true)]
    hvparams: Option<String>,
    #[arg(short = 'O', long = "os-parameters", hide = true)]
    osparams: Option<String>,
    #[arg(short = 'I', long = "iallocator", hide = true)]
    iallocator: Option<String>,
    #[arg(long = "file-storage-dir", hide = true)]
    file_storage_dir: Option<String>,
    #[arg(long = "file-driver", hide = true)]
    file_driver: Option<String>,
    #[arg(long = "no-start", hide = true)]
    no_start: bool,
    #[arg(long = "no-install", hide = true)]
    no_install: bool,
    #[arg(long = "no-name-check", hide = true)]
    no_name_check: bool,
    #[arg(long = "no-ip-check", hide = true)]
    no_ip_check: bool,
    #[arg(long = "no-wait-for-sync", hide = true)]
    no_wait_for_sync: bool,
}

impl Ignored {
    fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut flag = |set: bool, name: &'static str| {
            if set {
                v.push(name);
            }
        };
        flag(self.disk_template.is_some(), "-t");
        flag(self.os.is_some(), "-o");
        flag(!self.disk.is_empty(), "--disk");
        flag(self.os_size.is_some(), "-s");
        flag(self.beparams.is_some(), "-B");
        flag(self.hvparams.is_some(), "-H");
        flag(self.osparams.is_some(), "-O");
        flag(self.iallocator.is_some(), "-I");
        flag(self.file_storage_dir.is_some(), "--file-storage-dir");
        flag(self.file_driver.is_some(), "--file-driver");
        flag(self.no_start, "--no-start");
        flag(self.no_install, "--no-install");
        flag(self.no_name_check, "--no-name-check");
        flag(self.no_ip_check, "--no-ip-check");
        flag(self.no_wait_for_sync, "--no-wait-for-sync");
        v
    }

    fn warn(&self) {
        let n = self.names();
        if !n.is_empty() {
            eprintln!(
                "Warning: ignoring options that are not about networking: {}",
                n.join(" ")
            );
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Add an instance with its NICs.
    Add {
        /// Primary node (its group gives the NICs' connections).
        #[arg(short = 'n', long = "node", value_name = "NODE", add = ArgValueCandidates::new(complete::nodes))]
        node: Option<String>,
        /// Node group, for instances without a node (default: `default`).
        #[arg(short = 'g', long = "node-group", value_name = "GROUP", add = ArgValueCandidates::new(complete::groups))]
        group: Option<String>,
        /// NIC: IDX:ip=pool|none|ADDR,network=NET,mac=generate|ADDR,mode=M,link=L,vlan=V,name=N
        #[arg(long = "net", value_name = "IDX:PARAMS")]
        net: Vec<String>,
        /// Create the instance without NICs.
        #[arg(long)]
        no_nics: bool,
        /// Tags, comma separated.
        #[arg(long, value_name = "TAG,TAG")]
        tags: Option<String>,
        /// Allow externally reserved addresses and addresses of connected networks.
        #[arg(long)]
        no_conflicts_check: bool,
        #[command(flatten)]
        ignored: Ignored,
        #[command(flatten)]
        jobs: JobOpts,
        name: String,
    },
    /// Change an instance's NICs: --net add:PARAMS, --net ID:modify,PARAMS, --net ID:remove.
    Modify {
        /// NIC change: add:PARAMS, IDX:add,PARAMS, ID:modify,PARAMS, ID:PARAMS, ID:remove, remove
        /// (ID: an index, -1 for the last NIC, or a NIC's name or UUID)
        #[arg(long = "net", value_name = "CHANGE", allow_hyphen_values = true)]
        net: Vec<String>,
        /// Allow externally reserved addresses and addresses of connected networks.
        #[arg(long)]
        no_conflicts_check: bool,
        /// Accepted for compatibility.
        #[arg(short = 'f', long)]
        force: bool,
        /// Accepted for compatibility (NICs change at the next ifup).
        #[arg(long, hide = true)]
        hotplug: bool,
        #[command(flatten)]
        ignored: Ignored,
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::instances))]
        name: String,
    },
    /// Remove an instance and release its addresses (no prompt: no disks are lost here).
    Remove {
        /// Accepted for compatibility; removal never asks.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(long, hide = true, value_name = "SECS")]
        shutdown_timeout: Option<String>,
        #[arg(long, hide = true)]
        ignore_failures: bool,
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::instances))]
        name: String,
    },
    /// Rename an instance.
    Rename {
        #[arg(long, hide = true)]
        no_name_check: bool,
        #[arg(long, hide = true)]
        no_ip_check: bool,
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::instances))]
        old: String,
        new: String,
    },
    /// Show instances in detail.
    Info {
        /// Show every instance.
        #[arg(long)]
        all: bool,
        /// Accepted for compatibility (all data is static here).
        #[arg(short = 's', long = "static")]
        static_: bool,
        #[command(flatten)]
        format: FormatArg,
        #[arg(add = ArgValueCandidates::new(complete::instances))]
        names: Vec<String>,
    },
    /// List instances.
    List {
        #[command(flatten)]
        opts: ListArgs,
        #[arg(add = ArgValueCandidates::new(complete::instances))]
        names: Vec<String>,
    },
    /// List the fields `list` knows.
    ListFields(ListFieldsArgs),
    /// Add tags to an instance.
    AddTags(TagArgs),
    /// Remove tags from an instance.
    RemoveTags(TagArgs),
    /// List an instance's tags.
    ListTags {
        #[arg(add = ArgValueCandidates::new(complete::instances))]
        name: String,
    },
}

pub fn main() -> ExitCode {
    complete::handle::<Cli>(Some(complete::Kind::Instance));
    finish(run(Cli::parse()))
}

/// `--net IDX:PARAMS` of `add`, with Ganeti's gap filling (missing indexes get defaults).
fn add_nics(opts: &[String], no_nics: bool) -> Result<Vec<NicSpec>, GntError> {
    if no_nics {
        if !opts.is_empty() {
            return Err(GntError::inval(
                "Cannot specify NICs and --no-nics at the same time",
            ));
        }
        return Ok(Vec::new());
    }
    if opts.is_empty() {
        return Ok(vec![NicSpec::default()]);
    }
    let mut nics: Vec<Option<NicSpec>> = Vec::new();
    for o in opts {
        let (idx, params) = o.split_once(':').unwrap_or((o.as_str(), ""));
        let idx: usize = idx
            .parse()
            .map_err(|_| GntError::inval(format!("Invalid NIC index passed: {idx}")))?;
        if idx >= ops::MAX_NICS {
            return Err(GntError::inval(format!(
                "Instance has too many network interfaces ({}), cannot add more",
                idx + 1
            )));
        }
        if nics.len() <= idx {
            nics.resize(idx + 1, None);
        }
        nics[idx] = Some(NicSpec::parse(params)?);
    }
    Ok(nics.into_iter().map(Option::unwrap_or_default).collect())
}

/// `--net` of `modify`: `add:P`, `IDX:add,P`, `remove`, `ID:remove`, `ID:modify,P`,
/// `ID:P`, where `ID` is an index, `-1` (the last NIC), or a NIC's name or UUID.
fn parse_change(o: &str) -> Result<NicChange, GntError> {
    let (ident, params) = o.split_once(':').unwrap_or((o, ""));
    let mut parts: Vec<&str> = params.split(',').filter(|p| !p.is_empty()).collect();
    let action = parts
        .iter()
        .position(|p| ["add", "remove", "modify", "attach", "detach"].contains(p));
    let action = action.map(|i| parts.remove(i));
    let rest = parts.join(",");
    match (ident, action) {
        ("add", None) => Ok(NicChange::Add(None, NicSpec::parse(&rest)?)),
        ("remove", None) if rest.is_empty() => Ok(NicChange::Remove(NicRef::Last)),
        ("attach", _) | (_, Some("attach")) => Err(GntError::inval(
            "Attach operation is not supported for NICs",
        )),
        ("detach", _) | (_, Some("detach")) => Err(GntError::inval(
            "Detach operation is not supported for NICs",
        )),
        // A new NIC's place is a number; names and UUIDs identify existing NICs.
        (i, Some("add")) => {
            let idx = match i {
                "-1" => None,
                i => Some(
                    i.parse::<usize>()
                        .map_err(|_| GntError::inval(format!("Invalid NIC index passed: {i}")))?,
                ),
            };
            Ok(NicChange::Add(idx, NicSpec::parse(&rest)?))
        }
        (_, Some("remove")) if !rest.is_empty() => Err(GntError::inval(
            "Not accepting parameters on removal/detach",
        )),
        (i, Some("remove")) => Ok(NicChange::Remove(NicRef::parse(i)?)),
        (i, _) => Ok(NicChange::Modify(NicRef::parse(i)?, NicSpec::parse(&rest)?)),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = cli.global.store();
    match cli.cmd {
        Cmd::Add {
            node,
            group,
            net,
            no_nics,
            tags,
            no_conflicts_check,
            ignored,
            jobs,
            name,
        } => {
            ignored.warn();
            // The store reads the name's index key with its first read (etcd).
            match netconf::InstanceName::parse(&name) {
                Ok(n) => store.expect_instance(n.as_str()),
                Err(_) => store.expect_instance(&name),
            }
            let args = AddInstance {
                name,
                node,
                group,
                nics: add_nics(&net, no_nics)?,
                tags: tags.as_deref().map(split_list).unwrap_or_default(),
                conflicts_check: !no_conflicts_check,
            };
            mutate(&store, &jobs, "instance-add", |cfg, fb| {
                Ok(((), vec![ops::add(cfg, &args, fb)?]))
            })?;
        }
        Cmd::Modify {
            net,
            no_conflicts_check,
            ignored,
            jobs,
            name,
            ..
        } => {
            ignored.warn();
            if net.is_empty() {
                return Err(
                    GntError::Usage("Please give at least one of the parameters.".into()).into(),
                );
            }
            store.expect_instance(&name);
            let changes: Vec<NicChange> = net
                .iter()
                .map(|o| parse_change(o))
                .collect::<Result<_, _>>()?;
            mutate(&store, &jobs, "instance-modify", |cfg, fb| {
                Ok((
                    (),
                    vec![ops::modify(cfg, &name, &changes, !no_conflicts_check, fb)?],
                ))
            })?;
            out(&format!("Modified instance {name}\n"))?;
        }
        Cmd::Remove { jobs, name, .. } => {
            store.expect_instance(&name);
            mutate(&store, &jobs, "instance-remove", |cfg, _| {
                Ok(((), vec![ops::remove(cfg, &name)?]))
            })?;
        }
        Cmd::Rename { jobs, old, new, .. } => {
            mutate(&store, &jobs, "instance-rename", |cfg, _| {
                Ok(((), vec![ops::rename(cfg, &old, &new)?]))
            })?;
            // The name as stored: Ganeti's normalisation may have changed what was typed.
            let new = netconf::InstanceName::parse(&new).map_or(new, String::from);
            out(&format!("Instance '{old}' renamed to '{new}'\n"))?;
        }
        Cmd::Info {
            all, names, format, ..
        } => {
            if names.is_empty() && !all {
                eprintln!(
                    "No instance selected. Please pass in --all if you want to query all instances.\nNote that this can take a long time on a big cluster."
                );
                return Ok(ExitCode::from(1));
            }
            if !names.is_empty() && all {
                eprintln!("Cannot use --all if you specify instance names.");
                return Ok(ExitCode::from(1));
            }
            let cfg = store.read()?;
            print_info(
                &format,
                &resolve(&cfg, &names)?,
                |u| info_json(&cfg, u),
                |u| info(&cfg, u),
            )?;
        }
        Cmd::List { opts, names } => {
            let cfg = store.read()?;
            return list(
                &all_fields(),
                &DEFAULT_FIELDS,
                &opts,
                || resolve(&cfg, &names),
                |u, f| value(&cfg, u, f),
            );
        }
        Cmd::ListFields(a) => return list_fields(&all_fields(), &a),
        Cmd::AddTags(a) => change_tags(&store, "instance-add-tags", &a, ops::add_tags)?,
        Cmd::RemoveTags(a) => change_tags(&store, "instance-remove-tags", &a, ops::remove_tags)?,
        Cmd::ListTags { name } => {
            let cfg = store.read()?;
            let uuid = cfg.instance_uuid(&name)?;
            print_tags(&cfg.instances.all_decoded()[&uuid].tags)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn resolve(cfg: &ClusterConfig, names: &[String]) -> Result<Vec<String>, GntError> {
    if names.is_empty() {
        return Ok(keys_by_name(
            cfg.instances
                .all_decoded()
                .iter()
                .map(|(u, i)| (u, i.name.as_str())),
        ));
    }
    names.iter().map(|n| cfg.instance_uuid(n)).collect()
}

use crate::table::field as f;

/// The named fields (the per-NIC `nic.X/N` ones are [`NIC_INDEXED`]). Titles, kinds and
/// descriptions are Ganeti 3.0's (`Ganeti.Query.Instance`), except `nic.ip6s`, ours.
pub const FIELDS: [Field; 26] = [
    f("name", "Instance", Kind::Text, "Instance name"),
    f("uuid", "UUID", Kind::Text, "Instance UUID"),
    f("pnode", "Primary_node", Kind::Text, "Primary node"),
    f(
        "pnode.group",
        "PrimaryNodeGroup",
        Kind::Text,
        "Primary node's group",
    ),
    f(
        "nic.count",
        "NICs",
        Kind::Number,
        "Number of network interfaces",
    ),
    f(
        "nic.ips",
        "NIC_IPs",
        Kind::Other,
        "List containing each network interface's IP address",
    ),
    f(
        "nic.macs",
        "NIC_MACs",
        Kind::Other,
        "List containing each network interface's MAC address",
    ),
    f(
        "nic.modes",
        "NIC_modes",
        Kind::Other,
        "List containing each network interface's mode",
    ),
    f(
        "nic.links",
        "NIC_links",
        Kind::Other,
        "List containing each network interface's link",
    ),
    f(
        "nic.vlans",
        "NIC_VLANs",
        Kind::Other,
        "List containing each network interface's VLAN",
    ),
    f(
        "nic.bridges",
        "NIC_bridges",
        Kind::Other,
        "List containing each network interface's bridge",
    ),
    f(
        "nic.networks",
        "NIC_networks",
        Kind::Other,
        "List containing each interface's network",
    ),
    f(
        "nic.networks.names",
        "NIC_networks_names",
        Kind::Other,
        "List containing the name of each interface's network",
    ),
    f(
        "nic.names",
        "NIC_Names",
        Kind::Other,
        "List containing each network interface's name",
    ),
    f(
        "nic.uuids",
        "NIC_UUIDs",
        Kind::Other,
        "List containing each network interface's UUID",
    ),
    f(
        "nic.ip6s",
        "NIC_IPv6s",
        Kind::Other,
        "List containing each network interface's EUI-64 IPv6 address",
    ),
    f("tags", "Tags", Kind::Other, "Tags"),
    f(
        "serial_no",
        "SerialNo",
        Kind::Number,
        "Instance object serial number",
    ),
    f("ctime", "CTime", Kind::Timestamp, "Creation timestamp"),
    f("mtime", "MTime", Kind::Timestamp, "Modification timestamp"),
    // Ganeti's legacy names for the first NIC: the title and description of the field
    // they stand for.
    f(
        "ip",
        "NicIP/0",
        Kind::Text,
        "IP address of 1st network interface",
    ),
    f(
        "mac",
        "NicMAC/0",
        Kind::Text,
        "MAC address of 1st network interface",
    ),
    f(
        "bridge",
        "NicBridge/0",
        Kind::Text,
        "Bridge of 1st network interface",
    ),
    f(
        "nic_mode",
        "NicMode/0",
        Kind::Text,
        "Mode of 1st network interface",
    ),
    f(
        "nic_link",
        "NicLink/0",
        Kind::Text,
        "Link of 1st network interface",
    ),
    f(
        "nic_network",
        "NicNetwork/0",
        Kind::Text,
        "Network of 1st network interface",
    ),
];

/// The aliases among [`FIELDS`] and the indexed field each stands for.
const ALIASES: [(&str, &str); 6] = [
    ("ip", "nic.ip/0"),
    ("mac", "nic.mac/0"),
    ("bridge", "nic.bridge/0"),
    ("nic_mode", "nic.mode/0"),
    ("nic_link", "nic.link/0"),
    ("nic_network", "nic.network/0"),
];

/// Ganeti's per-NIC fields, for each index below `MAX_NICS`, in its order.
macro_rules! nic_indexed {
    ($($i:literal $nth:literal),*) => {
        [$(
            f(concat!("nic.ip/", $i), concat!("NicIP/", $i), Kind::Text,
              concat!("IP address of ", $nth, " network interface")),
            f(concat!("nic.uuid/", $i), concat!("NicUUID/", $i), Kind::Text,
              concat!("UUID address of ", $nth, " network interface")),
            f(concat!("nic.mac/", $i), concat!("NicMAC/", $i), Kind::Text,
              concat!("MAC address of ", $nth, " network interface")),
            f(concat!("nic.name/", $i), concat!("NicName/", $i), Kind::Text,
              concat!("Name address of ", $nth, " network interface")),
            f(concat!("nic.network/", $i), concat!("NicNetwork/", $i), Kind::Text,
              concat!("Network of ", $nth, " network interface")),
            f(concat!("nic.mode/", $i), concat!("NicMode/", $i), Kind::Text,
              concat!("Mode of ", $nth, " network interface")),
            f(concat!("nic.link/", $i), concat!("NicLink/", $i), Kind::Text,
              concat!("Link of ", $nth, " network interface")),
            f(concat!("nic.vlan/", $i), concat!("NicVLAN/", $i), Kind::Text,
              concat!("VLAN of ", $nth, " network interface")),
            f(concat!("nic.network.name/", $i), concat!("NicNetworkName/", $i), Kind::Text,
              concat!("Network name of ", $nth, " network interface")),
            f(concat!("nic.bridge/", $i), concat!("NicBridge/", $i), Kind::Text,
              concat!("Bridge of ", $nth, " network interface")),
        )*]
    };
}

/// Fields per NIC index.
pub const NIC_FIELDS_PER_INDEX: usize = 10;

pub const NIC_INDEXED: [Field; NIC_FIELDS_PER_INDEX * ops::MAX_NICS] = nic_indexed!(
    0 "1st", 1 "2nd", 2 "3rd", 3 "4th", 4 "5th", 5 "6th", 6 "7th", 7 "8th"
);

/// Every field `list` knows.
pub fn all_fields() -> Vec<Field> {
    FIELDS.iter().chain(&NIC_INDEXED).copied().collect()
}

const DEFAULT_FIELDS: [&str; 4] = ["name", "pnode", "nic.ips", "nic.networks.names"];

fn eui64_of(cfg: &ClusterConfig, nic: &netconf_cluster::config::Nic) -> Option<std::net::Ipv6Addr> {
    let net = cfg.networks.get(nic.network.as_ref()?)?;
    Some(eui64::address(net.network6?, nic.mac))
}

/// A list field Ganeti's `gnt-instance list` prints with its default formatter: Python's
/// `str()` of the list, e.g. `['eth0', None]`.
fn py_list(items: impl Iterator<Item = Option<String>>) -> Value {
    Value::List(items.collect(), Join::Python)
}

/// A list field Ganeti's `gnt-instance list` joins with `,` (its format override for
/// `nic.macs`, `nic.ips`, `nic.modes`, `nic.links`, `nic.bridges`, `nic.networks`).
fn joined(items: impl Iterator<Item = Option<String>>) -> Value {
    Value::List(items.collect(), Join::With(","))
}

/// Ganeti shows a VLAN only for openvswitch NICs, a bridge only for bridged ones.
fn vlan_of(n: &netconf_cluster::config::Nic) -> Option<String> {
    (n.mode == NicMode::OpenVSwitch).then(|| n.vlan.to_string())
}

fn bridge_of(n: &netconf_cluster::config::Nic) -> Option<String> {
    (n.mode == NicMode::Bridged).then(|| n.link.to_string())
}

fn network_name(cfg: &ClusterConfig, n: &netconf_cluster::config::Nic) -> Option<String> {
    n.network
        .as_ref()
        .and_then(|x| cfg.networks.get(x))
        .map(|x| x.name.to_string())
}

/// `nic.X/N`: the value of NIC `N`, unavailable when the instance has no such NIC or the
/// NIC has no such value.
fn indexed(cfg: &ClusterConfig, i: &Instance, field: &str) -> Option<Value> {
    let (what, idx) = field.strip_prefix("nic.")?.rsplit_once('/')?;
    let idx: usize = idx.parse().ok()?;
    let Some(n) = i.nics.get(idx) else {
        return Some(Value::Unavail);
    };
    let v = match what {
        "ip" => n.ip.map(|x| x.to_string()),
        "uuid" => Some(n.uuid.to_string()),
        "mac" => Some(n.mac.to_string()),
        "name" => n.name.as_ref().map(|x| x.to_string()),
        "network" => n.network.as_ref().map(|x| x.to_string()),
        "mode" => Some(n.mode.to_string()),
        "link" => Some(n.link.to_string()),
        "vlan" => vlan_of(n),
        "network.name" => network_name(cfg, n),
        "bridge" => bridge_of(n),
        _ => return None,
    };
    Some(v.map_or(Value::Unavail, Value::Text))
}

fn value(cfg: &ClusterConfig, u: &str, field: &str) -> Value {
    let i = &cfg.instances.all_decoded()[u];
    let field = ALIASES
        .iter()
        .find(|(alias, _)| *alias == field)
        .map_or(field, |(_, target)| target);
    let nics = || i.nics.iter();
    match field {
        "name" => Value::Text(i.name.to_string()),
        "uuid" => Value::Text(u.to_owned()),
        "pnode" => Value::Text(ops::primary_name(cfg, i)),
        "pnode.group" => Value::Text(
            cfg.nodegroups
                .get(&i.group)
                .map_or_else(|| i.group.clone(), |g| g.name.to_string()),
        ),
        "nic.count" => Value::Number(i.nics.len() as i64),
        "nic.ips" => joined(nics().map(|n| n.ip.map(|x| x.to_string()))),
        "nic.macs" => joined(nics().map(|n| Some(n.mac.to_string()))),
        "nic.modes" => joined(nics().map(|n| Some(n.mode.to_string()))),
        "nic.links" => joined(nics().map(|n| Some(n.link.to_string()))),
        "nic.bridges" => joined(nics().map(bridge_of)),
        "nic.networks" => joined(nics().map(|n| n.network.as_ref().map(|x| x.to_string()))),
        "nic.vlans" => py_list(nics().map(vlan_of)),
        "nic.networks.names" => py_list(nics().map(|n| network_name(cfg, n))),
        "nic.names" => py_list(nics().map(|n| n.name.as_ref().map(|x| x.to_string()))),
        "nic.uuids" => py_list(nics().map(|n| Some(n.uuid.to_string()))),
        "nic.ip6s" => joined(nics().map(|n| eui64_of(cfg, n).map(|x| x.to_string()))),
        "tags" => Value::list(&i.tags, Join::With(",")),
        "serial_no" => Value::Number(i.serial_no as i64),
        "ctime" => Value::Time(i.ctime),
        "mtime" => Value::Time(i.mtime),
        f => indexed(cfg, i, f).unwrap_or(Value::Unavail),
    }
}

/// Ganeti's `gnt-instance info` layout (PrintGenericInfo), network part, plus the
/// EUI-64 address of NICs whose network has an IPv6 subnet.
pub fn info(cfg: &ClusterConfig, u: &str) -> String {
    use std::fmt::Write;
    let i = &cfg.instances.all_decoded()[u];
    let g = cfg
        .nodegroups
        .get(&i.group)
        .map_or(i.group.as_str(), |g| g.name.as_str());
    let mut s = String::new();
    let _ = writeln!(s, "- Instance name: {}", i.name);
    let _ = writeln!(s, "  UUID: {u}");
    let _ = writeln!(s, "  Serial number: {}", i.serial_no);
    let _ = writeln!(s, "  Creation time: {}", format_time(i.ctime));
    let _ = writeln!(s, "  Modification time: {}", format_time(i.mtime));
    let _ = writeln!(s, "  Nodes: ");
    let _ = writeln!(s, "    - primary: {}", ops::primary_name(cfg, i));
    let _ = writeln!(s, "      group: {g} (UUID {})", i.group);
    let _ = writeln!(s, "    - secondaries: ");
    let _ = writeln!(
        s,
        "  Tags: {}",
        i.tags
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s, "  NICs: ");
    for (idx, nic) in i.nics.iter().enumerate() {
        let net = nic.network.as_ref().and_then(|n| cfg.networks.get(n));
        let _ = writeln!(s, "    - nic/{idx}: ");
        let _ = writeln!(s, "      MAC: {}", nic.mac);
        let _ = writeln!(
            s,
            "      IP: {}",
            nic.ip.map_or_else(|| "None".into(), |ip| ip.to_string())
        );
        let _ = writeln!(s, "      mode: {}", nic.mode);
        let _ = writeln!(s, "      link: {}", nic.link);
        let _ = writeln!(s, "      vlan: {}", nic.vlan);
        let _ = writeln!(
            s,
            "      network: {}",
            net.map_or("None", |n| n.name.as_str())
        );
        let _ = writeln!(s, "      UUID: {}", nic.uuid);
        let _ = writeln!(s, "      name: {}", nic.name.as_deref().unwrap_or("None"));
        if let Some(ip6) = eui64_of(cfg, nic) {
            let _ = writeln!(s, "      IPv6 (EUI-64): {ip6}");
        }
    }
    s
}

/// `info --output-format json` of one instance (see JSON OUTPUT in gnt-instance(8)).
pub fn info_json(cfg: &ClusterConfig, u: &str) -> serde_json::Value {
    use serde_json::{Value as J, json};
    let i = &cfg.instances.all_decoded()[u];
    let g = cfg
        .nodegroups
        .get(&i.group)
        .map_or(i.group.as_str(), |g| g.name.as_str());
    let opt = |v: Option<String>| v.map_or(J::Null, J::String);
    let nics: Vec<J> = i
        .nics
        .iter()
        .map(|nic| {
            let net = nic.network.as_ref().and_then(|n| cfg.networks.get(n));
            json!({
                "mac": nic.mac.to_string(),
                "ip": opt(nic.ip.map(|ip| ip.to_string())),
                "mode": nic.mode.to_string(),
                "link": nic.link,
                "vlan": opt((!nic.vlan.is_empty()).then(|| nic.vlan.clone())),
                "network": opt(net.map(|n| n.name.to_string())),
                "uuid": nic.uuid,
                "name": opt(nic.name.clone()),
                "ipv6_eui64": opt(eui64_of(cfg, nic).map(|a| a.to_string())),
            })
        })
        .collect();
    json!({
        "instance_name": i.name.to_string(),
        "uuid": u,
        "serial_number": i.serial_no,
        "creation_time": i.ctime,
        "modification_time": i.mtime,
        "nodes": {
            "primary": ops::primary_name(cfg, i),
            "group": g,
            "group_uuid": i.group,
            "secondaries": [],
        },
        "tags": i.tags.iter().collect::<Vec<_>>(),
        "nics": nics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::py_repr;

    #[test]
    fn modify_change_forms() {
        assert!(
            matches!(parse_change("add:ip=pool,network=n").unwrap(), NicChange::Add(None, s) if s.network.as_deref() == Some("n"))
        );
        assert!(matches!(
            parse_change("1:add,ip=pool,network=n").unwrap(),
            NicChange::Add(Some(1), _)
        ));
        assert_eq!(
            parse_change("2:remove").unwrap(),
            NicChange::Remove(NicRef::Index(2))
        );
        assert_eq!(
            parse_change("remove").unwrap(),
            NicChange::Remove(NicRef::Last)
        );
        assert_eq!(
            parse_change("eth1:remove").unwrap(),
            NicChange::Remove(NicRef::Ident("eth1".into()))
        );
        assert!(matches!(
            parse_change("0:modify,ip=1.2.3.4").unwrap(),
            NicChange::Modify(NicRef::Index(0), _)
        ));
        assert!(matches!(
            parse_change("0:ip=1.2.3.4").unwrap(),
            NicChange::Modify(NicRef::Index(0), _)
        ));
        assert!(matches!(
            parse_change("-1:ip=1.2.3.4").unwrap(),
            NicChange::Modify(NicRef::Last, _)
        ));
        assert_eq!(
            parse_change("-2:remove").unwrap_err(),
            GntError::inval("Not accepting negative indices other than -1")
        );
        assert_eq!(
            parse_change("x:add,ip=pool").unwrap_err(),
            GntError::inval("Invalid NIC index passed: x")
        );
        assert_eq!(
            parse_change("0:attach").unwrap_err(),
            GntError::inval("Attach operation is not supported for NICs")
        );
    }

    #[test]
    fn lists_print_as_python_prints_them() {
        assert_eq!(py_repr("eth0"), "'eth0'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("a\\b\n\u{1}"), "'a\\\\b\\n\\x01'");
        assert_eq!(
            py_list([Some("x".to_owned()), None].into_iter()).cell(false),
            "['x', None]"
        );
        assert_eq!(py_list(std::iter::empty()).cell(false), "[]");
    }

    #[test]
    fn add_fills_gaps() {
        let n = add_nics(&["1:ip=pool,network=x".into()], false).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0], NicSpec::default());
        assert_eq!(add_nics(&[], false).unwrap().len(), 1);
        assert!(add_nics(&[], true).unwrap().is_empty());
    }
}
