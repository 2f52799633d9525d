//! The node's local copy of the cluster store (etcd mode), so that a VM can boot on a node
//! whose etcd is down: `watch --store` writes what this node needs (the cluster, groups,
//! nodes, networks, and the instances of this node) each time it reads a new revision, and
//! `up --instance` reads it when etcd cannot be reached in time.
//!
//! The file is config.data's format, so the file store's parser reads it, after one
//! comment line that names the cluster it came from (its etcd prefix), the revision and
//! when it was written. It is written atomically (`netconf::textfile::write_atomic`: a
//! temporary file created exclusively with mode 0600, fsync, rename, fsync of the
//! directory) in a directory created with mode 0700.
//! Read back it is distrusted as any input: a symbolic link, a FIFO, a device or a file
//! over the size limit is refused, without blocking.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use netconf_cluster::config::etcd::EtcdUrl;
use netconf_cluster::config::{ClusterConfig, Instances, parse, render};

/// A snapshot is refused above this size (as config.data is).
const MAX_LEN: u64 = 256 << 20;
const HEADER: &str = "# snf-ifup store snapshot:";

/// Where a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub prefix: String,
    pub revision: i64,
    /// Seconds since the epoch.
    pub written: u64,
}

impl Meta {
    fn line(&self) -> String {
        format!(
            "{HEADER} prefix={} revision={} written={}\n",
            self.prefix, self.revision, self.written
        )
    }

    fn parse(line: &str) -> Option<Meta> {
        let rest = line.strip_prefix(HEADER)?;
        let mut m = Meta {
            prefix: String::new(),
            revision: 0,
            written: 0,
        };
        for kv in rest.split_whitespace() {
            match kv.split_once('=')? {
                ("prefix", v) => m.prefix = v.to_owned(),
                ("revision", v) => m.revision = v.parse().ok()?,
                ("written", v) => m.written = v.parse().ok()?,
                _ => {}
            }
        }
        (!m.prefix.is_empty() && m.revision > 0).then_some(m)
    }

    /// How long ago it was written.
    pub fn age(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Duration::from_secs(now.saturating_sub(self.written))
    }
}

