//! From the hook environment and what the server holds now to the UPDATEs that make the
//! server hold what the instance's NICs say.
//!
//! Ganeti's modify hook exports only the NEW NIC list, so stale records cannot be computed
//! from the environment. Instead the hook owns the instance's name in every configured
//! forward zone: it reads that name's A and AAAA RRsets over DNS, and anything there that
//! the NICs do not explain is stale. Stale addresses lose their PTR records (only those
//! pointing to the instance); wanted addresses get a PTR RRset of exactly the instance's
//! name. Each zone gets at most one UPDATE whose prerequisites are the RRsets as read, so a
//! concurrent change makes it fail cleanly (then everything is read again), and an UPDATE is
//! only sent where something differs: running the hook twice sends nothing the second time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;

use crate::config::DnsHookSettings;
use crate::hookenv::{Action, Nic};
use crate::names;
use crate::update::{Change, Prereq, RType, Rd, RrSet, ZoneUpdate};

/// The read side of DNS that planning needs (the real one is `client::Client`).
pub trait Dns {
    fn lookup(&self, name: &str, rtype: RType) -> Result<RrSet>;
    /// The zone enclosing `name` on the server, `None` if it serves none.
    fn zone_of(&self, name: &str) -> Result<Option<String>>;
    /// Like `lookup`, plus the zone named by an SOA in the answer (a server sends one with
    /// NXDOMAIN and empty answers), which shows where the name really lives.
    fn lookup_in_zone(&self, name: &str, rtype: RType) -> Result<(RrSet, Option<String>)> {
        Ok((self.lookup(name, rtype)?, None))
    }
}

impl Dns for crate::client::Client {
    fn lookup(&self, name: &str, rtype: RType) -> Result<RrSet> {
        crate::client::Client::lookup(self, name, rtype)
    }
    fn lookup_in_zone(&self, name: &str, rtype: RType) -> Result<(RrSet, Option<String>)> {
        let a = self.query(name, rtype.hickory())?;
        Ok((a.records, a.soa_owner))
    }
    fn zone_of(&self, name: &str) -> Result<Option<String>> {
        crate::client::Client::zone_of(self, name)
    }
}

/// One address the NICs want published.
#[derive(Debug, Clone)]
struct Wanted {
    zone: String,
    ttl: u32,
    addr: IpAddr,
    /// The network's configured reverse zone for this family, if any.
    reverse_zone: Option<String>,
    /// The network's subnet for this family, to derive the reverse zone from.
    subnet: Option<IpNet>,
}

/// The addresses the hook should publish, from the NICs carrying a DNS tag.
fn wanted(cfg: &DnsHookSettings, nics: &[Nic]) -> Result<Vec<Wanted>> {
    let mut out = Vec::new();
    for nic in nics.iter().filter(|n| cfg.is_dns_nic(&n.tags)) {
        let net = nic.network.as_deref();
        let zone = cfg.zone_for(net).with_context(|| {
            format!(
                "NIC {} (network {}) carries a DNS tag but no forward zone is configured \
                 (set `zone` or [networks.{}] zone)",
                nic.index,
                net.unwrap_or("none"),
                net.unwrap_or("NAME")
            )
        })?;
        let ttl = cfg.ttl_for(net);
        let over = cfg.network(net);
        if let Some(ip) = nic.ip {
            out.push(Wanted {
                zone: zone.to_string(),
                ttl,
                addr: IpAddr::V4(ip),
                reverse_zone: over.and_then(|n| n.reverse_zone4.clone()),
                subnet: nic.subnet.map(IpNet::V4),
            });
        }
        // SLAAC addresses exist only in prefixes of /64 or shorter.
        if let (Some(net6), Some(mac)) = (nic.subnet6, nic.mac)
            && net6.prefix_len() <= 64
        {
            out.push(Wanted {
                zone: zone.to_string(),
                ttl,
                addr: IpAddr::V6(netconf::eui64::address(net6, mac)),
                reverse_zone: over.and_then(|n| n.reverse_zone6.clone()),
                subnet: Some(IpNet::V6(net6)),
            });
        }
    }
    Ok(out)
}

