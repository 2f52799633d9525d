//! inotify on the state directory: every way a binding can appear, change or vanish
//! (write in place, rename into or out of the directory, delete), and a full rescan when
//! the kernel's event queue overflowed.

use std::path::Path;
use std::sync::{Arc, RwLock};

use inotify::{EventMask, Inotify, WatchMask};

use crate::table::Table;
use crate::{error, warn};

pub fn start(dir: &Path, table: Arc<RwLock<Table>>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut ino = Inotify::init()?;
    ino.watches().add(
        dir,
        WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::DELETE,
    )?;
    let h = std::thread::Builder::new()
        .name("inotify".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let events = match ino.read_events_blocking(&mut buf) {
                    Ok(e) => e,
                    Err(e) => {
                        error!("inotify: {e}");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        continue;
                    }
                };
                let changes: Vec<Change> = events
                    .map(|ev| {
                        if ev.mask.contains(EventMask::Q_OVERFLOW) {
                            return Change::Overflow;
                        }
                        let Some(name) = ev.name.and_then(|n| n.to_str()) else {
                            return Change::Nothing;
                        };
                        if ev
                            .mask
                            .intersects(EventMask::MOVED_FROM | EventMask::DELETE)
                        {
                            Change::Gone(name.to_owned())
                        } else {
                            Change::Written(name.to_owned())
                        }
                    })
                    .collect();
                let mut t = table.write().unwrap_or_else(|p| p.into_inner());
                for c in changes {
                    apply(&mut t, c);
                }
            }
        })?;
    Ok(h)
}

/// What one inotify event means for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Close-write or moved-to: (re)load that file.
    Written(String),
    /// Deleted or moved away.
    Gone(String),
    /// The kernel dropped events: only a full rescan is trustworthy.
    Overflow,
    Nothing,
}

pub fn apply(t: &mut Table, c: Change) {
    match c {
        Change::Written(name) => {
            t.reload(&name);
        }
        Change::Gone(name) => {
            t.remove(&name);
        }
        Change::Overflow => {
            warn!("inotify queue overflow: rescanning {}", t.dir.display());
            if let Err(e) = t.rescan() {
                error!("rescan: {e}");
            }
        }
        Change::Nothing => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_rescans_everything() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Table::new(d.path());
        let good = "MAC=02:00:00:00:00:01\nHOSTNAME=vm1\nIP=198.51.100.10\n";
        std::fs::write(d.path().join("tap1"), good).unwrap();
        apply(&mut t, Change::Written("tap1".into()));
        // Events lost: tap1 deleted, tap2 and tap3 written.
        std::fs::remove_file(d.path().join("tap1")).unwrap();
        std::fs::write(d.path().join("tap2"), good).unwrap();
        std::fs::write(d.path().join("tap3"), good).unwrap();
        apply(&mut t, Change::Overflow);
        let mut names: Vec<&String> = t.entries.keys().collect();
        names.sort();
        assert_eq!(names, ["tap2", "tap3"]);
        apply(&mut t, Change::Gone("tap2".into()));
        assert!(t.get("tap2").is_none());
    }
}
