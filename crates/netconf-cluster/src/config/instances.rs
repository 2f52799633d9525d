//! The instances of a configuration, decoded only as far as a command needs.
//!
//! A cluster of 10,000 instances takes longer to decode and re-encode than a whole command
//! may, yet most commands read or change one instance or none. A configuration loaded from
//! the snapshot cache therefore keeps its instances *stored*: an index (key, name, MACs and
//! sizes of every instance) is read at load, and an instance is decoded only when asked for.
//! Changes collect in an overlay, and the writer copies the unchanged instances' bytes from
//! the old files and renders only the changed ones (see `splice`). Asking for every
//! instance (`all_decoded`, `all_decoded_mut`) decodes all of them once; from then on they
//! behave as a plain map and are written out in full.
//!
//! The cache is checked in full at load and stays open and share-locked (writers do not
//! reuse it meanwhile), as does the config.data it was made from. An encoding that still
//! fails to decode later (someone wrote into the cache in place, a bug) is never fatal:
//! the instances are then parsed from that config.data, after checking that it still
//! holds the bytes the cache was made from, and behave as a plain map from then on.
//!
//! A configuration read from etcd keeps its instances *remote* ([`Remote`]): the lookups a
//! mutation makes (by key, by name, by MAC) read just those keys, all at the snapshot's
//! revision, and the queries that need every instance read them all once, at that same
//! revision, after which they behave as a plain map too.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fingerprint::{Fingerprint, Marks};
use super::index::{self, Entry, Pos};
use super::instance::Instance;
use crate::error::GntError;
use netconf::mac::MacAddr;

/// Changes on top of the stored instances: the new value, or `None` for a removed one.
pub(super) type Overlay = BTreeMap<String, Option<Instance>>;

#[derive(Clone, Default)]
pub struct Instances {
    stored: Option<Arc<Stored>>,
    /// Kept even once the whole map is read: the store commits against this snapshot.
    remote: Option<Arc<dyn Remote>>,
    overlay: Overlay,
    /// Every instance, once something asked for the whole map.
    full: OnceLock<BTreeMap<String, Instance>>,
}

/// Instances kept in a replicated store and read on demand, every read at the revision of
/// one snapshot. A read that fails answers as if nothing were there and is remembered: the
/// store refuses to commit anything built on that snapshot and reports the failure.
pub(crate) trait Remote: Any + Send + Sync {
    /// The instance with key `key`.
    fn get(&self, key: &str) -> Option<Instance>;
    /// The key of the instance named `name`, from the name index, if that instance has
    /// the name.
    fn key_for_name(&self, name: &str) -> Option<String>;
    /// The key of the instance with a NIC with MAC `mac`, from the MAC index, if that
    /// instance has it.
    fn key_for_mac(&self, mac: MacAddr) -> Option<String>;
    /// Every instance; an error if they could not all be read.
    fn all(&self) -> Result<BTreeMap<String, Instance>, GntError>;
    /// Reads, in one request, what `get` and `key_for_name` of `key_or_name` will ask.
    fn prefetch(&self, key_or_name: &str);
    /// The value of `key` as this snapshot read it, without reading: `None` if it was not
    /// read, `Some(None)` if it was read as absent.
    fn known(&self, key: &str) -> Option<Option<Instance>>;
    fn as_any(&self) -> &dyn Any;
}

/// The MACs in use by instance NICs, as a command that changes NICs sees them: a set of
/// every MAC for instances held locally; for remote ones the MACs this command took or
/// freed over lookups in the store's MAC index, so that no command reads every instance
/// to give one NIC a MAC.
pub struct MacsInUse {
    /// Every MAC in use (local), or the MACs of the instances this configuration changed
    /// and those taken since (remote).
    used: BTreeSet<MacAddr>,
    /// Remote: MACs freed since.
    freed: BTreeSet<MacAddr>,
    /// Remote: the store, and the instances this configuration changed (their MACs are
    /// in `used`, whatever the index says).
    remote: Option<(Arc<dyn Remote>, BTreeSet<String>)>,
}

