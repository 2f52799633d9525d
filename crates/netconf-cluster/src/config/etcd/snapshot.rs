//! One read of a cluster in etcd: its heads (schema, cluster, serial, groups, nodes,
//! networks: a few hundred keys at most) in one read-only txn, and its instances on demand
//! ([`Remote`]), every read pinned to the revision of that txn. A command that changes one
//! instance thus reads the heads, that instance and its index keys, not the whole cluster;
//! a query that needs every instance reads them all once, at the same revision.
//!
//! Every key read is remembered with its mod revision (or as absent), so that the commit
//! compares exactly what the command's decisions rested on.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Deserialize;

use super::client::{Client, EtcdError, Kv, Read};
use super::heads_cache::HeadsCache;
use super::keys::SerialValue;
use super::keys::{Key, Layout};
use crate::config::instance::Instance;
use crate::config::instances::{Instances, Remote};
use crate::config::model::{CONFIG_VERSION, Cluster, ClusterConfig, Heads};
use crate::error::GntError;
use netconf::mac::MacAddr;

/// A cached copy of the heads is rewritten once more than this many keys, or bytes of
/// values, changed since it was written.
const REWRITE_KEYS: usize = 16;
const REWRITE_BYTES: usize = 32 << 10;

/// Why a read on demand failed: the snapshot can be committed against no more.
#[derive(Clone)]
pub(super) struct ReadFailure {
    pub(super) error: GntError,
    /// The snapshot's revision was compacted away (or is not yet applied by the member
    /// asked): a fresh snapshot will do.
    pub(super) compacted: bool,
}

/// What an optimistic snapshot took an index key to hold without reading it; the commit
/// compares exactly that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Assumed {
    /// Absent: a MAC just drawn at random, which almost never is in use.
    Absent,
    /// The UUID of the instance whose index key it is, about to be deleted with it.
    HeldBy(String),
}

/// How a snapshot reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reading {
    /// Linearizable heads; every key a decision rests on read before the commit.
    Careful,
    /// A command's first attempt, as cheap as its commit can check: the heads read
    /// serializable (from what the member asked has applied, without a round to the
    /// leader: possibly a little behind), index keys assumed rather than read. Every
    /// commit compares what it rested on, so a stale read or a wrong assumption costs a
    /// conflict, never a wrong commit; a conflict or an error is then tried again
    /// carefully, so that no error is ever reported from a read that was not.
    Optimistic,
}

/// Every instance with the mod revision of its key.
type AllInstances = (BTreeMap<String, Instance>, BTreeMap<String, i64>);

pub(super) struct Snapshot {
    pub(super) revision: i64,
    /// Nothing at all under the prefix: a fresh cluster, all of which a commit writes.
    pub(super) empty: bool,
    /// The head keys as read.
    pub(super) heads: BTreeMap<Key, Kv>,
    /// The serial before the first commit here (see the serial key).
    pub(super) serial_base: u64,
    pub(super) cluster: Cluster,
    pub(super) base: Arc<Heads>,
    pub(super) reading: Reading,
    client: Arc<Client>,
    layout: Layout,
    shown: String,
    /// Every key read on demand, as of `revision` (`None`: absent).
    reads: Mutex<BTreeMap<Key, Option<Kv>>>,
    /// Index keys taken to hold something without reading them (optimistic only).
    assumed: Mutex<BTreeMap<Key, Assumed>>,
    all: OnceLock<Option<AllInstances>>,
    failure: Mutex<Option<ReadFailure>>,
}

fn b2s(b: &[u8]) -> String {
    netconf::name::printable(&String::from_utf8_lossy(b))
}

impl Snapshot {
    /// The heads as of `revision` (the current one when `None`), with the keys `also` (read
    /// in the same txn). With a `cache`, a read of the current revision asks only for the
    /// groups, nodes and networks changed since the cached copy, and leaves the copy of
    /// this revision there.
    pub(super) fn load(
        client: &Arc<Client>,
        layout: &Layout,
        shown: &str,
        revision: Option<i64>,
        also: &[Key],
        cache: Option<&HeadsCache>,
        reading: Reading,
    ) -> Result<Snapshot, GntError> {
        let cache = cache.filter(|_| revision.is_none());
        let load = |use_cached| {
            Self::load_with(
                client.clone(),
                layout,
                shown,
                revision,
                also,
                cache,
                reading,
                use_cached,
            )
        };
        if cache.is_some() {
            // A copy that does not add up, or a value in it that does not decode: read
            // everything (and replace the copy).
            match load(true) {
                Ok(Some(s)) => return Ok(s),
                Ok(None) | Err(GntError::Config(_)) => {}
                Err(e) => return Err(e),
            }
        }
        load(false)
            .map(|s| s.ok_or_else(|| GntError::Exec(format!("{shown}: cannot read the heads"))))?
    }

