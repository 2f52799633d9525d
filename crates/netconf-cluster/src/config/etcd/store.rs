//! The cluster configuration in etcd, behind the same [`Store`] trait as config.data.
//!
//! A snapshot reads the heads (schema, cluster, serial, groups, nodes, networks) in one
//! request and the instances on demand, all at one revision (`snapshot`): a command that
//! changes an instance reads it and its index keys, not the whole cluster. A commit diffs
//! the new configuration against that snapshot and sends one txn that writes only the
//! changed objects, on the condition that nothing it read and depends on changed since:
//!
//! * a change of instances (and of existing networks, whose pools they allocate from)
//!   compares the mod revision of every key it writes or deletes (`CREATE == 0` for a new
//!   one), of every key it read on demand (an index key read absent stays absent), of the
//!   cluster and schema keys, and of every group, node and network the changed instances
//!   refer to. Names and MACs are unique across instances through index keys created only
//!   if absent, and an address is unique because the pool lives in the network's key. Commands on different networks and instances thus commit side by side;
//!   two that take from one pool collide on its key and one of them re-reads and retries.
//! * any other change (cluster, groups, nodes, new or removed networks, renames) is rare
//!   and may depend on anything, so it compares that no key but the serial was written
//!   since its read: it commits as if it held config.data's lock.
//!
//! A command's first attempt reads optimistically (see `snapshot::Reading`): what it did
//! not read carefully, or only assumed, is compared like the rest, and a conflict or an
//! error sends it to a careful attempt. An allocation is thus one read and one txn.
//!
//! The cluster serial counts commits without making them collide: every commit writes the
//! `serial` key without comparing it, and etcd counts the writes of a key (its `version`),
//! so the serial shown is a base (the serial of the cluster this started from) plus that
//! count. A key that every commit compared would serialise all commands on one key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use super::client::{Client, Cmp, EtcdError, Kv, Op, Read, TxnOutcome};
use super::heads_cache::HeadsCache;
use super::keys::{Key, Layout, SerialValue, index_keys};
use super::snapshot::{Assumed, Reading, Snapshot};
use super::url::EtcdUrl;
use super::watch::EtcdWatch;
use crate::config::instance::Instance;
use crate::config::instances::Remote;
use crate::config::model::{CONFIG_VERSION, ClusterConfig, Heads, now};
use crate::config::store::{Store, Version, check_commit, error_lines, version_from_elsewhere};
use crate::config::verify::{self, Finding};
use crate::config::watch::StoreWatch;
use crate::error::GntError;

/// How many times a transaction is tried when others keep committing under it.
const MAX_ATTEMPTS: u32 = 50;

/// A transaction ready to send.
struct Plan {
    compares: Vec<Cmp>,
    ops: Vec<Op>,
    /// The writes, to find out after a lost answer whether they were applied.
    writes: BTreeMap<Key, Option<Vec<u8>>>,
}

/// One instance that a commit changes: its key, its value at the snapshot and its new one.
type Change = (String, Option<Instance>, Option<Instance>);

/// The cluster under one prefix of one etcd cluster.
pub struct EtcdStore {
    url: EtcdUrl,
    layout: Layout,
    /// Shared with the snapshots, which read instances on demand over the same
    /// connections (one process keeps them alive from its first request to its last).
    client: Arc<Client>,
    debug: bool,
    /// Instances the next snapshots read with the heads ([`Store::expect_instance`]).
    expected: Mutex<Vec<String>>,
    /// The node-local copy of the heads (`with_heads_cache`).
    heads_cache: Option<HeadsCache>,
}

/// At most this many expected instances are read with the heads (two keys each), so that
/// the heads' txn stays far below etcd's 128 operations.
const MAX_EXPECTED: usize = 8;

impl EtcdStore {
    pub fn new(url: &EtcdUrl) -> Self {
        EtcdStore {
            layout: Layout::new(url.prefix()),
            client: Arc::new(Client::new(url)),
            url: url.clone(),
            debug: false,
            expected: Mutex::default(),
            heads_cache: None,
        }
    }

    /// Every request ends within `total` from now (shell completion: see
    /// `Client::with_budget`).
    pub fn with_budget(mut self, total: Duration) -> Self {
        self.client = Arc::new(Client::new(&self.url).with_budget(total));
        self
    }

    /// Keeps a copy of the heads in `dir` (a directory of this user only, created if
    /// missing), so that a snapshot reads from etcd only the groups, nodes and networks
    /// changed since; without a usable `dir`, none.
    pub fn with_heads_cache(mut self, dir: &std::path::Path) -> Self {
        self.heads_cache = HeadsCache::new(dir, &self.url.to_string());
        self
    }

    /// Reports retried commits on stderr (`--debug`).
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    pub fn url(&self) -> &EtcdUrl {
        &self.url
    }

    /// How many requests this store sent to etcd and how many answer bytes it received:
    /// what tests measure to show that a command reads only what it needs.
    pub fn traffic(&self) -> (u64, u64) {
        self.client.traffic()
    }

    /// Every key under the prefix with its mod revision and value, as text: what tests
    /// compare to show that a failed command left the store untouched.
    pub fn raw_dump(&self) -> Result<Vec<u8>, GntError> {
        let r = self
            .client
            .range_prefix(self.layout.root(), None)
            .map_err(|e| self.unreachable(&e))?;
        let mut out = Vec::new();
        for kv in r.kvs {
            out.extend_from_slice(&kv.key);
            out.extend_from_slice(format!(" @{}\n", kv.mod_revision).as_bytes());
            out.extend_from_slice(&kv.value);
            out.push(b'\n');
        }
        Ok(out)
    }

    fn unreachable(&self, e: &EtcdError) -> GntError {
        match e {
            EtcdError::Unreachable(m) => GntError::Exec(m.clone()),
            _ => GntError::Exec(format!("etcd cluster {}: {e}", self.url)),
        }
    }

