//! `gnt-group`: node groups, as far as networks need them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;
use netconf_cluster::GntError;
use netconf_cluster::config::{ClusterConfig, Store};
use netconf_cluster::ops::group as ops;

use crate::common::{FormatArg, Global, JobOpts, ListArgs, finish, list, mutate, print_info};
use crate::complete;
use crate::sort::{keys_by_name, nice_cmp};
use crate::table::{self, Field, Join, Kind, Value};

#[derive(Parser, Debug)]
#[command(
    name = "gnt-group",
    version,
    about = "Node group administration (netconf)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Add a node group.
    Add {
        #[command(flatten)]
        jobs: JobOpts,
        group: String,
    },
    /// Remove an empty node group.
    Remove {
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::groups))]
        group: String,
    },
    /// Rename a node group.
    Rename {
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::groups))]
        old: String,
        new: String,
    },
    /// Move nodes (and their instances) into a group.
    AssignNodes {
        #[command(flatten)]
        jobs: JobOpts,
        #[arg(add = ArgValueCandidates::new(complete::groups))]
        group: String,
        #[arg(required = true, add = ArgValueCandidates::new(complete::nodes))]
        nodes: Vec<String>,
    },
    /// List node groups.
    List {
        #[command(flatten)]
        opts: ListArgs,
        #[arg(add = ArgValueCandidates::new(complete::groups))]
        groups: Vec<String>,
    },
    /// Show node groups in detail.
    Info {
        #[command(flatten)]
        format: FormatArg,
        #[arg(add = ArgValueCandidates::new(complete::groups))]
        groups: Vec<String>,
    },
}

pub fn main() -> ExitCode {
    complete::handle::<Cli>(Some(complete::Kind::Group));
    finish(run(Cli::parse()))
}

use crate::table::field as f;

