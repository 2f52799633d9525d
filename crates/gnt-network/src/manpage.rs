//! The gnt-* tools whose man pages carry blocks rendered from clap (see
//! `netconf_test_support::manpage`): `cargo run -p gnt-network --example
//! regen-man-gnt-network` rewrites them, the test `synopses_are_generated_from_clap` (tests/manpages.rs) fails on a stale one.

use clap::{Command, CommandFactory};

/// Each gnt-* tool's page name and command.
pub fn tools() -> [(&'static str, Command); 5] {
    [
        ("gnt-network", crate::network_cli::Cli::command()),
        ("gnt-group", crate::group_cli::Cli::command()),
        ("gnt-node", crate::node_cli::Cli::command()),
        ("gnt-instance", crate::instance_cli::Cli::command()),
        ("gnt-cluster", crate::cluster_cli::Cli::command()),
    ]
}