impl MacsInUse {
    pub fn contains(&self, mac: &MacAddr) -> bool {
        if self.used.contains(mac) {
            return true;
        }
        match &self.remote {
            Some((r, changed)) if !self.freed.contains(mac) => {
                r.key_for_mac(*mac).is_some_and(|k| !changed.contains(&k))
            }
            _ => false,
        }
    }

    /// Takes `mac`; false if it is in use.
    pub fn insert(&mut self, mac: MacAddr) -> bool {
        if self.contains(&mac) {
            return false;
        }
        self.freed.remove(&mac);
        self.used.insert(mac)
    }

    pub fn remove(&mut self, mac: &MacAddr) {
        self.used.remove(mac);
        if self.remote.is_some() {
            self.freed.insert(*mac);
        }
    }
}

/// Instances as the snapshot cache holds them.
pub(super) struct Stored {
    /// Index records in key order (`index` module).
    pub(super) index: Vec<u8>,
    pub(super) entries: Vec<Pos>,
    /// The cache file, open and share-locked since load: a writer never overwrites a
    /// file someone holds that lock on, so these stay the bytes the index describes
    /// unless someone else writes into it.
    pub(super) cache: File,
    /// Where the encoded instances start in `cache`.
    pub(super) blob_base: u64,
    /// The marks of the load's CRC pass over the encodings, for the CRC of a new cache
    /// that copies some of them.
    pub(super) blob_marks: Marks,
    /// The config.data the index's TOML sizes describe, and where its instances start;
    /// `None` when the cache was made from a file this build did not write.
    pub(super) toml: Option<(File, u64)>,
    /// The config.data the cache was made from, open and share-locked since load.
    pub(super) source: File,
    /// The fingerprint of `source`'s bytes at load: a writer splices only from the bytes
    /// it loaded under its lock.
    pub(super) fp: Fingerprint,
    /// config.data's path, for messages.
    pub(super) path: PathBuf,
}

impl Stored {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn entry(&self, i: usize) -> Entry<'_> {
        index::entry(&self.index, self.entries[i])
    }

    pub(super) fn search(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|p| index::entry(&self.index, *p).key.cmp(key))
    }

    pub(super) fn find(&self, key: &str) -> Option<usize> {
        self.search(key).ok()
    }

    /// One instance; `None` if its encoding cannot be read or does not decode.
    fn decode(&self, i: usize) -> Option<Instance> {
        let p = self.entries[i];
        let mut buf = vec![0; p.blob_len as usize];
        self.cache
            .read_exact_at(&mut buf, self.blob_base.checked_add(p.blob_off)?)
            .ok()?;
        index::decode_blob(&buf, self.entry(i).crc)
    }

    /// Every instance, in key order, decoded on two cores; `None` if one does not decode.
    fn decode_all(&self) -> Option<Vec<(String, Instance)>> {
        let total = self
            .entries
            .last()
            .map_or(0, |p| p.blob_off + u64::from(p.blob_len));
        let mut area = vec![0; usize::try_from(total).ok()?];
        self.cache.read_exact_at(&mut area, self.blob_base).ok()?;
        let decode_range = |r: Range<usize>| -> Option<Vec<(String, Instance)>> {
            r.map(|i| {
                let (p, e) = (self.entries[i], self.entry(i));
                let start = usize::try_from(p.blob_off).ok()?;
                let bytes = area.get(start..start.checked_add(e.blob_len as usize)?)?;
                Some((e.key.to_owned(), index::decode_blob(bytes, e.crc)?))
            })
            .collect()
        };
        let half = self.len() / 2;
        std::thread::scope(|s| {
            let second = s.spawn(|| decode_range(half..self.len()));
            let mut first = decode_range(0..half)?;
            first.extend(second.join().ok()??);
            Some(first)
        })
    }

    /// Every instance, parsed from the config.data the cache stood in for, if it still
    /// holds those bytes.
    fn parse_toml(&self) -> Result<BTreeMap<String, Instance>, GntError> {
        let changed = || {
            GntError::Exec(format!(
                "{} changed while this command read it; nothing was written, run it again",
                self.path.display()
            ))
        };
        let len = usize::try_from(self.fp.len()).map_err(|_| changed())?;
        let mut bytes = vec![0; len];
        self.source
            .read_exact_at(&mut bytes, 0)
            .map_err(|_| changed())?;
        let longer = self
            .source
            .read_at(&mut [0], self.fp.len())
            .map_err(|_| changed())?;
        if longer != 0 || Fingerprint::of(&bytes) != self.fp {
            return Err(changed());
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| changed())?;
        // These bytes parsed as a whole configuration when the cache was made from them,
        // so reading only their instances gives what a whole parse would.
        let section: InstancesSection = toml::from_str(text)
            .map_err(|e| GntError::Config(format!("{}: {}", self.path.display(), e.message())))?;
        Ok(section.instances)
    }
}

