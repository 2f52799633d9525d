//! Being told that the store may have changed, for a process that follows it (`snf-ifup
//! watch`). The follower only learns "read again"; what changed it finds by reading through
//! [`Store`](super::Store) and comparing, so every backend (config.data here, a replicated
//! store later) needs only to say when to look.
//!
//! config.data changes by rename (every writer), in place (a hand edit), or through a
//! symbolic link that is itself replaced. The file watch therefore watches the directories
//! of every name along the link chain, not the files: a watch on a file would follow the
//! old inode away after the first rename.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::GntError;

/// Tells when the store may have changed.
pub trait StoreWatch: Send {
    /// Waits at most `timeout` for the store to change. `Ok(true)`: it may have changed
    /// since the last `true` (or since the watch was made): read it again. A change is
    /// never lost; one may be reported that changed nothing that matters, and a burst of
    /// changes is reported once when it settles. `Ok(false)`: nothing within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<bool, GntError>;

    /// What happened to the watch itself since the last call (a connection lost, one
    /// found again, a history compacted away), for the follower's log. `wait` may return
    /// `Ok(false)` before its timeout when there is news.
    fn news(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Quiet time that ends a burst of events (an editor's writes, a writer's temp + rename).
const SETTLE: Duration = Duration::from_millis(40);
/// The longest a burst is held back: a file written in place without pause is still
/// reported this often.
const MAX_HOLD: Duration = Duration::from_millis(250);
/// How often a directory that does not exist (yet) is looked for.
const RETRY: Duration = Duration::from_secs(2);
/// Links followed before giving up (as the store does).
const MAX_LINKS: usize = 40;

/// config.data's directory (and those along its symbolic links) under inotify.
pub struct FileWatch {
    path: PathBuf,
    ino: Inotify,
    /// Each watched directory with the name in it that matters.
    watched: Vec<(WatchDescriptor, OsString)>,
    /// Some directory of the chain could not be watched (it does not exist yet).
    partial: bool,
    buf: Vec<u8>,
}

fn io_err(path: &Path, what: &str, e: &std::io::Error) -> GntError {
    GntError::Exec(format!("Cannot {what} {}: {e}", path.display()))
}

fn dir_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `path` and every name its chain of symbolic links passes through, as (directory, name).
fn chain(path: &Path) -> Vec<(PathBuf, OsString)> {
    let mut out = Vec::new();
    let mut p = path.to_owned();
    for _ in 0..MAX_LINKS {
        let Some(name) = p.file_name() else {
            break;
        };
        out.push((dir_of(&p), name.to_owned()));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&p) {
                Ok(to) => p = dir_of(&p).join(to),
                Err(_) => break,
            },
            _ => break,
        }
    }
    out
}

fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::DONT_FOLLOW
}

impl FileWatch {
    /// Watches config.data at `path` (which need not exist yet).
    pub fn new(path: &Path) -> Result<FileWatch, GntError> {
        let ino = Inotify::init().map_err(|e| io_err(path, "watch", &e))?;
        let mut w = FileWatch {
            path: path.to_owned(),
            ino,
            watched: Vec::new(),
            partial: false,
            buf: vec![0; 16 * 1024],
        };
        w.arm();
        Ok(w)
    }

    /// Watches the directories of the current link chain. A directory already watched
    /// keeps its watch (adding it again returns the same one), so no event is lost in
    /// between; watches no longer on the chain are given up.
    fn arm(&mut self) {
        let mut now = Vec::new();
        self.partial = false;
        for (dir, name) in chain(&self.path) {
            match self.ino.watches().add(&dir, mask()) {
                Ok(wd) => now.push((wd, name)),
                Err(_) => self.partial = true,
            }
        }
        for (wd, _) in &self.watched {
            if !now.iter().any(|(w, _)| w == wd) {
                let _ = self.ino.watches().remove(wd.clone());
            }
        }
        self.watched = now;
    }