    /// The heads as of `revision` (the current one when `None`); instances on demand.
    fn snapshot(&self, revision: Option<i64>, reading: Reading) -> Result<Arc<Snapshot>, GntError> {
        let expected: Vec<Key> = self
            .expected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flat_map(|n| [Key::Instance(n.clone()), Key::InstanceName(n.clone())])
            .collect();
        Snapshot::load(
            &self.client,
            &self.layout,
            &self.url.to_string(),
            revision,
            &expected,
            self.heads_cache.as_ref(),
            reading,
        )
        .map(Arc::new)
    }

    /// The whole cluster, every instance read, as of the current revision.
    fn load_whole(&self) -> Result<ClusterConfig, GntError> {
        let snap = self.snapshot(None, Reading::Careful)?;
        let mut cfg = snap.config();
        // Read here, so that a failure is this call's error rather than the end of the
        // process that `all_decoded` makes of it.
        snap.all_instances();
        if let Some(f) = snap.failure() {
            return Err(f.error);
        }
        cfg.instances.all_decoded();
        // Checked in full, as a hand-edited config.data is.
        cfg.origin.parsed_from_toml = true;
        Ok(cfg)
    }

    /// The instances a commit of `next` over `snap` changes.
    fn changes(&self, snap: &Snapshot, next: &ClusterConfig) -> Result<Vec<Change>, GntError> {
        let failed = || {
            snap.failure().map_or_else(
                || GntError::Exec(format!("{}: cannot read the instances", self.url)),
                |f| f.error,
            )
        };
        let mut out = Vec::new();
        if next.instances.is_remote_lazy() {
            for (k, new) in next.instances.overlay() {
                // Never read: a new instance, absent at the snapshot (the commit compares).
                let old = next.instances.remote().and_then(|r| r.known(k)).flatten();
                if old != *new {
                    out.push((k.clone(), old, new.clone()));
                }
            }
            return Ok(out);
        }
        let empty = BTreeMap::new();
        let oi = if snap.empty {
            &empty
        } else {
            &snap.all_instances().ok_or_else(failed)?.0
        };
        let ni = next.instances.all_decoded();
        for (u, a) in oi {
            let b = ni.get(u);
            if Some(a) != b {
                out.push((u.clone(), Some(a.clone()), b.cloned()));
            }
        }
        for (u, b) in ni {
            if !oi.contains_key(u) {
                out.push((u.clone(), None, Some(b.clone())));
            }
        }
        Ok(out)
    }

