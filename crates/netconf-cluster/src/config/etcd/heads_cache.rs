//! A node-local copy of a cluster's groups, nodes and networks as of one revision, so that
//! a snapshot asks etcd only for those changed since (`min_mod_revision`) instead of all of
//! them: at 256 networks the heads are about 140 KB that etcd reads, marshals and sends,
//! and the client decodes, for every command.
//!
//! The copy is an input like any other: kept in a directory of this user only (created
//! 0700; refused if it is a symlink, someone else's, or writable by others), read without
//! following symlinks or blocking (a FIFO), bounded in size, checked for its format, its
//! cluster (URL, prefix and etcd's cluster ID) and its revision, and ignored whenever
//! anything is off. It is never needed: without it a snapshot reads every head. Written
//! to a temporary file renamed into place, so a reader sees a whole file or none; a file
//! torn by a crash fails to parse and is ignored.
//!
//! Why a merged copy is the state at the new revision R: a key whose mod revision is at
//! most the copy's revision C was not written between C and R, so it held at C the value
//! it holds now, and the copy has it; every key written since comes in the answer. A key
//! deleted since C would be in the copy but no longer in etcd: the range's count (of every
//! key, before `min_mod_revision` filters) then differs from the merged set's size, and the
//! snapshot reads everything instead.

