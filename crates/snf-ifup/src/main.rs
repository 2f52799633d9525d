//! snf-ifup: configures the node side of Ganeti VM NICs (links, routes, per-NIC firewall
//! chains, nfdhcpd bindings). One binary for every way it is called; see `man 8 snf-ifup`.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

mod announce;
mod apply;
mod arp;
mod cli;
mod config;
mod exec;
mod extra;
mod firewall;
mod follow;
mod invocation;
mod log;
mod node;
mod plan;
mod snapshot;
mod standalone;
mod state;
mod watch;

use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use netconf::{IfName, NicEnv};
use netconf_cluster::config::Location;

use crate::apply::Ctx;
use crate::cli::{Cli, Cmd, OutputFormat, StandaloneNic};
use crate::invocation::Action;
use crate::plan::Flavour;

impl StandaloneNic {
    /// The TAP and the NIC's Ganeti environment, derived from the cluster store, and the
    /// NIC's identity there.
    fn resolve(
        &self,
        cfg: &config::IfupSettings,
    ) -> anyhow::Result<(IfName, NicEnv, state::StoreNic)> {
        let t = tap(&self.tap)?;
        let snap = cfg.snapshot_path();
        let from = match &self.store {
            Some(url) => standalone::Source::Etcd {
                url,
                snapshot: &snap,
            },
            None => standalone::Source::File(&self.config),
        };
        let (mut env, uuid) = standalone::nic_from_store(&from, &self.instance, self.nic)?;
        env.interface = Some(t.clone());
        let from = state::StoreNic {
            instance_uuid: uuid,
            index: self.nic,
        };
        Ok((t, env, from))
    }
}

/// This host's name, as a node of the cluster is called by default.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn tap(s: &str) -> anyhow::Result<IfName> {
    s.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The ifup-extra hook after a successful `up`; if it fails, the NIC is taken down again.
fn site_hook(ctx: &Ctx, tap: &IfName) -> anyhow::Result<()> {
    extra::run(ctx).inspect_err(|_| {
        if let Err(undo) = apply::down(ctx, tap) {
            log::error(&format!("rolling back {tap}: {undo:#}"));
        }
    })
}

fn run() -> anyhow::Result<ExitCode> {
    let args = invocation::rewrite_args(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    let cfg = config::IfupSettings::load(None)?;
    log::init(cfg.syslog && !cli.dry_run, cli.verbose);
    let ctx = Ctx {
        cfg,
        dry_run: cli.dry_run,
    };
    match cli.command {
        Cmd::Up { nic } => {
            let (t, env, from) = nic.resolve(&ctx.cfg)?;
            apply::up(&ctx, &env, &t, Flavour::Kvm, true)?;
            if !ctx.dry_run {
                state::mark_from_store(&ctx.cfg.state_dir, &t, from)?;
            }
            site_hook(&ctx, &t)?;
        }
        Cmd::Env { nic } => {
            let (_, env, _) = nic.resolve(&ctx.cfg)?;
            print!("{}", standalone::shell_assignments(&env.to_env()));
        }
        Cmd::Down { tap: t, .. } => apply::down(&ctx, &tap(&t)?)?,
        Cmd::Ganeti { action, tap: t, .. } => {
            let action = invocation::ganeti_action(action.as_deref())?;
            let t = invocation::ganeti_tap(t.as_deref())?;
            let announce = invocation::ganeti_announce(action)?;
            match action {
                Action::Up => {
                    let nic = invocation::ganeti_nic(&t)?;
                    apply::up(&ctx, &nic, &t, Flavour::Kvm, announce)?;
                    site_hook(&ctx, &t)?;
                }
                Action::Down => apply::down(&ctx, &t)?,
            }
        }
        Cmd::Xen { action, .. } => {
            let action = invocation::xen_action(&action)?;
            let (t, domid, devid) = invocation::xen_vif()?;
            match action {
                Action::Up => {
                    let nic = invocation::xen_nic(&ctx.cfg, &t, domid, devid)?;
                    apply::up(&ctx, &nic, &t, Flavour::Xen, true)?;
                    site_hook(&ctx, &t)?;
                    if !ctx.dry_run {
                        invocation::xen_success()?;
                    }
                }
                Action::Down => apply::down(&ctx, &t)?,
            }
        }
        Cmd::Reapply { all, taps } => {
            let list: Vec<IfName> = if all {
                state::all(&ctx.cfg.state_dir)?
            } else if taps.is_empty() {
                bail!("reapply needs --all or TAP names");
            } else {
                taps.iter().map(|t| tap(t)).collect::<anyhow::Result<_>>()?
            };
            apply::reapply(&ctx, &list)?;
        }
        Cmd::Watch {
            config,
            store: Some(url),
            node,
        } => {
            let _ = config;
            let store = netconf_cluster::config::open_at(&Location::Etcd(url.clone()));
            let keeper = follow::SnapshotKeeper::new(
                ctx.cfg.snapshot_path(),
                url.clone(),
                node.unwrap_or_else(host_name),
            );
            watch::run(&ctx, &store, &url.to_string(), Some(keeper))?
        }
        Cmd::Watch {
            config,
            store: None,
            ..
        } => {
            let store = netconf_cluster::config::open(&config);
            watch::run(&ctx, &store, &config.display().to_string(), None)?
        }
        Cmd::Status {
            tap: t,
            output_format,
        } => {
            let list = match t {
                Some(t) => vec![tap(&t)?],
                None => Vec::new(),
            };
            if !apply::status(&ctx, &list, output_format == OutputFormat::Json)? {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // `NETCONF_COMPLETE=bash snf-ifup` prints the shell's completion script; with it set, the
    // shell asks here for the words of a TAB (see the page's SHELL COMPLETION).
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var("NETCONF_COMPLETE")
        .completer("snf-ifup")
        .complete();
    match run() {
        Ok(code) => code,
        Err(e) => {
            log::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}
