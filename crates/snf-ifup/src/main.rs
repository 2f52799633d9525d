//! snf-ifup: configures the node side of Ganeti VM NICs (links, routes, per-NIC firewall
//! chains, nfdhcpd bindings). One binary for every way it is called; see `man 8 snf-ifup`.
#![forbid(unsafe_code)] // all unsafe lives in netconf-sys

mod announce;
mod apply;
mod arp;
mod config;
mod exec;
mod extra;
mod firewall;
mod follow;
mod invocation;
mod log;
mod node;
mod plan;
mod standalone;
mod state;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use netconf::{IfName, NicEnv};

use crate::apply::Ctx;
use crate::invocation::Action;
use crate::plan::Flavour;

/// Configure the node side of a Ganeti NIC (TAP or Xen vif).
///
/// Install names: kvm-vif-bridge and kvm-ifup-custom (= `ganeti up`), kvm-ifdown-custom
/// (= `ganeti down`), network/<mode>/up and down (Ganeti 3.2), vif-custom (= `xen`).
#[derive(Parser, Debug)]
#[command(name = "snf-ifup", version)]
struct Cli {
    /// Print every command and rule batch instead of applying them.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Also log what is done to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

/// A NIC named in config.data, and the TAP it gets (the standalone entry points).
#[derive(Args, Debug)]
struct StandaloneNic {
    /// The host interface (TAP) of the NIC.
    tap: String,
    /// Instance name (or UUID) in config.data.
    #[arg(long)]
    instance: String,
    /// NIC index (0-based).
    #[arg(long)]
    nic: u32,
    /// config.data to read.
    #[arg(long, env = "NETCONF_CONFIG", default_value = netconf_cluster::config::DEFAULT_CONFIG_PATH, value_name = "FILE")]
    config: PathBuf,
}

impl StandaloneNic {
    /// The TAP and the NIC's Ganeti environment, derived from config.data, and the NIC's
    /// identity there.
    fn resolve(&self) -> anyhow::Result<(IfName, NicEnv, state::StoreNic)> {
        let t = tap(&self.tap)?;
        let (mut env, uuid) = standalone::nic_from_config(&self.config, &self.instance, self.nic)?;
        env.interface = Some(t.clone());
        let from = state::StoreNic {
            instance_uuid: uuid,
            index: self.nic,
        };
        Ok((t, env, from))
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Configure TAP for NIC IDX of INSTANCE, taken from config.data (standalone).
    Up {
        #[command(flatten)]
        nic: StandaloneNic,
    },
    /// Print the Ganeti variables of NIC IDX of INSTANCE (from config.data) as shell assignments.
    ///
    /// TAP becomes INTERFACE.
    Env {
        #[command(flatten)]
        nic: StandaloneNic,
    },
    /// Remove everything snf-ifup configured for TAP.
    Down {
        /// The host interface (TAP) of the NIC.
        tap: String,
        /// Accepted for symmetry with `up`; `down` uses the recorded state.
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        nic: Option<u32>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Called by Ganeti (KVM): the NIC comes from Ganeti's environment.
    Ganeti {
        /// up or down (default: $ACTION, else up).
        action: Option<String>,
        /// The TAP (default: $INTERFACE).
        tap: Option<String>,
        /// Further arguments Ganeti passes (ignored).
        #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Called by Xen as vif-custom: ACTION is online, offline, add or remove; the vif is $vif.
    Xen {
        /// online, offline, add or remove.
        action: String,
        #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Rebuild NICs (links, routes, rules, bindings) from their recorded state.
    Reapply {
        /// Every recorded NIC.
        #[arg(long, conflicts_with = "taps")]
        all: bool,
        /// NICs to rebuild, by TAP.
        taps: Vec<String>,
    },
    /// Take down every recorded NIC whose TAP disappears, and re-apply NICs taken from the
    /// cluster store when they change there (runs as a service).
    ///
    /// Ganeti 3.0 never runs `down`. This follows link removals over netlink and looks at
    /// every recorded NIC at start-up and after lost notifications; a TAP that exists again
    /// under its name is left alone. NICs brought up with the --instance form of `up` are
    /// compared with the store at start-up and whenever it changes: a changed NIC is
    /// re-applied, one whose instance (or NIC) left the store loses its rules, and its TAP
    /// stays.
    Watch {
        /// config.data to follow.
        #[arg(long, env = "NETCONF_CONFIG", default_value = netconf_cluster::config::DEFAULT_CONFIG_PATH, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show what is applied for TAP (default: every recorded NIC).
    Status {
        /// Print text or json (see JSON OUTPUT in the man page).
        #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
        output_format: OutputFormat,
        /// One TAP (default: all recorded).
        tap: Option<String>,
    },
}

/// What `status` prints. Long only, as `--output-format` of gnt-network's `list`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
enum OutputFormat {
    #[default]
    Text,
    Json,
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
            let (t, env, from) = nic.resolve()?;
            apply::up(&ctx, &env, &t, Flavour::Kvm, true)?;
            if !ctx.dry_run {
                state::mark_from_store(&ctx.cfg.state_dir, &t, from)?;
            }
            site_hook(&ctx, &t)?;
        }
        Cmd::Env { nic } => {
            let (_, env, _) = nic.resolve()?;
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
        Cmd::Watch { config } => {
            let store = netconf_cluster::config::open(&config);
            watch::run(&ctx, &store, &config.display().to_string())?
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
    match run() {
        Ok(code) => code,
        Err(e) => {
            log::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}