    /// The txn that turns `snap` into `next`.
    fn plan(
        &self,
        snap: &Snapshot,
        next: &ClusterConfig,
        commit_id: &str,
    ) -> Result<Plan, GntError> {
        // A fresh cluster (nothing under the prefix) exists only in this snapshot: all of
        // it is written.
        let empty = Heads::default();
        let old = if snap.empty { &empty } else { &*snap.base };
        let mut structural = false;
        let mut writes: BTreeMap<Key, Option<Vec<u8>>> = BTreeMap::new();
        let ser = |what: &str, v: &dyn erased::Ser| -> Result<Vec<u8>, GntError> {
            v.toml()
                .map(String::into_bytes)
                .map_err(|e| GntError::Exec(format!("cannot encode {what}: {e}")))
        };

        if !snap.heads.contains_key(&Key::Schema) {
            writes.insert(Key::Schema, Some(CONFIG_VERSION.to_string().into_bytes()));
            structural = true;
        }
        // The serial and mtime live in the serial key; the cluster key changes only with
        // the cluster's parameters.
        let mut cluster = next.cluster.clone();
        cluster.serial_no = snap.serial_base;
        cluster.mtime = snap.cluster.mtime;
        let mut old_cluster = snap.cluster.clone();
        old_cluster.serial_no = snap.serial_base;
        if cluster != old_cluster || !snap.heads.contains_key(&Key::Cluster) {
            if !snap.heads.contains_key(&Key::Cluster) {
                cluster.ctime = next.cluster.ctime;
            }
            writes.insert(Key::Cluster, Some(ser("the cluster", &cluster)?));
            structural = true;
        }
        diff_map(
            &old.nodegroups,
            &next.nodegroups,
            Key::Group,
            &mut writes,
            &mut structural,
            |_, _| true,
            &ser,
        )?;
        diff_map(
            &old.nodes,
            &next.nodes,
            Key::Node,
            &mut writes,
            &mut structural,
            |_, _| true,
            &ser,
        )?;
        // A network changed in place (its pool, tags, gateway) is an ordinary change; a new,
        // removed or renamed one is structural.
        diff_map(
            &old.networks,
            &next.networks,
            Key::Network,
            &mut writes,
            &mut structural,
            |a, b| a.name != b.name,
            &ser,
        )?;

        // Instances: the objects, what they refer to, and the name and MAC indexes.
        let changes = self.changes(snap, next)?;
        let mut refs: BTreeSet<Key> = BTreeSet::new();
        let mut idx_del: BTreeMap<Key, String> = BTreeMap::new();
        let mut idx_add: BTreeMap<Key, String> = BTreeMap::new();
        let mut new_values: BTreeMap<&str, Option<&Instance>> = BTreeMap::new();
        for (uuid, a, b) in &changes {
            let key = Key::Instance(uuid.clone());
            match b {
                Some(i) => writes.insert(key, Some(ser("an instance", i)?)),
                None => writes.insert(key, None),
            };
            new_values.insert(uuid, b.as_ref());
            let (ia, ib) = (
                a.as_ref().map(index_keys).unwrap_or_default(),
                b.as_ref().map(index_keys).unwrap_or_default(),
            );
            for k in ia.difference(&ib) {
                idx_del.insert(k.clone(), uuid.clone());
            }
            for k in ib.difference(&ia) {
                if let Some(other) = idx_add.insert(k.clone(), uuid.clone()) {
                    return Err(self.duplicate(k, &other, uuid));
                }
            }
            for i in a.iter().chain(b) {
                refs.insert(Key::Group(i.group.clone()));
                if let Some(n) = &i.primary_node {
                    refs.insert(Key::Node(n.clone()));
                }
                for nic in &i.nics {
                    if let Some(net) = &nic.network {
                        refs.insert(Key::Network(net.clone()));
                    }
                }
            }
        }
        // The index keys as of the snapshot, in one request for those not read yet; a
        // first attempt takes those it has not read to be as they should (the removed
        // instance's own, the new ones free) and lets the commit check that.
        for (k, uuid) in &idx_del {
            snap.assume(k, Assumed::HeldBy(uuid.clone()));
        }
        for k in idx_add.keys() {
            snap.assume(k, Assumed::Absent);
        }
        let idx: Vec<Key> = idx_del.keys().chain(idx_add.keys()).cloned().collect();
        if !snap.fetch(&idx) {
            return Err(snap.failure().map_or_else(
                || GntError::Exec(format!("{}: cannot read the index keys", self.url)),
                |f| f.error,
            ));
        }
        let held = |k: &Key| match snap.assumption(k) {
            Some(Assumed::Absent) => None,
            Some(Assumed::HeldBy(u)) => Some(u.into_bytes()),
            None => snap.kv(k).flatten().map(|kv| kv.value),
        };
        // Deletions first, so a name or MAC handed from one instance to another in the same
        // command becomes one put.
        for (k, uuid) in &idx_del {
            if held(k).is_some_and(|v| v == uuid.as_bytes()) {
                writes.insert(k.clone(), None);
            }
        }
        for (k, uuid) in idx_add {
            match held(&k) {
                Some(v) if v == uuid.as_bytes() => {
                    writes.remove(&k);
                }
                // Held by another instance that this commit does not take it from: a
                // duplicate, unless that instance no longer has it (an index key left
                // behind by a hand edit), which this put replaces if it is still the same.
                Some(v) if !idx_del.contains_key(&k) => {
                    let other = String::from_utf8_lossy(&v).into_owned();
                    let holder = match new_values.get(other.as_str()) {
                        Some(v) => v.cloned(),
                        None => snap.get(&other),
                    };
                    if holder.is_some_and(|i| index_keys(&i).contains(&k)) {
                        return Err(self.duplicate(&k, &other, &uuid));
                    }
                    writes.insert(k, Some(uuid.into_bytes()));
                }
                // Absent: created only if still absent.
                _ => {
                    writes.insert(k, Some(uuid.into_bytes()));
                }
            }
        }
        if let Some(f) = snap.failure() {
            return Err(f.error);
        }

        // What a first attempt assumed instead of reading: compared whatever else is.
        let assumed = snap.assumptions();
        let mut compares: Vec<Cmp> = assumed
            .iter()
            .map(|(k, a)| match a {
                Assumed::Absent => Cmp::Absent(self.layout.key(k)),
                Assumed::HeldBy(u) => Cmp::ValueIs(self.layout.key(k), u.clone().into_bytes()),
            })
            .collect();
        if structural {
            for (from, to) in self.layout.all_but_serial() {
                compares.push(Cmp::NoneWrittenAfter {
                    from,
                    to,
                    revision: snap.revision,
                });
            }
        } else {
            // What was written, what the changed instances refer to, and every key read on
            // demand: the decisions rested on these (an index key read absent, a MAC found
            // free, an instance modified).
            let mut keys: BTreeSet<Key> = writes.keys().cloned().collect();
            keys.extend(refs);
            keys.insert(Key::Cluster);
            keys.insert(Key::Schema);
            keys.extend(snap.read_keys());
            for k in keys {
                if assumed.iter().any(|(a, _)| *a == k) {
                    continue;
                }
                let raw = self.layout.key(&k);
                compares.push(match snap.mod_revision(&k) {
                    Some(rev) => Cmp::ModIs(raw, rev),
                    None => Cmp::Absent(raw),
                });
            }
        }
        let serial = SerialValue {
            base: snap.serial_base,
            mtime: now(),
            commit: commit_id.to_owned(),
        };
        let mut ops: Vec<Op> = writes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => Op::Put(self.layout.key(k), v.clone()),
                None => Op::Delete(self.layout.key(k)),
            })
            .collect();
        ops.push(Op::Put(
            self.layout.key(&Key::Serial),
            ser("the serial", &serial)?,
        ));
        super::client::check_limits(&compares, &ops)
            .map_err(|e| GntError::Exec(format!("{}: {e}; nothing was written", self.url)))?;
        Ok(Plan {
            compares,
            ops,
            writes,
        })
    }

    /// The refusal of a name or MAC that another instance holds.
    fn duplicate(&self, k: &Key, holder: &str, uuid: &str) -> GntError {
        let what = match k {
            Key::InstanceName(n) => format!("name {n}"),
            Key::Mac(m) => format!("MAC {m}"),
            _ => "key".into(),
        };
        GntError::Config(format!(
            "{}: refusing to commit an inconsistent configuration:\n  - instance {uuid}: the {what} is held by instance {holder}\nRun 'gnt-cluster verify' to see every problem.",
            self.url
        ))
    }

    /// Commits `next` over `snap` once: `Ok(false)` if something it depends on changed.
    fn commit(&self, snap: &Snapshot, next: &ClusterConfig) -> Result<bool, GntError> {
        match self.prepare(snap, next)? {
            Some((plan, commit_id)) => self.send(&plan, &commit_id),
            None => Ok(false),
        }
    }

    /// The checked txn of a commit of `next` over `snap`, with its commit id: `None` if
    /// the snapshot's revision is gone (read again), an error if `next` cannot be
    /// committed. Nothing is sent.
    fn prepare(
        &self,
        snap: &Snapshot,
        next: &ClusterConfig,
    ) -> Result<Option<(Plan, String)>, GntError> {
        if let Some(f) = snap.failure() {
            return if f.compacted { Ok(None) } else { Err(f.error) };
        }
        self.check_invariants(next)?;
        let commit_id = crate::config::new_uuid();
        match self.plan(snap, next, &commit_id) {
            Ok(p) => Ok(Some((p, commit_id))),
            Err(_) if snap.failure().is_some_and(|f| f.compacted) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a prepared txn: `Ok(false)` if a compare failed (nothing applied).
    fn send(&self, plan: &Plan, commit_id: &str) -> Result<bool, GntError> {
        match self.client.txn(&plan.compares, &plan.ops) {
            Ok(TxnOutcome::Committed(_)) => Ok(true),
            Ok(TxnOutcome::Conflict) => Ok(false),
            Err(EtcdError::Unknown(why)) => self.applied_after_all(plan, commit_id, &why),
            Err(e) => Err(GntError::Exec(format!(
                "{}: {e}; nothing was written",
                self.url
            ))),
        }
    }

    /// After a txn whose answer was lost: whether it was applied, from what etcd holds now
    /// (the keys it wrote and the serial, nothing else).
    fn applied_after_all(&self, plan: &Plan, commit_id: &str, why: &str) -> Result<bool, GntError> {
        let unknown = || {
            GntError::Exec(format!(
                "{}: no answer to the commit ({why}); it may or may not have been applied: check before running the command again",
                self.url
            ))
        };
        let mut keys: Vec<Key> = plan.writes.keys().cloned().collect();
        keys.push(Key::Serial);
        let reads: Vec<Read> = keys
            .iter()
            .map(|k| Read::key(self.layout.key(k), None))
            .collect();
        let (_, answers) = self.client.read_many(&reads).map_err(|_| unknown())?;
        let now: BTreeMap<&Key, Kv> = keys
            .iter()
            .zip(answers)
            .filter_map(|(k, a)| Some((k, a.kvs.into_iter().next()?)))
            .collect();
        let serial_is_ours = now.get(&Key::Serial).is_some_and(|kv| {
            toml::from_str::<SerialValue>(&String::from_utf8_lossy(&kv.value))
                .is_ok_and(|s| s.commit == commit_id)
        });
        let mut revs = BTreeSet::new();
        let all_there = plan.writes.iter().all(|(k, v)| match (v, now.get(k)) {
            (Some(v), Some(kv)) => {
                revs.insert(kv.mod_revision);
                kv.value == *v
            }
            (None, None) => true,
            _ => false,
        });
        if serial_is_ours || (all_there && revs.len() == 1 && !plan.writes.is_empty()) {
            return Ok(true);
        }
        // Nothing of it there: the txn was not applied (a later one may still be, were it
        // in flight; etcd applies a txn before answering or not at all within its timeout).
        Err(unknown())
    }

    fn warn_if_inconsistent(&self, cfg: &ClusterConfig) {
        let errors = verify::errors(cfg);
        if !errors.is_empty() {
            eprintln!(
                "WARNING: {} is not consistent (changed by hand?):{}\nRun 'gnt-cluster verify' to see every problem; commands that change the configuration refuse to until it is fixed.",
                self.url,
                error_lines(&errors)
            );
        }
    }

    /// Waits before attempt `attempt + 1`: a random time up to `cycle` (how long the
    /// failed attempt took: read, change, check, txn) times 2^attempt, capped. Commands
    /// that collided spread over a window wide enough for each to read and commit alone,
    /// instead of colliding again; the window grows with the contention.
    fn backoff(&self, attempt: u32, cycle: Duration) {
        let unit = cycle.clamp(Duration::from_millis(1), Duration::from_millis(200));
        let window = (unit * (1u32 << attempt.min(5))).min(Duration::from_secs(2));
        let r = getrandom::u64().unwrap_or(0);
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
        std::thread::sleep(Duration::from_micros(r % micros));
    }
}

/// Puts and deletes for the objects of one map that differ; `structural` is set for a new
/// or removed object, or a change `is_structural` says is one.
fn diff_map<T: PartialEq + Serialize>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    key: fn(String) -> Key,
    writes: &mut BTreeMap<Key, Option<Vec<u8>>>,
    structural: &mut bool,
    is_structural: impl Fn(&T, &T) -> bool,
    ser: &Encoder,
) -> Result<(), GntError> {
    for (u, a) in old {
        match new.get(u) {
            None => {
                writes.insert(key(u.clone()), None);
                *structural = true;
            }
            Some(b) if a != b => {
                writes.insert(key(u.clone()), Some(ser("an object", b)?));
                *structural |= is_structural(a, b);
            }
            Some(_) => {}
        }
    }
    for (u, b) in new {
        if !old.contains_key(u) {
            writes.insert(key(u.clone()), Some(ser("an object", b)?));
            *structural = true;
        }
    }
    Ok(())
}

