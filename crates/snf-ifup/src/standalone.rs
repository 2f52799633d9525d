//! The standalone path: `snf-ifup up TAP --instance NAME --nic IDX [--config FILE |
//! --store URL]` takes the NIC from the cluster store (config.data, or etcd) instead of
//! Ganeti's environment. On etcd a VM must boot also when etcd is down: the read gets
//! `ETCD_WAIT`, and when etcd cannot be reached by then the node's local snapshot (kept by
//! `watch --store`) stands in for it, said on stderr.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use netconf::NicEnv;
use netconf_cluster::NicEnvFromConfig;
use netconf_cluster::config::etcd::{EtcdStore, EtcdUrl};
use netconf_cluster::config::{ClusterConfig, Store, open};
use netconf_cluster::error::GntError;

use crate::log;
use crate::snapshot;

/// How long `up` waits for etcd before it takes the local snapshot.
const ETCD_WAIT: Duration = Duration::from_secs(1);

/// Where the NIC is read from.
pub enum Source<'a> {
    File(&'a Path),
    Etcd {
        url: &'a EtcdUrl,
        snapshot: &'a Path,
    },
}

/// The cluster from etcd, or from the snapshot when etcd cannot be reached in time. An
/// answer of etcd that is an error (a damaged key, a newer format) is not an outage: it
/// is reported, the snapshot is not used.
fn read_etcd(url: &EtcdUrl, snap: &Path) -> anyhow::Result<ClusterConfig> {
    let (tx, rx) = mpsc::channel();
    let u = url.clone();
    // The read runs on its own thread so that an unresponsive member cannot hold the boot
    // of a VM; the thread is left behind when it takes too long (the process ends soon).
    std::thread::Builder::new()
        .name("etcd-read".into())
        .spawn(move || {
            let _ = tx.send(EtcdStore::new(&u).read());
        })
        .context("cannot start the etcd read")?;
    let why = match rx.recv_timeout(ETCD_WAIT) {
        Ok(Ok(cfg)) => return Ok(cfg),
        Ok(Err(GntError::Exec(why))) => why,
        Ok(Err(e)) => return Err(anyhow::anyhow!("{e}")),
        Err(_) => format!("no answer within {} ms", ETCD_WAIT.as_millis()),
    };
    let why = why.replace('\n', " ");
    match snapshot::read(snap, url) {
        Ok((cfg, meta)) => {
            log::warn(&format!(
                "cannot reach the cluster store {url} ({why}); using the local snapshot {} of revision {}, written {} s ago",
                snap.display(),
                meta.revision,
                meta.age().as_secs()
            ));
            Ok(cfg)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot reach the cluster store {url} ({why}), and no usable local snapshot: {e:#} ('snf-ifup watch --store' keeps one)"
        )),
    }
}

/// The one place that builds a NIC from the cluster store; with the instance's UUID.
pub fn nic_from_store(
    from: &Source,
    instance: &str,
    index: u32,
) -> anyhow::Result<(NicEnv, String)> {
    let (cfg, shown) = match from {
        Source::File(config) => (
            open(config)
                .read()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("cannot read {}", config.display()))?,
            config.display().to_string(),
        ),
        Source::Etcd { url, snapshot } => (read_etcd(url, snapshot)?, url.to_string()),
    };
    let env = NicEnv::from_config(&cfg, instance, index)
        .with_context(|| format!("NIC {index} of instance {instance} in {shown}"))?;
    let uuid = cfg
        .instance_uuid(instance)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((env, uuid))
}

/// `KEY='value'` lines a POSIX shell can `eval` (or `set -a; . file`) to get exactly the
/// environment Ganeti would give the hook; single quotes keep every value literal.
pub fn shell_assignments(vars: &[(String, String)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', r"'\''")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_quote_values_literally() {
        let vars = vec![
            ("TAGS".to_owned(), "a b $x".to_owned()),
            ("INSTANCE".to_owned(), "it's".to_owned()),
        ];
        assert_eq!(
            shell_assignments(&vars),
            "TAGS='a b $x'\nINSTANCE='it'\\''s'\n"
        );
    }
}
