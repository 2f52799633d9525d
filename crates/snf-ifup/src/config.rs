//! `/etc/snf-network/snf-network.toml`: snf-network's knobs (tag names, constant TAP MAC,
//! MAC mask, directories), with snf-network's defaults. `SNF_NETWORK_CONFIG` names another
//! file; `SNF_NETWORK_STATE_DIR`, `NFDHCPD_STATE_DIR` and `GANETI_NIC_DIR` override the
//! directories (tests and the original's `/etc/default/snf-network` variables).

use std::path::{Path, PathBuf};

use anyhow::Context;
use netconf::MacAddr;
use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/snf-network/snf-network.toml";

/// The most the settings file may hold: a real one is a few KiB; anything near this is not
/// one.
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IfupSettings {
    /// Per-TAP state for `down`, `reapply` and `status`.
    pub state_dir: PathBuf,
    /// Where nfdhcpd binding files go.
    pub nfdhcpd_state_dir: PathBuf,
    /// Root of Ganeti's Xen NIC files (`<dir>/<instance>/<index>`).
    pub ganeti_nic_dir: PathBuf,
    /// MAC forced on routed KVM TAPs, so that every node looks the same to a migrated VM.
    pub tap_constant_mac: MacAddr,
    /// Mask for the MAC-prefix filter of mac-filtered networks.
    pub mac_mask: MacAddr,
    /// Instance-tag prefix of firewall profiles: `<prefix><nic>:<profile>`.
    pub firewall_tag_prefix: String,
    /// Command printing a Xen domain's name given its id as last argument.
    pub xen_domname: Vec<String>,
    /// Also log to syslog (`/dev/log`) when it exists.
    pub syslog: bool,
    /// Site hook run after a NIC is up (snf-network's IFUP_EXTRA_SCRIPT); empty: none.
    pub ifup_extra: PathBuf,
    /// Seconds an `ovs-vsctl` call may wait for ovs-vswitchd; 0 waits forever (as Ganeti).
    pub ovs_timeout: u32,
    /// Firewall driver: iptables (default), nftables, or auto.
    pub firewall: crate::firewall::Choice,
    /// The local snapshot of the cluster store that `watch --store` keeps and `up
    /// --instance` falls back to when etcd cannot be reached; empty: `store/cluster.data`
    /// in `state_dir`.
    pub store_snapshot: PathBuf,
    pub tags: Tags,
}

/// Network tag names that select features; each feature accepts a list of names.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tags {
    pub nfdhcpd: Vec<String>,
    pub ip_less_routed: Vec<String>,
    pub mac_filtered: Vec<String>,
    pub masq: Vec<String>,
    pub spoof_protected: Vec<String>,
}

impl Default for Tags {
    fn default() -> Self {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        Tags {
            nfdhcpd: v(&["nfdhcpd"]),
            ip_less_routed: v(&["ip-less-routed"]),
            // The shipped default and the name the documentation used.
            mac_filtered: v(&["private-filtered", "mac-filtered"]),
            masq: v(&["masq"]),
            spoof_protected: v(&["spoof-protected"]),
        }
    }
}

impl Default for IfupSettings {
    fn default() -> Self {
        IfupSettings {
            state_dir: "/var/lib/snf-network".into(),
            nfdhcpd_state_dir: netconf::binding::DEFAULT_STATE_DIR.into(),
            ganeti_nic_dir: "/var/run/ganeti/xen-hypervisor/nic".into(),
            tap_constant_mac: MacAddr([0xcc, 0x47, 0x52, 0x4e, 0x45, 0x54]),
            mac_mask: MacAddr([0xff, 0xff, 0xf0, 0, 0, 0]),
            firewall_tag_prefix: "synnefo:network:".into(),
            xen_domname: vec!["xl".into(), "domname".into()],
            syslog: true,
            ifup_extra: "/etc/ganeti/ifup-extra".into(),
            ovs_timeout: 10,
            firewall: crate::firewall::Choice::Iptables,
            store_snapshot: PathBuf::new(),
            tags: Tags::default(),
        }
    }
}

impl IfupSettings {
    /// Loads the configuration: `explicit` (a `--config`-style path that must exist), else
    /// `SNF_NETWORK_CONFIG` (must exist), else the default path if present, else defaults.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<IfupSettings> {
        let env_path = std::env::var_os("SNF_NETWORK_CONFIG").map(PathBuf::from);
        let mut cfg = match explicit.map(Path::to_path_buf).or(env_path) {
            Some(p) => Self::from_file(&p)?,
            None if Path::new(DEFAULT_PATH).exists() => Self::from_file(Path::new(DEFAULT_PATH))?,
            None => IfupSettings::default(),
        };
        if let Some(d) = std::env::var_os("SNF_NETWORK_STATE_DIR") {
            cfg.state_dir = d.into();
        }
        if let Some(d) = std::env::var_os("NFDHCPD_STATE_DIR") {
            cfg.nfdhcpd_state_dir = d.into();
        }
        if let Some(d) = std::env::var_os("GANETI_NIC_DIR") {
            cfg.ganeti_nic_dir = d.into();
        }
        Ok(cfg)
    }

    /// Where the local snapshot of the cluster store lives.
    pub fn snapshot_path(&self) -> PathBuf {
        if self.store_snapshot.as_os_str().is_empty() {
            self.state_dir.join("store").join("cluster.data")
        } else {
            self.store_snapshot.clone()
        }
    }

    /// A symbolic link is followed (configuration management installs settings that way);
    /// what it ends at must be a regular file of at most [`MAX_SETTINGS_BYTES`]: a FIFO
    /// there is refused at once, where waiting on it would hang every VM's start.
    fn from_file(path: &Path) -> anyhow::Result<IfupSettings> {
        let text = netconf::textfile::read_following(path, MAX_SETTINGS_BYTES)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid configuration {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_snf_networks() {
        let c: IfupSettings = toml::from_str("").unwrap();
        assert_eq!(c.tap_constant_mac.to_string(), "cc:47:52:4e:45:54");
        assert_eq!(c.mac_mask.to_string(), "ff:ff:f0:00:00:00");
        assert_eq!(c.tags.mac_filtered, ["private-filtered", "mac-filtered"]);
        assert_eq!(c.nfdhcpd_state_dir, Path::new("/var/lib/nfdhcpd"));
    }

    #[test]
    fn shipped_example_is_the_defaults() {
        let c: IfupSettings = toml::from_str(include_str!("../snf-network.toml")).unwrap();
        let d = IfupSettings::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn overrides_and_typos() {
        let c: IfupSettings =
            toml::from_str("mac_mask = \"ff:ff:ff:00:00:00\"\n[tags]\nnfdhcpd = [\"dhcp\"]\n")
                .unwrap();
        assert_eq!(c.tags.nfdhcpd, ["dhcp"]);
        assert_eq!(c.tags.masq, ["masq"]);
        assert_eq!(c.mac_mask.to_string(), "ff:ff:ff:00:00:00");
        assert!(toml::from_str::<IfupSettings>("mac_mask = \"zz\"").is_err());
        assert!(toml::from_str::<IfupSettings>("statedir = \"/x\"").is_err());
        let c: IfupSettings = toml::from_str("firewall = \"nftables\"").unwrap();
        assert_eq!(c.firewall, crate::firewall::Choice::Nftables);
        assert!(toml::from_str::<IfupSettings>("firewall = \"pf\"").is_err());
    }
}
