//! Where `config.data` lives and how it changes: an exclusive lock on a file beside it
//! (so the lock survives the rename), read, change, atomic write (temp, fsync, rename, fsync
//! of the directory), serial + 1. Readers take a shared lock. The `Store` trait is the only
//! door, so a replicated backend can replace the file later without touching the commands.
//!
//! Parsing a large TOML file costs far more than a command may (≈ 200 ms for 10,000
//! instances), so every write also leaves `config.data.cache`: a binary snapshot stamped
//! with the identity of the `config.data` it mirrors (device, inode, size, mtime, ctime).
//! A reader uses it only when the stamp matches the file as it is now; any edit, rename or
//! replacement of config.data changes the stamp and the TOML is parsed again. The TOML
//! stays the one source of truth; the cache can be deleted at any time.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::cache;
use super::instances::Instances;
use super::model::{CONFIG_VERSION, Config, now};
use super::splice::{self, END_MARKER};
use super::verify;
use crate::error::GntError;

pub const DEFAULT_CONFIG_PATH: &str = "/var/lib/gnt-network/config.data";

/// A place that holds the configuration.
pub trait Store {
    /// A consistent snapshot (a fresh cluster when nothing was written yet).
    fn read(&self) -> Result<Config, GntError>;

    /// Runs `f` on the current configuration under the exclusive lock. If `f` succeeds the
    /// result is committed with the cluster serial advanced by one; if it fails nothing is
    /// written.
    fn transact(
        &self,
        f: &mut dyn FnMut(&mut Config) -> Result<(), GntError>,
    ) -> Result<(), GntError>;
}

/// `Store::transact` with a return value and a one-shot closure.
pub fn transaction<T>(
    store: &dyn Store,
    f: impl FnOnce(&mut Config) -> Result<T, GntError>,
) -> Result<T, GntError> {
    let mut f = Some(f);
    let mut out = None;
    store.transact(&mut |cfg| {
        let f = f.take().expect("transact runs the closure once");
        out = Some(f(cfg)?);
        Ok(())
    })?;
    Ok(out.expect("closure ran"))
}

