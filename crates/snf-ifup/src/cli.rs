//! snf-ifup's command line, apart from `main` so that the man page's generated blocks
//! (`cargo run -p snf-ifup --example regen-man-snf-ifup`, which includes this file) are rendered
//! from it. No `crate::` paths here: the example and the man page test compile it alone.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use netconf_cluster::config::etcd::EtcdUrl;

/// Configure the node side of a Ganeti NIC (TAP or Xen vif).
///
/// Install names: kvm-vif-bridge and kvm-ifup-custom (= `ganeti up`), kvm-ifdown-custom
/// (= `ganeti down`), network/<mode>/up and down (Ganeti 3.2), vif-custom (= `xen`).
#[derive(Parser, Debug)]
#[command(name = "snf-ifup", version)]
pub(crate) struct Cli {
    /// Print every command and rule batch instead of applying them.
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,
    /// Also log what is done to stderr.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// A NIC named in the cluster store, and the TAP it gets (the standalone entry points).
#[derive(Args, Debug)]
pub(crate) struct StandaloneNic {
    /// The host interface (TAP) of the NIC.
    pub(crate) tap: String,
    /// Instance name (or UUID) in the cluster store.
    #[arg(long)]
    pub(crate) instance: String,
    /// NIC index (0-based).
    #[arg(long)]
    pub(crate) nic: u32,
    /// config.data to read.
    #[arg(long, env = "NETCONF_CONFIG", default_value = netconf_cluster::config::DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// The cluster store in etcd instead of config.data: etcd://host:port[,host:port…][/prefix];
    /// when etcd cannot be reached within a second, the local snapshot `watch` keeps.
    #[arg(long, env = "NETCONF_STORE", value_name = "URL", value_parser = parse_store_url)]
    pub(crate) store: Option<EtcdUrl>,
}

fn parse_store_url(s: &str) -> Result<EtcdUrl, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Configure TAP for NIC IDX of INSTANCE, taken from the cluster store (standalone).
    Up {
        #[command(flatten)]
        nic: StandaloneNic,
    },
    /// Print the Ganeti variables of NIC IDX of INSTANCE (from the store) as shell assignments.
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
        #[arg(long, value_name = "URL")]
        store: Option<String>,
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
        /// Follow the cluster store in etcd instead (etcd://…), and keep its local snapshot.
        #[arg(long, env = "NETCONF_STORE", value_name = "URL", value_parser = parse_store_url)]
        store: Option<EtcdUrl>,
        /// This node's name in the cluster (default: the host name): the snapshot keeps the
        /// instances of this node only.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
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
pub(crate) enum OutputFormat {
    #[default]
    Text,
    Json,
}
