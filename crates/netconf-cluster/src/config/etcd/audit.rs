//! `gnt-cluster verify` on etcd: the index keys against the instances. The keys
//! `names/instance/<name>` and `macs/<mac>` keep names and MACs unique across commands
//! that commit side by side (each is created only if absent), but the model read from
//! etcd does not hold them, so the checks of `verify` cannot see one that is stale,
//! missing or pointing to the wrong instance (a hand edit with etcdctl, a restore of part
//! of the keys). A missing key lets two commands hand out one name or MAC; a stale one
//! refuses a free one. Each mismatch is one finding, under its own code.

use std::collections::BTreeMap;

use super::client::{Client, EtcdError};
use super::keys::index_keys;
use super::keys::{Key, Layout};
use crate::config::model::ClusterConfig;
use crate::config::verify::{Finding, Level, codes};

/// Every mismatch between the index keys at `revision` and the instances of `cfg` (read
/// at that revision): a key whose instance does not exist or does not hold its name or
/// MAC, and a name or MAC of an instance without its key.
pub(super) fn index_findings(
    client: &Client,
    layout: &Layout,
    cfg: &ClusterConfig,
    revision: i64,
) -> Result<Vec<Finding>, EtcdError> {
    let mut held: BTreeMap<Key, String> = BTreeMap::new();
    for dir in [Key::InstanceName(String::new()), Key::Mac(String::new())] {
        let r = client.range_prefix(&layout.key(&dir), Some(revision))?;
        for kv in r.kvs {
            // A key this layout does not know failed the read of the cluster already.
            if let Ok(k) = layout.parse(&kv.key) {
                held.insert(k, String::from_utf8_lossy(&kv.value).into_owned());
            }
        }
    }
    let all = cfg.instances.all_decoded();
    // Each index key the instances need: the instance's UUID, and what of it the key holds.
    let mut needed: BTreeMap<Key, (&str, String)> = BTreeMap::new();
    for (uuid, inst) in all {
        for k in index_keys(inst) {
            let what = match &k {
                Key::Mac(m) => {
                    let idx = inst
                        .nics
                        .iter()
                        .position(|n| n.mac.to_string() == *m)
                        .unwrap_or(0);
                    format!("NIC {idx}'s MAC {m}")
                }
                _ => "its name".to_owned(),
            };
            needed.entry(k).or_insert((uuid.as_str(), what));
        }
    }
    let name_of = |uuid: &str| all.get(uuid).map(|i| i.name.as_str().to_owned());
    let rel = |k: &Key| {
        let raw = layout.key(k);
        let tail = raw.strip_prefix(layout.root()).unwrap_or(&raw);
        netconf::name::printable(&String::from_utf8_lossy(tail))
    };
    let pointee = |target: &str| match name_of(target) {
        Some(n) => format!("instance {n} ({})", netconf::name::printable(target)),
        None => format!(
            "{}, which is not an instance",
            netconf::name::printable(target)
        ),
    };
    let mut out = Vec::new();
    let mut finding = |kind: &'static str, item: String, msg: String| {
        out.push(Finding {
            level: Level::Error,
            code: codes::STORE_INDEX,
            kind,
            item,
            msg,
        });
    };
    for (k, target) in &held {
        match needed.get(k) {
            Some((uuid, _)) if *uuid == target.as_str() => {}
            Some((uuid, _)) => finding(
                "instance",
                name_of(uuid).unwrap_or_default(),
                format!(
                    "index key {} points to {}, not to this instance ({uuid})",
                    rel(k),
                    pointee(target)
                ),
            ),
            None => {
                let why = match (k, name_of(target)) {
                    (_, None) => " (a stale key)",
                    (Key::Mac(_), Some(_)) => ", which has no NIC with that MAC",
                    (_, Some(_)) => ", which has another name",
                };
                finding(
                    "cluster",
                    String::new(),
                    format!("index key {} points to {}{why}", rel(k), pointee(target)),
                );
            }
        }
    }
    for (k, (uuid, what)) in &needed {
        if !held.contains_key(k) {
            finding(
                "instance",
                name_of(uuid).unwrap_or_default(),
                format!(
                    "{what} has no index key {}: another command may take it too",
                    rel(k)
                ),
            );
        }
    }
    Ok(out)
}
