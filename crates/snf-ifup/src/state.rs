//! Per-TAP state under `/var/lib/snf-network/<tap>.toml`: the NIC as it was configured
//! (Ganeti's variables) and what `down` must undo. Written before anything is changed (so
//! that `down` after a partial `up` knows what to look for) and again when `up` finished.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use netconf::{IfName, NicEnv};
use serde::{Deserialize, Serialize};

use crate::firewall::{Driver, Family, TableSpec};
use crate::plan::{Flavour, Undo};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub tap: String,
    pub flavour: Flavour,
    /// False while an `up` is in progress (or was interrupted).
    pub complete: bool,
    /// Ganeti's variables of the NIC, in Ganeti's order.
    pub env: Vec<(String, String)>,
    /// Firewall tables that may hold chains of this TAP.
    pub families: Vec<Family>,
    /// (sysctl, value before our first `up`), restored by `down`.
    pub sysctl_restore: Vec<(String, String)>,
    /// The binding file written for nfdhcpd, if any.
    pub binding: Option<PathBuf>,
    pub undo: Undo,
    /// The chains and jumps applied (valid when `complete`).
    #[serde(default)]
    pub firewall: Vec<FwRecord>,
    /// The firewall driver that applied them.
    #[serde(default)]
    pub driver: Driver,
    /// The TAP's ifindex when it was configured: a TAP deleted and created again under the
    /// same name has another one, and its NIC is not this record's (see `watch`).
    #[serde(default)]
    pub ifindex: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwRecord {
    pub family: Family,
    pub spec: TableSpec,
}

pub use crate::firewall::FwMap;

pub fn to_records(m: &FwMap) -> Vec<FwRecord> {
    m.iter()
        .map(|(f, s)| FwRecord {
            family: *f,
            spec: s.clone(),
        })
        .collect()
}

impl State {
    pub fn fw_map(&self) -> FwMap {
        self.firewall
            .iter()
            .map(|r| (r.family, r.spec.clone()))
            .collect()
    }

    pub fn nic(&self) -> anyhow::Result<NicEnv> {
        NicEnv::from_env(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .with_context(|| format!("state of {}: recorded NIC is invalid", self.tap))
    }
}

pub fn path(dir: &Path, tap: &IfName) -> PathBuf {
    dir.join(format!("{tap}.toml"))
}

pub fn load(dir: &Path, tap: &IfName) -> anyhow::Result<Option<State>> {
    let p = path(dir, tap);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
    };
    let s: State =
        toml::from_str(&text).with_context(|| format!("invalid state file {}", p.display()))?;
    Ok(Some(s))
}

/// Writes atomically (temporary file + rename in the same directory). No fsync: the
/// state describes kernel objects that do not survive a reboot either.
pub fn save(dir: &Path, st: &State) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tap: IfName = st.tap.parse().map_err(anyhow::Error::msg)?;
    let target = path(dir, &tap);
    let tmp = dir.join(format!(".{}.tmp{}", st.tap, std::process::id()));
    let text = toml::to_string(st).context("serialising state")?;
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        fs::rename(&tmp, &target)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", target.display()))
}

pub fn remove(dir: &Path, tap: &IfName) -> anyhow::Result<()> {
    match fs::remove_file(path(dir, tap)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove state of {tap}"))
        }
        _ => Ok(()),
    }
}

/// Every recorded TAP, sorted.
pub fn all(dir: &Path) -> anyhow::Result<Vec<IfName>> {
    let mut v = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for e in rd {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(tap) = name.strip_suffix(".toml").and_then(|t| t.parse().ok()) {
            v.push(tap);
        }
    }
    v.sort();
    Ok(v)
}

/// An exclusive lock serialising snf-ifup runs on this node (firewall batches are computed
/// from a dump, so two runs must not interleave).
pub fn lock(dir: &Path) -> anyhow::Result<fs::File> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let p = dir.join(".lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("cannot open {}", p.display()))?;
    f.lock()
        .with_context(|| format!("cannot lock {}", p.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_list() {
        let d = tempfile::tempdir().unwrap();
        let st = State {
            tap: "tap3".into(),
            flavour: Flavour::Kvm,
            complete: true,
            env: vec![("INSTANCE".into(), "vm".into())],
            families: vec![Family::Eb],
            sysctl_restore: vec![("net.ipv4.conf.tap3.proxy_arp".into(), "0".into())],
            binding: None,
            undo: Undo::default(),
            firewall: vec![FwRecord {
                family: Family::Eb,
                spec: TableSpec::default(),
            }],
            driver: Driver::Nftables,
            ifindex: Some(7),
        };
        save(d.path(), &st).unwrap();
        let tap: IfName = "tap3".parse().unwrap();
        assert_eq!(load(d.path(), &tap).unwrap(), Some(st));
        let _l = lock(d.path()).unwrap();
        assert_eq!(all(d.path()).unwrap(), std::slice::from_ref(&tap));
        remove(d.path(), &tap).unwrap();
        remove(d.path(), &tap).unwrap();
        assert_eq!(load(d.path(), &tap).unwrap(), None);
    }
}
