//! The in-memory view of the state directory: one entry per binding file, keyed by TAP
//! name. A TAP that does not exist (yet) keeps its entry; it is served as soon as packets
//! arrive from it. A malformed file keeps an error entry so that TAP is refused, never
//! served from an older version of the file.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use netconf::binding::{Binding, is_binding_name};

use crate::{error, info};

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
    rescanning: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Loaded,
    Broken,
    Removed,
    Ignored,
}

impl Table {
    pub fn new(dir: &Path) -> Table {
        Table {
            dir: dir.to_owned(),
            entries: HashMap::new(),
            rescanning: false,
        }
    }

    pub fn get(&self, tap: &str) -> Option<&Entry> {
        self.entries.get(tap)
    }

    /// (Re)reads the file of one TAP after it was written, renamed into place or removed.
    pub fn reload(&mut self, name: &str) -> Change {
        if !is_binding_name(name) {
            return Change::Ignored;
        }
        let path = self.dir.join(name);
        match Binding::load(&path) {
            Ok(b) => {
                // A full rescan (start, SIGHUP) logs a summary instead of 10,000 lines.
                crate::log_at!(
                    if self.rescanning {
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
                self.entries.insert(name.to_owned(), Entry::Bound(b));
                Change::Loaded
            }
            Err(e) if !path.exists() => {
                let _ = e;
                self.remove(name)
            }
            Err(e) => {
                error!("binding {name} not served until fixed: {e}");
                self.entries
                    .insert(name.to_owned(), Entry::Broken(e.to_string()));
                Change::Broken
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Change {
        if self.entries.remove(name).is_some() {
            info!("binding {name} removed");
            Change::Removed
        } else {
            Change::Ignored
        }
    }

    /// Re-reads the whole directory (start, SIGHUP, inotify queue overflow).
    pub fn rescan(&mut self) -> io::Result<usize> {
        self.rescanning = true;
        let r = self.rescan_inner();
        self.rescanning = false;
        r
    }

    fn rescan_inner(&mut self) -> io::Result<usize> {
        let mut seen = std::collections::HashSet::new();
        for ent in std::fs::read_dir(&self.dir)? {
            let ent = ent?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if is_binding_name(&name) && ent.file_type().is_ok_and(|t| t.is_file()) {
                self.reload(&name);
                seen.insert(name);
            }
        }
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for g in gone {
            self.remove(&g);
        }
        Ok(self.entries.len())
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
}
