//! snf-dnshook's command line, apart from `main` so that the man page's generated SYNOPSIS
//! (`cargo run -p snf-dnshook --example regen-man-snf-dnshook`) is rendered from it.

use std::path::PathBuf;

use clap::Parser;

use crate::config;

/// Ganeti instance hook: keeps the A, AAAA and PTR records of an instance's NICs on
/// DNS-tagged networks in sync, with RFC 2136 UPDATEs signed with TSIG.
#[derive(Parser)]
#[command(
    version,
    max_term_width = 100,
    after_help = "Acts on OP_INSTANCE_CREATE, OP_INSTANCE_SET_PARAMS, OP_INSTANCE_RENAME and \
                  OP_INSTANCE_REMOVE in the post phase, on the instance's primary node only, \
                  reading the GANETI_* variables of the hook environment. Exit status: 0 done \
                  or nothing to do, 1 failure, 2 usage error. See snf-dnshook(8) and \
                  snf-dnshook.toml(5)."
)]
pub struct Cli {
    /// Configuration file (see snf-dnshook.toml(5)).
    #[arg(short, long, value_name = "FILE", env = "SNF_DNSHOOK_CONFIG",
          default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Read the current records, print the UPDATEs that would be sent, send nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Print every UPDATE sent, and why nothing was done when nothing was.
    #[arg(short, long)]
    pub verbose: bool,

    /// This node's name, compared with GANETI_INSTANCE_PRIMARY [default: `node` in the
    /// configuration file, else `hostname -f`].
    #[arg(long, value_name = "NAME", env = "SNF_DNSHOOK_NODE")]
    pub node: Option<String>,
}
