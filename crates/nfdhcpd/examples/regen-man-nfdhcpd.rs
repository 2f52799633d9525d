//! Rewrites the generated blocks (SYNOPSIS) of nfdhcpd(8) from the clap definitions:
//! `cargo run -p nfdhcpd --example regen-man-nfdhcpd`. The test
//! `synopsis_is_generated_from_clap` fails until this has been run after a change of the command line.

fn main() -> std::process::ExitCode {
    use clap::CommandFactory as _;
    netconf_test_support::manpage::regen(&[("nfdhcpd", nfdhcpd::cli::Cli::command())])
}