/// Encodes an object (named for the error) as a value.
type Encoder<'a> = dyn Fn(&str, &dyn erased::Ser) -> Result<Vec<u8>, GntError> + 'a;

/// TOML encoding behind a trait object, so one closure encodes every kind of object.
mod erased {
    pub trait Ser {
        fn toml(&self) -> Result<String, toml::ser::Error>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn toml(&self) -> Result<String, toml::ser::Error> {
            toml::to_string(self)
        }
    }
}
impl Store for EtcdStore {
    fn changes(&self) -> Result<Box<dyn StoreWatch>, GntError> {
        Ok(Box::new(EtcdWatch::start(&self.url, self.layout.root())?))
    }

    fn expect_instance(&self, name_or_key: &str) {
        let mut e = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
        if e.len() < MAX_EXPECTED && !e.iter().any(|n| n == name_or_key) {
            e.push(name_or_key.to_owned());
        }
    }

    fn read(&self) -> Result<ClusterConfig, GntError> {
        let cfg = self.load_whole()?;
        self.warn_if_inconsistent(&cfg);
        Ok(cfg)
    }

    fn read_versioned(&self) -> Result<(ClusterConfig, Version), GntError> {
        let snap = self.snapshot(None, Reading::Careful)?;
        Ok((snap.config(), Version::etcd(snap.revision)))
    }

