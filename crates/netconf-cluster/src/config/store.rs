//! Where `config.data` lives and how it changes: an exclusive lock on a file beside it
//! (so the lock survives the rename), read, change, atomic write (temp, fsync, rename, fsync
//! of the directory), serial + 1. Readers take a shared lock. The `Store` trait is the only
//! door, so a replicated backend can replace the file later without touching the commands.
//!
//! Parsing a large TOML file costs far more than a command may (≈ 200 ms for 10,000
//! instances), so every write also leaves `config.data.cache`: a binary snapshot marked
//! with the length and CRC-32 of the config.data bytes it was made from. Every command
//! streams config.data through a CRC (≈ 0.2 ms for 4 MB) and uses the cache only when it
//! was made from exactly those bytes and checks out in full; anything else (a hand edit
//! in place within the same second, a file copied back, a cut or damaged cache, a FIFO)
//! means the TOML is parsed and the cache rebuilt. Before a writer replaces config.data
//! it checks the file still holds the bytes it loaded, so a hand edit made while a
//! command runs is not written over either (short of one made in the microseconds
//! between that check and the rename). The TOML stays the one source of truth; the cache
//! can be deleted at any time.
//!
//! Files are distrusted: config.data and the cache are opened without blocking and used
//! only when they are regular files; a config.data that is a symbolic link is resolved
//! once per command and its target replaced, so the link stays. New files are created
//! with `O_EXCL` (never through a planted link) and get mode 0644, or config.data's mode
//! without write or execute bits for others, whatever the umask. The spare files (the
//! versions before last, overwritten in place to save the kernel work) are reused only
//! when they are plain files of their own; anything else is replaced or avoided.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use super::cache;
use super::fingerprint::{Fingerprint, Marks};
use super::instances::Instances;
use super::model::{CONFIG_VERSION, ClusterConfig, now};
use super::splice;
use super::verify;
use super::watch::{FileWatch, StoreWatch};
use super::writer::END_MARKER;
use crate::error::GntError;

pub const DEFAULT_CONFIG_PATH: &str = "/var/lib/gnt-network/config.data";

/// config.data is refused above this size (10,000 instances take about 4 MB).
const MAX_CONFIG_LEN: u64 = 256 << 20;

/// A place that holds the configuration. Callers know only this: how a backend keeps its
/// data (files, locks, caches, spares) stays behind it, so another backend (a replicated
/// store) can be added without touching the operations or the commands.
pub trait Store {
    /// A consistent snapshot (a fresh cluster when nothing was written yet).
    fn read(&self) -> Result<ClusterConfig, GntError>;

    /// A snapshot as [`Store::read`], and the version it was read from; without `read`'s
    /// warning about an inconsistent configuration (for callers that show it in full).
    fn read_versioned(&self) -> Result<(ClusterConfig, Version), GntError>;

    /// Commits `next`, made from the snapshot of `version`, if the store still holds that
    /// version; `Ok(false)` and nothing written if it changed meanwhile (another command,
    /// or a hand edit).
    fn commit_if_unchanged(&self, next: ClusterConfig, version: Version) -> Result<bool, GntError>;

    /// Refuses to commit a configuration that breaks an invariant (`verify`); public for
    /// `--dry-run`, which runs every check of a commit but writes nothing.
    fn check_invariants(&self, cfg: &ClusterConfig) -> Result<(), GntError>;

    /// Runs `f` on the current configuration under the exclusive lock. If `f` succeeds the
    /// result is committed with the cluster serial advanced by one; if it fails nothing is
    /// written.
    fn transact(
        &self,
        f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>,
    ) -> Result<(), GntError>;

    /// A hint that the next transaction looks up the instance `name_or_key`: a store that
    /// reads instances on demand (etcd) reads it with its first read rather than after it,
    /// saving a round trip. Changes nothing a transaction sees or commits.
    fn expect_instance(&self, _name_or_key: &str) {}

    /// What `verify` cannot see in `cfg` (read at `version`) because it lies in how this
    /// store keeps it: etcd's name and MAC index keys. Nothing for config.data.
    fn audit(
        &self,
        cfg: &ClusterConfig,
        version: Version,
    ) -> Result<Vec<verify::Finding>, GntError> {
        let _ = (cfg, version);
        Ok(Vec::new())
    }

    /// Something that says when this store may have changed, for a process that follows it
    /// (`snf-ifup watch`); subscribe before the first read, so that no change is missed.
    fn changes(&self) -> Result<Box<dyn StoreWatch>, GntError> {
        Err(GntError::Exec(
            "this store cannot be watched for changes".into(),
        ))
    }
}

