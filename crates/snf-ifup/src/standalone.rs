//! The standalone path: `snf-ifup up TAP --instance NAME --nic IDX [--config FILE]` takes
//! the NIC from config.data (the gnt-network suite's cluster configuration) instead of
//! Ganeti's environment.

use std::path::Path;

use anyhow::Context;
use netconf::NicEnv;
use netconf::config::{FileStore, Store};

/// The one place that builds a NIC from config.data.
pub fn nic_from_config(config: &Path, instance: &str, index: u32) -> anyhow::Result<NicEnv> {
    let cfg = FileStore::new(config)
        .read()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read {}", config.display()))?;
    NicEnv::from_config(&cfg, instance, index)
        .with_context(|| format!("NIC {index} of instance {instance} in {}", config.display()))
}
