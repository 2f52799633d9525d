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
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::cache;
use super::model::{CONFIG_VERSION, Config, now};
use crate::error::GntError;

pub const DEFAULT_CONFIG_PATH: &str = "/var/lib/gnt-network/config.data";

const HEADER: &str = "# netconf cluster configuration: change it with gnt-network, gnt-group, gnt-node and\n# gnt-instance only (they lock, validate and write it atomically).\n";
/// The last line of every file we write; its absence means the file was cut short.
const END_MARKER: &str = "# end of config.data";

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
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, what: &str, p: &Path, e: &std::io::Error) -> GntError {
        let _ = self;
        GntError::Exec(format!("Cannot {what} {}: {e}", p.display()))
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
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Stamp::of(&m),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Config::new()),
            Err(e) => return Err(self.io_err("read", &self.path, &e)),
        };
        if let Some(cfg) = self.load_cache(&stamp) {
            return Ok(cfg);
        }
        let text =
            fs::read_to_string(&self.path).map_err(|e| self.io_err("read", &self.path, &e))?;
        let cfg = parse(&text, &self.path)?;
        // Only if the file did not change while we read it.
        if fs::metadata(&self.path).map(|m| Stamp::of(&m)).ok() == Some(stamp) {
            self.save_cache(&stamp, &cfg);
        }
        Ok(cfg)
    }

    /// Public for benchmarks and tests: whether a valid cache exists for the current file.
    pub fn cache_is_fresh(&self) -> bool {
        fs::metadata(&self.path)
            .ok()
            .and_then(|m| self.load_cache(&Stamp::of(&m)))
            .is_some()
    }

    fn load_cache(&self, stamp: &Stamp) -> Option<Config> {
        let bytes = fs::read(&self.cache_path).ok()?;
        let body = bytes.strip_prefix(&stamp.header()[..])?;
        cache::decode(body)
    }

    /// Best effort: a missing or unwritable cache only costs speed.
    fn save_cache(&self, stamp: &Stamp, cfg: &Config) {
        if let Some(body) = cache::encode(cfg) {
            self.save_cache_bytes(stamp, &body);
        }
    }

    fn save_cache_bytes(&self, stamp: &Stamp, body: &[u8]) {
        let mut bytes = Vec::with_capacity(64 + body.len());
        bytes.extend_from_slice(&stamp.header());
        bytes.extend_from_slice(body);
        let tmp = self
            .dir()
            .join(format!(".config.cache.tmp{}", std::process::id()));
        if fs::write(&tmp, &bytes).is_err() || fs::rename(&tmp, &self.cache_path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    fn write(&self, cfg: &Config) -> Result<(), GntError> {
        // The snapshot cache is encoded on the second core while the TOML is rendered.
        let (text, cache_body) = std::thread::scope(|scope| {
            let body = scope.spawn(|| cache::encode(cfg));
            let text = render(cfg);
            (text, body.join().ok().flatten())
        });
        let text = text?;
        let dir = self.dir();
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("config.data"),
            std::process::id()
        ));
        let result = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(&dir)?.sync_all()
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.io_err("write", &self.path, &e)
        })?;
        if let (Ok(m), Some(body)) = (fs::metadata(&self.path), cache_body) {
            self.save_cache_bytes(&Stamp::of(&m), &body);
        }
        Ok(())
    }
}

impl Store for FileStore {
    fn read(&self) -> Result<Config, GntError> {
        let lock = self.open_lock(false)?;
        if let Some(l) = &lock {
            l.lock_shared()
                .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        }
        self.load()
    }

    fn transact(
        &self,
        f: &mut dyn FnMut(&mut Config) -> Result<(), GntError>,
    ) -> Result<(), GntError> {
        let lock = self.open_lock(true)?.expect("created");
        lock.lock()
            .map_err(|e| self.io_err("lock", &self.lock_path, &e))?;
        self.remove_stale_temporaries();
        let mut cfg = self.load()?;
        f(&mut cfg)?;
        cfg.cluster.serial_no += 1;
        cfg.cluster.mtime = now();
        self.write(&cfg)
        // The lock is released when `lock` is dropped, after the rename.
    }
}

/// The identity of a config.data file; ctime cannot be set back by users, and the atomic
/// rename gives every written version a new inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp([u64; 7]);

impl Stamp {
    const MAGIC: &'static [u8; 8] = b"NCCACHE1";

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

    fn header(&self) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..8].copy_from_slice(Self::MAGIC);
        for (i, v) in self.0.iter().enumerate() {
            h[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        h
    }
}

/// The file text of `cfg`.
pub fn render(cfg: &Config) -> Result<String, GntError> {
    let mut s = String::with_capacity(4096 + cfg.instances.len() * 400);
    s.push_str(HEADER);
    super::writer::write_config_parallel(&mut s, cfg);
    s.push('\n');
    s.push_str(END_MARKER);
    s.push('\n');
    Ok(s)
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
    let cfg: Config = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        GntError::Config(format!("{p}:{line}: {}", e.message()))
    })?;
    if cfg.version == 0 {
        return Err(GntError::Config(format!("{p}: version must be at least 1")));
    }
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
