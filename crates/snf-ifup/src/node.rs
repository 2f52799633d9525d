//! Read-only look at the node: sysfs for links (no process per query), `ip` for routing
//! rules and default routes.

use std::fs;
use std::path::Path;

use netconf::{IfName, NicEnv, NicMode};

use crate::exec;
use crate::plan::{BridgeFacts, Facts, IpRule};

fn sys(dev: &str, file: &str) -> Option<String> {
    fs::read_to_string(format!("/sys/class/net/{dev}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

pub fn link_exists(dev: &str) -> bool {
    Path::new(&format!("/sys/class/net/{dev}")).exists()
}

/// The bridge `dev` is enslaved to.
pub fn master(dev: &str) -> Option<String> {
    fs::read_link(format!("/sys/class/net/{dev}/master"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

pub fn mac(dev: &str) -> Option<netconf::MacAddr> {
    sys(dev, "address")?.parse().ok()
}

pub fn ifindex(dev: &str) -> Option<i32> {
    sys(dev, "ifindex")?.parse().ok()
}

fn bridge(dev: &str) -> Option<BridgeFacts> {
    if !Path::new(&format!("/sys/class/net/{dev}/bridge")).exists() {
        return None;
    }
    Some(BridgeFacts {
        mtu: sys(dev, "mtu")?.parse().ok()?,
        vlan_filtering: sys(dev, "bridge/vlan_filtering").map(|v| v == "1"),
    })
}

/// The device of the default route in `table` (`ip route show table T default`).
pub fn default_dev(table: &str, v6: bool) -> Option<IfName> {
    let fam = if v6 { "-6" } else { "-4" };
    let out = exec::output("ip", &[fam, "route", "show", "table", table, "default"]).ok()?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// `ip rule` entries whose input interface is `tap`.
pub fn rules_for(tap: &str, v6: bool) -> anyhow::Result<Vec<IpRule>> {
    let fam = if v6 { "-6" } else { "-4" };
    let out = exec::output("ip", &[fam, "rule", "show"])?;
    Ok(parse_rules(&out, tap))
}

fn parse_rules(out: &str, tap: &str) -> Vec<IpRule> {
    let mut v = Vec::new();
    for line in out.lines() {
        let Some((prio, rest)) = line.split_once(':') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let iif = words.windows(2).find(|w| w[0] == "iif").map(|w| w[1]);
        let table = words
            .windows(2)
            .find(|w| w[0] == "lookup" || w[0] == "table")
            .map(|w| w[1]);
        if let (Some(i), Some(t), Ok(p)) = (iif, table, prio.trim().parse())
            && i == tap
        {
            v.push(IpRule {
                priority: p,
                table: t.to_owned(),
            });
        }
    }
    v
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

pub fn facts(nic: &NicEnv, tap: &IfName) -> anyhow::Result<Facts> {
    let t = tap.as_str();
    let mut f = Facts {
        tap_exists: link_exists(t),
        ..Facts::default()
    };
    if let Some(link) = nic.link.as_deref() {
        f.link_exists = link_exists(link);
        f.bridge = bridge(link);
    }
    match nic.mode {
        NicMode::Routed => {
            let table = nic.link.as_deref().unwrap_or("main");
            f.uplink4 = default_dev(table, false);
            f.rules4 = rules_for(t, false)?;
            if nic.network.as_ref().is_some_and(|n| n.subnet6.is_some()) {
                f.uplink6 = default_dev(table, true);
                f.rules6 = rules_for(t, true)?;
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
    fn rule_lines() {
        let out = "0:\tfrom all lookup local\n32765:\tfrom all iif tap1 lookup 100\n32764:\tfrom all iif tap10 lookup 7\n32763:\tfrom all iif tap1 lookup 5 [detached]\n";
        assert_eq!(
            parse_rules(out, "tap1"),
            [
                IpRule {
                    priority: 32765,
                    table: "100".into()
                },
                IpRule {
                    priority: 32763,
                    table: "5".into()
                }
            ]
        );
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
