//! The workspace's binaries for tests of another crate (the end-to-end stories), which
//! cargo does not hand over as `CARGO_BIN_EXE_*`.

use std::path::PathBuf;

/// The directory of this test executable's profile (target/<profile>/deps/x-… → ..) when
/// every one of `tools` is built there, as `cargo test --workspace` does.
pub fn workspace_bins(tools: &[&str]) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.to_path_buf();
    tools.iter().all(|t| dir.join(t).is_file()).then_some(dir)
}