    /// [`Snapshot::load`]; `None` if `use_cached` and the cached copy proved unusable.
    #[allow(clippy::too_many_arguments)]
    fn load_with(
        client: Arc<Client>,
        layout: &Layout,
        shown: &str,
        revision: Option<i64>,
        also: &[Key],
        cache: Option<&HeadsCache>,
        reading: Reading,
        use_cached: bool,
    ) -> Result<Option<Snapshot>, GntError> {
        let unreachable = |e: &EtcdError| match e {
            EtcdError::Unreachable(m) => GntError::Exec(m.clone()),
            _ => GntError::Exec(format!("etcd cluster {shown}: {e}")),
        };
        let corrupt = |key: &[u8], why: &dyn std::fmt::Display| {
            GntError::Config(format!("{shown}: key '{}': {why}", b2s(key)))
        };
        let mut reads = vec![
            Read::key(layout.key(&Key::Schema), revision),
            Read::key(layout.key(&Key::Cluster), revision),
            Read::key(layout.key(&Key::Serial), revision),
            Read::prefix(&layout.under("groups"), revision),
            Read::prefix(&layout.under("nodes"), revision),
            Read::prefix(&layout.under("networks"), revision),
        ];
        let n_heads = reads.len();
        let serializable = reading == Reading::Optimistic;
        const DIRS: [(usize, &str); 3] = [(3, "groups"), (4, "nodes"), (5, "networks")];
        let cached = cache.filter(|_| use_cached).and_then(HeadsCache::load);
        if let Some(c) = &cached {
            for (i, _) in DIRS {
                reads[i].min_mod_revision = Some(c.revision.saturating_add(1));
            }
        }
        // Keys a read on demand would ask for next, read in the same txn: at the same
        // revision, remembered as any read on demand is (and so compared at commit).
        let also: Vec<&Key> = also.iter().filter(|k| !k.is_head()).collect();
        reads.extend(also.iter().map(|k| Read::key(layout.key(k), revision)));
        for r in &mut reads {
            r.serializable = serializable;
        }
        let (rev, mut answers) = client.read_many(&reads).map_err(|e| unreachable(&e))?;
        let early: BTreeMap<Key, Option<Kv>> = also
            .into_iter()
            .cloned()
            .zip(answers.split_off(n_heads.min(answers.len())))
            .map(|(k, a)| (k, a.kvs.into_iter().next()))
            .collect();
        // The cached copy merged with what changed since (see heads_cache.rs for why
        // that is the state at this revision).
        let mut write_cache = cache.is_some();
        if let Some(c) = cached {
            let same_cluster = answers.len() == n_heads
                && answers.iter().all(|a| a.cluster_id == c.cluster_id)
                && rev >= c.revision;
            if !same_cluster {
                return Ok(None);
            }
            let mut placed = 0;
            // The copy is rewritten only once enough has changed since it was written:
            // an allocation changes its network every time, and what changed since comes
            // in each answer anyway (writing 140 KB costs more than reading a few keys).
            let (mut changed_keys, mut changed_bytes) = (0, 0);
            for (i, dir) in DIRS {
                let under = layout.under(dir);
                let mut merged: BTreeMap<Vec<u8>, Kv> = c
                    .kvs
                    .iter()
                    .filter(|kv| kv.key.starts_with(&under))
                    .map(|kv| (kv.key.clone(), kv.clone()))
                    .collect();
                placed += merged.len();
                let a = &mut answers[i];
                changed_keys += a.kvs.len();
                changed_bytes += a.kvs.iter().map(|kv| kv.value.len()).sum::<usize>();
                for kv in std::mem::take(&mut a.kvs) {
                    if !kv.key.starts_with(&under) {
                        return Ok(None);
                    }
                    merged.insert(kv.key.clone(), kv);
                }
                if i64::try_from(merged.len()).ok() != Some(a.count) {
                    return Ok(None);
                }
                a.kvs = merged.into_values().collect();
            }
            if placed != c.kvs.len() {
                return Ok(None);
            }
            write_cache = changed_keys > REWRITE_KEYS || changed_bytes > REWRITE_BYTES;
        }
        let cluster_id = answers
            .first()
            .map(|a| a.cluster_id.clone())
            .unwrap_or_default();
        let revision = revision.unwrap_or(rev);
        // Without a schema key: a fresh cluster if nothing at all is under the prefix, else
        // a copy that stopped midway. Asked only then: etcd 3.4 counts every key of a
        // range even when asked for one, which under a large cluster's prefix costs more
        // than the rest of a command.
        let empty = answers.first().is_none_or(|a| a.kvs.is_empty()) && {
            let mut anything = Read::prefix(layout.root(), Some(revision));
            anything.limit = 1;
            anything.keys_only = true;
            anything.serializable = serializable;
            client
                .read_many(&[anything])
                .map_err(|e| unreachable(&e))?
                .1
                .first()
                .is_none_or(|a| a.kvs.is_empty())
        };
        let mut heads = BTreeMap::new();
        for kv in answers.into_iter().flat_map(|a| a.kvs) {
            let k = layout
                .parse(&kv.key)
                .map_err(|e| GntError::Config(format!("{shown}: {e}")))?;
            heads.insert(k, kv);
        }
        let text = |kv: &Kv| {
            std::str::from_utf8(&kv.value)
                .map(str::to_owned)
                .map_err(|_| corrupt(&kv.key, &"not UTF-8"))
        };
        fn obj<T: for<'de> Deserialize<'de>>(
            corrupt: &dyn Fn(&[u8], &dyn std::fmt::Display) -> GntError,
            kv: &Kv,
            text: &str,
        ) -> Result<T, GntError> {
            toml::from_str(text).map_err(|e| corrupt(&kv.key, &e.message()))
        }
        let mut snap = Snapshot {
            revision,
            empty,
            heads: BTreeMap::new(),
            serial_base: 0,
            cluster: ClusterConfig::new().cluster,
            base: Arc::default(),
            reading,
            client,
            layout: layout.clone(),
            shown: shown.to_owned(),
            reads: Mutex::new(early),
            assumed: Mutex::default(),
            all: OnceLock::new(),
            failure: Mutex::default(),
        };
        if empty {
            let fresh = ClusterConfig::new();
            snap.serial_base = fresh.cluster.serial_no;
            snap.cluster = fresh.cluster;
            snap.base = Arc::new(Heads {
                nodegroups: fresh.nodegroups,
                nodes: fresh.nodes,
                networks: fresh.networks,
            });
            return Ok(Some(snap));
        }
        match heads.get(&Key::Schema) {
            None => {
                return Err(GntError::Config(format!(
                    "{shown}: keys but no schema key under the prefix (not a cluster written by this suite?)"
                )));
            }
            Some(kv) => {
                let v: u32 = text(kv)?
                    .trim()
                    .parse()
                    .map_err(|_| corrupt(&kv.key, &"not a format version"))?;
                if v > CONFIG_VERSION {
                    return Err(GntError::Config(format!(
                        "{shown}: written by a newer version (format {v}; this build reads up to {CONFIG_VERSION}); refusing to read or overwrite it"
                    )));
                }
                if v == 0 {
                    return Err(corrupt(&kv.key, &"version must be at least 1"));
                }
            }
        }
        let cluster_kv = heads
            .get(&Key::Cluster)
            .ok_or_else(|| GntError::Config(format!("{shown}: no cluster key under the prefix")))?;
        let mut cluster: Cluster = obj(&corrupt, cluster_kv, &text(cluster_kv)?)?;
        let mut serial_base = cluster.serial_no;
        if let Some(kv) = heads.get(&Key::Serial) {
            let s: SerialValue = obj(&corrupt, kv, &text(kv)?)?;
            serial_base = s.base;
            cluster.serial_no = s
                .base
                .saturating_add(u64::try_from(kv.version).unwrap_or(0));
            cluster.mtime = s.mtime;
        }
        let mut base = Heads::default();
        for (k, kv) in &heads {
            match k {
                Key::Group(u) => {
                    base.nodegroups
                        .insert(u.clone(), obj(&corrupt, kv, &text(kv)?)?);
                }
                Key::Node(u) => {
                    base.nodes.insert(u.clone(), obj(&corrupt, kv, &text(kv)?)?);
                }
                Key::Network(u) => {
                    base.networks
                        .insert(u.clone(), obj(&corrupt, kv, &text(kv)?)?);
                }
                _ => {}
            }
        }
        if let (Some(c), true, false) = (cache, write_cache, cluster_id.is_empty()) {
            c.store(
                &cluster_id,
                revision,
                heads
                    .iter()
                    .filter(|(k, _)| matches!(k, Key::Group(_) | Key::Node(_) | Key::Network(_)))
                    .map(|(_, kv)| kv),
            );
        }
        snap.heads = heads;
        snap.serial_base = serial_base;
        snap.cluster = cluster;
        snap.base = Arc::new(base);
        Ok(Some(snap))
    }

