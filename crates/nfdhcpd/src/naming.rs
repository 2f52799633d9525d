//! How replies name the guest's domain and the node itself, shared by DHCPv4, Router
//! Advertisements and DHCPv6 so that each protocol depends on this module, not on another.

use std::net::Ipv6Addr;

use netconf::MacAddr;
use netconf::binding::Binding;

use crate::config::DaemonSettings;

/// Option 15: the configured domain, else HOSTNAME without its first label.
pub fn domain_for(configured: Option<&str>, hostname: &str) -> Option<String> {
    if let Some(d) = configured {
        return Some(d.to_owned());
    }
    hostname
        .split_once('.')
        .map(|(_, rest)| rest.to_owned())
        .filter(|d| !d.is_empty())
}

/// DNSSL / DHCPv6 domain list: the configured domains, else HOSTNAME minus its first label.
pub fn domains_for(cfg: &DaemonSettings, b: &Binding) -> Vec<String> {
    if !cfg.ipv6.domains.is_empty() {
        return cfg.ipv6.domains.clone();
    }
    domain_for(None, &b.hostname).into_iter().collect()
}

/// DNS wire format of a domain list, as DNSSL and DHCPv6 option 24 carry it.
pub fn dns_wire(domains: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in domains {
        for label in d.trim_end_matches('.').split('.') {
            let l = label.as_bytes();
            out.push(l.len().min(63) as u8);
            out.extend_from_slice(&l[..l.len().min(63)]);
        }
        out.push(0);
    }
    out
}

/// Source of every RA/NA/DHCPv6 reply: the EUI-64 link-local of INDEV's MAC.
pub fn node_link_local(indev_mac: MacAddr) -> Ipv6Addr {
    netconf::eui64::link_local(indev_mac)
}