    /// Whether events can be read within `timeout`.
    fn readable(&self, timeout: Duration) -> Result<bool, GntError> {
        let t = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.ino.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, t) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(io_err(&self.path, "watch", &std::io::Error::from(e))),
        }
    }

    /// Reads what is queued; whether any of it concerns config.data (or its links).
    fn drain(&mut self) -> Result<bool, GntError> {
        let mut relevant = false;
        let mut rearm = false;
        loop {
            let events = match self.ino.read_events(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(io_err(&self.path, "watch", &e)),
            };
            let mut any = false;
            for ev in events {
                any = true;
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    relevant = true;
                    rearm = true;
                    continue;
                }
                let mut names = self.watched.iter().filter(|(wd, _)| *wd == ev.wd);
                let Some(first) = names.next() else {
                    // A watch given up by `arm`.
                    continue;
                };
                if ev
                    .mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED)
                {
                    relevant = true;
                    rearm = true;
                } else if ev.name.is_some_and(|n| {
                    n == first.1.as_os_str() || names.any(|(_, name)| n == name.as_os_str())
                }) {
                    relevant = true;
                    // A link along the chain may now point elsewhere.
                    rearm = true;
                }
            }
            if !any {
                break;
            }
        }
        if rearm {
            self.arm();
        }
        Ok(relevant)
    }
}

impl StoreWatch for FileWatch {
    fn wait(&mut self, timeout: Duration) -> Result<bool, GntError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.partial {
                let before = self.watched.len();
                self.arm();
                // A directory that appeared may already hold config.data.
                if self.watched.len() > before {
                    return Ok(true);
                }
                if left.is_zero() {
                    return Ok(false);
                }
            } else if left.is_zero() {
                return Ok(false);
            }
            let step = if self.partial { left.min(RETRY) } else { left };
            if !self.readable(step)? || !self.drain()? {
                continue;
            }
            // Let the burst settle, so that one change is read once, and whole.
            let held = Instant::now();
            while held.elapsed() < MAX_HOLD && self.readable(SETTLE)? {
                self.drain()?;
            }
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn quiet(w: &mut FileWatch) {
        while w.wait(Duration::from_millis(100)).unwrap() {}
    }

    #[test]
    fn renames_in_place_edits_and_links_are_seen_and_neighbours_are_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.data");
        fs::write(&p, "a").unwrap();
        let mut w = FileWatch::new(&p).unwrap();
        assert!(!w.wait(Duration::from_millis(50)).unwrap());
        // Replaced by rename, as every writer does.
        fs::write(d.path().join(".tmp"), "b").unwrap();
        fs::rename(d.path().join(".tmp"), &p).unwrap();
        assert!(w.wait(Duration::from_secs(2)).unwrap());
        quiet(&mut w);
        // Edited in place.
        fs::write(&p, "c").unwrap();
        assert!(w.wait(Duration::from_secs(2)).unwrap());
        quiet(&mut w);
        // The cache and the lock beside it are not config.data.
        fs::write(d.path().join("config.data.cache"), "x").unwrap();
        fs::write(d.path().join("config.data.lock"), "x").unwrap();
        assert!(!w.wait(Duration::from_millis(200)).unwrap());
    }

    #[test]
    fn a_linked_config_is_followed_to_its_target_and_to_a_new_one() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("cfg"), "a").unwrap();
        let p = d.path().join("config.data");
        std::os::unix::fs::symlink("real/cfg", &p).unwrap();
        let mut w = FileWatch::new(&p).unwrap();
        fs::write(real.join("cfg"), "b").unwrap();
        assert!(w.wait(Duration::from_secs(2)).unwrap());
        quiet(&mut w);
        // The link now names another file: changes to that one count from then on.
        fs::write(real.join("cfg2"), "c").unwrap();
        std::os::unix::fs::symlink("real/cfg2", d.path().join("l2")).unwrap();
        fs::rename(d.path().join("l2"), &p).unwrap();
        assert!(w.wait(Duration::from_secs(2)).unwrap());
        quiet(&mut w);
        fs::write(real.join("cfg2"), "d").unwrap();
        assert!(w.wait(Duration::from_secs(2)).unwrap());
        quiet(&mut w);
        fs::write(real.join("cfg"), "e").unwrap();
        assert!(!w.wait(Duration::from_millis(200)).unwrap());
    }

    #[test]
    fn a_directory_that_appears_later_is_watched_then() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/config.data");
        let mut w = FileWatch::new(&p).unwrap();
        assert!(w.partial);
        assert!(!w.wait(Duration::from_millis(50)).unwrap());
        fs::create_dir(d.path().join("sub")).unwrap();
        assert!(w.wait(Duration::from_secs(5)).unwrap());
        fs::write(&p, "a").unwrap();
        assert!(w.wait(Duration::from_secs(2)).unwrap());
    }
}