pub const FIELDS: [Field; 10] = [
    f("name", "Group", Kind::Text, "Group name"),
    f("uuid", "UUID", Kind::Text, "Group UUID"),
    f("node_cnt", "Nodes", Kind::Number, "Number of nodes"),
    f("node_list", "NodeList", Kind::Other, "List of nodes"),
    f(
        "pinst_cnt",
        "Instances",
        Kind::Number,
        "Number of instances",
    ),
    f(
        "pinst_list",
        "InstanceList",
        Kind::Other,
        "List of instances",
    ),
    f(
        "alloc_policy",
        "AllocPolicy",
        Kind::Text,
        "Allocation policy for group",
    ),
    f(
        "networks",
        "Networks",
        Kind::Other,
        "Connected networks (name, mode, link, vlan)",
    ),
    f(
        "serial_no",
        "SerialNo",
        Kind::Number,
        "Group object serial number",
    ),
    f("tags", "Tags", Kind::Other, "Tags"),
];

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = cli.global.store();
    match cli.cmd {
        Cmd::Add { jobs, group } => mutate(&store, &jobs, "group-add", |c, _| {
            Ok((ops::add(c, &group)?, vec![]))
        })?,
        Cmd::Remove { jobs, group } => {
            mutate(&store, &jobs, "group-remove", |c, _| {
                Ok((ops::remove(c, &group)?, vec![]))
            })?;
        }
        Cmd::Rename { jobs, old, new } => {
            mutate(&store, &jobs, "group-rename", |c, _| {
                Ok((ops::rename(c, &old, &new)?, vec![]))
            })?;
        }
        Cmd::AssignNodes { jobs, group, nodes } => {
            mutate(&store, &jobs, "group-assign-nodes", |c, _| {
                for n in &nodes {
                    netconf_cluster::ops::node::set_group(c, n, &group)?;
                }
                Ok(((), vec![]))
            })?;
        }
        Cmd::List { opts, groups } => {
            let cfg = store.read()?;
            return list(
                &FIELDS,
                &["name", "node_cnt", "pinst_cnt", "alloc_policy"],
                &opts,
                || resolve(&cfg, &groups),
                |u, f| value(&cfg, u, f),
            );
        }
        Cmd::Info { format, groups } => {
            let cfg = store.read()?;
            print_info(
                &format,
                &resolve(&cfg, &groups)?,
                |u| info_json(&cfg, u),
                |u| info(&cfg, u),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `info` of one group, as text.
fn info(cfg: &ClusterConfig, u: &str) -> String {
    let g = &cfg.nodegroups[u];
    let mut s = format!(
        "Node group: {}\n  UUID: {u}\n  Serial number: {}\n  Alloc policy: preferred\n",
        g.name, g.serial_no
    );
    s.push_str(&format!("  Nodes: {}\n", text_list(&nodes(cfg, u))));
    s.push_str(&format!("  Instances: {}\n", text_list(&instances(cfg, u))));
    if g.networks.is_empty() {
        s.push_str("  Networks: none\n");
    } else {
        s.push_str("  Networks:\n");
        for (nu, p) in &g.networks {
            let name = cfg
                .networks
                .get(nu)
                .map_or(nu.as_str(), |n| n.name.as_str());
            s.push_str(&format!(
                "    {name} (mode:{} link:{} vlan:{})\n",
                p.mode, p.link, p.vlan
            ));
        }
    }
    s
}

/// `info --output-format json` of one group (see JSON OUTPUT in gnt-group(8)).
fn info_json(cfg: &ClusterConfig, u: &str) -> serde_json::Value {
    let g = &cfg.nodegroups[u];
    let networks: Vec<serde_json::Value> = g
        .networks
        .iter()
        .map(|(nu, p)| {
            let name = cfg
                .networks
                .get(nu)
                .map_or(nu.as_str(), |n| n.name.as_str());
            table::connection_json("network", name, p)
        })
        .collect();
    serde_json::json!({
        "node_group": g.name.to_string(),
        "uuid": u,
        "serial_number": g.serial_no,
        "alloc_policy": "preferred",
        "nodes": nodes(cfg, u),
        "instances": instances(cfg, u),
        "networks": networks,
    })
}

fn text_list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn nodes(cfg: &ClusterConfig, g: &str) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .nodes
        .values()
        .filter(|n| n.group == g)
        .map(|n| n.name.to_string())
        .collect();
    v.sort_by(|a, b| nice_cmp(a, b));
    v
}

fn instances(cfg: &ClusterConfig, g: &str) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .instances
        .all_decoded()
        .values()
        .filter(|i| i.group == g)
        .map(|i| i.name.to_string())
        .collect();
    v.sort_by(|a, b| nice_cmp(a, b));
    v
}

fn resolve(cfg: &ClusterConfig, names: &[String]) -> Result<Vec<String>, GntError> {
    if names.is_empty() {
        return Ok(keys_by_name(
            cfg.nodegroups.iter().map(|(u, g)| (u, g.name.as_str())),
        ));
    }
    names.iter().map(|n| cfg.group_uuid(n)).collect()
}

fn value(cfg: &ClusterConfig, u: &str, field: &str) -> Value {
    let g = &cfg.nodegroups[u];
    match field {
        "name" => Value::Text(g.name.to_string()),
        "uuid" => Value::Text(u.to_owned()),
        "node_cnt" => Value::Number(nodes(cfg, u).len() as i64),
        "node_list" => Value::list(nodes(cfg, u), Join::With(",")),
        "pinst_cnt" => Value::Number(instances(cfg, u).len() as i64),
        "pinst_list" => Value::list(instances(cfg, u), Join::With(",")),
        "alloc_policy" => Value::Text("preferred".into()),
        "networks" => {
            let name = |nu: &str| {
                cfg.networks
                    .get(nu)
                    .map_or(nu.to_owned(), |n| n.name.to_string())
            };
            Value::Shaped(
                g.networks
                    .iter()
                    .map(|(nu, p)| format!("{} ({}, {}, {})", name(nu), p.mode, p.link, p.vlan))
                    .collect::<Vec<_>>()
                    .join(", "),
                serde_json::Value::Array(
                    g.networks
                        .iter()
                        .map(|(nu, p)| table::connection_json("network", &name(nu), p))
                        .collect(),
                ),
            )
        }
        "serial_no" => Value::Number(g.serial_no as i64),
        "tags" => Value::list(&g.tags, Join::With(",")),
        _ => Value::Unavail,
    }
}
