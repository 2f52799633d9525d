//! Reading the configuration and TSIG key files: regular files only, of bounded size, never
//! blocking on a FIFO; and whether others than their owner and group may read or change them.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Both files are a few hundred bytes; anything near this is not one of them.
pub const MAX_SIZE: u64 = 1 << 20;

pub struct Contents {
    pub text: String,
    /// Permission bits of the file (of the target, for a symlink).
    pub mode: u32,
}

/// Reads `path`, which must be a regular file of at most [`MAX_SIZE`] bytes of UTF-8; a
/// symbolic link is followed (configuration management installs such files as links).
pub fn read(path: &Path) -> Result<Contents> {
    let (text, meta) = netconf::textfile::read_following_with_metadata(path, MAX_SIZE)
        .with_context(|| format!("cannot read {}", path.display()))?;
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
        assert!(e.contains("larger than 1024 KiB: refused"), "{e}");
        // A link is followed: to a FIFO it is refused as the FIFO, to a file it gives the
        // mode of its target, from the file read.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let e = format!("{:#}", read(&link).err().unwrap());
        assert!(e.contains("not a regular file"), "{e}");
        let key = dir.path().join("key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let link2 = dir.path().join("link2");
        std::os::unix::fs::symlink(&key, &link2).unwrap();
        let c = read(&link2).unwrap();
        assert_eq!((c.text.as_str(), c.mode), ("k", 0o640));
        assert_eq!(others_access(0o640), None);
        assert_eq!(others_access(0o644), Some("readable by others"));
        assert_eq!(others_access(0o602), Some("writable by others"));
        assert_eq!(
            others_access(0o666),
            Some("readable and writable by others")
        );
    }
}
