//! Reading the configuration and TSIG key files: regular files only, of bounded size, never
//! blocking on a FIFO; and whether others than their owner and group may read or change them.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result, ensure};
use nix::fcntl::OFlag;

/// Both files are a few hundred bytes; anything near this is not one of them.
pub const MAX_SIZE: u64 = 1 << 20;

pub struct Contents {
    pub text: String,
    /// Permission bits of the file (of the target, for a symlink).
    pub mode: u32,
}

/// Reads `path`, which must be a regular file of at most [`MAX_SIZE`] bytes of UTF-8.
pub fn read(path: &Path) -> Result<Contents> {
    read_inner(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_inner(path: &Path) -> Result<Contents> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let meta = file.metadata()?;
    ensure!(meta.is_file(), "not a regular file");
    ensure!(
        meta.len() <= MAX_SIZE,
        "{} bytes is too large (at most {MAX_SIZE})",
        meta.len()
    );
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
    ensure!(
        bytes.len() as u64 <= MAX_SIZE,
        "it grew beyond {MAX_SIZE} bytes"
    );
    let text = String::from_utf8(bytes).context("not UTF-8 text")?;
    Ok(Contents {
        text,
        mode: meta.mode() & 0o7777,
    })
}

/// "readable by others", "writable by others", both, or `None`: what the "other" bits of
/// `mode` allow.
pub fn others_access(mode: u32) -> Option<&'static str> {
    match (mode & 0o004 != 0, mode & 0o002 != 0) {
        (true, true) => Some("readable and writable by others"),
        (true, false) => Some("readable by others"),
        (false, true) => Some("writable by others"),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_directories_and_huge_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = format!("{:#}", read(&fifo).err().unwrap());
        assert!(e.contains("not a regular file"), "{e}");
        let e = format!("{:#}", read(dir.path()).err().unwrap());
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; MAX_SIZE as usize + 1]).unwrap();
        let e = format!("{:#}", read(&big).err().unwrap());
        assert!(e.contains("too large"), "{e}");
        assert_eq!(others_access(0o640), None);
        assert_eq!(others_access(0o644), Some("readable by others"));
        assert_eq!(others_access(0o602), Some("writable by others"));
        assert_eq!(
            others_access(0o666),
            Some("readable and writable by others")
        );
    }
}