/// `Store::transact` with a return value. A store may run `f` more than once (etcd runs it
/// again on a fresh snapshot after another command committed under it): the value of the
/// run that committed is returned.
pub fn transaction<T>(
    store: &dyn Store,
    mut f: impl FnMut(&mut ClusterConfig) -> Result<T, GntError>,
) -> Result<T, GntError> {
    let mut out = None;
    store.transact(&mut |cfg| {
        out = Some(f(cfg)?);
        Ok(())
    })?;
    out.ok_or_else(|| GntError::Exec("the store committed without running the change".into()))
}

/// The configuration at `path` (config.data), for a process that may read it many times.
pub fn open(path: &Path) -> impl Store + use<> {
    FileStore::new(path)
}

/// The refusal to overwrite a store that holds a cluster (a copy without `--force`).
pub fn refused_to_overwrite(place: &str) -> GntError {
    GntError::Exec(format!(
        "{place} is not empty; refusing to overwrite it (use --force to replace it)"
    ))
}

/// Where a cluster's configuration lives: a config.data file, or a prefix in etcd.
#[derive(Clone, Debug)]
pub enum Location {
    File(PathBuf),
    Etcd(super::etcd::EtcdUrl),
}

/// The store at `at`, for a process that may read it many times.
pub fn open_at(at: &Location) -> Box<dyn Store> {
    match at {
        Location::File(p) => Box::new(FileStore::new(p)),
        Location::Etcd(u) => Box::new(super::etcd::EtcdStore::new(u)),
    }
}

/// The store at `at` for a command that commits at most once and then exits: a committed
/// config.data is not freed (freeing 10,000 instances costs about as much as writing
/// them). `debug` reports retried etcd commits on stderr.
pub fn open_for_one_command(at: &Location, debug: bool) -> Box<dyn Store> {
    match at {
        Location::File(p) => Box::new(FileStore::new(p).exiting_after_commit()),
        Location::Etcd(u) => {
            let store = super::etcd::EtcdStore::new(u).with_debug(debug);
            match heads_cache_dir() {
                Some(dir) => Box::new(store.with_heads_cache(&dir)),
                None => Box::new(store),
            }
        }
    }
}

/// Where a command keeps its copy of an etcd cluster's heads (netconf-store(7)):
/// `NETCONF_CACHE_DIR` (empty: nowhere); unset, root's `/run/netconf/etcd-heads` and
/// another user's `$XDG_RUNTIME_DIR/netconf-etcd-heads` (a tmpfs of theirs), or nowhere.
/// On by default because at hundreds of networks the heads are most of what a command
/// reads and decodes; the copy is checked against etcd at every use (heads_cache.rs).
fn heads_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NETCONF_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if nix::unistd::geteuid().is_root() {
        // /run is root's and 0755: its netconf directory is made like any in /run.
        let parent = Path::new("/run/netconf");
        if !parent.exists() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = fs::DirBuilder::new().mode(0o755).create(parent);
        }
        return Some(parent.join("etcd-heads"));
    }
    let runtime = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    runtime
        .is_absolute()
        .then(|| runtime.join("netconf-etcd-heads"))
}

/// A boxed store is a store (the commands hold whichever backend `--store` chose).
impl Store for Box<dyn Store> {
    fn read(&self) -> Result<ClusterConfig, GntError> {
        (**self).read()
    }
    fn read_versioned(&self) -> Result<(ClusterConfig, Version), GntError> {
        (**self).read_versioned()
    }
    fn commit_if_unchanged(&self, next: ClusterConfig, version: Version) -> Result<bool, GntError> {
        (**self).commit_if_unchanged(next, version)
    }
    fn check_invariants(&self, cfg: &ClusterConfig) -> Result<(), GntError> {
        (**self).check_invariants(cfg)
    }
    fn transact(
        &self,
        f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>,
    ) -> Result<(), GntError> {
        (**self).transact(f)
    }
    fn audit(
        &self,
        cfg: &ClusterConfig,
        version: Version,
    ) -> Result<Vec<verify::Finding>, GntError> {
        (**self).audit(cfg, version)
    }
    fn changes(&self) -> Result<Box<dyn StoreWatch>, GntError> {
        (**self).changes()
    }
    fn expect_instance(&self, name_or_key: &str) {
        (**self).expect_instance(name_or_key)
    }
}

/// The store at `at` for a reader that must answer at once or not at all (shell
/// completion): config.data through [`open_read_only`], etcd with every request, retries
/// and connecting included, over within `budget`.
pub fn open_for_completion(at: &Location, budget: std::time::Duration) -> Box<dyn Store> {
    match at {
        Location::File(p) => Box::new(open_read_only(p)),
        Location::Etcd(u) => Box::new(super::etcd::EtcdStore::new(u).with_budget(budget)),
    }
}