/// The instances of a config.data text, the rest of it left unread.
#[derive(Deserialize)]
struct InstancesSection {
    #[serde(default)]
    instances: BTreeMap<String, Instance>,
}

impl Instances {
    pub(super) fn from_stored(stored: Stored) -> Self {
        Instances {
            stored: Some(Arc::new(stored)),
            remote: None,
            overlay: BTreeMap::new(),
            full: OnceLock::new(),
        }
    }

    pub(crate) fn from_remote(remote: Arc<dyn Remote>) -> Self {
        Instances {
            stored: None,
            remote: Some(remote),
            overlay: BTreeMap::new(),
            full: OnceLock::new(),
        }
    }

    pub fn from_map(map: BTreeMap<String, Instance>) -> Self {
        Instances {
            stored: None,
            remote: None,
            overlay: BTreeMap::new(),
            full: OnceLock::from(map),
        }
    }

    /// The store these instances are read from, if remote.
    pub(crate) fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.as_ref()
    }

    /// Whether these are remote instances of which only some were read.
    pub(crate) fn is_remote_lazy(&self) -> bool {
        self.remote.is_some() && !self.is_full()
    }

    /// Every change since the snapshot, removals (`None`) included; empty once the whole
    /// map was read (then the map itself is the changed state).
    pub(crate) fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The MACs in use, for a command that gives NICs MACs.
    pub fn macs_in_use(&self) -> MacsInUse {
        match &self.remote {
            Some(r) if !self.is_full() => MacsInUse {
                used: self
                    .overlay_live()
                    .flat_map(|(_, i)| i.nics.iter().map(|n| n.mac))
                    .collect(),
                freed: BTreeSet::new(),
                remote: Some((r.clone(), self.overlay.keys().cloned().collect())),
            },
            _ => MacsInUse {
                used: self.macs().into_iter().collect(),
                freed: BTreeSet::new(),
                remote: None,
            },
        }
    }

    /// The whole map, if these are held whole or read from a remote store (which reads
    /// them all now, once); `None` for stored instances, which are looked up in their index.
    fn whole(&self) -> Option<&BTreeMap<String, Instance>> {
        if let Some(m) = self.full.get() {
            return Some(m);
        }
        self.remote.as_ref().map(|_| self.materialize())
    }

    /// The stored instances and the changes on top of them, while nothing forced the
    /// whole map and the old config.data can still be copied from.
    pub(super) fn spliceable(
        &self,
        current: Option<Fingerprint>,
    ) -> Option<(Option<&Stored>, &Overlay)> {
        if self.full.get().is_some() || self.remote.is_some() {
            return None;
        }
        match self.stored.as_deref() {
            Some(s) if s.toml.is_none() || Some(s.fp) != current => None,
            stored => Some((stored, &self.overlay)),
        }
    }

    /// Whether every instance is decoded (parsed from TOML, or used as a whole map).
    pub(super) fn is_full(&self) -> bool {
        self.full.get().is_some()
    }

    /// The instances changed since load (new values; removed ones are left out), while
    /// the rest are still stored.
    pub(super) fn changed(&self) -> impl Iterator<Item = (&String, &Instance)> {
        self.overlay_live()
    }

    /// Every instance as its index record sums it up: group and node hints, and each NIC's
    /// MAC, network hint and IPv4 address. Changed instances are summed up from their
    /// values; nothing is decoded.
    pub(super) fn for_each_summary(
        &self,
        mut f: impl FnMut(u32, u32, &mut dyn Iterator<Item = (MacAddr, u32, Option<Ipv4Addr>)>),
    ) {
        for e in self.stored_live() {
            f(e.group_hint, e.node_hint, &mut e.nic_briefs());
        }
        for (_, i) in self.overlay_live() {
            f(
                index::hint(&i.group),
                index::opt_hint(i.primary_node.as_deref()),
                &mut i
                    .nics
                    .iter()
                    .map(|n| (n.mac, index::opt_hint(n.network.as_deref()), n.ipv4())),
            );
        }
    }

    fn stored_live(&self) -> impl Iterator<Item = Entry<'_>> {
        self.stored
            .iter()
            .flat_map(|s| (0..s.len()).map(move |i| s.entry(i)))
            .filter(|e| self.overlay.is_empty() || !self.overlay.contains_key(e.key))
    }

    fn overlay_live(&self) -> impl Iterator<Item = (&String, &Instance)> {
        self.overlay
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|i| (k, i)))
    }

    fn in_stored(&self, key: &str) -> Option<usize> {
        self.stored.as_ref().and_then(|s| s.find(key))
    }

    pub fn len(&self) -> usize {
        if let Some(m) = self.whole() {
            return m.len();
        }
        let base = self.stored.as_ref().map_or(0, |s| s.len());
        self.overlay.iter().fold(base, |n, (k, v)| {
            match (self.in_stored(k).is_some(), v.is_some()) {
                (false, true) => n + 1,
                (true, false) => n - 1,
                _ => n,
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_key(&self, key: &str) -> bool {
        if let Some(m) = self.full.get() {
            return m.contains_key(key);
        }
        match (self.overlay.get(key), &self.remote) {
            (Some(v), _) => v.is_some(),
            (None, Some(r)) => r.get(key).is_some(),
            (None, None) => self.in_stored(key).is_some(),
        }
    }

    /// The key of the instance called `name`, or `name` itself when it is a key.
    pub fn key_of(&self, name: &str) -> Option<String> {
        if let (Some(r), false) = (
            &self.remote,
            self.is_full() || self.overlay.contains_key(name),
        ) {
            r.prefetch(name);
        }
        if self.contains_key(name) {
            return Some(name.to_owned());
        }
        self.key_by_name(name)
    }

    /// The key of the instance called `name` (names are unique).
    pub fn key_by_name(&self, name: &str) -> Option<String> {
        if let Some(m) = self.full.get() {
            return m
                .iter()
                .find(|(_, i)| i.name == name)
                .map(|(k, _)| k.clone());
        }
        let changed = self
            .overlay_live()
            .find(|(_, i)| i.name == name)
            .map(|(k, _)| k.clone());
        if let Some(r) = &self.remote {
            // An instance changed here answers for itself, whatever the index said.
            return changed.or_else(|| {
                r.key_for_name(name)
                    .filter(|k| !self.overlay.contains_key(k))
            });
        }
        changed.or_else(|| {
            self.stored_live()
                .find(|e| e.name == name.as_bytes())
                .map(|e| e.key.to_owned())
        })
    }

    /// Every instance's name, from the index: nothing is decoded (shell completion reads
    /// these for each TAB).
    pub fn names(&self) -> Vec<String> {
        if let Some(m) = self.whole() {
            return m.values().map(|i| i.name.to_string()).collect();
        }
        let stored = self
            .stored_live()
            .map(|e| String::from_utf8_lossy(e.name).into_owned());
        stored
            .chain(self.overlay_live().map(|(_, i)| i.name.to_string()))
            .collect()
    }

    /// Every MAC address of every NIC.
    pub fn macs(&self) -> Vec<MacAddr> {
        if let Some(m) = self.whole() {
            return m
                .values()
                .flat_map(|i| i.nics.iter().map(|n| n.mac))
                .collect();
        }
        let mut out: Vec<MacAddr> = self.stored_live().flat_map(|e| e.macs()).collect();
        out.extend(
            self.overlay_live()
                .flat_map(|(_, i)| i.nics.iter().map(|n| n.mac)),
        );
        out
    }

    /// The instances with a NIC on network `net` (a UUID), in key order, decoding only
    /// those that may be.
    pub fn on_network(&self, net: &str) -> Vec<(String, Instance)> {
        let h = index::hint(net);
        self.select(
            |e| e.may_use(h),
            |i| i.nics.iter().any(|n| n.network.as_deref() == Some(net)),
        )
    }

    /// The instances of node group `group` (a UUID), in key order.
    pub fn in_group(&self, group: &str) -> Vec<(String, Instance)> {
        let h = index::hint(group);
        self.select(|e| e.group_hint == h, |i| i.group == group)
    }

    /// The instances whose primary node is `node` (a UUID), in key order.
    pub fn on_node(&self, node: &str) -> Vec<(String, Instance)> {
        let h = index::hint(node);
        self.select(
            |e| e.node_hint == h,
            |i| i.primary_node.as_deref() == Some(node),
        )
    }

    /// The instances with a NIC whose IPv4 address is in `net`, in key order.
    pub fn with_ipv4_in(&self, net: Ipv4Net) -> Vec<(String, Instance)> {
        self.select(
            |e| e.ipv4s().any(|ip| net.contains(&ip)),
            |i| {
                i.nics
                    .iter()
                    .any(|n| n.ipv4().is_some_and(|ip| net.contains(&ip)))
            },
        )
    }

    /// The instances for which `pred` holds, in key order. Stored ones are decoded only
    /// when their index record passes `maybe`, which must hold whenever `pred` does.
    fn select(
        &self,
        maybe: impl Fn(Entry<'_>) -> bool,
        pred: impl Fn(&Instance) -> bool,
    ) -> Vec<(String, Instance)> {
        if let Some(m) = self.whole() {
            return m
                .iter()
                .filter(|(_, i)| pred(i))
                .map(|(k, i)| (k.clone(), i.clone()))
                .collect();
        }
        let mut found: BTreeMap<String, Instance> = self
            .overlay_live()
            .filter(|(_, i)| pred(i))
            .map(|(k, i)| (k.clone(), i.clone()))
            .collect();
        if let Some(s) = &self.stored {
            for i in 0..s.len() {
                let e = s.entry(i);
                if maybe(e) && !self.overlay.contains_key(e.key) {
                    let Some(inst) = s.decode(i) else {
                        return self
                            .fall_back()
                            .iter()
                            .filter(|(_, i)| pred(i))
                            .map(|(k, i)| (k.clone(), i.clone()))
                            .collect();
                    };
                    if pred(&inst) {
                        found.insert(e.key.to_owned(), inst);
                    }
                }
            }
        }
        found.into_iter().collect()
    }

    /// A copy of one instance, decoding only that one.
    pub fn get_cloned(&self, key: &str) -> Option<Instance> {
        if let Some(m) = self.full.get() {
            return m.get(key).cloned();
        }
        match self.overlay.get(key) {
            Some(v) => v.clone(),
            None if self.remote.is_some() => self.remote.as_ref()?.get(key),
            None => {
                let s = self.stored.as_ref()?;
                let i = s.find(key)?;
                s.decode(i).or_else(|| self.fall_back().get(key).cloned())
            }
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Instance> {
        if self.full.get().is_none() && !self.overlay.contains_key(key) {
            let inst = self.get_cloned(key)?;
            // Decoding it may have fallen back to the whole map.
            if self.full.get().is_none() {
                self.overlay.insert(key.to_owned(), Some(inst));
            }
        }
        if let Some(m) = self.full.get_mut() {
            return m.get_mut(key);
        }
        self.overlay.get_mut(key)?.as_mut()
    }

    /// Adds or replaces an instance.
    pub fn insert(&mut self, key: String, inst: Instance) {
        if let Some(m) = self.full.get_mut() {
            m.insert(key, inst);
        } else {
            self.overlay.insert(key, Some(inst));
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Instance> {
        if let Some(m) = self.full.get_mut() {
            return m.remove(key);
        }
        let old = self.get_cloned(key)?;
        if let Some(m) = self.full.get_mut() {
            return m.remove(key);
        }
        if self.in_stored(key).is_some() || self.remote.is_some() {
            self.overlay.insert(key.to_owned(), None);
        } else {
            self.overlay.remove(key);
        }
        Some(old)
    }

    /// Every instance, in key order. The first call decodes every stored instance (for a
    /// large cluster far slower than the lookups above, which decode only what they
    /// return); from then on the instances are a plain map and are written out in full.
    pub fn all_decoded(&self) -> &BTreeMap<String, Instance> {
        self.materialize()
    }

    /// Every instance, to change in place; decodes all of them as `all_decoded` does.
    pub fn all_decoded_mut(&mut self) -> &mut BTreeMap<String, Instance> {
        self.materialize();
        self.full.get_mut().expect("materialised above")
    }

    fn materialize(&self) -> &BTreeMap<String, Instance> {
        self.full.get_or_init(|| {
            let base = match self.stored.as_deref() {
                // As for a cache that no longer decodes: a caller that asks for every
                // instance cannot be given fewer, so a failed read ends the command with
                // its error (nothing was written).
                None if let Some(r) = &self.remote => match r.all() {
                    Ok(all) => all,
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(i32::from(e.exit_code()))
                    }
                },
                None => BTreeMap::new(),
                Some(s) => match s.decode_all() {
                    Some(all) => all.into_iter().collect(),
                    None => Self::parsed(s),
                },
            };
            self.with_overlay(base)
        })
    }

    /// The whole map from the config.data text, after an encoding did not decode.
    fn fall_back(&self) -> &BTreeMap<String, Instance> {
        self.full.get_or_init(|| {
            let base = self.stored.as_deref().map(Self::parsed).unwrap_or_default();
            self.with_overlay(base)
        })
    }

    fn with_overlay(&self, mut map: BTreeMap<String, Instance>) -> BTreeMap<String, Instance> {
        for (k, v) in &self.overlay {
            match v {
                Some(i) => map.insert(k.clone(), i.clone()),
                None => map.remove(k),
            };
        }
        map
    }

    /// The stored instances parsed from their config.data. That fails only if the file
    /// was also changed in place since load (or a CRC-32 collision met a bug); the
    /// command then stops with that error rather than answer from a guess.
    fn parsed(s: &Stored) -> BTreeMap<String, Instance> {
        s.parse_toml().unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(i32::from(e.exit_code()))
        })
    }
}

impl PartialEq for Instances {
    fn eq(&self, other: &Self) -> bool {
        self.all_decoded() == other.all_decoded()
    }
}

impl fmt::Debug for Instances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.all_decoded().fmt(f)
    }
}

impl Serialize for Instances {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.all_decoded().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Instances::from_map)
    }
}

impl FromIterator<(String, Instance)> for Instances {
    fn from_iter<T: IntoIterator<Item = (String, Instance)>>(iter: T) -> Self {
        Instances::from_map(iter.into_iter().collect())
    }
}
