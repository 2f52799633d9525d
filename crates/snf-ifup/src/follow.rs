//! What `watch` does when the cluster store may have changed: every NIC brought up from the
//! store (`up --instance`) whose TAP exists is compared with what the store says now, and
//! re-applied (as `up` would) when anything of it differs: its address, network, the
//! network's tags, gateways, IPv6 subnet or MAC prefix, its MAC, mode or link. A NIC whose
//! instance (or NIC) is no longer in the store loses its rules, as `down` would; its TAP
//! stays, it belongs to the VM.
//!
//! The store is only read here, through [`Store`], whatever keeps it; a store that cannot
//! be read (a half-written hand edit, an unreachable server) changes nothing applied.
//!
//! On etcd every pass also refreshes the node's local snapshot (see `snapshot`) when the
//! revision read is new, NICs followed or not: it is what `up` falls back to in an outage.

use std::path::PathBuf;

use netconf::{IfName, NicEnv};
use netconf_cluster::NicEnvFromConfig;
use netconf_cluster::config::etcd::EtcdUrl;
use netconf_cluster::config::{ClusterConfig, Store};

use crate::apply::{self, Ctx};
use crate::log;
use crate::node;
use crate::snapshot;
use crate::state::{self, State, StoreNic};

/// Keeps the local snapshot of a store in etcd.
pub struct SnapshotKeeper {
    path: PathBuf,
    url: EtcdUrl,
    node: String,
    /// The revision last written.
    written: Option<i64>,
}

impl SnapshotKeeper {
    pub fn new(path: PathBuf, url: EtcdUrl, node: String) -> Self {
        SnapshotKeeper {
            path,
            url,
            node,
            written: None,
        }
    }

    /// Writes what this node needs of `cfg` (read at `revision`), unless that revision is
    /// written already; whether it failed.
    fn keep(&mut self, cfg: &ClusterConfig, revision: Option<i64>, followed: &[String]) -> bool {
        let Some(rev) = revision else {
            return false;
        };
        if self.written == Some(rev) {
            return false;
        }
        let mine = snapshot::for_node(cfg, &self.node, followed);
        match snapshot::write(&self.path, &self.url, rev, &mine) {
            Ok(()) => {
                log::info(&format!(
                    "local snapshot of revision {rev} written to {} ({} instances)",
                    self.path.display(),
                    mine.instances.len()
                ));
                self.written = Some(rev);
                false
            }
            Err(e) => {
                log::error(&format!("cannot keep the local snapshot: {e:#}"));
                true
            }
        }
    }
}

/// Brings every followed NIC in line with the store, and keeps the local snapshot when
/// `keeper` is given. Returns whether something failed that a later pass may fix (the
/// caller tries again after a while).
pub fn sync(ctx: &Ctx, store: &dyn Store, keeper: Option<&mut SnapshotKeeper>) -> bool {
    let dir = &ctx.cfg.state_dir;
    let taps = match state::all(dir) {
        Ok(t) => t,
        Err(e) => {
            log::error(&format!("following the store: {e:#}"));
            return true;
        }
    };
    let mut followed = Vec::new();
    for tap in taps {
        match state::load(dir, &tap) {
            Ok(Some(st)) => {
                // A gone TAP is the link watch's business. An unfinished record is an
                // `up` under way or interrupted, or a `down` that left something to undo:
                // neither is this watcher's to redo.
                if let Some(from) = st.store.clone()
                    && st.complete
                    && node::link_exists(tap.as_str())
                {
                    followed.push((tap, st, from));
                }
            }
            Ok(None) => {}
            Err(e) => log::error(&format!("{tap}: {e:#}")),
        }
    }
    if followed.is_empty() && keeper.is_none() {
        return false;
    }
    let etcd = keeper.is_some();
    let read = match keeper {
        // The revision read is the snapshot's; a follower shows no verify warnings.
        Some(_) => store.read_versioned().map(|(c, v)| (c, v.etcd_revision())),
        None => store.read().map(|c| (c, None)),
    };
    let (cfg, revision) = match read {
        Ok(c) => c,
        Err(e) => {
            log::error(&format!(
                "cannot read the cluster store ({}); the {} NICs taken from it stay as applied",
                e.to_string().replace('\n', " "),
                followed.len()
            ));
            // A changed file is told again when it is written whole; an etcd watch has
            // moved past the change it told, so the read is tried again until it works.
            return etcd;
        }
    };
    // An absent config.data (or an empty prefix) reads as a fresh cluster: that is a
    // store not there, not every VM of the node deleted.
    if cfg.instances.is_empty() {
        if followed.is_empty() {
            return false;
        }
        log::warn(&format!(
            "the cluster store holds no instances; the {} NICs taken from it stay as applied",
            followed.len()
        ));
        return false;
    }
    let mut retry = false;
    if let Some(k) = keeper {
        let uuids: Vec<String> = followed
            .iter()
            .map(|(_, _, f)| f.instance_uuid.clone())
            .collect();
        retry |= k.keep(&cfg, revision, &uuids);
    }
    for (tap, st, from) in &followed {
        if let Err(e) = follow_one(ctx, &cfg, tap, st, from) {
            log::error(&format!("{tap}: {e:#}"));
            retry = true;
        }
    }
    retry
}

