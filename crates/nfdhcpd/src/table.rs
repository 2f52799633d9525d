//! The in-memory view of the state directory: one entry per binding file, keyed by TAP
//! name. A TAP that does not exist (yet) keeps its entry; it is served as soon as packets
//! arrive from it. A malformed file keeps an error entry so that TAP is refused, never
//! served from an older version of the file.
//!
//! Files are read by [`read_one`] and [`scan`] without the table's lock, and those never
//! block (see [`netconf::binding::read_text`]): only the finished result is installed
//! under the lock, so the packet thread never waits on a file.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use netconf::binding::{Binding, is_binding_name};

use crate::{error, info, warn};

/// Longest host name DHCP may carry (RFC 1035: 253 characters in text form).
pub const MAX_HOSTNAME: usize = 253;
/// Longest label of a host name.
pub const MAX_LABEL: usize = 63;

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Bound(Binding),
    /// The load error, with file and line.
    Broken(String),
}

#[derive(Debug, Default)]
pub struct Table {
    pub dir: PathBuf,
    pub entries: HashMap<String, Entry>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Loaded,
    Broken,
    Removed,
    /// Read again with the same result (e.g. the close of a file already loaded at its
    /// rename): nothing to do.
    Unchanged,
    Ignored,
}

/// What reading one name of the directory gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    Entry(Entry),
    Missing,
    NotABinding,
}

/// Reads the binding file `name` of `dir`; never blocks, takes no lock.
pub fn read_one(dir: &Path, name: &str) -> Loaded {
    if !is_binding_name(name) {
        return Loaded::NotABinding;
    }
    let path = dir.join(name);
    let text = match netconf::binding::read_text(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Entry(Entry::Broken(format!("{}: {e}", path.display()))),
    };
    match Binding::parse(&text) {
        Ok(mut b) => {
            if !hostname_fits(&b.hostname) {
                // Served without a name (DHCP option 12, the derived domain) rather than
                // refused: the guest keeps its address, and an over-long name cannot make
                // a reply that does not fit.
                warn!(
                    "binding {name}: HOSTNAME of {} bytes dropped (at most {MAX_HOSTNAME}, \
                     labels at most {MAX_LABEL})",
                    b.hostname.len()
                );
                b.hostname.clear();
            }
            Loaded::Entry(Entry::Bound(b))
        }
        Err(e) => Loaded::Entry(Entry::Broken(e_in(e, &path).to_string())),
    }
}

fn e_in(mut e: netconf::binding::BindingError, path: &Path) -> netconf::binding::BindingError {
    e.file = Some(path.to_owned());
    e
}

/// Whether a host name can go into a DHCP answer as it is.
pub fn hostname_fits(h: &str) -> bool {
    h.len() <= MAX_HOSTNAME && h.split('.').all(|l| l.len() <= MAX_LABEL)
}

/// Files read per batch of a scan: the table's lock is taken once per batch, and a scan of
/// 10,000 bindings never holds them all twice in memory.
const SCAN_BATCH: usize = 256;

/// Reads every binding of `dir` (start, SIGHUP, overflow, the directory back) and hands
/// them to `install` in batches; takes no lock itself. Returns the names present. Every
/// binding name is read, whatever its type: a link or a FIFO under a TAP's name is
/// refused the same way as on an event.
pub fn scan(
    dir: &Path,
    mut install: impl FnMut(Vec<(String, Loaded)>),
) -> io::Result<HashSet<String>> {
    let mut seen = HashSet::new();
    let mut batch = Vec::with_capacity(SCAN_BATCH);
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if !is_binding_name(&name) {
            continue;
        }
        let l = read_one(dir, &name);
        if !matches!(l, Loaded::Missing) {
            seen.insert(name.clone());
        }
        batch.push((name, l));
        if batch.len() == SCAN_BATCH {
            install(std::mem::replace(
                &mut batch,
                Vec::with_capacity(SCAN_BATCH),
            ));
        }
    }
    if !batch.is_empty() {
        install(batch);
    }
    Ok(seen)
}

impl Table {
    pub fn new(dir: &Path) -> Table {
        Table {
            dir: dir.to_owned(),
            entries: HashMap::new(),
        }
    }

    pub fn get(&self, tap: &str) -> Option<&Entry> {
        self.entries.get(tap)
    }

    /// (Re)reads the file of one TAP after it was written, renamed into place or removed.
    /// Reads under the caller's lock: for tests and tools; the daemon uses [`read_one`]
    /// and [`Table::install`].
    pub fn reload(&mut self, name: &str) -> Change {
        let l = read_one(&self.dir, name);
        self.install(name.to_owned(), l, false)
    }