fn rd_of(addr: IpAddr) -> Rd {
    match addr {
        IpAddr::V4(a) => Rd::A(a),
        IpAddr::V6(a) => Rd::Aaaa(a),
    }
}

fn addr_of(rd: &Rd) -> Option<IpAddr> {
    match rd {
        Rd::A(a) => Some(IpAddr::V4(*a)),
        Rd::Aaaa(a) => Some(IpAddr::V6(*a)),
        Rd::Ptr(_) => None,
    }
}

/// One RRset: as read, and as it should be.
struct Transition {
    zone: String,
    name: String,
    rtype: RType,
    current: BTreeSet<Rd>,
    current_ttl: Option<u32>,
    desired: BTreeSet<Rd>,
    /// The TTL the RRset should have; `None` for RRsets that are not ours to shape (stale
    /// PTRs that may keep other instances' records).
    ttl: Option<u32>,
}

impl Transition {
    fn new(zone: &str, name: &str, rtype: RType, current: RrSet) -> Transition {
        Transition {
            zone: zone.to_string(),
            name: name.to_string(),
            rtype,
            current: current.rds.into_iter().collect(),
            current_ttl: current.ttl,
            desired: BTreeSet::new(),
            ttl: None,
        }
    }

    /// Records differ, or ours carry another TTL than configured.
    fn needs_update(&self) -> bool {
        self.current != self.desired
            || (!self.desired.is_empty()
                && self.ttl.is_some()
                && self.current_ttl.is_some()
                && self.ttl != self.current_ttl)
    }
}

/// Reverse zones the server named for PTR names whose derived zone (the network's /24 or
/// /64) it does not serve, e.g. because it serves a wider /16 or /48 zone; kept across the
/// rounds of one run.
#[derive(Debug, Default)]
pub struct Learned {
    /// PTR name → the zone the server's SOA names for it.
    pub zones: BTreeMap<String, String>,
    /// One line per zone learned, for the log.
    pub notes: Vec<String>,
}

impl Learned {
    /// Takes `server_zone` for `name` when it differs from the `derived` one.
    pub fn learn(&mut self, name: &str, derived: &str, server_zone: &str) -> bool {
        if server_zone == derived || self.zones.get(name).is_some_and(|z| z == server_zone) {
            return false;
        }
        self.zones.insert(name.to_string(), server_zone.to_string());
        self.notes.push(format!(
            "reverse zone {derived} is not served; the server puts {name} in zone \
             {server_zone}: using it (list it in `reverse_zones` to skip this lookup)"
        ));
        true
    }
}

/// Reads a PTR RRset in `zone`. When `derived` (computed from the network, not configured)
/// and the server's SOA in the answer names another zone, that zone is used instead.
fn read_ptr(
    dns: &dyn Dns,
    name: &str,
    mut zone: String,
    derived: bool,
    learned: &mut Learned,
) -> Result<(String, RrSet)> {
    if let Some(z) = learned.zones.get(name) {
        zone.clone_from(z);
    }
    let (current, soa) = dns
        .lookup_in_zone(name, RType::Ptr)
        .with_context(|| format!("reverse zone {zone}"))?;
    if derived
        && let Some(soa) = soa
        && names::in_zone(name, &soa)
    {
        learned.learn(name, &zone, &soa);
        zone = soa;
    }
    Ok((zone, current))
}

/// The longest zone in `zones` that contains `name`.
fn longest_match<'a>(name: &str, zones: impl IntoIterator<Item = &'a str>) -> Option<String> {
    zones
        .into_iter()
        .filter(|z| names::in_zone(name, z))
        .max_by_key(|z| z.len())
        .map(str::to_string)
}