    fn commit_if_unchanged(&self, next: ClusterConfig, version: Version) -> Result<bool, GntError> {
        let Some(rev) = version.as_etcd() else {
            return Err(version_from_elsewhere());
        };
        if let Some(snap) =
            Snapshot::of(&next, &self.layout, &self.url.to_string()).filter(|s| s.revision == rev)
        {
            return self.commit(snap, &next);
        }
        // Not read through this store: its snapshot read again as of its revision (gone
        // once etcd compacted it: then it is not the current state either).
        match self.snapshot(Some(rev), Reading::Careful) {
            Ok(s) => self.commit(&s, &next),
            Err(_) => Ok(false),
        }
    }

    fn check_invariants(&self, cfg: &ClusterConfig) -> Result<(), GntError> {
        let checked = check_commit(cfg, &self.url.to_string());
        // The full check reads every instance: a read that failed is the error to show.
        if let Some(f) =
            Snapshot::of(cfg, &self.layout, &self.url.to_string()).and_then(Snapshot::failure)
        {
            return Err(f.error);
        }
        checked
    }

    fn audit(&self, cfg: &ClusterConfig, version: Version) -> Result<Vec<Finding>, GntError> {
        let rev = version.as_etcd().ok_or_else(version_from_elsewhere)?;
        super::audit::index_findings(&self.client, &self.layout, cfg, rev)
            .map_err(|e| self.unreachable(&e))
    }