    /// The configuration this snapshot stands for, its instances read on demand.
    pub(super) fn config(self: &Arc<Self>) -> ClusterConfig {
        let mut cfg = ClusterConfig {
            version: CONFIG_VERSION,
            cluster: self.cluster.clone(),
            nodegroups: self.base.nodegroups.clone(),
            nodes: self.base.nodes.clone(),
            networks: self.base.networks.clone(),
            instances: Instances::from_remote(self.clone()),
            origin: Default::default(),
        };
        cfg.origin.base = Some(self.base.clone());
        cfg
    }

    /// The snapshot `cfg` was read from, if it came from this prefix of the etcd cluster
    /// shown as `shown`.
    pub(super) fn of<'a>(
        cfg: &'a ClusterConfig,
        layout: &Layout,
        shown: &str,
    ) -> Option<&'a Snapshot> {
        let s = cfg
            .instances
            .remote()?
            .as_any()
            .downcast_ref::<Snapshot>()?;
        (s.layout.root() == layout.root() && s.shown == shown).then_some(s)
    }

    pub(super) fn failure(&self) -> Option<ReadFailure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fail(&self, error: GntError, compacted: bool) {
        let mut f = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if f.is_none() {
            *f = Some(ReadFailure { error, compacted });
        }
    }

    fn fail_etcd(&self, e: &EtcdError) {
        let compacted = {
            let m = e.to_string();
            m.contains("compacted") || m.contains("future revision")
        };
        let error = match e {
            EtcdError::Unreachable(m) => GntError::Exec(format!("{m}; nothing was written")),
            _ => GntError::Exec(format!(
                "etcd cluster {}: {e}; nothing was written",
                self.shown
            )),
        };
        self.fail(error, compacted);
    }

    fn reads(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Option<Kv>>> {
        self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads those of `keys` not read yet, in one request, at the snapshot's revision.
    /// False if that failed (and the failure is remembered).
    pub(super) fn fetch(&self, keys: &[Key]) -> bool {
        let missing: Vec<Key> = {
            let reads = self.reads();
            let assumed = self.assumed.lock().unwrap_or_else(PoisonError::into_inner);
            keys.iter()
                .filter(|k| !k.is_head() && !reads.contains_key(k) && !assumed.contains_key(k))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return true;
        }
        // Serializable: the member this client reads from answered the heads as of this
        // revision, so it has applied it and needs no round to the leader. Should another
        // member answer that has not yet, it refuses (a future revision) and the command
        // starts over.
        let ask: Vec<Read> = missing
            .iter()
            .map(|k| Read {
                serializable: true,
                ..Read::key(self.layout.key(k), Some(self.revision))
            })
            .collect();
        match self.client.read_many(&ask) {
            Ok((_, answers)) => {
                let mut reads = self.reads();
                for (k, a) in missing.into_iter().zip(answers) {
                    reads.insert(k, a.kvs.into_iter().next());
                }
                true
            }
            Err(e) => {
                self.fail_etcd(&e);
                false
            }
        }
    }

    /// What an optimistic snapshot assumed `key` holds, if it did.
    pub(super) fn assumption(&self, key: &Key) -> Option<Assumed> {
        self.assumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Takes `key` to hold `what` without reading it, if this snapshot is optimistic and
    /// has not read it: true if it now stands assumed (for the commit to compare).
    pub(super) fn assume(&self, key: &Key, what: Assumed) -> bool {
        if self.reading != Reading::Optimistic || key.is_head() || self.reads().contains_key(key) {
            return false;
        }
        self.assumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(what);
        true
    }

    /// Every assumption made, for the commit to compare.
    pub(super) fn assumptions(&self) -> Vec<(Key, Assumed)> {
        self.assumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect()
    }

    /// A key as of the snapshot: `None` if it was never read (nor is a head).
    pub(super) fn kv(&self, key: &Key) -> Option<Option<Kv>> {
        if key.is_head() {
            return Some(self.heads.get(key).cloned());
        }
        self.reads().get(key).cloned()
    }

    /// The mod revision of `key` as of the snapshot, for a compare: `None` if absent.
    /// Only a new instance's key, never read, is taken as absent unread: the compare
    /// then makes sure it is.
    pub(super) fn mod_revision(&self, key: &Key) -> Option<i64> {
        if let Some(kv) = self.kv(key) {
            return kv.map(|kv| kv.mod_revision);
        }
        if let (Key::Instance(u), Some(Some((_, revs)))) = (key, self.all.get()) {
            return revs.get(u).copied();
        }
        None
    }

    /// The keys read on demand: what the command's decisions rested on besides the heads.
    pub(super) fn read_keys(&self) -> Vec<Key> {
        self.reads().keys().cloned().collect()
    }

    fn decode(&self, kv: &Kv) -> Option<Instance> {
        let parsed = std::str::from_utf8(&kv.value)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(|t| toml::from_str::<Instance>(t).map_err(|e| e.message().to_owned()));
        match parsed {
            Ok(i) => Some(i),
            Err(why) => {
                self.fail(
                    GntError::Config(format!("{}: key '{}': {why}", self.shown, b2s(&kv.key))),
                    false,
                );
                None
            }
        }
    }

    /// A key holding an instance's UUID (an index key), read on demand.
    fn index(&self, key: &Key) -> Option<String> {
        if let Some(a) = self.assumption(key) {
            return match a {
                Assumed::Absent => None,
                Assumed::HeldBy(u) => Some(u),
            };
        }
        if !self.fetch(std::slice::from_ref(key)) {
            return None;
        }
        let kv = self.kv(key)??;
        String::from_utf8(kv.value).ok()
    }

    /// Every instance with its key's mod revision, read once; `None` if that failed.
    pub(super) fn all_instances(&self) -> Option<&AllInstances> {
        self.all
            .get_or_init(|| {
                let r = match self
                    .client
                    .range_prefix(&self.layout.under("instances"), Some(self.revision))
                {
                    Ok(r) => r,
                    Err(e) => {
                        self.fail_etcd(&e);
                        return None;
                    }
                };
                let (mut map, mut revs) = (BTreeMap::new(), BTreeMap::new());
                for kv in r.kvs {
                    let Ok(Key::Instance(u)) = self.layout.parse(&kv.key) else {
                        self.fail(
                            GntError::Config(format!(
                                "{}: unknown key '{}'",
                                self.shown,
                                b2s(&kv.key)
                            )),
                            false,
                        );
                        return None;
                    };
                    map.insert(u.clone(), self.decode(&kv)?);
                    revs.insert(u, kv.mod_revision);
                }
                Some((map, revs))
            })
            .as_ref()
    }
}

impl Remote for Snapshot {
    fn get(&self, key: &str) -> Option<Instance> {
        if let Some(Some((all, _))) = self.all.get() {
            return all.get(key).cloned();
        }
        let k = Key::Instance(key.to_owned());
        if !self.fetch(std::slice::from_ref(&k)) {
            return None;
        }
        self.decode(&self.kv(&k)??)
    }

    fn key_for_name(&self, name: &str) -> Option<String> {
        let key = self.index(&Key::InstanceName(name.to_owned()))?;
        // An index key left by an instance that is gone (a hand edit) names nobody.
        self.get(&key)
            .is_some_and(|i| i.name == name)
            .then_some(key)
    }

    fn key_for_mac(&self, mac: MacAddr) -> Option<String> {
        let k = Key::Mac(mac.to_string());
        // Asked of a MAC about to be given out: in use one time in millions when drawn at
        // random, so a first attempt takes it as free and lets the commit check.
        self.assume(&k, Assumed::Absent);
        let key = self.index(&k)?;
        self.get(&key)
            .is_some_and(|i| i.nics.iter().any(|n| n.mac == mac))
            .then_some(key)
    }

    fn all(&self) -> Result<BTreeMap<String, Instance>, GntError> {
        match self.all_instances() {
            Some((m, _)) => Ok(m.clone()),
            None => Err(self.failure().map_or_else(
                || GntError::Exec(format!("{}: cannot read the instances", self.shown)),
                |f| f.error,
            )),
        }
    }

    fn prefetch(&self, key_or_name: &str) {
        if self.all.get().is_none() {
            self.fetch(&[
                Key::Instance(key_or_name.to_owned()),
                Key::InstanceName(key_or_name.to_owned()),
            ]);
        }
    }

    fn known(&self, key: &str) -> Option<Option<Instance>> {
        if let Some(Some((all, _))) = self.all.get() {
            return Some(all.get(key).cloned());
        }
        match self.kv(&Key::Instance(key.to_owned()))? {
            None => Some(None),
            Some(kv) => Some(Some(self.decode(&kv)?)),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
