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
                let mut t = table.write().unwrap_or_else(|p| p.into_inner());
                for ev in events {
                    if ev.mask.contains(EventMask::Q_OVERFLOW) {
                        warn!("inotify queue overflow: rescanning {}", t.dir.display());
                        if let Err(e) = t.rescan() {
                            error!("rescan: {e}");
                        }
                        continue;
                    }
                    let Some(name) = ev.name.and_then(|n| n.to_str()) else {
                        continue;
                    };
                    if ev
                        .mask
                        .intersects(EventMask::MOVED_FROM | EventMask::DELETE)
                    {
                        t.remove(name);
                    } else {
                        t.reload(name);
                    }
                }
            }
        })?;
    Ok(h)
}