/// The configuration at `path` for a reader that must not change or wait on anything (shell
/// completion): see [`FileStore::read_only`].
pub fn open_read_only(path: &Path) -> impl Store + use<> {
    FileStore::new(path).read_only()
}

/// `config.data` on a local file system.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    cache_path: PathBuf,
    free_after_commit: bool,
    read_only: bool,
}

/// config.data as found now: its resolved path, and the open file (none: absent).
struct Current {
    target: PathBuf,
    file: Option<File>,
    /// The fingerprint of `file`'s bytes when it was opened.
    fp: Option<Fingerprint>,
    /// The marks of the pass that took `fp`, for the fingerprint of a new file that
    /// copies ranges of this one.
    marks: Option<Marks>,
    /// The mode for new config.data and cache files: 0644, or the current file's mode
    /// without write or execute bits for others (an operator's 0600 or 0640 stays).
    mode: u32,
}

/// Opens `path` for reading without following a final symbolic link or blocking on a
/// FIFO; `Ok(None)` if it does not exist. Only a regular file is returned.
fn open_regular(path: &Path) -> std::io::Result<Option<(File, fs::Metadata)>> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other(
                "a symbolic link (changed meanwhile?)",
            ));
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file but {}",
            kind_of(&m)
        )));
    }
    Ok(Some((f, m)))
}

