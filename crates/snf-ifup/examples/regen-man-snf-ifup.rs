//! Rewrites the generated blocks (SYNOPSIS, each command's synopsis) of snf-ifup(8) from
//! the clap definitions: `cargo run -p snf-ifup --example regen-man-snf-ifup`. The test
//! `synopses_are_generated_from_clap` fails until this has been run after a change of the
//! command line.

// The binary's own command line; only the derived `Command` is used here.
#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    use clap::CommandFactory as _;
    netconf_test_support::manpage::regen(&[("snf-ifup", cli::Cli::command())])
}
