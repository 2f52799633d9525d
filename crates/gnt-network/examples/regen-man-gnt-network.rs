//! Rewrites the generated blocks (synopses) of the gnt-* man pages from the clap
//! definitions: `cargo run -p gnt-network --example regen-man-gnt-network`. The test
//! `synopses_are_generated_from_clap` fails until this has been run after a CLI change.

fn main() -> std::process::ExitCode {
    netconf_test_support::manpage::regen(&gnt_network::manpage::tools())
}
