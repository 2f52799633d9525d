//! The pid and status files, which exist exactly while the daemon runs: a [`RunFile`]
//! removes its file on drop, so every way out after start-up (an error as much as
//! SIGTERM) leaves no stale file behind.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A file removed when this is dropped; an empty path (the setting left empty) is none.
#[must_use = "dropping it removes the file"]
#[derive(Debug)]
pub struct RunFile {
    path: PathBuf,
}

impl RunFile {
    /// Writes the process id to `path`.
    pub fn pid(path: &Path) -> anyhow::Result<RunFile> {
        let f = RunFile::removed_at_exit(path);
        if !f.path.as_os_str().is_empty() {
            std::fs::write(&f.path, format!("{}\n", std::process::id()))
                .with_context(|| format!("writing {}", f.path.display()))?;
        }
        Ok(f)
    }

    /// A file that others write while the daemon runs (the status file).
    pub fn removed_at_exit(path: &Path) -> RunFile {
        RunFile {
            path: path.to_owned(),
        }
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(pidfile: &Path, fail: bool) -> anyhow::Result<RunFile> {
        let f = RunFile::pid(pidfile)?;
        assert!(pidfile.exists());
        if fail {
            anyhow::bail!("a later start-up step failed");
        }
        Ok(f)
    }

    #[test]
    fn pidfile_is_removed_on_an_error_after_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nfdhcpd.pid");
        assert!(start(&path, true).is_err());
        assert!(!path.exists());
        let held = start(&path, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(held);
        assert!(!path.exists());
    }

    #[test]
    fn an_empty_path_is_no_file() {
        let f = RunFile::pid(Path::new("")).unwrap();
        drop(f);
    }
}
