//! Rewrites the generated blocks (SYNOPSIS) of snf-dnshook(8) from the clap definitions:
//! `cargo run -p snf-dnshook --example regen-man-snf-dnshook`. The test
//! `synopsis_is_generated_from_clap` fails until this has been run after a change of the command line.

fn main() -> std::process::ExitCode {
    use clap::CommandFactory as _;
    netconf_test_support::manpage::regen(&[("snf-dnshook", snf_dnshook::cli::Cli::command())])
}
