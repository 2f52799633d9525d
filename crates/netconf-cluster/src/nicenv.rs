//! A NIC's hook environment read from config.data instead of from the environment: what
//! `snf-ifup --instance` needs when Ganeti does not call it. The type and its rules live in
//! `netconf::nicenv`; only this constructor knows the cluster model.

use netconf::mac::UnicastMac;
use netconf::nicenv::{NetworkInfo, NicEnv, NicEnvError, Vlan, check_ip};

use crate::config::ClusterConfig;

fn err(msg: String) -> NicEnvError {
    NicEnvError(msg)
}

/// `NicEnv::from_config`, for callers that hold the cluster configuration.
pub trait NicEnvFromConfig: Sized {
    /// NIC `index` of `instance` (name or UUID) as described by config.data: what Ganeti's
    /// node daemon would export for it, except INTERFACE (the TAP is the caller's).
    fn from_config(cfg: &ClusterConfig, instance: &str, index: u32) -> Result<Self, NicEnvError>;
}

impl NicEnvFromConfig for NicEnv {
    fn from_config(cfg: &ClusterConfig, instance: &str, index: u32) -> Result<NicEnv, NicEnvError> {
        let uuid = cfg
            .instance_uuid(instance)
            .map_err(|e| err(e.to_string()))?;
        let inst = cfg
            .instances
            .get_cloned(&uuid)
            .ok_or_else(|| err(format!("Instance '{instance}' not known")))?;
        let Some(nic) = inst.nics.get(index as usize) else {
            return Err(err(format!(
                "Instance '{}' has no NIC {index} (it has {})",
                inst.name,
                inst.nics.len()
            )));
        };
        let ip = match nic.ip {
            None => None,
            Some(std::net::IpAddr::V4(a)) => Some(a),
            Some(std::net::IpAddr::V6(a)) => {
                return Err(err(format!(
                    "IP: '{a}' is IPv6; NIC addresses must be IPv4"
                )));
            }
        };
        let vlan = nic
            .vlan
            .parse::<Vlan>()
            .map_err(|e| err(format!("VLAN: {e}")))?;
        let network = match &nic.network {
            None => None,
            Some(nu) => {
                let n = cfg.networks.get(nu).ok_or_else(|| {
                    err(format!(
                        "NIC {index} of '{}' uses unknown network {nu}",
                        inst.name
                    ))
                })?;
                Some(NetworkInfo {
                    name: n.name.to_string(),
                    uuid: nu.clone(),
                    tags: n.tags.iter().cloned().collect(),
                    subnet: n.network,
                    gateway: n.gateway,
                    subnet6: n.network6,
                    gateway6: n.gateway6,
                    mac_prefix: n.mac_prefix,
                })
            }
        };
        check_ip(ip, network.as_ref())?;
        let mac = UnicastMac::try_from(nic.mac).map_err(|e| err(format!("MAC: {e}")))?;
        Ok(NicEnv {
            instance: inst.name,
            interface: None,
            index,
            uuid: nic.uuid.clone(),
            name: nic.name.clone(),
            mac,
            ip,
            mode: nic.mode,
            link: Some(nic.link.clone()).filter(|l| !l.is_empty()),
            vlan,
            tags: inst.tags.iter().cloned().collect(),
            network,
        })
    }
}

#[cfg(test)]
mod tests {
    use netconf::name::InstanceName;
    use netconf::nicmode::NicMode;

    use super::*;

    #[test]
    fn from_config_matches_the_environment() {
        use crate::config::{Instance, Nic};
        let mut cfg = ClusterConfig::new();
        let group = cfg.nodegroups.keys().next().unwrap().clone();
        let mut fb = crate::ops::Feedback::default();
        let add = crate::ops::network::AddNetwork {
            name: "net1".into(),
            network: Some("198.51.100.0/24".into()),
            gateway: Some("198.51.100.1".into()),
            network6: Some("2001:db8:1::/64".into()),
            tags: vec!["nfdhcpd".into(), "ip-less-routed".into()],
            ..Default::default()
        };
        crate::ops::network::add(&mut cfg, &add, &mut fb).unwrap();
        let nu = cfg.network_uuid("net1").unwrap();
        cfg.instances.insert(
            "i-uuid".into(),
            Instance {
                name: InstanceName::parse("vm1").unwrap(),
                group,
                primary_node: None,
                tags: ["synnefo:network:0:limited".to_owned()].into(),
                nics: vec![Nic {
                    uuid: "n-uuid".into(),
                    name: None,
                    mac: "aa:00:00:12:34:56".parse().unwrap(),
                    ip: Some("198.51.100.10".parse().unwrap()),
                    network: Some(nu.clone()),
                    mode: NicMode::Routed,
                    link: "100".into(),
                    vlan: String::new(),
                }],
                serial_no: 1,
                ctime: 0.0,
                mtime: 0.0,
            },
        );
        let e = NicEnv::from_config(&cfg, "vm1", 0).unwrap();
        let env = e.to_env();
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("NETWORK_TAGS"), Some("ip-less-routed nfdhcpd"));
        assert_eq!(get("NETWORK_UUID"), Some(nu.as_str()));
        assert_eq!(get("LINK"), Some("100"));
        assert_eq!(get("INTERFACE"), None);
        assert_eq!(get("BRIDGE"), None);
        assert_eq!(
            NicEnv::from_config(&cfg, "vm1", 1).unwrap_err().to_string(),
            "Instance 'vm1' has no NIC 1 (it has 1)"
        );
        assert!(NicEnv::from_config(&cfg, "vm9", 0).is_err());
    }
}