    fn transact(
        &self,
        f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>,
    ) -> Result<(), GntError> {
        // The first attempt reads optimistically (see `Reading`); any attempt after it,
        // and so any error reported, carefully.
        let mut reading = Reading::Optimistic;
        for attempt in 0..MAX_ATTEMPTS {
            let started = std::time::Instant::now();
            let snap = self.snapshot(None, reading)?;
            let mut cfg = snap.config();
            let done = f(&mut cfg);
            // A read on demand that failed answered "absent": whatever `f` made of that is
            // not to be trusted, its failure is the error (or, for a revision compacted
            // meanwhile, a reason to start over).
            match snap.failure() {
                Some(fail) if fail.compacted => {
                    self.backoff(attempt, started.elapsed());
                    continue;
                }
                Some(fail) => return Err(fail.error),
                None => {}
            }
            let prepared = done.and_then(|()| self.prepare(&snap, &cfg));
            if reading == Reading::Optimistic {
                reading = Reading::Careful;
                if prepared.is_err() {
                    // Perhaps an effect of the optimism (a read a little behind, an index
                    // key assumed): the error, if it stands, is the careful attempt's.
                    continue;
                }
            }
            let committed = match prepared? {
                Some((plan, commit_id)) => self.send(&plan, &commit_id)?,
                None => false,
            };
            if committed {
                if self.debug && attempt > 0 {
                    eprintln!("etcd: committed after {attempt} retries");
                }
                return Ok(());
            }
            self.backoff(attempt, started.elapsed());
        }
        Err(GntError::Exec(format!(
            "{}: other commands kept changing what this one changes ({MAX_ATTEMPTS} attempts); nothing was written, run it again",
            self.url
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mem_store::etcd_store;
    use crate::config::transaction;
    use crate::ops::{Feedback, instance, network};

    /// Two networks `a` (192.0.2.0/24) and `b` (198.51.100.0/24), connected to `default`.
    fn two_networks(store: &EtcdStore) {
        let mut fb = Feedback::default();
        for (name, net) in [("a", "192.0.2.0/24"), ("b", "198.51.100.0/24")] {
            let add = network::AddNetwork {
                name: name.into(),
                network: Some(net.into()),
                conflicts_check: true,
                ..Default::default()
            };
            transaction(store, |c| network::add(c, &add, &mut fb)).unwrap();
            let raw = network::RawNicParams {
                link: Some("br0".into()),
                ..Default::default()
            };
            transaction(store, |c| {
                network::connect(c, name, &raw, &[], true, &mut fb)
            })
            .unwrap();
        }
    }

    fn add(cfg: &mut ClusterConfig, name: &str, nic: &str) -> Result<(), GntError> {
        let a = instance::AddInstance {
            name: name.into(),
            nics: vec![instance::NicSpec::parse(nic).unwrap()],
            conflicts_check: true,
            ..Default::default()
        };
        instance::add(cfg, &a, &mut Feedback::default()).map(|_| ())
    }

    /// Snapshots taken before either commits, as two commands on two nodes would.
    fn two_snapshots(store: &EtcdStore) -> [(ClusterConfig, Version); 2] {
        let first = store.read_versioned().unwrap();
        // Each read caches its snapshot; commit_if_unchanged reads the other one again
        // at its revision.
        let second = store.read_versioned().unwrap();
        [first, second]
    }

    #[test]
    fn commands_on_different_networks_commit_side_by_side() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        let [(mut x, vx), (mut y, vy)] = two_snapshots(&store);
        add(&mut x, "x", "ip=pool,network=a").unwrap();
        add(&mut y, "y", "ip=pool,network=b").unwrap();
        assert!(store.commit_if_unchanged(x, vx).unwrap());
        assert!(
            store.commit_if_unchanged(y, vy).unwrap(),
            "an instance on another network does not collide"
        );
        assert_eq!(store.read().unwrap().instances.len(), 2);
    }

    #[test]
    fn an_expected_instance_is_read_with_the_heads_and_compared_at_commit() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        let hinted = EtcdStore::new(store.url());
        hinted.expect_instance("same");
        // The name's index key came with the heads: looking it up sends nothing more.
        let (mut x, vx) = hinted.read_versioned().unwrap();
        let before = hinted.traffic().0;
        assert_eq!(x.instances.key_of("same"), None);
        assert_eq!(
            hinted.traffic().0,
            before,
            "the name was read with the heads"
        );
        // Another client takes the name meanwhile: the early read is compared at commit.
        transaction(&store, |c| add(c, "same", "ip=pool,network=b")).unwrap();
        add(&mut x, "same", "ip=pool,network=a").unwrap();
        assert!(
            !hinted.commit_if_unchanged(x, vx).unwrap(),
            "name collision"
        );
        // And a fresh read sees it.
        let (y, _) = hinted.read_versioned().unwrap();
        assert!(y.instances.key_of("same").is_some());
        assert_eq!(store.read().unwrap().instances.len(), 1);
    }

    fn net_names(cfg: &ClusterConfig) -> Vec<String> {
        let mut v: Vec<String> = cfg.networks.values().map(|n| n.name.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_heads_cache_sees_other_clients_changes_and_ignores_a_bad_copy() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        let dir = tempfile::tempdir().unwrap();
        let cached = EtcdStore::new(store.url()).with_heads_cache(dir.path());
        let file = cached.heads_cache.as_ref().unwrap().path().to_owned();
        let fresh = |what: &str| {
            let (c, _) = cached.read_versioned().unwrap();
            let (s, _) = store.read_versioned().unwrap();
            assert_eq!(c.networks, s.networks, "{what}");
            assert_eq!(c.nodegroups, s.nodegroups, "{what}");
            assert_eq!(c.cluster.serial_no, s.cluster.serial_no, "{what}");
            c
        };
        fresh("no copy yet");
        assert!(file.is_file(), "a full read leaves a copy");
        let mut fb = Feedback::default();
        // Another client adds a network: seen, from the changes since the copy.
        let c = network::AddNetwork {
            name: "c".into(),
            network: Some("203.0.113.0/24".into()),
            ..Default::default()
        };
        transaction(&store, |cfg| network::add(cfg, &c, &mut fb)).unwrap();
        let (before, _) = cached.read_versioned().unwrap();
        assert_eq!(net_names(&before), ["a", "b", "c"]);
        // ... and removes it once the copy holds it: the count shows the deletion.
        std::fs::remove_file(&file).unwrap();
        fresh("copy rewritten");
        transaction(&store, |cfg| network::remove(cfg, "c", &mut fb).map(|_| ())).unwrap();
        assert_eq!(net_names(&fresh("a network deleted")), ["a", "b"]);
        // Commits through the cached heads compare the right revisions.
        transaction(&cached, |cfg| add(cfg, "x", "ip=pool,network=a")).unwrap();
        let [(mut y, vy), _] = two_snapshots(&cached);
        add(&mut y, "y", "ip=pool,network=a").unwrap();
        transaction(&store, |cfg| add(cfg, "z", "ip=pool,network=a")).unwrap();
        assert!(
            !cached.commit_if_unchanged(y, vy).unwrap(),
            "pool collision"
        );
        assert!(verify::errors(&store.read().unwrap()).is_empty());
        // A corrupt copy, a copy from the future, another cluster's copy and a symlink
        // are all ignored.
        std::fs::write(&file, b"{\"format\":1,\"identity\":").unwrap();
        fresh("torn copy");
        let text = std::fs::read_to_string(&file).unwrap();
        let future = text.replacen("\"revision\":", "\"revision\":9000000000000,\"x\":", 1);
        std::fs::write(&file, future).unwrap();
        transaction(&store, |cfg| add(cfg, "w", "ip=pool,network=a")).unwrap();
        fresh("copy from a later revision");
        let other = etcd_store().unwrap();
        two_networks(&other);
        transaction(&other, |cfg| network::add(cfg, &c, &mut fb)).unwrap();
        let other = EtcdStore::new(other.url()).with_heads_cache(dir.path());
        other.read_versioned().unwrap();
        let theirs = other.heads_cache.unwrap().path().to_owned();
        std::fs::copy(&theirs, &file).unwrap();
        assert_eq!(net_names(&fresh("another cluster's copy")), ["a", "b"]);
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&theirs, &file).unwrap();
        assert_eq!(net_names(&fresh("a symlink")), ["a", "b"]);
    }

    #[test]
    fn one_pool_one_name_and_one_mac_are_never_handed_out_twice() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        // The same pool: both took the same first free address.
        let [(mut x, vx), (mut y, vy)] = two_snapshots(&store);
        add(&mut x, "x", "ip=pool,network=a").unwrap();
        add(&mut y, "y", "ip=pool,network=a").unwrap();
        assert!(store.commit_if_unchanged(x, vx).unwrap());
        assert!(!store.commit_if_unchanged(y, vy).unwrap(), "pool collision");
        // The same name, on different networks: only the name index collides.
        let [(mut x, vx), (mut y, vy)] = two_snapshots(&store);
        add(&mut x, "same", "ip=pool,network=a").unwrap();
        add(&mut y, "same", "ip=pool,network=b").unwrap();
        assert!(store.commit_if_unchanged(x, vx).unwrap());
        assert!(!store.commit_if_unchanged(y, vy).unwrap(), "name collision");
        // The same MAC, without networks: only the MAC index collides.
        let [(mut x, vx), (mut y, vy)] = two_snapshots(&store);
        add(&mut x, "m1", "mac=aa:00:00:11:22:33,link=br9").unwrap();
        add(&mut y, "m2", "mac=aa:00:00:11:22:33,link=br9").unwrap();
        assert!(store.commit_if_unchanged(x, vx).unwrap());
        assert!(!store.commit_if_unchanged(y, vy).unwrap(), "MAC collision");
        let cfg = store.read().unwrap();
        assert_eq!(cfg.instances.len(), 3);
        assert!(verify::errors(&cfg).is_empty());
    }

    #[test]
    fn a_structural_change_collides_with_any_commit_since_its_read() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        // Disconnecting network b, read before an instance was put on it.
        let [(mut rm, vrm), (mut x, vx)] = two_snapshots(&store);
        network::disconnect(&mut rm, "b", &[], &mut Feedback::default()).unwrap();
        add(&mut x, "x", "network=b").unwrap();
        assert!(store.commit_if_unchanged(x, vx).unwrap());
        assert!(!store.commit_if_unchanged(rm, vrm).unwrap());
        // And the other way round: the instance refers to the group that changed.
        let [(mut rm, vrm), (mut y, vy)] = two_snapshots(&store);
        network::disconnect(&mut rm, "a", &[], &mut Feedback::default()).unwrap();
        add(&mut y, "y", "network=a").unwrap();
        assert!(store.commit_if_unchanged(rm, vrm).unwrap());
        assert!(!store.commit_if_unchanged(y, vy).unwrap());
        assert!(verify::errors(&store.read().unwrap()).is_empty());
    }