    /// Puts what [`read_one`] gave for `name` into the table; `quiet` (a full rescan) logs
    /// loads at debug level, the caller prints a summary instead of 10,000 lines.
    pub fn install(&mut self, name: String, loaded: Loaded, quiet: bool) -> Change {
        let entry = match loaded {
            Loaded::NotABinding => return Change::Ignored,
            Loaded::Missing => return self.remove(&name),
            Loaded::Entry(e) => e,
        };
        if self.entries.get(&name) == Some(&entry) {
            return Change::Unchanged;
        }
        let change = match &entry {
            Entry::Bound(b) => {
                crate::log_at!(
                    if quiet {
                        crate::log::DEBUG
                    } else {
                        crate::log::INFO
                    },
                    "binding {name}: MAC {} IP {} SUBNET6 {}",
                    b.mac,
                    b.ip.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                    b.subnet6
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                Change::Loaded
            }
            Entry::Broken(e) => {
                error!("binding {name} not served until fixed: {e}");
                Change::Broken
            }
        };
        self.entries.insert(name, entry);
        change
    }

    pub fn remove(&mut self, name: &str) -> Change {
        if self.entries.remove(name).is_some() {
            info!("binding {name} removed");
            Change::Removed
        } else {
            Change::Ignored
        }
    }

    /// Installs one batch of a [`scan`], logging loads at debug level only.
    pub fn install_batch(&mut self, found: Vec<(String, Loaded)>) {
        for (name, l) in found {
            self.install(name, l, true);
        }
    }

    /// Ends a [`scan`]: every entry whose file was not found goes.
    pub fn retain(&mut self, seen: &HashSet<String>) -> usize {
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for g in gone {
            self.remove(&g);
        }
        self.entries.len()
    }

    /// Drops every entry: the directory itself is gone.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    /// Re-reads the whole directory under the caller's lock (tests; the daemon scans
    /// first and installs under the lock).
    pub fn rescan(&mut self) -> io::Result<usize> {
        let dir = self.dir.clone();
        let seen = scan(&dir, |batch| self.install_batch(batch))?;
        Ok(self.retain(&seen))
    }

    pub fn bound(&self) -> impl Iterator<Item = (&String, &Binding)> {
        self.entries.iter().filter_map(|(k, e)| match e {
            Entry::Bound(b) => Some((k, b)),
            Entry::Broken(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const GOOD: &str = "MAC=02:00:00:00:00:01\nHOSTNAME=vm1.example.org\nIP=198.51.100.10\n";

    #[test]
    fn load_break_fix_remove() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Table::new(d.path());
        fs::write(d.path().join("tap1"), GOOD).unwrap();
        assert_eq!(t.reload("tap1"), Change::Loaded);
        assert!(matches!(t.get("tap1"), Some(Entry::Bound(_))));
        // A broken rewrite replaces the good entry: never serve the stale one.
        fs::write(
            d.path().join("tap1"),
            "MAC=02:00:00:00:00:01\nMTU=\nIP=1.2.3\n",
        )
        .unwrap();
        assert_eq!(t.reload("tap1"), Change::Broken);
        match t.get("tap1") {
            Some(Entry::Broken(e)) => assert!(e.contains("tap1:3:"), "{e}"),
            other => panic!("{other:?}"),
        }
        fs::remove_file(d.path().join("tap1")).unwrap();
        assert_eq!(t.reload("tap1"), Change::Removed);
        assert_eq!(t.reload(".tap1.tmp5"), Change::Ignored);
    }

    #[test]
    fn rescan_adds_and_drops() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Table::new(d.path());
        fs::write(d.path().join("tap1"), GOOD).unwrap();
        fs::write(d.path().join(".hidden"), GOOD).unwrap();
        assert_eq!(t.rescan().unwrap(), 1);
        fs::rename(d.path().join("tap1"), d.path().join("tap2")).unwrap();
        assert_eq!(t.rescan().unwrap(), 1);
        assert!(t.get("tap2").is_some() && t.get("tap1").is_none());
    }

    #[test]
    fn same_content_again_is_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Table::new(d.path());
        fs::write(d.path().join("tap1"), GOOD).unwrap();
        assert_eq!(t.reload("tap1"), Change::Loaded);
        assert_eq!(t.reload("tap1"), Change::Unchanged);
        fs::write(d.path().join("tap1"), GOOD.replace(".10", ".11")).unwrap();
        assert_eq!(t.reload("tap1"), Change::Loaded);
    }

    /// Links and special files are refused alike on an event and on a rescan, and a FIFO
    /// never blocks the reader.
    #[test]
    fn links_and_fifos_are_refused_on_event_and_rescan() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::write(&outside, GOOD).unwrap();
        let bindings = d.path().join("b");
        fs::create_dir(&bindings).unwrap();
        std::os::unix::fs::symlink(&outside, bindings.join("tap1")).unwrap();
        nix::unistd::mkfifo(
            &bindings.join("tap2"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let mut t = Table::new(&bindings);
        for round in ["event", "rescan"] {
            if round == "event" {
                assert_eq!(t.reload("tap1"), Change::Broken);
                assert_eq!(t.reload("tap2"), Change::Broken);
            } else {
                t.entries.clear();
                assert_eq!(t.rescan().unwrap(), 2);
            }
            match t.get("tap1") {
                Some(Entry::Broken(e)) => assert!(e.contains("symbolic link"), "{round}: {e}"),
                other => panic!("{round}: {other:?}"),
            }
            match t.get("tap2") {
                Some(Entry::Broken(e)) => assert!(e.contains("not a regular file"), "{round}: {e}"),
                other => panic!("{round}: {other:?}"),
            }
        }
    }

    #[test]
    fn overlong_host_names_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Table::new(d.path());
        let long = format!("{}.example.org", "a".repeat(64));
        fs::write(
            d.path().join("tap1"),
            GOOD.replace("vm1.example.org", &long),
        )
        .unwrap();
        fs::write(
            d.path().join("tap2"),
            GOOD.replace("vm1.example.org", &"ab.".repeat(90)),
        )
        .unwrap();
        let ok = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(ok.len(), 253);
        fs::write(d.path().join("tap3"), GOOD.replace("vm1.example.org", &ok)).unwrap();
        t.rescan().unwrap();
        for (tap, want) in [("tap1", ""), ("tap2", ""), ("tap3", ok.as_str())] {
            match t.get(tap) {
                Some(Entry::Bound(b)) => assert_eq!(b.hostname, want, "{tap}"),
                other => panic!("{tap}: {other:?}"),
            }
        }
    }
}
