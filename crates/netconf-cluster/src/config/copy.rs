//! `gnt-cluster copy-store`: a cluster copied from one store to another (config.data to
//! etcd and back), then read back and verified.
//!
//! A store is named by a URL: `etcd://host:port[,host:port…][/prefix]` for etcd, and
//! `file:///abs/path/config.data` or a plain path for the file store. The copy keeps the
//! cluster's serial and times, so a file copied to etcd and back is byte-identical.

use std::path::PathBuf;
use std::str::FromStr;

use super::etcd::{self, EtcdUrl};
use super::model::ClusterConfig;
use super::store::{FileStore, Location, Store, open_at};
use super::verify;
use crate::error::GntError;

impl FromStr for Location {
    type Err = String;

    /// `etcd://…`, `file:///path`, or a plain path (anything without `://`).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("etcd://") || s.starts_with("etcds://") {
            return s.parse::<EtcdUrl>().map(Location::Etcd);
        }
        let path = match s.split_once("://") {
            Some(("file", rest)) => {
                if !rest.starts_with('/') {
                    return Err(format!(
                        "'{s}': a file URL takes an absolute path (file:///var/lib/gnt-network/config.data)"
                    ));
                }
                rest
            }
            Some((scheme, _)) => {
                return Err(format!(
                    "'{}': unknown store scheme '{}' (etcd://, file:// or a path)",
                    netconf::name::printable(s),
                    netconf::name::printable(scheme)
                ));
            }
            None => s,
        };
        if path.is_empty() || path.ends_with('/') {
            return Err(format!("'{s}': not a file path"));
        }
        Ok(Location::File(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Etcd(u) => write!(f, "{u}"),
        }
    }
}

/// What a copy did.
#[derive(Debug)]
pub struct Copied {
    pub serial: u64,
    pub groups: usize,
    pub nodes: usize,
    pub networks: usize,
    pub instances: usize,
    /// `gnt-cluster verify`'s findings, equal on both sides.
    pub errors: usize,
    pub warnings: usize,
}

fn holds_anything(at: &Location) -> Result<bool, GntError> {
    match at {
        Location::File(p) => Ok(FileStore::new(p).exists()),
        Location::Etcd(u) => etcd::copy::holds_anything(u),
    }
}

/// Whether two locations are one store (copying a store onto itself would empty it).
fn same_place(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::File(x), Location::File(y)) => {
            x == y || matches!((x.canonicalize(), y.canonicalize()), (Ok(cx), Ok(cy)) if cx == cy)
        }
        (Location::Etcd(x), Location::Etcd(y)) => {
            x.prefix() == y.prefix() && x.endpoints().iter().any(|e| y.endpoints().contains(e))
        }
        _ => false,
    }
}

/// `verify`'s findings as `gnt-cluster verify --error-codes` prints them.
fn findings(cfg: &ClusterConfig) -> Vec<String> {
    verify::verify(cfg).iter().map(|f| f.coded()).collect()
}

/// Copies the cluster at `from` to `to` (which must hold nothing, unless `replace`),
/// then reads the copy back: it must equal the source, and verify must find the same.
pub fn copy_store(from: &Location, to: &Location, replace: bool) -> Result<Copied, GntError> {
    if same_place(from, to) {
        return Err(GntError::Usage(format!(
            "--from and --to name the same store ({to})"
        )));
    }
    if !holds_anything(from)? {
        return Err(GntError::Exec(format!(
            "{from} holds no cluster; nothing to copy"
        )));
    }
    // Checked before reading the source, so a refusal costs nothing and says so at once
    // (and again under the target's own lock or txn guard when writing).
    if !replace && holds_anything(to)? {
        return Err(etcd::copy::refused(&to.to_string()));
    }
    let (src, _) = open_at(from).read_versioned()?;
    match to {
        Location::File(p) => FileStore::new(p).write_copy(&src, replace)?,
        Location::Etcd(u) => etcd::copy::write_whole(u, &src, replace)?,
    }
    let (back, _) = open_at(to).read_versioned().map_err(|e| {
        let e = match e {
            GntError::Exec(m) => m,
            other => other.to_string(),
        };
        GntError::Exec(format!(
            "{to}: the copy was written, but reading it back to verify it failed: {e}"
        ))
    })?;
    if back != src {
        return Err(GntError::Exec(format!(
            "{to}: the copy read back differs from {from}; do not use it (run copy-store again with --force)"
        )));
    }
    let (a, b) = (findings(&src), findings(&back));
    if a != b {
        return Err(GntError::Exec(format!(
            "{to}: gnt-cluster verify finds other problems in the copy than in {from}:\n  source: {}\n  copy: {}",
            a.join("; "),
            b.join("; ")
        )));
    }
    let all = verify::verify(&src);
    let errors = all
        .iter()
        .filter(|f| f.level == verify::Level::Error)
        .count();
    Ok(Copied {
        serial: src.cluster.serial_no,
        groups: src.nodegroups.len(),
        nodes: src.nodes.len(),
        networks: src.networks.len(),
        instances: src.instances.len(),
        errors,
        warnings: all.len() - errors,
    })
}