/// Computes the UPDATEs for `action` on `instance`; reverse zones come first in the list so
/// that, if a later UPDATE fails, the forward records that lead to stale PTRs still exist
/// and a re-run finds them.
pub fn plan(
    cfg: &DnsHookSettings,
    dns: &dyn Dns,
    instance: &str,
    action: &Action,
    nics: &[Nic],
) -> Result<Vec<ZoneUpdate>> {
    plan_learning(cfg, dns, instance, action, nics, &mut Learned::default())
}

/// [`plan`], using and adding to the reverse zones learned from the server.
pub fn plan_learning(
    cfg: &DnsHookSettings,
    dns: &dyn Dns,
    instance: &str,
    action: &Action,
    nics: &[Nic],
    learned: &mut Learned,
) -> Result<Vec<ZoneUpdate>> {
    let final_name = match action {
        Action::Rename { new_name } => new_name.as_str(),
        _ => instance,
    };
    let wanted = match action {
        Action::Remove => Vec::new(),
        _ => wanted(cfg, nics)?,
    };
    let mut transitions = Vec::new();
    // Names we own, to recognise our PTRs: every name the instance had or gets.
    let mut ours: BTreeSet<String> = BTreeSet::new();
    // Addresses found under our names, which may need their PTR removed.
    let mut found: BTreeSet<IpAddr> = BTreeSet::new();

    for zone in cfg.forward_zones() {
        let new = names::instance_fqdn(final_name, &zone)?;
        let old = names::instance_fqdn(instance, &zone)?;
        let mut owners = vec![new.clone()];
        if old != new {
            owners.push(old);
        }
        for (i, owner) in owners.iter().enumerate() {
            ours.insert(owner.clone());
            for rtype in [RType::A, RType::Aaaa] {
                let mut t = Transition::new(
                    &zone,
                    owner,
                    rtype,
                    dns.lookup(owner, rtype)
                        .with_context(|| format!("forward zone {zone}"))?,
                );
                found.extend(t.current.iter().filter_map(addr_of));
                // Only the final name keeps records; a rename empties the old one.
                t.desired = if i == 0 {
                    wanted
                        .iter()
                        .filter(|w| w.zone == zone)
                        .map(|w| rd_of(w.addr))
                        .filter(|rd| rd.rtype() == rtype)
                        .collect()
                } else {
                    BTreeSet::new()
                };
                t.ttl = Some(
                    wanted
                        .iter()
                        .find(|w| w.zone == zone)
                        .map_or(cfg.ttl, |w| w.ttl),
                );
                transitions.push(t);
            }
        }
    }

    if cfg.ptr {
        let explicit = cfg.explicit_reverse_zones();
        // Wanted PTRs: exactly the instance's name in the NIC's zone.
        let mut ptr_wanted: BTreeMap<IpAddr, (BTreeSet<Rd>, u32, String, bool)> = BTreeMap::new();
        for w in &wanted {
            let ptr = names::ptr(w.addr);
            let configured = w
                .reverse_zone
                .clone()
                .filter(|z| names::in_zone(&ptr, z))
                .or_else(|| longest_match(&ptr, explicit.iter().copied()));
            let derived = w.subnet.map(|s| match s {
                IpNet::V4(n) => names::reverse_zone_v4(n),
                IpNet::V6(n) => names::reverse_zone_v6(n),
            });
            let (zone, is_derived) = match (configured, derived) {
                (Some(z), _) => (z, false),
                (None, Some(z)) => (z, true),
                (None, None) => (
                    dns.zone_of(&ptr)?.with_context(|| {
                        format!(
                            "no reverse zone for {}: none configured and the server serves none \
                         (set `reverse_zones`, or `ptr = false`)",
                            w.addr
                        )
                    })?,
                    false,
                ),
            };
            let target = Rd::Ptr(names::instance_fqdn(final_name, &w.zone)?);
            ptr_wanted
                .entry(w.addr)
                .or_insert_with(|| (BTreeSet::new(), w.ttl, zone, is_derived))
                .0
                .insert(target);
        }
        for (addr, (desired, ttl, zone, is_derived)) in &ptr_wanted {
            let name = names::ptr(*addr);
            let (zone, current) = read_ptr(dns, &name, zone.clone(), *is_derived, learned)?;
            let mut t = Transition::new(&zone, &name, RType::Ptr, current);
            t.desired = desired.clone();
            t.ttl = Some(*ttl);
            transitions.push(t);
        }
        // Stale addresses: drop only the PTRs that point to one of our names.
        let derived: Vec<String> = nics
            .iter()
            .flat_map(|n| {
                n.subnet
                    .map(names::reverse_zone_v4)
                    .into_iter()
                    .chain(n.subnet6.map(names::reverse_zone_v6))
            })
            .collect();
        for addr in found.iter().filter(|a| !ptr_wanted.contains_key(a)) {
            let name = names::ptr(*addr);
            let (zone, is_derived) = match longest_match(&name, explicit.iter().copied()) {
                Some(z) => (z, false),
                None => match longest_match(&name, derived.iter().map(String::as_str)) {
                    Some(z) => (z, true),
                    None => match dns.zone_of(&name)? {
                        Some(z) => (z, false),
                        // The server serves no reverse zone for it: nothing to clean.
                        None => continue,
                    },
                },
            };
            let (zone, current) = read_ptr(dns, &name, zone, is_derived, learned)?;
            let mut t = Transition::new(&zone, &name, RType::Ptr, current);
            t.desired = t
                .current
                .iter()
                .filter(|rd| !matches!(rd, Rd::Ptr(target) if ours.contains(target)))
                .cloned()
                .collect();
            transitions.push(t);
        }
    }

    Ok(group(transitions))
}

