//! The standalone path: `snf-ifup up TAP --instance NAME --nic IDX [--config FILE]` takes
//! the NIC from config.data instead of Ganeti's environment.

use std::path::Path;

use anyhow::bail;
use netconf::NicEnv;

/// STANDALONE-CONFIG: the one place that builds a NIC from config.data. It needs
/// `netconf::config` (the config.data model), which is not on this branch yet.
pub fn nic_from_config(
    _config: Option<&Path>,
    _instance: &str,
    _index: u32,
) -> anyhow::Result<NicEnv> {
    bail!("standalone mode needs netconf::config")
}
