//! The standalone path: `snf-ifup up TAP --instance NAME --nic IDX [--config FILE]` takes
//! the NIC from config.data (the gnt-network suite's cluster configuration) instead of
//! Ganeti's environment.

use std::path::Path;

use anyhow::Context;
use netconf::NicEnv;
use netconf_cluster::NicEnvFromConfig;
use netconf_cluster::config::{Store, open};

/// The one place that builds a NIC from config.data; with the instance's UUID.
pub fn nic_from_config(
    config: &Path,
    instance: &str,
    index: u32,
) -> anyhow::Result<(NicEnv, String)> {
    let cfg = open(config)
        .read()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read {}", config.display()))?;
    let env = NicEnv::from_config(&cfg, instance, index)
        .with_context(|| format!("NIC {index} of instance {instance} in {}", config.display()))?;
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