/// One UPDATE per zone with a change, reverse zones first.
fn group(transitions: Vec<Transition>) -> Vec<ZoneUpdate> {
    let mut by_zone: BTreeMap<(bool, String), ZoneUpdate> = BTreeMap::new();
    for t in transitions.into_iter().filter(Transition::needs_update) {
        let forward = t.rtype != RType::Ptr;
        let u = by_zone
            .entry((forward, t.zone.clone()))
            .or_insert_with(|| ZoneUpdate {
                zone: t.zone.clone(),
                prereqs: Vec::new(),
                changes: Vec::new(),
            });
        u.prereqs.push(if t.current.is_empty() {
            Prereq::Absent {
                name: t.name.clone(),
                rtype: t.rtype,
            }
        } else {
            Prereq::Exactly {
                name: t.name.clone(),
                rdatas: t.current.iter().cloned().collect(),
            }
        });
        for rd in t.current.difference(&t.desired) {
            u.changes.push(Change::Delete {
                name: t.name.clone(),
                rd: rd.clone(),
            });
        }
        // Only RRsets with a TTL of ours gain records. Adding a record that exists with
        // another TTL changes the TTL of the whole RRset (RFC 2136 3.4.2.2 as BIND does it).
        let Some(ttl) = t.ttl else { continue };
        let ttl_changed = t.current_ttl.is_some_and(|c| c != ttl);
        for rd in t
            .desired
            .iter()
            .filter(|rd| ttl_changed || !t.current.contains(rd))
        {
            u.changes.push(Change::Add {
                name: t.name.clone(),
                ttl,
                rd: rd.clone(),
            });
        }
    }
    by_zone.into_values().collect()
}

