//! `gnt-cluster`: the network part of Ganeti's cluster checks. `verify` checks every
//! invariant of config.data the commands rely on (see `netconf_cluster::config::verify`) and
//! prints Ganeti's verify lines; `repair-pools` rebuilds the address pools from the NICs.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netconf::timefmt::ctime;
use netconf_cluster::GntError;
use netconf_cluster::config::copy::copy_store;
use netconf_cluster::config::verify::{self, Finding, Level, codes};
use netconf_cluster::config::{Location, Store, transaction};

use crate::common::{FormatArg, Global, finish};

#[derive(Parser, Debug)]
#[command(
    name = "gnt-cluster",
    version,
    about = "Cluster configuration checks, network side (netconf)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Check every invariant of config.data; exit 1 if any error is found.
    Verify {
        /// Print problems as ERROR:CODE:TYPE:ITEM:TEXT, for scripts.
        #[arg(long)]
        error_codes: bool,
        /// Report problems of CODE as warnings (repeatable, or a comma list).
        #[arg(long = "ignore-errors", value_name = "CODE", value_delimiter = ',')]
        ignore_errors: Vec<String>,
        /// Accepted for compatibility.
        #[arg(long, hide = true)]
        verbose: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Rebuild every network's pool from the NICs on it and its external reservations.
    RepairPools {
        /// Print what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the cluster from one store to another (config.data to etcd or back), then read
    /// the copy back and check it equals the source and verifies the same.
    CopyStore {
        /// The store to copy from: etcd://host:port[,…][/prefix], file:///path or a path.
        #[arg(long, value_name = "URL", value_parser = parse_location)]
        from: Location,
        /// The store to copy to (the same forms); refused if it holds anything.
        #[arg(long, value_name = "URL", value_parser = parse_location)]
        to: Location,
        /// Replace what the target holds.
        #[arg(long)]
        force: bool,
    },
}

fn parse_location(s: &str) -> Result<Location, String> {
    s.parse()
}

pub fn main() -> ExitCode {
    crate::complete::handle::<Cli>(None);
    finish(run(Cli::parse()))
}

/// Ganeti's job feedback line: `<ctime> <text>`.
fn line(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    writeln!(out, "{} {text}", ctime(netconf_cluster::config::now()))
}

/// Which of Ganeti's verify steps a problem belongs to.
fn section(f: &Finding) -> usize {
    match f.code {
        codes::NET_POOL | codes::NET_DUP_IP => 1,
        codes::DANGLING_NODES | codes::DANGLING_INST => 2,
        _ => 0,
    }
}

const SECTIONS: [&str; 3] = [
    "* Verifying cluster config",
    "* Verifying network address pools",
    "* Verifying all nodes belong to an existing group",
];

/// `copy-store`: the copy, and what was copied and checked.
fn copy(from: &Location, to: &Location, force: bool) -> anyhow::Result<ExitCode> {
    {
        let c = copy_store(from, to, force)?;
        let mut o = std::io::stdout().lock();
        line(&mut o, &format!("* Copied the cluster from {from} to {to}"))?;
        line(
            &mut o,
            &format!(
                "  - serial {}: {} groups, {} nodes, {} networks, {} instances",
                c.serial, c.groups, c.nodes, c.networks, c.instances
            ),
        )?;
        line(
            &mut o,
            &format!(
                "  - verified: the copy reads back equal; verify finds the same on both ({} errors, {} warnings)",
                c.errors, c.warnings
            ),
        )?;
        Ok(ExitCode::SUCCESS)
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = cli.global.store();
    match cli.cmd {
        Cmd::CopyStore { from, to, force } => copy(&from, &to, force),
        Cmd::Verify {
            error_codes,
            ignore_errors,
            verbose: _,
            format,
        } => {
            let known: Vec<&str> = verify::CODES.iter().map(|(c, _)| *c).collect();
            if let Some(bad) = ignore_errors.iter().find(|c| !known.contains(&c.as_str())) {
                return Err(GntError::Usage(format!(
                    "Unknown error code '{bad}' (known: {})",
                    known.join(", ")
                ))
                .into());
            }
            // Not `read`: its warning about an inconsistent file is what this prints in full.
            let (cfg, version) = store.read_versioned()?;
            let mut findings = verify::verify(&cfg);
            findings.extend(store.audit(&cfg, version)?);
            for f in &mut findings {
                if ignore_errors.iter().any(|c| c == f.code) {
                    f.level = Level::Warning;
                }
            }
            let mut o = std::io::stdout().lock();
            if format.json() {
                o.write_all(verify_json(&findings).as_bytes())?;
            } else {
                for (i, title) in SECTIONS.iter().enumerate() {
                    line(&mut o, title)?;
                    for f in findings.iter().filter(|f| section(f) == i) {
                        let text = if error_codes {
                            f.coded()
                        } else {
                            f.to_string()
                        };
                        line(&mut o, &format!("  - {text}"))?;
                    }
                }
            }
            o.flush()?;
            let bad = findings.iter().any(|f| f.level == Level::Error);
            Ok(if bad {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::RepairPools { dry_run } => {
            let (mut snapshot, _) = store.read_versioned()?;
            let mut o = std::io::stdout().lock();
            if dry_run {
                line(
                    &mut o,
                    "* Repairing network address pools (dry run: nothing is changed)",
                )?;
                let fixes = verify::repair_pools(&mut snapshot);
                for r in &fixes {
                    line(&mut o, &format!("  - would have {r}"))?;
                }
                if fixes.is_empty() {
                    line(&mut o, "  - nothing to repair")?;
                }
                return Ok(remaining(&mut o, &verify::errors(&snapshot))?);
            }
            line(&mut o, "* Repairing network address pools")?;
            if verify::repair_pools(&mut snapshot).is_empty() {
                line(&mut o, "  - nothing to repair")?;
                return Ok(remaining(&mut o, &verify::errors(&snapshot))?);
            }
            drop(snapshot);
            // Again under the lock, on what is there now; committed whole or not at all.
            let (fixes, errors) = transaction(&store, |cfg| {
                let fixes = verify::repair_pools(cfg);
                // What pools cannot fix stays for the operator; the repair still counts.
                cfg.skip_commit_check();
                Ok((fixes, verify::errors(cfg)))
            })?;
            for r in &fixes {
                line(&mut o, &format!("  - {r}"))?;
            }
            Ok(remaining(&mut o, &errors)?)
        }
    }
}

/// `verify --output-format json`: the steps in order, each with its findings (see JSON
/// OUTPUT in gnt-cluster(8)). The level is the one after `--ignore-errors`.
fn verify_json(findings: &[Finding]) -> String {
    let steps: Vec<serde_json::Value> = SECTIONS
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let found: Vec<serde_json::Value> = findings
                .iter()
                .filter(|f| section(f) == i)
                .map(|f| {
                    serde_json::json!({
                        "level": f.level.as_str(),
                        "code": f.code,
                        "type": f.kind,
                        "item": (!f.item.is_empty()).then_some(&f.item),
                        "message": f.msg,
                    })
                })
                .collect();
            serde_json::json!({
                "step": title.trim_start_matches("* "),
                "findings": found,
            })
        })
        .collect();
    crate::table::json_text(&serde_json::json!({ "steps": steps }))
}

/// Problems no pool repair fixes: listed, and exit 1.
fn remaining(o: &mut impl Write, errors: &[Finding]) -> std::io::Result<ExitCode> {
    if errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in errors {
        line(
            o,
            &format!(
                "  - WARNING: not repaired, fix by hand: {}",
                f.to_string().trim_start_matches("ERROR: ")
            ),
        )?;
    }
    Ok(ExitCode::from(1))
}