/// `config.data` on a local file system.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    cache_path: PathBuf,
    free_after_commit: bool,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let beside = |ext: &str| {
            let mut p = path.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        FileStore {
            lock_path: beside(".lock"),
            cache_path: beside(".cache"),
            path,
            free_after_commit: true,
        }
    }

    /// For a command that exits right after its transaction: the committed configuration
    /// is not freed (freeing 10,000 instances costs about as much as writing them).
    pub fn exiting_after_commit(mut self) -> Self {
        self.free_after_commit = false;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, what: &str, p: &Path, e: &std::io::Error) -> GntError {
        let _ = self;
        GntError::Exec(format!("Cannot {what} {}: {e}", p.display()))
    }

    /// `.<config file name><suffix>` beside config.data: hidden working files.
    fn hidden(&self, suffix: &str) -> PathBuf {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config.data");
        self.dir().join(format!(".{name}{suffix}"))
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    fn open_lock(&self, create: bool) -> Result<Option<File>, GntError> {
        if create {
            fs::create_dir_all(self.dir())
                .map_err(|e| self.io_err("create the directory of", &self.path, &e))?;
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&self.lock_path)
        {
            Ok(f) => Ok(Some(f)),
            // Nothing was ever written: there is nothing to lock against yet.
            Err(e) if !create && e.kind() == ErrorKind::NotFound => Ok(None),
            // A reader without write access still gets a consistent file (writes are
            // atomic renames); it just cannot take the shared lock.
            Err(e) if !create && e.kind() == ErrorKind::PermissionDenied => {
                Ok(File::open(&self.lock_path).ok())
            }
            Err(e) => Err(self.io_err("open the lock file", &self.lock_path, &e)),
        }
    }

    /// Temporaries are only written under a lock; holding the exclusive one, any that
    /// exist were left by a writer that died (SIGKILL, power loss) and are removed.
    fn remove_stale_temporaries(&self) {
        let Some(name) = self.path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let config_tmp = format!(".{name}.tmp");
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return;
        };
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with(&config_tmp) || n.starts_with(".config.cache.tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    fn load(&self) -> Result<Config, GntError> {
        self.load_stamped().map(|(cfg, _)| cfg)
    }

    /// The configuration and the stamp of the file it came from (none for a fresh one).
    fn load_stamped(&self) -> Result<(Config, Option<Stamp>), GntError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Config::new(), None)),
            Err(e) => return Err(self.io_err("read", &self.path, &e)),
        };
        let stamp = file
            .metadata()
            .map(|m| Stamp::of(&m))
            .map_err(|e| self.io_err("read", &self.path, &e))?;
        if let Some(cfg) = file
            .try_clone()
            .ok()
            .and_then(|f| self.load_cache(&stamp, f))
        {
            return Ok((cfg, Some(stamp)));
        }
        let mut text = String::new();
        (&file)
            .read_to_string(&mut text)
            .map_err(|e| self.io_err("read", &self.path, &e))?;
        let mut cfg = parse(&text, &self.path)?;
        // A configuration that breaks an invariant gets no cache, so every command parses
        // it again and reports it (`verify`) until it is fixed.
        cfg.origin.errors = verify::errors(&cfg);
        // Only if the file did not change while we read it.
        if cfg.origin.errors.is_empty()
            && fs::metadata(&self.path).map(|m| Stamp::of(&m)).ok() == Some(stamp)
        {
            self.save_cache(&stamp, &cfg);
        }
        Ok((cfg, Some(stamp)))
    }

    /// Public for benchmarks and tests: whether a valid cache exists for the current file.
    pub fn cache_is_fresh(&self) -> bool {
        let Ok(file) = File::open(&self.path) else {
            return false;
        };
        file.metadata()
            .ok()
            .and_then(|m| self.load_cache(&Stamp::of(&m), file))
            .is_some()
    }

    /// The configuration from the cache, if it mirrors `toml` (whose stamp is `stamp`).
    fn load_cache(&self, stamp: &Stamp, toml: File) -> Option<Config> {
        let cache = File::open(&self.cache_path).ok()?;
        let (head, stored) = cache::load(cache, &stamp.header(), toml, boot_id().is_some())?;
        Some(Config {
            version: head.version,
            cluster: head.cluster,
            nodegroups: head.nodegroups,
            nodes: head.nodes,
            networks: head.networks,
            instances: Instances::from_stored(stored),
            origin: Default::default(),
        })
    }

    /// Best effort: a missing or unwritable cache only costs speed.
    fn save_cache(&self, stamp: &Stamp, cfg: &Config) {
        if let Some(plan) = splice::cache_full(cfg, None) {
            self.save_cache_plan(stamp, &plan);
        }
    }

    /// A reader's cache (after parsing the TOML): readers may run side by side, so each
    /// writes its own temporary and renames it into place.
    fn save_cache_plan(&self, stamp: &Stamp, plan: &cache::CachePlan<'_>) {
        let tmp = self
            .dir()
            .join(format!(".config.cache.tmp{}", std::process::id()));
        let written = File::create(&tmp).and_then(|mut f| {
            cache::write(&mut f, &stamp.header(), plan)?;
            Ok(f)
        });
        if written.is_err() || fs::rename(&tmp, &self.cache_path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Opens a writer's spare file, the version before last, to overwrite it in place;
    /// or a new file where that fails (say the spare belongs to another user), someone may
    /// still read the spare (a loaded configuration holds a shared lock on its files), or
    /// file locks do not work.
    fn open_spare(path: &Path) -> std::io::Result<File> {
        let reusable = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .ok()
            .filter(|f| f.try_lock().is_ok());
        if let Some(f) = reusable {
            return Ok(f);
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    /// Writes the spare at `path` with `fill` and cuts it to what was written.
    fn fill_spare(
        path: &Path,
        fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> std::io::Result<File> {
        let mut f = Self::open_spare(path)?;
        fill(&mut f)?;
        let len = std::io::Seek::stream_position(&mut f)?;
        f.set_len(len)?;
        Ok(f)
    }

    /// Puts `spare` in place of `live` and keeps the replaced file as the next spare.
    /// Overwriting a file's allocated blocks costs the kernel a fraction of allocating
    /// new ones and freeing the old (about 2.5 ms of a 4 MB config.data's 4.3 ms).
    fn rotate(live: &Path, spare: &Path, old: &Path) -> std::io::Result<()> {
        // An `old` link is left only by a writer that died between these steps.
        let _ = fs::remove_file(old);
        let kept = fs::hard_link(live, old).is_ok();
        fs::rename(spare, live)?;
        if kept {
            let _ = fs::rename(old, spare);
        }
        Ok(())
    }

    /// A snapshot as [`Store::read`], and the version of the file it came from.
    pub fn read_versioned(&self) -> Result<(Config, Version), GntError> {
        let lock = self.open_lock(false)?;
        if let Some(l) = &lock {
            l.lock_shared()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        let (cfg, stamp) = self.load_stamped()?;
        Ok((cfg, Version(stamp)))
    }

    /// Commits `next`, made from the snapshot of `version`, if config.data is still that
    /// file; `Ok(false)` and nothing written if another command committed meanwhile.
    /// Comparing the file's identity instead of its contents keeps the unchanged
    /// instances spliced rather than decoded and rendered.
    pub fn commit_if_unchanged(
        &self,
        mut next: Config,
        version: Version,
    ) -> Result<bool, GntError> {
        let lock = self.open_lock(true)?.expect("created");
        lock.lock()
            .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        let current = match fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(self.io_err("read", &self.path, &e)),
        };
        if current != version.0 {
            return Ok(false);
        }
        self.remove_stale_temporaries();
        self.check_invariants(&next)?;
        next.cluster.serial_no += 1;
        next.cluster.mtime = now();
        let written = self.write(&next, version.0.as_ref());
        if !self.free_after_commit {
            std::mem::forget(next);
        }
        written.map(|()| true)
    }

    fn write(&self, cfg: &Config, loaded: Option<&Stamp>) -> Result<(), GntError> {
        let loaded = loaded.map(Stamp::header);
        let plan = splice::plan(cfg, loaded.as_ref().map(|h| &h[..]));
        let dir = self.dir();
        let (spare, old) = (self.hidden(".spare"), self.hidden(".old"));
        let (cache_spare, cache_old) = (self.hidden(".cache.spare"), self.hidden(".cache.old"));
        // config.data is written and synced on another core while this one writes the
        // cache (its stamp still blank): the disk works while the CPU copies.
        let (written, cache) = std::thread::scope(|s| {
            let toml = s.spawn(|| {
                let f = Self::fill_spare(&spare, |f| plan.toml.write_to(f, plan.toml_src))?;
                f.sync_all()?;
                Ok(f)
            });
            let cache = plan.cache.as_ref().and_then(|c| {
                let blank = [0; Stamp::HEADER_LEN];
                Self::fill_spare(&cache_spare, |f| cache::write(f, &blank, c)).ok()
            });
            let written = toml
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("writer thread failed")));
            (written, cache)
        });
        let stamp = written
            .and_then(|f: File| {
                // Unlocked explicitly: a child forked meanwhile (hooks, threads of a test
                // harness) may share this open file until it execs.
                let _ = f.unlock();
                Self::rotate(&self.path, &spare, &old)?;
                File::open(&dir)?.sync_all()?;
                // After the rename, which changes the ctime the stamp includes.
                Ok(Stamp::of(&f.metadata()?))
            })
            .map_err(|e| self.io_err("write", &self.path, &e))?;
        // Best effort: without a cache the next command parses the TOML.
        if let Some(f) = cache {
            use std::os::unix::fs::FileExt;
            let placed = f.write_all_at(&stamp.header(), 0).is_ok()
                && f.unlock().is_ok()
                && Self::rotate(&self.cache_path, &cache_spare, &cache_old).is_ok();
            if !placed {
                let _ = fs::remove_file(&self.cache_path);
            }
        }
        Ok(())
    }
}

/// How many of a check's errors a command repeats; `gnt-cluster verify` lists them all.
const ERRORS_SHOWN: usize = 5;

fn error_lines(errors: &[verify::Finding]) -> String {
    let mut s: String = errors
        .iter()
        .take(ERRORS_SHOWN)
        .map(|f| format!("\n  - {f}"))
        .collect();
    if errors.len() > ERRORS_SHOWN {
        s.push_str(&format!("\n  - … and {} more", errors.len() - ERRORS_SHOWN));
    }
    s
}

impl FileStore {
    /// Refuses to commit a configuration that breaks an invariant (`verify`); public for
    /// `--dry-run`, which runs every check of a commit but writes nothing.
    pub fn check_invariants(&self, cfg: &Config) -> Result<(), GntError> {
        verify::check_commit(cfg).map_err(|errors| {
            GntError::Config(format!(
                "{}: refusing to commit an inconsistent configuration:{}\nRun 'gnt-cluster verify' to see every problem; 'gnt-cluster repair-pools' rebuilds the address pools from the NICs.",
                self.path.display(),
                error_lines(&errors)
            ))
        })
    }

    /// A read of a configuration that breaks an invariant (a hand edit) goes on, with a
    /// warning on stderr: readers show what is there; writers refuse until it is fixed.
    fn warn_if_inconsistent(&self, cfg: &Config) {
        let errors = &cfg.origin.errors;
        if !errors.is_empty() {
            eprintln!(
                "WARNING: {} is not consistent (changed by hand?):{}\nRun 'gnt-cluster verify' to see every problem; commands that change the configuration refuse to until it is fixed.",
                self.path.display(),
                error_lines(errors)
            );
        }
    }
}

/// Which config.data a configuration was read from (none: the file did not exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version(Option<Stamp>);

impl Store for FileStore {
    fn read(&self) -> Result<Config, GntError> {
        let lock = self.open_lock(false)?;
        if let Some(l) = &lock {
            l.lock_shared()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        let cfg = self.load()?;
        self.warn_if_inconsistent(&cfg);
        Ok(cfg)
    }

    fn transact(
        &self,
        f: &mut dyn FnMut(&mut Config) -> Result<(), GntError>,
    ) -> Result<(), GntError> {
        let lock = self.open_lock(true)?.expect("created");
        lock.lock()
            .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        self.remove_stale_temporaries();
        let (mut cfg, loaded) = self.load_stamped()?;
        f(&mut cfg)?;
        self.check_invariants(&cfg)?;
        cfg.cluster.serial_no += 1;
        cfg.cluster.mtime = now();
        let written = self.write(&cfg, loaded.as_ref());
        if !self.free_after_commit {
            std::mem::forget(cfg);
        }
        written
        // The lock is released when `lock` is dropped, after the rename.
    }
}

/// The identity of a config.data file; ctime cannot be set back by users, and the atomic
/// rename gives every written version a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp([u64; 7]);

/// This boot's identity, so that a cache written before a crash is checked before use.
fn boot_id() -> Option<&'static [u8]> {
    static ID: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        fs::read("/proc/sys/kernel/random/boot_id")
            .ok()
            .filter(|b| b.len() == 37)
    })
    .as_deref()
}