    #[test]
    fn the_serial_counts_commits_and_a_failed_command_writes_nothing() {
        let Some(store) = etcd_store() else { return };
        let s0 = store.read().unwrap().cluster.serial_no;
        two_networks(&store);
        let s1 = store.read().unwrap().cluster.serial_no;
        assert_eq!(s1, s0 + 4, "one step per commit");
        let before = store.raw_dump().unwrap();
        let e = transaction(&store, |c| {
            add(c, "x", "ip=pool,network=a")?;
            Err::<(), _>(GntError::Exec("no".into()))
        });
        assert!(e.is_err());
        assert_eq!(store.raw_dump().unwrap(), before);
        // A removed instance takes its index keys along.
        transaction(&store, |c| add(c, "x", "ip=pool,network=a")).unwrap();
        transaction(&store, |c| instance::remove(c, "x").map(|_| ())).unwrap();
        let keys = String::from_utf8(store.raw_dump().unwrap()).unwrap();
        assert!(
            !keys.contains("/names/") && !keys.contains("/macs/"),
            "{keys}"
        );
    }

    /// A cluster of `n` instances on network `a` (a /20), written in bulk.
    fn big_cluster(store: &EtcdStore, n: usize) {
        let mut cfg = ClusterConfig::new();
        let mut fb = Feedback::default();
        let net = network::AddNetwork {
            name: "a".into(),
            network: Some("10.32.0.0/20".into()),
            conflicts_check: true,
            ..Default::default()
        };
        network::add(&mut cfg, &net, &mut fb).unwrap();
        let raw = network::RawNicParams {
            link: Some("br0".into()),
            ..Default::default()
        };
        network::connect(&mut cfg, "a", &raw, &[], true, &mut fb).unwrap();
        for k in 0..n {
            add(&mut cfg, &format!("seed-{k}"), "ip=pool,network=a").unwrap();
        }
        crate::config::etcd::copy::write_whole(store.url(), &cfg, false).unwrap();
    }

    /// Issue 14: a mutation costs what it touches, not what the cluster holds. On a cluster
    /// of 3,000 instances (about 1.5 MB under the prefix, which every command read whole
    /// before) an add, a modify and a remove each take a handful of requests and a few
    /// kilobytes, and the cluster stays consistent.
    #[test]
    fn a_mutation_on_a_big_cluster_reads_only_the_keys_it_touches() {
        let Some(store) = etcd_store() else { return };
        big_cluster(&store, 3000);
        let whole = store.raw_dump().unwrap().len();
        let cost = |what: &str, f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>| {
            let (r0, b0) = store.traffic();
            store.transact(f).unwrap();
            let (r1, b1) = store.traffic();
            let (requests, bytes) = (r1 - r0, b1 - b0);
            eprintln!("{what}: {requests} requests, {bytes} bytes (the prefix holds {whole})");
            assert!(
                requests <= 5 && bytes < 32 << 10,
                "{what} read {requests} requests, {bytes} bytes of a prefix of {whole} bytes"
            );
        };
        cost("add", &mut |c| add(c, "new", "ip=pool,network=a"));
        cost("modify", &mut |c| {
            let change = instance::NicChange::Modify(
                instance::NicRef::parse("0").unwrap(),
                instance::NicSpec::parse("ip=10.32.15.200").unwrap(),
            );
            instance::modify(c, "seed-7", &[change], true, &mut Feedback::default()).map(|_| ())
        });
        cost("remove", &mut |c| instance::remove(c, "seed-9").map(|_| ()));
        cost("add with a given MAC", &mut |c| {
            add(c, "mac", "mac=aa:00:00:00:00:01,ip=pool,network=a")
        });
        let cfg = store.read().unwrap();
        assert_eq!(cfg.instances.len(), 3001);
        assert!(
            verify::errors(&cfg).is_empty(),
            "{:?}",
            verify::errors(&cfg)
        );
        let seed7 = cfg.instance_uuid("seed-7").unwrap();
        assert_eq!(
            cfg.instances.get_cloned(&seed7).unwrap().nics[0].ipv4(),
            Some("10.32.15.200".parse().unwrap())
        );
        // A MAC already taken: the first attempt takes it as free and its commit finds the
        // index key there; the careful attempt reads it and refuses, nothing written.
        let e =
            transaction(&store, |c| add(c, "dup", "mac=aa:00:00:00:00:01,link=br9")).unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
    }

    /// The value of one raw key under the store's prefix, as etcd holds it now.
    fn raw(store: &EtcdStore, k: &Key) -> Option<Vec<u8>> {
        let (_, mut a) = store
            .client
            .read_many(&[Read::key(store.layout.key(k), None)])
            .unwrap();
        a.pop()?.kvs.pop().map(|kv| kv.value)
    }

