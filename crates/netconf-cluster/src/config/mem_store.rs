//! A store in memory, for tests: the contract of [`Store`] (snapshots, commits that are all
//! or nothing, the commit's invariant check, a stale version refused) with no files, so
//! that the operations can be tested against more than one backend.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::model::{ClusterConfig, now};
use super::store::{FileStore, Store, Version, check_commit, version_from_elsewhere};
use crate::error::GntError;

/// The configuration and how many commits it has seen (its version).
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<(ClusterConfig, u64)>,
}

impl MemStore {
    /// A store holding a fresh cluster.
    pub fn new() -> Self {
        MemStore::holding(ClusterConfig::new())
    }

    /// A store holding `cfg`.
    pub fn holding(cfg: ClusterConfig) -> Self {
        MemStore {
            state: Mutex::new((cfg, 0)),
        }
    }

    fn state(&self) -> MutexGuard<'_, (ClusterConfig, u64)> {
        // A test that panicked inside a transaction left the state as it was before it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit(state: &mut (ClusterConfig, u64), mut next: ClusterConfig) -> Result<(), GntError> {
        check_commit(&next, "memory store")?;
        next.cluster.serial_no += 1;
        next.cluster.mtime = now();
        *state = (next, state.1 + 1);
        Ok(())
    }
}

impl Store for MemStore {
    fn read(&self) -> Result<ClusterConfig, GntError> {
        Ok(self.state().0.clone())
    }

    fn read_versioned(&self) -> Result<(ClusterConfig, Version), GntError> {
        let state = self.state();
        Ok((state.0.clone(), Version::commits(state.1)))
    }

    fn commit_if_unchanged(&self, next: ClusterConfig, version: Version) -> Result<bool, GntError> {
        let Some(n) = version.as_commits() else {
            return Err(version_from_elsewhere());
        };
        let mut state = self.state();
        if state.1 != n {
            return Ok(false);
        }
        MemStore::commit(&mut state, next).map(|()| true)
    }

    fn check_invariants(&self, cfg: &ClusterConfig) -> Result<(), GntError> {
        check_commit(cfg, "memory store")
    }

    fn transact(
        &self,
        f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>,
    ) -> Result<(), GntError> {
        let mut state = self.state();
        let mut next = state.0.clone();
        f(&mut next)?;
        MemStore::commit(&mut state, next)
    }
}

/// Runs a test body once against each store backend, each fresh and empty (the file store
/// in a directory of its own), so that the operations are tested through the seam the
/// commands use, whatever lies behind it. A new backend is one more line in `stores`.
pub fn with_each_store(body: impl Fn(&dyn Store)) {
    let dir = tempfile::tempdir().expect("a temporary directory for the file store");
    let stores: Vec<(&str, Box<dyn Store>)> = vec![
        (
            "file",
            Box::new(FileStore::new(dir.path().join("config.data"))),
        ),
        ("memory", Box::new(MemStore::new())),
    ];
    for (backend, store) in stores {
        // Shown with a failing test's output: which backend it failed on.
        eprintln!("with_each_store: the {backend} store");
        body(store.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::transaction;
    use super::*;

    #[test]
    fn every_store_commits_all_or_nothing_and_refuses_a_stale_version() {
        with_each_store(|store| {
            let before = store.read().unwrap().cluster.serial_no;
            transaction(store, |cfg| {
                cfg.cluster.name = "one".into();
                Ok(())
            })
            .unwrap();
            let cfg = store.read().unwrap();
            assert_eq!(
                (cfg.cluster.name.as_str(), cfg.cluster.serial_no),
                ("one", before + 1)
            );

            let failed = transaction(store, |cfg| {
                cfg.cluster.name = "two".into();
                Err::<(), _>(GntError::Exec("no".into()))
            });
            assert_eq!(failed, Err(GntError::Exec("no".into())));
            assert_eq!(
                store.read().unwrap(),
                cfg,
                "a failed transaction changed the store"
            );

            let (mut stale, version) = store.read_versioned().unwrap();
            transaction(store, |cfg| {
                cfg.cluster.name = "three".into();
                Ok(())
            })
            .unwrap();
            stale.cluster.name = "lost".into();
            assert!(!store.commit_if_unchanged(stale, version).unwrap());
            assert_eq!(store.read().unwrap().cluster.name, "three");

            let (mut next, version) = store.read_versioned().unwrap();
            next.cluster.name = "four".into();
            assert!(store.commit_if_unchanged(next, version).unwrap());
            assert_eq!(store.read().unwrap().cluster.name, "four");
        });
    }

    #[test]
    fn a_version_from_another_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(dir.path().join("config.data"));
        let mem = MemStore::new();
        let (cfg, file_version) = file.read_versioned().unwrap();
        let (_, mem_version) = mem.read_versioned().unwrap();
        assert!(mem.commit_if_unchanged(cfg.clone(), file_version).is_err());
        assert!(file.commit_if_unchanged(cfg, mem_version).is_err());
        assert!(!dir.path().join("config.data").exists());
    }
}