impl Stamp {
    const MAGIC: &'static [u8; 8] = b"NCCACHE4";
    const HEADER_LEN: usize = 101;

    fn of(m: &fs::Metadata) -> Self {
        Stamp([
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
            m.ctime() as u64,
            m.ctime_nsec() as u64,
        ])
    }

    /// Magic, the seven numbers, and the boot ID (or zeros where there is none).
    fn header(&self) -> [u8; Self::HEADER_LEN] {
        let mut h = [0u8; Self::HEADER_LEN];
        h[..8].copy_from_slice(Self::MAGIC);
        for (i, v) in self.0.iter().enumerate() {
            h[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        if let Some(id) = boot_id() {
            h[64..].copy_from_slice(id);
        }
        h
    }
}

/// The file text of `cfg`.
pub fn render(cfg: &Config) -> Result<String, GntError> {
    String::from_utf8(splice::full_toml(cfg).0)
        .map_err(|_| GntError::Config("rendered configuration is not UTF-8".into()))
}

/// Parses a file's text; every problem names the file (and line, where there is one).
pub fn parse(text: &str, path: &Path) -> Result<Config, GntError> {
    let p = path.display();
    // The version is checked before the body so that a newer file is reported as such,
    // not as a pile of unknown keys.
    if let Some(v) = leading_version(text)
        && v > CONFIG_VERSION
    {
        return Err(GntError::Config(format!(
            "{p}: written by a newer version (format {v}; this build reads up to {CONFIG_VERSION}); refusing to read or overwrite it"
        )));
    }
    if text.trim_end().lines().last() != Some(END_MARKER) {
        let lines = text.lines().count();
        return Err(GntError::Config(format!(
            "{p}:{lines}: the file is truncated (its last line should be '{END_MARKER}')"
        )));
    }
    let mut cfg: Config = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        GntError::Config(format!("{p}:{line}: {}", e.message()))
    })?;
    if cfg.version == 0 {
        return Err(GntError::Config(format!("{p}: version must be at least 1")));
    }
    // The hook of the invariant checks (`verify`): whatever decides that the cache does
    // not stand for this file, a configuration read from the TOML is checked in full.
    cfg.origin.parsed_from_toml = true;
    Ok(cfg)
}