/// What a file that is not a regular one is, for the refusal that names it.
pub(crate) fn kind_of(m: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Up to `max` bytes of `f` from its start; `None` if it is longer.
fn read_capped(f: &File, len_hint: u64, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut v = Vec::with_capacity(usize::try_from(len_hint.min(max) + 1).unwrap_or(0));
    let mut f = f.try_clone()?;
    std::io::Seek::rewind(&mut f)?;
    f.take(max + 1).read_to_end(&mut v)?;
    Ok((v.len() as u64 <= max).then_some(v))
}

/// Whether `p` is the file `f` (same device and inode).
fn same_file(p: &Path, f: &File) -> bool {
    match (fs::symlink_metadata(p), f.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Creates `path` (never through a link, never over an existing file) with exactly
/// `mode`, whatever the umask.
fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(f)
}

/// A file error that names the file.
fn file_err(what: &str, p: &Path, e: &std::io::Error) -> GntError {
    GntError::Exec(format!("Cannot {what} {}: {e}", p.display()))
}

/// An error with the file it happened on.
type FileResult<T> = Result<T, (PathBuf, std::io::Error)>;

fn at<T>(p: &Path, r: std::io::Result<T>) -> FileResult<T> {
    r.map_err(|e| (p.to_owned(), e))
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
            read_only: false,
        }
    }

    /// A view that writes nothing (no lock file, no cache rebuilt, every commit refused),
    /// never waits for a writer's lock (writers replace config.data by an atomic rename, so
    /// an unlocked reader still sees a whole file) and reads an absent config.data as an
    /// error instead of imagining a fresh cluster.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// For a command that exits right after its transaction: the committed configuration
    /// is not freed (freeing 10,000 instances costs about as much as writing them).
    pub fn exiting_after_commit(mut self) -> Self {
        self.free_after_commit = false;
        self
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether config.data exists (as anything: a FIFO or directory there is not empty).
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok()
    }

    /// Writes `cfg` as it is, serial and times included (a copy from another store), under
    /// the lock and as atomically as every commit; refuses an existing config.data unless
    /// `replace`. No invariant is checked: a copy carries its source's problems along.
    pub fn write_copy(&self, cfg: &ClusterConfig, replace: bool) -> Result<(), GntError> {
        let lock = self.open_lock(true)?;
        if let Some(l) = &lock {
            l.lock()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        if !replace && self.exists() {
            return Err(refused_to_overwrite(&self.path.display().to_string()));
        }
        let cur = self.current()?;
        self.remove_stale_temporaries(&cur.target);
        let loaded = cur.fp;
        match self.write(cfg, &cur, loaded)? {
            true => Ok(()),
            false => Err(GntError::Exec(format!(
                "{} was changed while it was being replaced; nothing was written",
                cur.target.display()
            ))),
        }
    }

    fn io_err(&self, what: &str, p: &Path, e: &std::io::Error) -> GntError {
        let _ = self;
        file_err(what, p, e)
    }

    fn dir(&self) -> PathBuf {
        dir_of(&self.path)
    }

    /// The file config.data names: itself, or the end of its chain of symbolic links (which
    /// need not exist yet). Writers replace this file, so a linked config.data stays a link.
    fn resolve(&self) -> Result<PathBuf, GntError> {
        let mut p = self.path.clone();
        for _ in 0..40 {
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    let to = fs::read_link(&p).map_err(|e| self.io_err("read", &p, &e))?;
                    p = dir_of(&p).join(to);
                }
                _ => return Ok(p),
            }
        }
        Err(GntError::Config(format!(
            "{}: too many levels of symbolic links",
            self.path.display()
        )))
    }

    /// config.data as it is now, read whole.
    fn current(&self) -> Result<Current, GntError> {
        let target = self.resolve()?;
        let named = |e: &std::io::Error| {
            if e.kind() == ErrorKind::Other {
                // Not a regular file, or a link swapped in meanwhile: nothing to read.
                GntError::Config(format!("Cannot read {}: {e}", target.display()))
            } else {
                self.io_err("read", &target, e)
            }
        };
        let Some((f, m)) = open_regular(&target).map_err(|e| named(&e))? else {
            return Ok(Current {
                target,
                file: None,
                fp: None,
                marks: None,
                mode: 0o644,
            });
        };
        let (fp, marks) = Fingerprint::of_file_marked(&f, MAX_CONFIG_LEN)
            .map_err(|e| self.io_err("read", &target, &e))?
            .ok_or_else(|| self.too_large(&target))?;
        Ok(Current {
            target,
            fp: Some(fp),
            marks: Some(marks),
            file: Some(f),
            mode: (m.mode() & 0o644) | 0o600,
        })
    }

    fn too_large(&self, p: &Path) -> GntError {
        let _ = self;
        GntError::Config(format!(
            "{}: larger than {} MiB; refusing to read it",
            p.display(),
            MAX_CONFIG_LEN >> 20
        ))
    }

    /// The lock file for a reader's shared lock; none for a read-only view.
    fn shared_lock(&self) -> Result<Option<File>, GntError> {
        if self.read_only {
            return Ok(None);
        }
        self.open_lock(false)
    }

    fn refuse_if_read_only(&self) -> Result<(), GntError> {
        if self.read_only {
            return Err(GntError::Exec(format!(
                "{}: opened read-only; nothing was written",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn open_lock(&self, create: bool) -> Result<Option<File>, GntError> {
        if create {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(self.dir())
                .map_err(|e| self.io_err("create the directory of", &self.path, &e))?;
        }
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                .open(&self.lock_path)
        };
        let f = match open(true) {
            Ok(f) => f,
            Err(e) if create && e.kind() == ErrorKind::NotFound => {
                match create_new(&self.lock_path, 0o644) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => open(true)
                        .map_err(|e| self.io_err("open the lock file", &self.lock_path, &e))?,
                    Err(e) => return Err(self.io_err("open the lock file", &self.lock_path, &e)),
                }
            }
            // Nothing was ever written: there is nothing to lock against yet.
            Err(e) if !create && e.kind() == ErrorKind::NotFound => return Ok(None),
            // A reader without write access still gets a consistent file (writes are
            // atomic renames); it just cannot take the shared lock.
            Err(e) if !create && e.kind() == ErrorKind::PermissionDenied => {
                return Ok(open(false).ok());
            }
            Err(e) => return Err(self.io_err("open the lock file", &self.lock_path, &e)),
        };
        let m = f
            .metadata()
            .map_err(|e| self.io_err("open the lock file", &self.lock_path, &e))?;
        if !m.is_file() {
            return Err(GntError::Exec(format!(
                "Cannot open the lock file {}: not a regular file but {}",
                self.lock_path.display(),
                kind_of(&m)
            )));
        }
        Ok(Some(f))
    }

    /// Temporaries are only written under a lock; holding the exclusive one, any that
    /// exist were left by a writer that died (SIGKILL, power loss) and are removed.
    fn remove_stale_temporaries(&self, target: &Path) {
        let name = |p: &Path| {
            let n = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("config.data");
            format!(".{n}.")
        };
        // `.config.data.tmp…` of old versions, `.config.data.spare.tmp…` (and the cache's)
        // where a spare could not be used, readers' `.config.data.cache.tmp…` (named by
        // `textfile::write_atomic_with`) and the `.config.cache.tmp…` of old versions.
        for (dir, prefix) in [
            (dir_of(target), name(target)),
            (self.dir(), name(&self.path)),
            (self.dir(), ".config.cache.tmp".to_owned()),
        ] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with(&prefix) && n.contains(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// The configuration in `cur` (a fresh one when there is none), from the cache when
    /// it was made from exactly its bytes, else parsed (and the cache rebuilt); and the
    /// fingerprint of the bytes it reflects.
    fn load(&self, cur: &Current) -> Result<(ClusterConfig, Option<Fingerprint>), GntError> {
        let (Some(file), Some(fp)) = (&cur.file, cur.fp) else {
            if self.read_only {
                return Err(GntError::Config(format!(
                    "{}: no configuration",
                    cur.target.display()
                )));
            }
            return Ok((ClusterConfig::new(), None));
        };
        if let Some(cfg) = self.load_cache(fp, file, &cur.target) {
            return Ok((cfg, Some(fp)));
        }
        let bytes = read_capped(file, fp.len(), MAX_CONFIG_LEN)
            .map_err(|e| self.io_err("read", &cur.target, &e))?
            .ok_or_else(|| self.too_large(&cur.target))?;
        // What was parsed, should the file have changed since it was opened.
        let fp = Fingerprint::of(&bytes);
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            GntError::Config(format!(
                "{}:{line}: not UTF-8 text (byte {})",
                cur.target.display(),
                e.valid_up_to()
            ))
        })?;
        let mut cfg = parse(text, &cur.target)?;
        // A configuration that breaks an invariant gets no cache, so every command parses
        // it again and reports it (`verify`) until it is fixed.
        cfg.origin.errors = verify::errors(&cfg);
        if cfg.origin.errors.is_empty() && !self.read_only {
            self.save_cache(fp, &cfg, cur.mode);
        }
        Ok((cfg, Some(fp)))
    }

    /// The configuration from the cache, if it was made from the bytes of `toml` (whose
    /// fingerprint is `fp`) and checks out.
    fn load_cache(&self, fp: Fingerprint, toml: &File, path: &Path) -> Option<ClusterConfig> {
        let (cache, _) = open_regular(&self.cache_path).ok()??;
        let (head, stored) = cache::load(cache, &fp, toml.try_clone().ok()?, path)?;
        Some(ClusterConfig {
            version: head.version,
            cluster: head.cluster,
            nodegroups: head.nodegroups,
            nodes: head.nodes,
            networks: head.networks,
            instances: Instances::from_stored(stored),
            origin: Default::default(),
        })
    }

    /// For tests: whether a valid cache exists for the current file.
    #[cfg(any(test, feature = "test-support"))]
    pub fn cache_is_fresh(&self) -> bool {
        let Ok(Current {
            file: Some(file),
            fp: Some(fp),
            target,
            ..
        }) = self.current()
        else {
            return false;
        };
        self.load_cache(fp, &file, &target).is_some()
    }

    /// Best effort: a missing or unwritable cache only costs speed. Readers may run side
    /// by side, so each writes its own temporary and renames it into place (a rename
    /// replaces whatever was there, FIFO or link, without opening it); see
    /// [`netconf::textfile::write_atomic_with`]. Not fsynced: a torn cache fails its check
    /// and is rebuilt.
    fn save_cache(&self, fp: Fingerprint, cfg: &ClusterConfig, mode: u32) {
        let Some(plan) = splice::cache_full(cfg, None) else {
            return;
        };
        let _ = netconf::textfile::write_atomic_with(
            &self.cache_path,
            mode,
            netconf::textfile::Durability::None,
            |f| {
                let crc = cache::write(f, &plan)?;
                cache::seal(f, &fp, crc)
            },
        );
    }

    /// Opens a file to write a new version of `live` into: its spare (the version before
    /// last) to overwrite in place when that is a plain file of its own that nobody
    /// reads (a loaded configuration holds a shared lock on its files), else a new file
    /// there, else (say the spare is a directory) a new temporary file beside it. Never
    /// through a link, never blocking on a FIFO, always with `mode`.
    fn open_spare(spare: &Path, mode: u32) -> FileResult<(File, PathBuf)> {
        let reusable = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(spare)
            .ok()
            .filter(|f| {
                f.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1)
                    && f.try_lock().is_ok()
                    && f.set_permissions(fs::Permissions::from_mode(mode)).is_ok()
            });
        if let Some(f) = reusable {
            return Ok((f, spare.to_owned()));
        }
        let _ = fs::remove_file(spare);
        if let Ok(f) = create_new(spare, mode) {
            return Ok((f, spare.to_owned()));
        }
        let mut last = None;
        for n in 0..8 {
            let mut tmp = spare.as_os_str().to_owned();
            tmp.push(format!(".tmp{}.{n}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            match create_new(&tmp, mode) {
                Ok(f) => return Ok((f, tmp)),
                Err(e) => last = Some((tmp, e)),
            }
        }
        Err(last.unwrap_or_else(|| (spare.to_owned(), ErrorKind::Other.into())))
    }

    /// Writes the spare of `spare` with `fill` and cuts it to what was written.
    fn fill_spare<T>(
        spare: &Path,
        mode: u32,
        fill: impl FnOnce(&mut File) -> std::io::Result<T>,
    ) -> FileResult<(File, PathBuf, T)> {
        let (mut f, path) = Self::open_spare(spare, mode)?;
        let out = at(&path, fill(&mut f))?;
        let len = at(&path, std::io::Seek::stream_position(&mut f))?;
        at(&path, f.set_len(len))?;
        Ok((f, path, out))
    }

    /// Puts `new` in place of `live` and keeps the replaced file as the next `spare`.
    /// Overwriting a file's allocated blocks costs the kernel a fraction of allocating
    /// new ones and freeing the old (about 2.5 ms of a 4 MB config.data's 4.3 ms).
    fn rotate(live: &Path, new: &Path, spare: &Path, old: &Path) -> FileResult<()> {
        // An `old` link is left only by a writer that died between these steps.
        let _ = fs::remove_file(old);
        let kept = fs::hard_link(live, old).is_ok();
        at(live, fs::rename(new, live))?;
        if kept && fs::rename(old, spare).is_err() {
            let _ = fs::remove_file(old);
        }
        Ok(())
    }

    /// Writes `cfg`, made from the bytes with fingerprint `loaded`, over `cur` if it still
    /// holds them (else `Ok(false)` and nothing written: a hand edit is never lost to a
    /// command that ran meanwhile).
    fn write(
        &self,
        cfg: &ClusterConfig,
        cur: &Current,
        loaded: Option<Fingerprint>,
    ) -> Result<bool, GntError> {
        let (target, mode) = (&cur.target, cur.mode);
        let plan = splice::plan(cfg, loaded);
        let dir = dir_of(target);
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config.data");
        let (spare, old) = (
            dir.join(format!(".{name}.spare")),
            dir.join(format!(".{name}.old")),
        );
        let hidden = |suffix: &str| {
            let n = self
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("config.data");
            self.dir().join(format!(".{n}{suffix}"))
        };
        let (cache_spare, cache_old) = (hidden(".cache.spare"), hidden(".cache.old"));
        // config.data is written and synced on another core while this one writes the
        // cache (its fingerprint still blank): the disk works while the CPU copies.
        let (written, cache) = std::thread::scope(|s| {
            let toml = s.spawn(|| {
                let (f, path, ()) =
                    Self::fill_spare(&spare, mode, |f| plan.toml.write_to(f, plan.toml_src))?;
                // The fingerprint of the bytes planned, which the cache describes: the
                // copied ranges by their CRC at load, from the marks, not read back. Should
                // the kernel have copied other bytes (an edit meanwhile) the cache stamped
                // with it matches no file and is not used. Read back only without marks.
                let fp = plan
                    .toml
                    .fingerprint(|from, len| match (&cur.marks, plan.toml_src) {
                        (Some(marks), Some(src)) => marks.range_crc(src, from, len),
                        _ => Err(ErrorKind::NotFound.into()),
                    })
                    .map(Some)
                    .or_else(|_| at(&path, Fingerprint::of_file(&f, u64::MAX)))?;
                at(&path, f.sync_all())?;
                // Unlocked explicitly: a child forked meanwhile (hooks, threads of a test
                // harness) may share this open file until it execs.
                let _ = f.unlock();
                let fp = fp.ok_or_else(|| (path.clone(), ErrorKind::FileTooLarge.into()))?;
                Ok((path, fp))
            });
            let cache = plan
                .cache
                .as_ref()
                .and_then(|c| Self::fill_spare(&cache_spare, mode, |f| cache::write(f, c)).ok());
            let written: FileResult<_> = toml.join().unwrap_or_else(|_| {
                Err((spare.clone(), std::io::Error::other("writer thread failed")))
            });
            (written, cache)
        });
        let (path, fp) = written.map_err(|(p, e)| self.io_err("write", &p, &e))?;
        if !self.still(cur, loaded) {
            if path != spare {
                let _ = fs::remove_file(&path);
            }
            return Ok(false);
        }
        Self::rotate(target, &path, &spare, &old)
            .and_then(|()| at(&dir, File::open(&dir).and_then(|d| d.sync_all())))
            .map_err(|(p, e)| {
                let _ = fs::remove_file(&path);
                self.io_err("write", &p, &e)
            })?;
        // Best effort: without a cache the next command parses the TOML.
        if let Some((f, path, crc)) = cache {
            let placed = cache::seal(&f, &fp, crc).is_ok()
                && f.unlock().is_ok()
                && Self::rotate(&self.cache_path, &path, &cache_spare, &cache_old).is_ok();
            if !placed {
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(&self.cache_path);
            }
        }
        Ok(true)
    }

    /// Whether config.data is still the file of `cur` and holds the bytes with fingerprint
    /// `loaded` (or is still absent): nobody changed it by hand, in place or by rename,
    /// since it was loaded.
    fn still(&self, cur: &Current, loaded: Option<Fingerprint>) -> bool {
        match (&cur.file, loaded) {
            (Some(f), Some(fp)) => {
                same_file(&cur.target, f)
                    && Fingerprint::of_file(f, MAX_CONFIG_LEN).ok().flatten() == Some(fp)
            }
            (None, None) => {
                fs::symlink_metadata(&cur.target).is_err_and(|e| e.kind() == ErrorKind::NotFound)
            }
            _ => false,
        }
    }
}

/// How many of a check's errors a command repeats; `gnt-cluster verify` lists them all.
const ERRORS_SHOWN: usize = 5;

pub(super) fn error_lines(errors: &[verify::Finding]) -> String {
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
    /// A read of a configuration that breaks an invariant (a hand edit) goes on, with a
    /// warning on stderr: readers show what is there; writers refuse until it is fixed.
    fn warn_if_inconsistent(&self, cfg: &ClusterConfig) {
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

fn dir_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Which state of a store a snapshot was read from; only the store that made it reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version(Of);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Of {
    /// The config.data bytes (none: the file did not exist).
    File(Option<Fingerprint>),
    /// The etcd revision a snapshot was read at.
    Etcd(i64),
    /// The count of commits of a store in memory.
    #[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
    Commits(u64),
}

impl Version {
    pub(super) fn etcd(revision: i64) -> Self {
        Version(Of::Etcd(revision))
    }

    /// The etcd revision a snapshot was read at (none for another store).
    pub fn etcd_revision(self) -> Option<i64> {
        self.as_etcd()
    }

    pub(super) fn as_etcd(self) -> Option<i64> {
        match self.0 {
            Of::Etcd(r) => Some(r),
            _ => None,
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    pub(super) fn commits(n: u64) -> Self {
        Version(Of::Commits(n))
    }

    #[cfg(any(test, feature = "test-support"))]
    pub(super) fn as_commits(self) -> Option<u64> {
        match self.0 {
            Of::Commits(n) => Some(n),
            Of::File(_) | Of::Etcd(_) => None,
        }
    }
}

pub(super) fn version_from_elsewhere() -> GntError {
    GntError::Exec("a snapshot's version from another store cannot be committed here".into())
}

/// The commit check of every store: `verify`'s invariants, with the place named.
pub(super) fn check_commit(cfg: &ClusterConfig, place: &str) -> Result<(), GntError> {
    verify::check_commit(cfg).map_err(|errors| {
        GntError::Config(format!(
            "{place}: refusing to commit an inconsistent configuration:{}\nRun 'gnt-cluster verify' to see every problem; 'gnt-cluster repair-pools' rebuilds the address pools from the NICs.",
            error_lines(&errors)
        ))
    })
}

impl Store for FileStore {
    fn changes(&self) -> Result<Box<dyn StoreWatch>, GntError> {
        Ok(Box::new(FileWatch::new(&self.path)?))
    }

    fn read(&self) -> Result<ClusterConfig, GntError> {
        let lock = self.shared_lock()?;
        if let Some(l) = &lock {
            l.lock_shared()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        let cfg = self.load(&self.current()?).map(|(cfg, _)| cfg)?;
        self.warn_if_inconsistent(&cfg);
        Ok(cfg)
    }

    fn read_versioned(&self) -> Result<(ClusterConfig, Version), GntError> {
        let lock = self.shared_lock()?;
        if let Some(l) = &lock {
            l.lock_shared()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        let cur = self.current()?;
        let (cfg, fp) = self.load(&cur)?;
        Ok((cfg, Version(Of::File(fp))))
    }

    fn commit_if_unchanged(
        &self,
        mut next: ClusterConfig,
        version: Version,
    ) -> Result<bool, GntError> {
        self.refuse_if_read_only()?;
        let lock = self.open_lock(true)?;
        if let Some(l) = &lock {
            l.lock()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        let cur = self.current()?;
        let Version(Of::File(loaded)) = version else {
            return Err(version_from_elsewhere());
        };
        if cur.fp != loaded {
            return Ok(false);
        }
        self.remove_stale_temporaries(&cur.target);
        self.check_invariants(&next)?;
        next.cluster.serial_no += 1;
        next.cluster.mtime = now();
        let written = self.write(&next, &cur, loaded);
        if !self.free_after_commit {
            std::mem::forget(next);
        }
        written
    }

    fn check_invariants(&self, cfg: &ClusterConfig) -> Result<(), GntError> {
        check_commit(cfg, &self.path.display().to_string())
    }

    fn transact(
        &self,
        f: &mut dyn FnMut(&mut ClusterConfig) -> Result<(), GntError>,
    ) -> Result<(), GntError> {
        self.refuse_if_read_only()?;
        let lock = self.open_lock(true)?;
        if let Some(l) = &lock {
            l.lock()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        let cur = self.current()?;
        self.remove_stale_temporaries(&cur.target);
        let (mut cfg, loaded) = self.load(&cur)?;
        f(&mut cfg)?;
        self.check_invariants(&cfg)?;
        cfg.cluster.serial_no += 1;
        cfg.cluster.mtime = now();
        let written = self.write(&cfg, &cur, loaded);
        if !self.free_after_commit {
            std::mem::forget(cfg);
        }
        match written? {
            true => Ok(()),
            false => Err(GntError::Exec(format!(
                "{} was changed (by hand?) while this command ran; nothing was written, run it again",
                cur.target.display()
            ))),
        }
        // The lock is released when `lock` is dropped, after the rename.
    }
}

/// The file text of `cfg`.
pub fn render(cfg: &ClusterConfig) -> Result<String, GntError> {
    String::from_utf8(splice::full_toml(cfg).0)
        .map_err(|_| GntError::Config("rendered configuration is not UTF-8".into()))
}

/// Parses a file's text; every problem names the file (and line, where there is one).
pub fn parse(text: &str, path: &Path) -> Result<ClusterConfig, GntError> {
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
    let mut cfg: ClusterConfig = toml::from_str(text).map_err(|e| {
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

    /// Shell completion reads through this view: it must leave every file as it was, not
    /// wait for a writer, and see no cluster where none was written.
    #[test]
    fn read_only_view_writes_nothing_waits_for_no_lock_and_needs_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.data");
        let ro = FileStore::new(&path).read_only();
        assert!(ro.read().is_err(), "an absent file is no cluster");
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
        let store = FileStore::new(&path);
        transaction(&store, |c| {
            c.cluster.name = "c1".into();
            Ok(())
        })
        .unwrap();
        // A stale cache would be rebuilt by an ordinary reader; this one only reads.
        let cache = dir.path().join("config.data.cache");
        fs::remove_file(&cache).unwrap();
        let listing = |d: &Path| {
            let mut v: Vec<_> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = (listing(dir.path()), fs::read(&path).unwrap());
        // A writer holding the lock does not hold this reader up.
        let held = File::open(dir.path().join("config.data.lock")).unwrap();
        held.lock().unwrap();
        assert_eq!(ro.read().unwrap().cluster.name, "c1");
        assert_eq!(ro.read_versioned().unwrap().0.cluster.name, "c1");
        assert!(transaction(&ro, |_| Ok(())).is_err());
        let (cfg, v) = ro.read_versioned().unwrap();
        assert!(!ro.commit_if_unchanged(cfg, v).unwrap_or(false));
        drop(held);
        assert_eq!((listing(dir.path()), fs::read(&path).unwrap()), before);
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
        // A cache with the right fingerprint but a damaged body is ignored too.
        let cache_path = dir.path().join("config.data.cache");
        let mut bad = fs::read(&cache_path).unwrap();
        let half = bad.len() / 2;
        bad.truncate(half);
        bad.extend_from_slice(&[1, 2, 3]);
        fs::write(&cache_path, bad).unwrap();
        assert_eq!(store.read().unwrap().cluster.name, "edited");
    }

    #[test]
    fn a_hand_edit_made_while_a_transaction_runs_is_not_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("config.data"));
        transaction(&store, |c| {
            c.cluster.name = "before".into();
            Ok(())
        })
        .unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        let edited = text.replace("\"before\"", "\"edited\"");
        for in_place in [true, false] {
            let e = transaction(&store, |c| {
                // In place at the same size, or as a new file renamed in, meanwhile.
                if in_place {
                    use std::os::unix::fs::FileExt;
                    let f = OpenOptions::new().write(true).open(store.path()).unwrap();
                    f.write_all_at(edited.as_bytes(), 0).unwrap();
                } else {
                    let tmp = dir.path().join("edit");
                    fs::write(&tmp, &edited).unwrap();
                    fs::rename(&tmp, store.path()).unwrap();
                }
                c.cluster.name = "command".into();
                Ok(())
            })
            .unwrap_err();
            assert!(e.to_string().contains("changed (by hand?)"), "{e}");
            assert_eq!(fs::read_to_string(store.path()).unwrap(), edited);
            assert_eq!(store.read().unwrap().cluster.name, "edited");
            fs::write(store.path(), &text).unwrap();
        }
    }

    #[test]
    fn writer_output_is_plain_toml_equal_to_the_model() {
        let mut cfg = ClusterConfig::new();
        cfg.cluster.name = "we\"ird\\name\n".into();
        let text = render(&cfg).unwrap();
        let back: ClusterConfig = toml::from_str(&text).unwrap();
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
