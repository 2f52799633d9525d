//! Read-only look at the node: sysfs for link attributes (no process per query), netlink
//! dumps for routing rules and default routes.

use std::fs;
use std::path::Path;

use netconf::{IfName, NicEnv, NicMode};
use netconf_sys::{link, netlink};

use crate::exec;
use crate::plan::{BridgeFacts, Facts, IpRule};

fn sys(dev: &str, file: &str) -> Option<String> {
    fs::read_to_string(format!("/sys/class/net/{dev}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Whether a link named `dev` exists, asked of the kernel's name table (SIOCGIFINDEX).
/// Not sysfs: the kernel takes a link out of its name table before it announces the
/// removal (RTM_DELLINK) but removes `/sys/class/net/<dev>` only afterwards, so a watcher
/// woken by the announcement could still find the entry there, keep the NIC, and never
/// hear of the link again.
pub fn link_exists(dev: &str) -> bool {
    link::index_of(dev).is_some()
}

/// The bridge `dev` is enslaved to.
pub fn master(dev: &str) -> Option<String> {
    fs::read_link(format!("/sys/class/net/{dev}/master"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

pub use netconf_sys::link::{index_of as ifindex, mac_of as mac};

fn bridge(dev: &str) -> Option<BridgeFacts> {
    if !Path::new(&format!("/sys/class/net/{dev}/bridge")).exists() {
        return None;
    }
    Some(BridgeFacts {
        mtu: sys(dev, "mtu")?.parse().ok()?,
        vlan_filtering: sys(dev, "bridge/vlan_filtering").map(|v| v == "1"),
    })
}

/// Policy rules and default routes of one address family (one netlink dump each).
#[derive(Clone, Debug, Default)]
pub struct Routing {
    /// (input interface, rule) for every `iif` rule.
    pub rules: Vec<(String, IpRule)>,
    /// (table id, device) of every default route.
    pub defaults: Vec<(u32, IfName)>,
}

impl Routing {
    pub fn read(v6: bool) -> anyhow::Result<Routing> {
        let rules = netlink::rules(v6)?
            .into_iter()
            .map(|(iif, priority, table)| (iif, IpRule { priority, table }))
            .collect();
        let defaults = netlink::default_routes(v6)?
            .into_iter()
            .filter_map(|(t, idx)| Some((t, link::name_of(idx)?.parse().ok()?)))
            .collect();
        Ok(Routing { rules, defaults })
    }

    pub fn rules_for(&self, tap: &str) -> Vec<IpRule> {
        self.rules
            .iter()
            .filter(|(i, _)| i == tap)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The device of the default route in `table` (a number or a name).
    pub fn default_dev(&self, table: &str) -> Option<IfName> {
        let id = netlink::table_id(table)?;
        self.defaults
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, d)| d.clone())
    }
}

/// Routing of both families, and what LINK devices are, read on first use in one run.
#[derive(Default)]
pub struct RoutingCache {
    v4: Option<Routing>,
    v6: Option<Routing>,
    /// Device → (exists, its bridge facts): a reapply asks for the same bridge once per
    /// NIC on it, and each sysfs path walk costs more than the rest of the NIC's plan.
    links: std::collections::HashMap<String, (bool, Option<BridgeFacts>)>,
}

impl RoutingCache {
    /// Reads both families (two netlink dumps of well under a millisecond each: a thread
    /// to run them side by side would cost more than it saves).
    pub fn load_both(&mut self) -> anyhow::Result<()> {
        if self.v4.is_some() || self.v6.is_some() {
            return Ok(());
        }
        self.v4 = Some(Routing::read(false)?);
        self.v6 = Some(Routing::read(true)?);
        Ok(())
    }

    /// Whether LINK device `dev` exists, and its bridge facts if it is a bridge.
    pub fn link(&mut self, dev: &str) -> (bool, Option<BridgeFacts>) {
        self.links
            .entry(dev.to_owned())
            .or_insert_with(|| (link_exists(dev), bridge(dev)))
            .clone()
    }

    pub fn get(&mut self, v6: bool) -> anyhow::Result<&Routing> {
        let slot = if v6 { &mut self.v6 } else { &mut self.v4 };
        if slot.is_none() {
            *slot = Some(Routing::read(v6)?);
        }
        Ok(slot.as_ref().expect("just filled"))
    }
}

/// Current value of a sysctl given with dots (`net.ipv4.conf.tap0.proxy_arp`).
pub fn sysctl_get(name: &str) -> Option<String> {
    fs::read_to_string(sysctl_path(name))
        .ok()
        .map(|s| s.trim().to_owned())
}

pub fn sysctl_path(name: &str) -> String {
    // Interface names may contain dots; only the fixed parts are separators.
    let parts: Vec<&str> = name.splitn(4, '.').collect();
    if parts.len() == 4
        && parts[2] == "conf"
        && let Some((dev, key)) = parts[3].rsplit_once('.')
    {
        return format!("/proc/sys/{}/{}/conf/{dev}/{key}", parts[0], parts[1]);
    }
    format!("/proc/sys/{}", name.replace('.', "/"))
}

pub fn facts(nic: &NicEnv, tap: &IfName, routing: &mut RoutingCache) -> anyhow::Result<Facts> {
    let t = tap.as_str();
    let mut f = Facts {
        tap_exists: link_exists(t),
        tap_mac: mac(t),
        ..Facts::default()
    };
    if let Some(link) = nic.link.as_deref() {
        (f.link_exists, f.bridge) = routing.link(link);
    }
    match nic.mode {
        NicMode::Routed => {
            let table = nic.link.as_deref().unwrap_or("main");
            f.table_id = netlink::table_id(table);
            if nic.network.as_ref().is_some_and(|n| n.subnet6.is_some()) {
                routing.load_both()?;
            }
            let r4 = routing.get(false)?;
            f.uplink4 = r4.default_dev(table);
            f.rules4 = r4.rules_for(t);
            if nic.network.as_ref().is_some_and(|n| n.subnet6.is_some()) {
                let r6 = routing.get(true)?;
                f.uplink6 = r6.default_dev(table);
                f.rules6 = r6.rules_for(t);
            }
        }
        NicMode::OpenVSwitch => f.ovs_available = exec::in_path("ovs-vsctl"),
        NicMode::Bridged => {}
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_lookups() {
        let r = Routing {
            rules: vec![
                (
                    "tap1".into(),
                    IpRule {
                        priority: 32765,
                        table: 100,
                    },
                ),
                (
                    "tap10".into(),
                    IpRule {
                        priority: 32764,
                        table: 7,
                    },
                ),
            ],
            defaults: vec![
                (100, "up0".parse().unwrap()),
                (254, "eth9".parse().unwrap()),
            ],
        };
        assert_eq!(r.default_dev("100").unwrap().as_str(), "up0");
        assert_eq!(r.default_dev("main").unwrap().as_str(), "eth9");
        assert_eq!(r.default_dev("7"), None);
        assert_eq!(r.rules_for("tap1").len(), 1);
    }

    #[test]
    fn sysctl_paths_keep_dotted_names() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.vif1.0.proxy_arp"),
            "/proc/sys/net/ipv4/conf/vif1.0/proxy_arp"
        );
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
    }
}