/// A recorded variable of the NIC, escaped so that a log line stays one line.
fn recorded(st: &State, key: &str) -> String {
    st.env
        .iter()
        .find(|(k, _)| k == key)
        .map_or_else(|| "?".to_owned(), |(_, v)| v.escape_debug().to_string())
}

fn follow_one(
    ctx: &Ctx,
    cfg: &ClusterConfig,
    tap: &IfName,
    st: &State,
    from: &StoreNic,
) -> anyhow::Result<()> {
    let name = recorded(st, "INSTANCE");
    let gone = match cfg.instances.get_cloned(&from.instance_uuid) {
        None => Some(format!("instance {name} is no longer in the cluster store")),
        Some(i) if i.nics.len() <= from.index as usize => Some(format!(
            "instance {name} has no NIC {} in the cluster store any more",
            from.index
        )),
        Some(_) => None,
    };
    if let Some(why) = gone {
        log::warn(&format!(
            "{tap}: {why} but its TAP exists; removing its rules (the TAP stays)"
        ));
        return apply::down(ctx, tap);
    }
    let mut nic = match NicEnv::from_config(cfg, &from.instance_uuid, from.index) {
        Ok(n) => n,
        Err(e) => {
            // Nothing to gain from trying again before the store changes.
            log::error(&format!(
                "{tap}: NIC {} of {name} in the cluster store: {e}; kept as applied",
                from.index
            ));
            return Ok(());
        }
    };
    nic.interface = Some(tap.clone());
    let now = nic.to_env();
    let changed = changed_vars(&st.env, &now);
    if changed.is_empty() {
        return Ok(());
    }
    log::notice(&format!(
        "{tap}: NIC {} of {name} changed in the cluster store ({}); re-applying",
        from.index,
        changed.join(", ")
    ));
    apply::up(ctx, &nic, tap, st.flavour, true)?;
    if !ctx.dry_run {
        state::mark_from_store(&ctx.cfg.state_dir, tap, from.clone())?;
    }
    log::notice(&format!("{tap} re-applied"));
    Ok(())
}

/// The names of the variables that differ between two environments.
fn changed_vars(old: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let get =
        |v: &[(String, String)], k: &str| v.iter().find(|(n, _)| n == k).map(|(_, x)| x.clone());
    for (k, _) in old.iter().chain(new) {
        if !out.contains(k) && get(old, k) != get(new, k) {
            out.push(k.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_vars_names_each_difference_once() {
        let v = |a: &[(&str, &str)]| -> Vec<(String, String)> {
            a.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        let old = v(&[
            ("IP", "198.51.100.2"),
            ("MAC", "aa:00:00:00:00:01"),
            ("X", "1"),
        ]);
        let new = v(&[
            ("IP", "198.51.100.3"),
            ("MAC", "aa:00:00:00:00:01"),
            ("Y", "1"),
        ]);
        assert_eq!(changed_vars(&old, &new), ["IP", "X", "Y"]);
        assert!(changed_vars(&old, &old).is_empty());
    }
}