use std::fs::{self, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::client::Kv;

const FORMAT: u32 = 1;
/// A cache file above this size is not read (256 networks take about 140 KB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A temp file older than this was left by a writer that died before its rename (no
/// writer takes more than a moment): the next writer removes it.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(60);

/// The cache of one cluster (URL and prefix) in one directory.
#[derive(Debug, Clone)]
pub(super) struct HeadsCache {
    path: PathBuf,
    identity: String,
}

/// What a cache file holds: every group, node and network key as of `revision`.
#[derive(Debug)]
pub(super) struct Cached {
    pub(super) cluster_id: String,
    pub(super) revision: i64,
    pub(super) kvs: Vec<Kv>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    identity: String,
    cluster_id: String,
    revision: i64,
    kvs: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    value: String,
    mod_revision: i64,
    version: i64,
}

/// FNV-1a: a file name per cluster; a collision only makes a file foreign (its identity is
/// checked).
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `meta` is owned by this user and writable by nobody else.
fn private(meta: &fs::Metadata) -> bool {
    meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

impl HeadsCache {
    /// The cache of the cluster `identity` (its URL with prefix) in `dir`, created if
    /// missing; `None` if `dir` is not a private directory of this user.
    pub(super) fn new(dir: &Path, identity: &str) -> Option<HeadsCache> {
        if !dir.is_absolute() {
            return None;
        }
        if fs::symlink_metadata(dir).is_err() {
            // Only the last component is made: a missing parent means a wrong setting.
            let _ = fs::DirBuilder::new().mode(0o700).create(dir);
        }
        let meta = fs::symlink_metadata(dir).ok()?;
        if !meta.is_dir() || !private(&meta) {
            return None;
        }
        Some(HeadsCache {
            path: dir.join(format!("heads-{:016x}.json", fnv64(identity))),
            identity: identity.to_owned(),
        })
    }

    /// The cached heads, if the file is there and sound.
    pub(super) fn load(&self) -> Option<Cached> {
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags())
            .open(&self.path)
            .ok()?;
        let meta = f.metadata().ok()?;
        if !meta.is_file() || !private(&meta) || meta.len() > MAX_FILE_BYTES {
            return None;
        }
        let mut text = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
        (&mut f)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .ok()?;
        let d: OnDisk = serde_json::from_slice(&text).ok()?;
        if d.format != FORMAT
            || d.identity != self.identity
            || d.cluster_id.is_empty()
            || d.revision <= 0
            || d.kvs
                .iter()
                .any(|e| e.mod_revision <= 0 || e.mod_revision > d.revision || e.version <= 0)
        {
            return None;
        }
        Some(Cached {
            cluster_id: d.cluster_id,
            revision: d.revision,
            kvs: d
                .kvs
                .into_iter()
                .map(|e| Kv {
                    key: e.key.into_bytes(),
                    value: e.value.into_bytes(),
                    mod_revision: e.mod_revision,
                    version: e.version,
                })
                .collect(),
        })
    }

    /// Replaces the file with `kvs` as of `revision`; on any failure leaves no file
    /// behind but the old one (the cache is only ever an aid).
    pub(super) fn store<'a>(
        &self,
        cluster_id: &str,
        revision: i64,
        kvs: impl Iterator<Item = &'a Kv>,
    ) {
        let mut entries = Vec::new();
        for kv in kvs {
            let (Ok(key), Ok(value)) = (
                String::from_utf8(kv.key.clone()),
                String::from_utf8(kv.value.clone()),
            ) else {
                return;
            };
            entries.push(Entry {
                key,
                value,
                mod_revision: kv.mod_revision,
                version: kv.version,
            });
        }
        let d = OnDisk {
            format: FORMAT,
            identity: self.identity.clone(),
            cluster_id: cluster_id.to_owned(),
            revision,
            kvs: entries,
        };
        let Ok(text) = serde_json::to_vec(&d) else {
            return;
        };
        // Mode 0600, not fsynced (it is on every command's path): a file torn by a crash
        // fails to parse and is ignored. On failure only the old file is left.
        let _ = netconf::textfile::write_atomic(
            &self.path,
            &text,
            0o600,
            netconf::textfile::Durability::None,
        );
        self.remove_stale_temporaries();
    }

    /// Removes this cache's temp files that a killed writer left (older than
    /// [`STALE_TMP`]); a temp file of a writer still at work is younger and stays.
    fn remove_stale_temporaries(&self) {
        let (Some(dir), Some(stem), Ok(prefix)) = (
            self.path.parent(),
            self.path.file_stem().and_then(|s| s.to_str()),
            netconf::textfile::temp_prefix(&self.path),
        ) else {
            return;
        };
        // Temporaries are named by `textfile::write_atomic`; those of older versions were
        // `<stem>.tmp.<pid>.<seq>`.
        let prefixes = [
            prefix.to_string_lossy().into_owned(),
            format!("{stem}.tmp."),
        ];
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !name
                .to_str()
                .is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
            {
                continue;
            }
            // `DirEntry::metadata` does not follow a link: only our own old files go.
            let old = e
                .metadata()
                .ok()
                .filter(|m| m.is_file() && private(m))
                .and_then(|m| m.modified().ok()?.elapsed().ok());
            if old.is_some_and(|age| age > STALE_TMP) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    #[cfg(test)]
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// Never follow a symlink, never block on a FIFO.
fn libc_flags() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_can_write_or_a_symlink_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("mine");
        assert!(HeadsCache::new(&mine, "etcd://127.0.0.1:2379/p").is_some());
        let meta = fs::symlink_metadata(&mine).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700, "created private");
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(HeadsCache::new(&open, "x").is_none());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        assert!(HeadsCache::new(&link, "x").is_none());
        assert!(HeadsCache::new(Path::new("relative"), "x").is_none());
    }

    #[test]
    fn a_copy_reads_back_and_a_foreign_or_inconsistent_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let c = HeadsCache::new(dir.path(), "etcd://127.0.0.1:2379/p").unwrap();
        let kv = Kv {
            key: b"/p/networks/u1".to_vec(),
            value: b"name = 'a'".to_vec(),
            mod_revision: 7,
            version: 2,
        };
        c.store("42", 9, [&kv].into_iter());
        let got = c.load().unwrap();
        assert_eq!((got.cluster_id.as_str(), got.revision), ("42", 9));
        assert_eq!(got.kvs, vec![kv.clone()]);
        // Another cluster's name for the same file: not ours.
        let other = HeadsCache {
            path: c.path.clone(),
            identity: "etcd://127.0.0.1:2379/q".into(),
        };
        assert!(other.load().is_none());
        // A key changed after the copy's revision cannot be in it.
        c.store("42", 6, [&kv].into_iter());
        assert!(c.load().is_none());
        // A FIFO in its place is not waited on.
        fs::remove_file(&c.path).unwrap();
        nix::unistd::mkfifo(&c.path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(c.load().is_none());
    }
    #[test]
    fn a_writer_removes_the_temp_files_killed_writers_left_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let c = HeadsCache::new(dir.path(), "etcd://127.0.0.1:2379/p").unwrap();
        let mut prefix = netconf::textfile::temp_prefix(&c.path).unwrap();
        prefix.push("111.0");
        let old = c.path.with_file_name(prefix);
        // One of an older version, which named its temporaries otherwise.
        let legacy = c.path.with_extension("tmp.111.0");
        let fresh = netconf::textfile::temp_path(&c.path, 1 << 40).unwrap();
        let other = dir.path().join(".heads-other.json.tmp333.0");
        for p in [&old, &legacy, &fresh, &other] {
            fs::File::create(p).unwrap();
        }
        let long_ago = std::time::SystemTime::now() - STALE_TMP * 2;
        for p in [&old, &legacy, &other] {
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        let kv = Kv {
            key: b"/p/networks/u1".to_vec(),
            value: b"name = 'a'".to_vec(),
            mod_revision: 7,
            version: 2,
        };
        c.store("42", 9, [&kv].into_iter());
        assert!(!old.exists(), "a killed writer's temp file stays");
        assert!(!legacy.exists(), "an older version's temp file stays");
        assert!(fresh.exists(), "a writer at work lost its temp file");
        assert!(other.exists(), "another cluster's file was touched");
        assert!(c.load().is_some());
    }
}