    fn put_raw(store: &EtcdStore, k: &Key, v: &[u8]) {
        let put = Op::Put(store.layout.key(k), v.to_vec());
        assert!(matches!(
            store.client.txn(&[], &[put]).unwrap(),
            TxnOutcome::Committed(_)
        ));
    }

    /// A first attempt reads the heads (with the hinted instance's keys) and sends its
    /// txn: a new MAC is not looked up, nor are the index keys a remove deletes; the
    /// commit compares them instead.
    #[test]
    fn a_first_attempt_reads_the_heads_and_commits() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        let requests = |f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>| {
            let r0 = store.traffic().0;
            store.transact(f).unwrap();
            store.traffic().0 - r0
        };
        store.expect_instance("one");
        assert_eq!(
            requests(&mut |c| add(c, "one", "ip=pool,network=a")),
            2,
            "an add: the heads with the name's index key, then the txn"
        );
        // A remove reads the instance its name's index key names, then commits.
        assert_eq!(requests(&mut |c| instance::remove(c, "one").map(|_| ())), 3);
        let keys = String::from_utf8(store.raw_dump().unwrap()).unwrap();
        assert!(
            !keys.contains("/macs/") && !keys.contains("/names/") && !keys.contains("/instances/"),
            "the remove deleted the index keys it assumed: {keys}"
        );
    }

    /// An assumption that does not hold costs the first attempt its commit, never a
    /// wrong one: the careful attempt reads the key and decides as before.
    #[test]
    fn a_wrong_assumption_fails_the_first_commit_and_the_careful_attempt_decides() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        let mac = "aa:00:00:12:34:56";
        let mac_key = Key::Mac(mac.into());
        // An index key left by a hand edit, naming no instance: the new instance takes it.
        put_raw(&store, &mac_key, b"gone-uuid");
        let r0 = store.traffic().0;
        transaction(&store, |c| {
            add(c, "m1", &format!("mac={mac},ip=pool,network=a"))
        })
        .unwrap();
        assert!(
            store.traffic().0 - r0 > 3,
            "the first commit should have failed"
        );
        let cfg = store.read().unwrap();
        let m1 = cfg.instance_uuid("m1").unwrap();
        assert_eq!(raw(&store, &mac_key), Some(m1.clone().into_bytes()));
        assert!(
            verify::errors(&cfg).is_empty(),
            "{:?}",
            verify::errors(&cfg)
        );

        // The index key now names another instance: the remove, which assumed it its own,
        // leaves it to that one.
        put_raw(&store, &mac_key, b"other-uuid");
        transaction(&store, |c| instance::remove(c, "m1").map(|_| ())).unwrap();
        assert!(store.read().unwrap().instance_uuid("m1").is_err());
        assert_eq!(raw(&store, &mac_key), Some(b"other-uuid".to_vec()));
        assert_eq!(raw(&store, &Key::Instance(m1)), None);
    }

    /// A modify read before a remove of the same instance commits after it: it must not
    /// bring the instance back (it compares the instance key it read), and a retry finds
    /// the instance gone.
    #[test]
    fn a_modify_racing_a_remove_never_brings_the_instance_back() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        transaction(&store, |c| add(c, "victim", "ip=pool,network=a")).unwrap();
        let [(mut rm, vrm), (mut md, vmd)] = two_snapshots(&store);
        instance::remove(&mut rm, "victim").unwrap();
        let change = instance::NicChange::Modify(
            instance::NicRef::parse("0").unwrap(),
            instance::NicSpec::parse("ip=pool").unwrap(),
        );
        instance::modify(&mut md, "victim", &[change], true, &mut Feedback::default()).unwrap();
        assert!(store.commit_if_unchanged(rm, vrm).unwrap());
        assert!(!store.commit_if_unchanged(md, vmd).unwrap());
        let cfg = store.read().unwrap();
        assert!(cfg.instances.is_empty());
        assert!(verify::errors(&cfg).is_empty());
        let keys = String::from_utf8(store.raw_dump().unwrap()).unwrap();
        assert!(
            !keys.contains("/names/") && !keys.contains("/macs/"),
            "{keys}"
        );
    }

    /// Several "processes" (each its own store and connections) add and remove the same
    /// few names with the same MACs as fast as they can: whatever interleaving etcd sees,
    /// no name, MAC or address is ever held twice, no index key or address is left behind.
    #[test]
    fn adds_and_removes_racing_on_the_same_names_and_macs_never_duplicate() {
        let Some(store) = etcd_store() else { return };
        two_networks(&store);
        std::thread::scope(|s| {
            for t in 0..4 {
                let url = store.url().clone();
                s.spawn(move || {
                    let me = EtcdStore::new(&url);
                    for k in 0..25 {
                        let slot = (t + k) % 3;
                        let name = format!("racer-{slot}");
                        let r = if (t + k) % 2 == 0 {
                            transaction(&me, |c| {
                                add(
                                    c,
                                    &name,
                                    &format!("mac=aa:00:00:00:10:0{slot},ip=pool,network=a"),
                                )
                            })
                        } else {
                            transaction(&me, |c| instance::remove(c, &name).map(|_| ()))
                        };
                        if let Err(e) = r {
                            let e = e.to_string();
                            assert!(e.contains("already") || e.contains("not known"), "{e}");
                        }
                    }
                });
            }
        });
        let cfg = store.read().unwrap();
        assert!(
            verify::errors(&cfg).is_empty(),
            "{:?}",
            verify::errors(&cfg)
        );
        // The index holds exactly the names and MACs of the instances there are.
        let keys = String::from_utf8(store.raw_dump().unwrap()).unwrap();
        let count = |dir: &str| keys.lines().filter(|l| l.contains(dir)).count();
        assert_eq!(count("/names/instance/"), cfg.instances.len(), "{keys}");
        assert_eq!(count("/macs/"), cfg.instances.len(), "{keys}");
    }
}