/// What of `cfg` this node needs: everything but the instances of other nodes. An
/// instance with no primary node, one of `node` (a node name), and those in `keep` (NICs
/// this node follows) stay; when `node` is not a node of the cluster, every instance stays.
pub fn for_node(cfg: &ClusterConfig, node: &str, keep: &[String]) -> ClusterConfig {
    let uuid = cfg
        .nodes
        .iter()
        .find(|(_, n)| n.name.as_str() == node)
        .map(|(u, _)| u.clone());
    let Some(uuid) = uuid else {
        return cfg.clone();
    };
    // Built up without the other nodes' instances, which may be most of the cluster.
    let mine: BTreeMap<String, _> = cfg
        .instances
        .all_decoded()
        .iter()
        .filter(|(u, i)| i.primary_node.as_ref().is_none_or(|p| *p == uuid) || keep.contains(u))
        .map(|(u, i)| (u.clone(), i.clone()))
        .collect();
    ClusterConfig {
        version: cfg.version,
        cluster: cfg.cluster.clone(),
        nodegroups: cfg.nodegroups.clone(),
        nodes: cfg.nodes.clone(),
        networks: cfg.networks.clone(),
        instances: Instances::from_map(mine),
        origin: cfg.origin.clone(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `cfg`, read at `revision` from `url`, to `path` atomically.
pub fn write(path: &Path, url: &EtcdUrl, revision: i64, cfg: &ClusterConfig) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let m = fs::symlink_metadata(&dir).with_context(|| format!("{}", dir.display()))?;
    if !m.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let meta = Meta {
        prefix: url.prefix().to_owned(),
        revision,
        written: now_secs(),
    };
    let text = render(cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    netconf::textfile::write_atomic_with(
        path,
        0o600,
        netconf::textfile::Durability::Directory,
        |f| {
            f.write_all(meta.line().as_bytes())?;
            f.write_all(text.as_bytes())
        },
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    // A watcher killed while writing left its temporary (the snapshot can be large).
    netconf::textfile::remove_stale_temporaries(path, Duration::from_secs(600));
    Ok(())
}

/// Reads the snapshot at `path`, which must be of the cluster `url` names (its prefix).
pub fn read(path: &Path, url: &EtcdUrl) -> anyhow::Result<(ClusterConfig, Meta)> {
    let shown = path.display();
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot open {shown}"))?;
    let m = f.metadata().with_context(|| format!("{shown}"))?;
    if !m.file_type().is_file() {
        bail!("{shown} is not a regular file");
    }
    if m.len() > MAX_LEN {
        bail!("{shown} is larger than {MAX_LEN} bytes");
    }
    let mut bytes = Vec::new();
    (&mut f)
        .take(MAX_LEN + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {shown}"))?;
    if bytes.len() as u64 > MAX_LEN {
        bail!("{shown} is larger than {MAX_LEN} bytes");
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown} is not UTF-8"))?;
    let first = text.lines().next().unwrap_or_default();
    let Some(meta) = Meta::parse(first) else {
        bail!("{shown} is not a snapshot of snf-ifup (no valid first line)");
    };
    if meta.prefix != url.prefix() {
        bail!(
            "{shown} is a snapshot of the cluster under {}, not of {url}",
            netconf::name::printable(&meta.prefix)
        );
    }
    let cfg = parse(&text, path).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((cfg, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(prefix: &str) -> EtcdUrl {
        format!("etcd://127.0.0.1:2379{prefix}").parse().unwrap()
    }

    #[test]
    fn a_snapshot_round_trips_and_names_its_cluster() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("store/cluster.data");
        let cfg = ClusterConfig::new();
        write(&p, &url("/c1"), 42, &cfg).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        let (back, meta) = read(&p, &url("/c1")).unwrap();
        assert_eq!(meta.revision, 42);
        assert_eq!(meta.prefix, "/c1");
        assert!(meta.age() < Duration::from_secs(60));
        assert_eq!(render(&back).unwrap(), render(&cfg).unwrap());
        let e = read(&p, &url("/c2")).unwrap_err().to_string();
        assert!(e.contains("not of etcd://"), "{e}");
        // A second write replaces it.
        write(&p, &url("/c1"), 43, &cfg).unwrap();
        assert_eq!(read(&p, &url("/c1")).unwrap().1.revision, 43);
    }

    #[test]
    fn a_node_keeps_its_own_unplaced_and_followed_instances() {
        use netconf_cluster::ops::{Feedback, instance, node};
        let mut cfg = ClusterConfig::new();
        node::add(&mut cfg, "node-a", None, None, None).unwrap();
        node::add(&mut cfg, "node-b", None, None, None).unwrap();
        for (name, on) in [
            ("a1", Some("node-a")),
            ("b1", Some("node-b")),
            ("b2", Some("node-b")),
            ("free", None),
        ] {
            let a = instance::AddInstance {
                name: name.into(),
                node: on.map(str::to_owned),
                nics: vec![instance::NicSpec::parse("link=br0").unwrap()],
                ..Default::default()
            };
            instance::add(&mut cfg, &a, &mut Feedback::default()).unwrap();
        }
        let names = |c: &ClusterConfig| {
            let mut n = c.instances.names();
            n.sort();
            n
        };
        let b2 = cfg.instance_uuid("b2").unwrap();
        let mine = for_node(&cfg, "node-a", &[b2]);
        assert_eq!(names(&mine), ["a1", "b2", "free"]);
        assert_eq!(mine.nodes.len(), 2);
        assert_eq!(mine.networks, cfg.networks);
        // A node the cluster does not know: every instance, rather than none.
        assert_eq!(names(&for_node(&cfg, "node-z", &[])), names(&cfg));
    }

    #[test]
    fn links_fifos_big_and_foreign_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let u = url("/c1");
        let real = d.path().join("real");
        write(&real, &u, 1, &ClusterConfig::new()).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(read(&link, &u).is_err());
        let fifo = d.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Opened without blocking, then refused.
        let e = read(&fifo, &u).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let big = d.path().join("big");
        fs::File::create(&big)
            .unwrap()
            .set_len(MAX_LEN + 1)
            .unwrap();
        assert!(read(&big, &u).unwrap_err().to_string().contains("larger"));
        let plain = d.path().join("config.data");
        fs::write(&plain, render(&ClusterConfig::new()).unwrap()).unwrap();
        assert!(
            read(&plain, &u)
                .unwrap_err()
                .to_string()
                .contains("not a snapshot")
        );
        // A planted link at the temporary's name (the old one, and the next ones used
        // now) is replaced, not followed.
        let victim = d.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join(".real.tmp")).unwrap();
        for seq in 0..256 {
            let tmp = netconf::textfile::temp_path(&real, seq).unwrap();
            std::os::unix::fs::symlink(&victim, tmp).unwrap();
        }
        // What a watcher killed while writing left, long ago: swept.
        let dead = d.path().join(".real.tmp999999.0");
        let f = fs::File::create(&dead).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        write(&real, &u, 2, &ClusterConfig::new()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!dead.exists(), "a killed watcher's temporary stays");
    }
}