/// Checks that an UPDATE's names lie in its zone (a planning bug otherwise).
pub fn check(u: &ZoneUpdate) -> Result<()> {
    for c in &u.changes {
        let name = match c {
            Change::Delete { name, .. } | Change::Add { name, .. } => name,
        };
        if !names::in_zone(name, &u.zone) {
            bail!("{name} is not in zone {}", u.zone);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use std::path::Path;

    fn cfg() -> DnsHookSettings {
        DnsHookSettings::parse(
            "server = \"127.0.0.1\"\nzone = \"example.org\"\n[networks.pub2]\nzone = \"b.example.org\"\n",
            Path::new("/"),
        )
        .unwrap()
    }

    fn nic(i: usize, ip: Option<&str>, net: &str, subnet: Option<&str>, s6: Option<&str>) -> Nic {
        Nic {
            index: i,
            ip: ip.map(|s| s.parse().unwrap()),
            mac: Some(format!("aa:00:00:00:00:0{i}").parse().unwrap()),
            network: Some(net.into()),
            subnet: subnet.map(|s| s.parse().unwrap()),
            subnet6: s6.map(|s| s.parse().unwrap()),
            tags: vec!["public".into()],
        }
    }

    fn run(f: &Fake, action: &Action, nics: &[Nic]) -> Vec<ZoneUpdate> {
        let ups = plan(&cfg(), f, "web1", action, nics).unwrap();
        for u in &ups {
            check(u).unwrap();
            f.apply(u).unwrap();
        }
        ups
    }

    #[test]
    fn add_modify_rename_remove_converge() {
        let f = Fake {
            // Zones only found by asking the server (no NIC of theirs is left to derive
            // them from when their records go stale).
            zones: vec![
                "113.0.203.in-addr.arpa.".into(),
                "8.b.d.0.1.0.0.2.ip6.arpa.".into(),
            ],
            ..Fake::default()
        };
        let n0 = nic(
            0,
            Some("198.51.100.10"),
            "pub1",
            Some("198.51.100.0/24"),
            None,
        );
        let n1 = nic(1, None, "pub6", None, Some("2001:db8:1::/64"));
        let ups = run(&f, &Action::Add, &[n0.clone(), n1.clone()]);
        // Forward zone + two reverse zones, reverse first.
        assert_eq!(ups.len(), 3);
        assert_eq!(ups[2].zone, "example.org.");
        assert_eq!(
            f.dump(),
            [
                "1.0.0.0.0.0.e.f.f.f.0.0.0.0.8.a.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR web1.example.org.",
                "10.100.51.198.in-addr.arpa. PTR web1.example.org.",
                "web1.example.org. A 198.51.100.10",
                "web1.example.org. AAAA 2001:db8:1:0:a800:ff:fe00:1",
            ]
        );
        // Idempotent.
        assert!(run(&f, &Action::Add, &[n0, n1]).is_empty());

        // IP change + NIC on a second zone + IPv6 NIC removed, in one modify.
        let n0b = nic(
            0,
            Some("198.51.100.11"),
            "pub1",
            Some("198.51.100.0/24"),
            None,
        );
        let n2 = nic(2, Some("203.0.113.5"), "pub2", Some("203.0.113.0/24"), None);
        let ups = run(&f, &Action::Modify, &[n0b.clone(), n2.clone()]);
        let fwd = ups.iter().find(|u| u.zone == "example.org.").unwrap();
        assert!(fwd.prereqs.contains(&Prereq::Exactly {
            name: "web1.example.org.".into(),
            rdatas: vec![Rd::A("198.51.100.10".parse().unwrap())]
        }));
        assert_eq!(
            f.dump(),
            [
                "11.100.51.198.in-addr.arpa. PTR web1.example.org.",
                "5.113.0.203.in-addr.arpa. PTR web1.b.example.org.",
                "web1.b.example.org. A 203.0.113.5",
                "web1.example.org. A 198.51.100.11",
            ]
        );
        assert!(run(&f, &Action::Modify, &[n0b.clone(), n2.clone()]).is_empty());

        // Rename: old names emptied, PTRs repointed, one update per zone.
        let rename = Action::Rename {
            new_name: "web2".into(),
        };
        let ups = run(&f, &rename, &[n0b.clone(), n2.clone()]);
        let zones: BTreeSet<&str> = ups.iter().map(|u| u.zone.as_str()).collect();
        assert_eq!(zones.len(), ups.len());
        assert_eq!(
            f.dump(),
            [
                "11.100.51.198.in-addr.arpa. PTR web2.example.org.",
                "5.113.0.203.in-addr.arpa. PTR web2.b.example.org.",
                "web2.b.example.org. A 203.0.113.5",
                "web2.example.org. A 198.51.100.11",
            ]
        );
        let ups = plan(&cfg(), &f, "web2", &Action::Remove, &[n0b, n2]).unwrap();
        for u in &ups {
            f.apply(u).unwrap();
        }
        assert!(f.dump().is_empty(), "{:?}", f.dump());
    }

    #[test]
    fn foreign_ptrs_and_untagged_nics_are_left_alone() {
        let f = Fake::default();
        // The stale address's PTR now belongs to another instance.
        f.rrs.borrow_mut().insert(
            ("web1.example.org.".into(), RType::A),
            BTreeSet::from([Rd::A("198.51.100.9".parse().unwrap())]),
        );
        f.rrs.borrow_mut().insert(
            ("9.100.51.198.in-addr.arpa.".into(), RType::Ptr),
            BTreeSet::from([Rd::Ptr("other.example.org.".into())]),
        );
        let mut private = nic(
            0,
            Some("198.51.100.20"),
            "priv",
            Some("198.51.100.0/24"),
            None,
        );
        private.tags = vec!["nfdhcpd".into()];
        run(&f, &Action::Modify, &[private]);
        assert_eq!(
            f.dump(),
            ["9.100.51.198.in-addr.arpa. PTR other.example.org."]
        );
    }

    #[test]
    fn a_new_ttl_is_applied_once() {
        let f = Fake::default();
        let n = nic(0, Some("198.51.100.10"), "pub1", None, None);
        let c300 = DnsHookSettings {
            ptr: false,
            ..cfg()
        };
        let c60 = DnsHookSettings {
            ttl: 60,
            ptr: false,
            ..cfg()
        };
        for u in plan(&c300, &f, "web1", &Action::Add, std::slice::from_ref(&n)).unwrap() {
            f.apply(&u).unwrap();
        }
        let ups = plan(&c60, &f, "web1", &Action::Modify, std::slice::from_ref(&n)).unwrap();
        assert_eq!(
            ups,
            [ZoneUpdate {
                zone: "example.org.".into(),
                prereqs: vec![Prereq::Exactly {
                    name: "web1.example.org.".into(),
                    rdatas: vec![Rd::A("198.51.100.10".parse().unwrap())],
                }],
                changes: vec![Change::Add {
                    name: "web1.example.org.".into(),
                    ttl: 60,
                    rd: Rd::A("198.51.100.10".parse().unwrap()),
                }],
            }]
        );
        f.apply(&ups[0]).unwrap();
        assert!(
            plan(&c60, &f, "web1", &Action::Modify, &[n])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reverse_zone_asked_from_the_server_when_not_derivable() {
        // A NIC without NETWORK_SUBNET: the server's zone is used, or the error says why.
        let n = nic(0, Some("198.51.100.10"), "pub1", None, None);
        let e = plan(
            &cfg(),
            &Fake::default(),
            "web1",
            &Action::Add,
            std::slice::from_ref(&n),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no reverse zone for 198.51.100.10"), "{e}");
        let f = Fake {
            zones: vec!["51.198.in-addr.arpa.".into()],
            ..Fake::default()
        };
        let ups = plan(&cfg(), &f, "web1", &Action::Add, &[n]).unwrap();
        assert_eq!(ups[0].zone, "51.198.in-addr.arpa.");
    }

    #[test]
    fn a_tagged_nic_without_a_zone_is_an_error() {
        let c = DnsHookSettings::parse("server = \"127.0.0.1\"\n", Path::new("/")).unwrap();
        let n = nic(0, Some("198.51.100.10"), "pub1", None, None);
        let e = plan(&c, &Fake::default(), "web1", &Action::Add, &[n])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no forward zone is configured"), "{e}");
    }
}