fn leading_version(text: &str) -> Option<u32> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if let Some(rest) = line.strip_prefix("version") {
            return rest.trim_start().strip_prefix('=')?.trim().parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_file_reads_as_a_fresh_cluster_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("sub/config.data"));
        let cfg = store.read().unwrap();
        assert_eq!(cfg.nodegroups.values().next().unwrap().name, "default");
        assert!(!store.path().exists());
    }

    #[test]
    fn transaction_commits_and_bumps_serial_or_leaves_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("config.data"));
        transaction(&store, |c| {
            c.cluster.name = "c1".into();
            Ok(())
        })
        .unwrap();
        let before = fs::read(store.path()).unwrap();
        let cfg = store.read().unwrap();
        assert_eq!(cfg.cluster.name, "c1");
        assert_eq!(cfg.cluster.serial_no, 2);
        let err = transaction(&store, |c| -> Result<(), GntError> {
            c.cluster.name = "c2".into();
            Err(GntError::state("no"))
        });
        assert!(err.is_err());
        assert_eq!(
            fs::read(store.path()).unwrap(),
            before,
            "failed command left the file byte-identical"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names.len(),
            3,
            "only config.data, its lock and its cache: {names:?}"
        );
    }

    #[test]
    fn corrupt_truncated_and_newer_files_are_refused_with_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("config.data"));
        transaction(&store, |_| Ok(())).unwrap();
        let good = fs::read_to_string(store.path()).unwrap();

        let cut = &good[..good.len() / 2];
        fs::write(store.path(), cut).unwrap();
        let e = store.read().unwrap_err().to_string();
        assert!(e.contains("config.data:") && e.contains("truncated"), "{e}");
        // A refused file is never overwritten by a mutation.
        assert!(transaction(&store, |_| Ok(())).is_err());
        assert_eq!(fs::read_to_string(store.path()).unwrap(), cut);

        fs::write(
            store.path(),
            good.replace("master_node =", "master_node = = "),
        )
        .unwrap();
        let e = store.read().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let line = good
            .lines()
            .position(|l| l.starts_with("master_node"))
            .unwrap()
            + 1;
        assert!(
            e.to_string().contains(&format!("config.data:{line}:")),
            "{e}"
        );

        fs::write(store.path(), good.replace("version = 1", "version = 7")).unwrap();
        let e = store.read().unwrap_err().to_string();
        assert!(e.contains("newer version (format 7"), "{e}");
    }

    #[test]
    fn cache_mirrors_the_file_and_any_edit_invalidates_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("config.data"));
        transaction(&store, |c| {
            c.cluster.name = "cached".into();
            Ok(())
        })
        .unwrap();
        assert!(store.cache_is_fresh());
        assert_eq!(store.read().unwrap().cluster.name, "cached");
        // A hand edit (same length, in place) must win over the cache.
        let text = fs::read_to_string(store.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(store.path(), text.replace("\"cached\"", "\"edited\"")).unwrap();
        assert!(!store.cache_is_fresh());
        assert_eq!(store.read().unwrap().cluster.name, "edited");
        assert!(store.cache_is_fresh(), "the reader refreshed the cache");
        // A corrupt cache is ignored.
        fs::write(dir.path().join("config.data.cache"), b"garbage").unwrap();
        assert_eq!(store.read().unwrap().cluster.name, "edited");
        // A cache with the right stamp but a damaged body is ignored too.
        let stamp = Stamp::of(&fs::metadata(store.path()).unwrap());
        let mut bad = stamp.header().to_vec();
        bad.extend_from_slice(&[1, 2, 3]);
        fs::write(dir.path().join("config.data.cache"), bad).unwrap();
        assert_eq!(store.read().unwrap().cluster.name, "edited");
    }

    #[test]
    fn writer_output_is_plain_toml_equal_to_the_model() {
        let mut cfg = Config::new();
        cfg.cluster.name = "we\"ird\\name\n".into();
        let text = render(&cfg).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn cache_and_toml_give_the_same_config_with_instances() {
        use crate::ops::{Feedback, instance, network};
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("config.data"));
        transaction(&store, |c| {
            let mut fb = Feedback::default();
            let add = network::AddNetwork {
                name: "n".into(),
                network: Some("192.0.2.0/24".into()),
                gateway: Some("192.0.2.1".into()),
                conflicts_check: true,
                ..Default::default()
            };
            network::add(c, &add, &mut fb)?;
            let raw = network::RawNicParams {
                link: Some("br0".into()),
                ..Default::default()
            };
            network::connect(c, "n", &raw, &[], true, &mut fb)?;
            for k in 0..7 {
                let spec = instance::NicSpec::parse("ip=pool,network=n").unwrap();
                let a = instance::AddInstance {
                    name: format!("i{k}"),
                    nics: vec![
                        spec,
                        instance::NicSpec::parse("mode=routed,ip=198.51.100.7").unwrap(),
                    ],
                    conflicts_check: true,
                    ..Default::default()
                };
                instance::add(c, &a, &mut fb)?;
            }
            Ok(())
        })
        .unwrap();
        assert!(store.cache_is_fresh());
        let from_cache = store.read().unwrap();
        let from_toml = parse(&fs::read_to_string(store.path()).unwrap(), store.path()).unwrap();
        assert_eq!(from_cache, from_toml);
        assert_eq!(from_cache.instances.len(), 7);
    }
}
