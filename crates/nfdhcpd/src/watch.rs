//! inotify on the state directory: every way a binding can appear, change or vanish
//! (write in place, rename into or out of the directory, delete), a full rescan when the
//! kernel's event queue overflowed, and the directory itself removed, moved or replaced
//! (its bindings are dropped, the directory is polled for until it is back, then watched
//! and scanned again).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::lock;
use crate::table::{self, Loaded, Table};
use crate::{error, info, warn};

/// How often a vanished state directory is looked for.
const POLL: Duration = Duration::from_millis(200);

fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// The table and the lock that serialises everyone who reads binding files into it (this
/// thread and SIGHUP), so that an older read is never installed over a newer one. The
/// table's own lock is only taken to install what was read.
#[derive(Clone)]
pub struct Bindings {
    pub dir: PathBuf,
    pub table: Arc<RwLock<Table>>,
    loading: Arc<Mutex<()>>,
}

impl Bindings {
    pub fn new(table: Table) -> Bindings {
        Bindings {
            dir: table.dir.clone(),
            table: Arc::new(RwLock::new(table)),
            loading: Arc::new(Mutex::new(())),
        }
    }

    /// Reads the whole directory; each batch read is installed under the table's lock.
    pub fn rescan(&self) -> std::io::Result<usize> {
        let _serial = lock::lock(&self.loading);
        let seen = table::scan(&self.dir, |batch| {
            lock::write(&self.table).install_batch(batch);
        })?;
        let mut t = lock::write(&self.table);
        Ok(t.retain(&seen))
    }

    fn apply(&self, changes: Vec<Change>) {
        let _serial = lock::lock(&self.loading);
        let mut read: Vec<(String, Loaded)> = Vec::with_capacity(changes.len());
        for c in changes {
            match c {
                Change::Written(name) => {
                    let l = table::read_one(&self.dir, &name);
                    read.push((name, l));
                }
                Change::Gone(name) => read.push((name, Loaded::Missing)),
                Change::Overflow | Change::Nothing => {}
            }
        }
        let mut t = lock::write(&self.table);
        for (name, l) in read {
            t.install(name, l, false);
        }
    }

    fn drop_all(&self) -> usize {
        let _serial = lock::lock(&self.loading);
        lock::write(&self.table).clear()
    }
}

pub fn start(b: Bindings) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut ino = Inotify::init()?;
    let wd = ino.watches().add(&b.dir, mask())?;
    let h = std::thread::Builder::new()
        .name("inotify".into())
        .spawn(move || run(&mut ino, Some(wd), &b))?;
    Ok(h)
}

fn run(ino: &mut Inotify, mut wd: Option<WatchDescriptor>, b: &Bindings) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Some(cur) = wd.clone() else {
            wd = wait_for_dir(ino, &b.dir);
            if wd.is_some() {
                info!("{} is back: watching it again", b.dir.display());
                rescan(b);
            }
            continue;
        };
        let events = match ino.read_events_blocking(&mut buf) {
            Ok(e) => e,
            Err(e) => {
                error!("inotify: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut overflow = false;
        let mut lost = false;
        let mut changes = Vec::new();
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                overflow = true;
                continue;
            }
            // Late events of a watch given up earlier.
            if ev.wd != cur {
                continue;
            }
            if ev
                .mask
                .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED)
            {
                lost = true;
                continue;
            }
            changes.push(classify(ev.mask, ev.name.and_then(|n| n.to_str())));
        }
        if lost {
            // A moved directory is still watched under its new name: let it go.
            let _ = ino.watches().remove(cur);
            wd = None;
            let n = b.drop_all();
            warn!(
                "{} was removed or moved away: its {n} bindings dropped; waiting for it to \
                 come back",
                b.dir.display()
            );
            continue;
        }
        if overflow {
            warn!("inotify queue overflow: rescanning {}", b.dir.display());
            // The directory may have been replaced among the lost events: watching the path
            // again gives the same descriptor for the same directory, a new one otherwise.
            match ino.watches().add(&b.dir, mask()) {
                Ok(new) if new == cur => {}
                Ok(new) => {
                    let _ = ino.watches().remove(cur);
                    wd = Some(new);
                }
                Err(e) => {
                    let _ = ino.watches().remove(cur);
                    wd = None;
                    let n = b.drop_all();
                    warn!(
                        "{}: {e}: its {n} bindings dropped; waiting for it to come back",
                        b.dir.display()
                    );
                    continue;
                }
            }
            rescan(b);
            continue;
        }
        b.apply(changes);
    }
}

/// Watches `dir` again once it exists; polls every [`POLL`] until then.
fn wait_for_dir(ino: &mut Inotify, dir: &Path) -> Option<WatchDescriptor> {
    match ino.watches().add(dir, mask()) {
        Ok(wd) => Some(wd),
        Err(_) => {
            std::thread::sleep(POLL);
            None
        }
    }
}

fn rescan(b: &Bindings) {
    match b.rescan() {
        Ok(n) => info!("{n} bindings loaded from {}", b.dir.display()),
        Err(e) => error!("rescan of {}: {e}", b.dir.display()),
    }
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

fn classify(mask: EventMask, name: Option<&str>) -> Change {
    if mask.contains(EventMask::Q_OVERFLOW) {
        return Change::Overflow;
    }
    let Some(name) = name else {
        return Change::Nothing;
    };
    if mask.intersects(EventMask::MOVED_FROM | EventMask::DELETE) {
        Change::Gone(name.to_owned())
    } else {
        Change::Written(name.to_owned())
    }
}

/// One event's effect on a table, read under the caller's lock (tests).
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
