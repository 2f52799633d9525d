//! Rewrites the generated blocks (synopses) of the gnt-* man pages from the clap
//! definitions: `cargo run -p gnt-network --example regen-man`. The test
//! `synopses_are_generated_from_clap` fails until this has been run after a CLI change.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man");
    let mut failed = false;
    for (name, tool) in gnt_network::manpage::tools() {
        let path = man.join(format!("{name}.8"));
        let result = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|page| {
                let new = gnt_network::manpage::splice(&page, &tool)?;
                if new != page {
                    std::fs::write(&path, new).map_err(|e| e.to_string())?;
                    println!("rewrote {}", path.display());
                }
                Ok(())
            });
        if let Err(e) = result {
            eprintln!("{}: {e}", path.display());
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
