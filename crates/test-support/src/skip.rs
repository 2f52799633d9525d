//! Whether a test can run here, and the `SKIP <test>: <why>` line it prints when not.

use std::io::Write as _;

/// Prints the line the project's rules ask of a test that does not run here.
pub fn skip(test: &str, why: &str) {
    // Written straight to stderr (not the captured `eprintln!`) so that it shows in
    // `cargo test` output even for tests that pass.
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True as root; otherwise prints `SKIP <test>: needs root (<what>)`.
pub fn need_root(test: &str, what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(test, &format!("needs root ({what})"));
    false
}

/// Whether `tool` is an executable file in one of `PATH`'s directories.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}
