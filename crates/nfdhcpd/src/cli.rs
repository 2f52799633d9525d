//! nfdhcpd's command line, apart from `main` so that the man page's generated SYNOPSIS
//! (`cargo run -p nfdhcpd --example regen-man-nfdhcpd`) is rendered from it.

use std::path::PathBuf;

use clap::Parser;

use crate::config;

/// Node-local DHCPv4, Router Advertisement, Neighbor Advertisement and stateless DHCPv6
/// responder for virtual machines, fed by NFQUEUE and per-TAP binding files.
#[derive(Parser, Debug)]
#[command(name = "nfdhcpd", version)]
pub struct Cli {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Stay in the foreground (always the case under systemd).
    #[arg(short, long)]
    pub foreground: bool,
    /// Log at debug level.
    #[arg(short, long)]
    pub debug: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Do not install or remove the NFQUEUE rules; the operator provides them.
    #[arg(long)]
    pub no_rules: bool,
    /// Print the counters of the running daemon and exit.
    #[arg(long)]
    pub status: bool,
    /// How --status prints: text (the status file) or json.
    #[arg(
        long,
        value_enum,
        default_value_t,
        value_name = "FORMAT",
        requires = "status"
    )]
    pub output_format: OutputFormat,
    /// Print the TOML equivalent of an original nfdhcpd.conf and exit.
    #[arg(long, value_name = "OLD_CONF")]
    pub convert_config: Option<PathBuf>,
}

/// What `--status` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}
