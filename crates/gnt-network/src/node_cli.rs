//! `gnt-node`: nodes and their groups, as far as networks need them.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;
use netconf_cluster::GntError;
use netconf_cluster::config::{ClusterConfig, Store};
use netconf_cluster::ops::node as ops;

use crate::common::{Global, JobOpts, ListArgs, finish, list, mutate};
use crate::complete;
use crate::sort::{keys_by_name, nice_cmp};
use crate::table::{Field, Join, Kind, Value};

#[derive(Parser, Debug)]
#[command(name = "gnt-node", version, about = "Node administration (netconf)")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Add a node to a group (`default` unless -g is given).
    Add {
        /// Node group of the new node.
        #[arg(short = 'g', long = "node-group", value_name = "GROUP", add = ArgValueCandidates::new(complete::groups))]
        group: Option<String>,
        /// The node's primary IPv4 address (Ganeti resolves the name; this suite does not).
        #[arg(long, value_name = "IP")]
        primary_ip: Option<Ipv4Addr>,
        /// The node's secondary IPv4 address (defaults to the primary).
        #[arg(short = 's', long, value_name = "IP")]
        secondary_ip: Option<Ipv4Addr>,
        #[command(flatten)]
        jobs: JobOpts,
        node: String,
    },
    /// Remove a node without instances.
    Remove {
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::nodes))]
        node: String,
    },
    /// Change a node: move it (and its instances) to another group.
    Modify {
        #[arg(
            short = 'g',
            long = "node-group",
            value_name = "GROUP",
            required = true,
            add = ArgValueCandidates::new(complete::groups)
        )]
        group: String,
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::nodes))]
        node: String,
    },
    /// List nodes.
    List {
        #[command(flatten)]
        opts: ListArgs,
        #[arg(add = ArgValueCandidates::new(complete::nodes))]
        nodes: Vec<String>,
    },
}

pub fn main() -> ExitCode {
    complete::handle::<Cli>(Some(complete::Kind::Node));
    finish(run(Cli::parse()))
}

use crate::table::field as f;

pub const FIELDS: [Field; 8] = [
    f("name", "Node", Kind::Text, "Node name"),
    f("uuid", "UUID", Kind::Text, "Node UUID"),
    f("group", "Group", Kind::Text, "Node group"),
    f("pip", "PrimaryIP", Kind::Text, "Primary IP address"),
    f("sip", "SecondaryIP", Kind::Text, "Secondary IP address"),
    f(
        "pinst_cnt",
        "Pinst",
        Kind::Number,
        "Number of instances with this node as primary",
    ),
    f(
        "pinst_list",
        "PriInstances",
        Kind::Other,
        "List of instances with this node as primary",
    ),
    f(
        "serial_no",
        "SerialNo",
        Kind::Number,
        "Node object serial number",
    ),
];

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = cli.global.store();
    match cli.cmd {
        Cmd::Add {
            group,
            primary_ip,
            secondary_ip,
            jobs,
            node,
        } => {
            mutate(&store, &jobs, "node-add", |c, _| {
                Ok((
                    ops::add(c, &node, group.as_deref(), primary_ip, secondary_ip)?,
                    vec![],
                ))
            })?;
        }
        Cmd::Remove { jobs, node } => mutate(&store, &jobs, "node-remove", |c, _| {
            Ok((ops::remove(c, &node)?, vec![]))
        })?,
        Cmd::Modify { group, jobs, node } => {
            mutate(&store, &jobs, "node-modify", |c, fb| {
                let moved = ops::set_group(c, &node, &group)?;
                if moved > 0 {
                    fb.info(format!(
                        "Moved {moved} instance(s) with node {node} to group {group}"
                    ));
                }
                Ok(((), vec![]))
            })?;
        }
        Cmd::List { opts, nodes } => {
            let cfg = store.read()?;
            return list(
                &FIELDS,
                &["name", "group", "pip", "sip", "pinst_cnt"],
                &opts,
                || resolve(&cfg, &nodes),
                |u, f| value(&cfg, u, f),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn resolve(cfg: &ClusterConfig, names: &[String]) -> Result<Vec<String>, GntError> {
    if names.is_empty() {
        return Ok(keys_by_name(
            cfg.nodes.iter().map(|(u, n)| (u, n.name.as_str())),
        ));
    }
    names.iter().map(|n| cfg.node_uuid(n)).collect()
}

fn instances(cfg: &ClusterConfig, u: &str) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .instances
        .all_decoded()
        .values()
        .filter(|i| i.primary_node.as_deref() == Some(u))
        .map(|i| i.name.to_string())
        .collect();
    v.sort_by(|a, b| nice_cmp(a, b));
    v
}

fn value(cfg: &ClusterConfig, u: &str, field: &str) -> Value {
    let n = &cfg.nodes[u];
    let ip = |v: Option<Ipv4Addr>| v.map_or(Value::Unavail, |i| Value::Text(i.to_string()));
    match field {
        "name" => Value::Text(n.name.to_string()),
        "uuid" => Value::Text(u.to_owned()),
        "group" => Value::Text(
            cfg.nodegroups
                .get(&n.group)
                .map_or_else(|| n.group.clone(), |g| g.name.to_string()),
        ),
        "pip" => ip(n.primary_ip),
        "sip" => ip(n.secondary_ip),
        "pinst_cnt" => Value::Number(instances(cfg, u).len() as i64),
        "pinst_list" => Value::list(instances(cfg, u), Join::With(",")),
        "serial_no" => Value::Number(n.serial_no as i64),
        _ => Value::Unavail,
    }
}
