//! From a NIC (Ganeti's environment) and a few facts about the node to the exact list of
//! changes: `ip`/`bridge` batch lines, sysctls, Open vSwitch commands, per-table firewall
//! chains, the nfdhcpd binding and the announcements. Pure, so it is unit-tested without
//! root; `apply` executes it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::bail;
use netconf::binding::Binding;
use netconf::{IfName, MacAddr, NicEnv, NicMode, eui64};
use serde::{Deserialize, Serialize};

use crate::config::IfupSettings;
use crate::firewall::{
    Chain, EtherType, Family, Hook, Icmp6Type, JumpMatch, L4, Match, Rule, TableSpec, Verdict,
    from_chain, to_chain,
};

/// Who called us: KVM (Ganeti's kvm-ifup family, or standalone) or Xen (vif-custom).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    Kvm,
    Xen,
}

/// Network-tag driven features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    Nfdhcpd,
    IpLessRouted,
    MacFiltered,
    Masq,
    SpoofProtected,
}

/// Firewall profiles selected by instance tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Protected,
    Limited,
    Unprotected,
}

impl Profile {
    fn parse(s: &str) -> Option<Profile> {
        match s {
            "protected" => Some(Profile::Protected),
            "limited" => Some(Profile::Limited),
            "unprotected" => Some(Profile::Unprotected),
            _ => None,
        }
    }

    pub fn chain(self) -> &'static str {
        match self {
            Profile::Protected => "snf-protected",
            Profile::Limited => "snf-limited",
            Profile::Unprotected => "snf-unprotected",
        }
    }

    /// The shipped profile chains (snf-network's ferm file, plus conntrack for replies and
    /// ICMPv6 that the original's `proto icmp` missed in ip6tables).
    pub fn definition(self, family: Family) -> Chain {
        use Match::{DstPort, NotSyn, Proto, ReplyOrRelated, SrcPort};
        use Verdict::{Accept, Drop};
        let icmp = if family == Family::Ip6 {
            L4::Icmp6
        } else {
            L4::Icmp
        };
        let est = Rule::new([ReplyOrRelated], Accept);
        let not_syn = Rule::new([Proto(L4::Tcp), NotSyn], Accept);
        let dns = Rule::new([Proto(L4::Udp), SrcPort(53)], Accept);
        let tcp_to = |port| Rule::new([Proto(L4::Tcp), DstPort(port)], Accept);
        let rules = match self {
            Profile::Protected => vec![
                est,
                not_syn,
                dns,
                Rule::new([Proto(icmp)], Accept),
                Rule::new([], Drop),
            ],
            Profile::Limited => vec![
                est,
                not_syn,
                tcp_to(22),
                tcp_to(3389),
                dns,
                Rule::new([Proto(icmp)], Accept),
                Rule::new([], Drop),
            ],
            Profile::Unprotected => vec![Rule::new([], Accept)],
        };
        Chain {
            name: self.chain().to_owned(),
            rules,
        }
    }
}

/// What the node looks like right now (gathered by `node::facts`).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub tap_exists: bool,
    /// The TAP's MAC as it is now.
    pub tap_mac: Option<MacAddr>,
    /// LINK is an existing bridge; its MTU and VLAN filtering.
    pub bridge: Option<BridgeFacts>,
    pub link_exists: bool,
    /// Devices of the default routes in table LINK (IPv4, IPv6).
    pub uplink4: Option<IfName>,
    pub uplink6: Option<IfName>,
    /// `ip rule` lines with `iif <tap>` (IPv4, IPv6).
    pub rules4: Vec<IpRule>,
    pub rules6: Vec<IpRule>,
    /// Id of routing table LINK (routed), when it is a number or a known name.
    pub table_id: Option<u32>,
    pub ovs_available: bool,
}

#[derive(Clone, Debug)]
pub struct BridgeFacts {
    pub mtu: u32,
    /// None when the kernel has no bridge VLAN filtering at all.
    pub vlan_filtering: Option<bool>,
}

/// One `ip rule` entry for our TAP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRule {
    pub priority: u32,
    /// Table id (number).
    pub table: u32,
}

/// A frame announcing that an address now lives behind this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Announce {
    Garp { ip: Ipv4Addr, dev: IfName },
    UnsolicitedNa { ip: Ipv6Addr, dev: IfName },
}

/// What `down` must undo besides firewall chains (recorded in the state file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    /// Tables of `ip rule iif <tap>` entries.
    pub rule_tables4: Vec<String>,
    pub rule_tables6: Vec<String>,
    /// (destination, table or "main").
    pub routes4: Vec<(String, String)>,
    pub routes6: Vec<(String, String)>,
    /// (address, device) of `ip -6 neigh proxy` entries.
    pub neigh_proxies: Vec<(String, String)>,
    /// Bridge the TAP was enslaved to.
    pub bridge: Option<String>,
    /// Open vSwitch bridge the TAP was added to.
    pub ovs_bridge: Option<String>,
    /// arptables OUTPUT rules (the text after `-A OUTPUT`).
    #[serde(default)]
    pub arp: Vec<String>,
    /// The TAP's own MAC before `up` changed it (restored when the TAP stays).
    #[serde(default)]
    pub mac: Option<MacAddr>,
}

impl Undo {
    /// Everything in `self` or `other` (so a re-`up` with a changed NIC still cleans up).
    pub fn merged(&self, other: &Undo) -> Undo {
        fn union<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
            let mut v = a.to_vec();
            for x in b {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            v
        }
        Undo {
            rule_tables4: union(&self.rule_tables4, &other.rule_tables4),
            rule_tables6: union(&self.rule_tables6, &other.rule_tables6),
            routes4: union(&self.routes4, &other.routes4),
            routes6: union(&self.routes6, &other.routes6),
            neigh_proxies: union(&self.neigh_proxies, &other.neigh_proxies),
            bridge: self.bridge.clone().or_else(|| other.bridge.clone()),
            ovs_bridge: self.ovs_bridge.clone().or_else(|| other.ovs_bridge.clone()),
            arp: union(&self.arp, &other.arp),
            mac: self.mac.or(other.mac),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// `ip -4 -batch` lines (links, IPv4 rules and routes).
    pub ip4: Vec<String>,
    /// `ip -6 -batch` lines.
    pub ip6: Vec<String>,
    /// `bridge -batch` lines.
    pub bridge: Vec<String>,
    /// One `ovs-vsctl` call (arguments).
    pub ovs: Vec<String>,
    /// arptables OUTPUT rules (the text after `-A OUTPUT`), each kept exactly once.
    pub arp: Vec<String>,
    /// (sysctl name with dots, value).
    pub sysctls: Vec<(String, String)>,
    pub firewall: BTreeMap<Family, TableSpec>,
    pub binding: Option<Binding>,
    pub announce: Vec<Announce>,
    pub warnings: Vec<String>,
    pub undo: Undo,
}

/// The network-tag features of `nic`, in the configured names.
pub fn features(nic: &NicEnv, cfg: &IfupSettings) -> Vec<Feature> {
    let t = &cfg.tags;
    let mut out = Vec::new();
    for tag in nic.network_tags() {
        let f = if t.nfdhcpd.contains(tag) {
            Feature::Nfdhcpd
        } else if t.ip_less_routed.contains(tag) {
            Feature::IpLessRouted
        } else if t.mac_filtered.contains(tag) {
            Feature::MacFiltered
        } else if t.masq.contains(tag) {
            Feature::Masq
        } else if t.spoof_protected.contains(tag) {
            Feature::SpoofProtected
        } else {
            continue;
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out.sort();
    out
}

/// The firewall profile instance tags pick for this NIC: `<prefix><ident>:<profile>` with
/// ident = NIC index, name or UUID; the last matching tag wins (as in snf-network).
pub fn profile(nic: &NicEnv, cfg: &IfupSettings) -> anyhow::Result<Option<Profile>> {
    let mut found = None;
    for tag in &nic.tags {
        let Some(rest) = tag.strip_prefix(&cfg.firewall_tag_prefix) else {
            continue;
        };
        let Some((ident, prof)) = rest.rsplit_once(':') else {
            continue;
        };
        let mine = ident == nic.index.to_string()
            || nic.name.as_deref() == Some(ident)
            || ident == nic.uuid;
        if !mine {
            continue;
        }
        match Profile::parse(prof) {
            Some(p) => found = Some(p),
            // Other tools share the prefix (e.g. `reconfigure`); not ours to judge.
            None => continue,
        }
    }
    Ok(found)
}

/// The NIC's SLAAC address (only for a /64, as mac2eui64 and SLAAC do).
pub fn eui64_of(nic: &NicEnv) -> Option<Ipv6Addr> {
    let net = nic.network.as_ref()?.subnet6?;
    (net.prefix_len() == 64).then(|| eui64::address(net, nic.mac.get()))
}

fn table_of(nic: &NicEnv) -> String {
    nic.link.clone().unwrap_or_else(|| "main".to_owned())
}

/// The MAC a bridged or Open vSwitch KVM TAP gets: its own with the first octet `fe`, as
/// Ganeti's `setup_bridge` does. A bridge (Linux or Open vSwitch) whose address was not set
/// explicitly takes the lowest of its ports' MACs; `fe:` sorts above any uplink's, so
/// starting or stopping a VM never changes the bridge's MAC under the guests' ARP and
/// neighbour caches. The rest of the TAP's random MAC keeps TAPs apart.
pub fn bridge_port_mac(tap_mac: MacAddr) -> MacAddr {
    let mut o = tap_mac.octets();
    o[0] = 0xfe;
    MacAddr(o)
}

/// Refuses a routing table `ip` cannot name, before anything is changed: a rule or route
/// with it would fail half-way and could never be undone.
fn check_table(link: Option<&str>, table_id: Option<u32>) -> anyhow::Result<()> {
    match (link, table_id) {
        (Some(l), None | Some(0)) => bail!(
            "routing table '{l}' (LINK) does not exist: a routed NIC's LINK is a table id (1-4294967295) or a name from /etc/iproute2/rt_tables"
        ),
        _ => Ok(()),
    }
}

/// `ovs-vsctl` waits for ovs-vswitchd to apply a change; without a bound, a node whose
/// vswitchd is down would hang the VM's start for good.
pub fn ovs_timeout_arg(secs: u32) -> String {
    format!("--timeout={secs}")
}

/// Builds the plan. `announce` is false in Ganeti's pre-migration phase, when the VM does
/// not run here yet.
pub fn build(
    nic: &NicEnv,
    tap: &IfName,
    flavour: Flavour,
    cfg: &IfupSettings,
    facts: &Facts,
    announce: bool,
) -> anyhow::Result<Plan> {
    let t = tap.as_str();
    if !facts.tap_exists {
        bail!("interface {t} does not exist");
    }
    let i = Input {
        nic,
        tap,
        t,
        flavour,
        cfg,
        facts,
        announce,
        eui: eui64_of(nic),
        ll: eui64::link_local(nic.mac.get()),
        mac: nic.mac.get(),
        from: from_chain(t),
        to: to_chain(t),
    };
    let mut p = Plan::default();
    match nic.mode {
        NicMode::Bridged => bridged(&mut p, &i)?,
        NicMode::Routed => routed(&mut p, &i)?,
        NicMode::OpenVSwitch => openvswitch(&mut p, &i)?,
    }
    let feats = features(nic, cfg);
    let has = |f: Feature| feats.contains(&f);
    if has(Feature::IpLessRouted) {
        ip_less_routed(&mut p, &i);
    }
    if has(Feature::MacFiltered) {
        mac_filtered(&mut p, &i)?;
    }
    if has(Feature::SpoofProtected) {
        spoof_protected(&mut p, &i)?;
    }
    if let Some(prof) = profile(nic, cfg)? {
        firewall_profile(&mut p, &i, prof);
    }
    if has(Feature::Nfdhcpd) {
        p.binding = Some(nfdhcpd_binding(&i));
    }
    p.firewall.retain(|_, s| !s.is_empty());
    Ok(p)
}

/// What every part of a plan looks at: the call's arguments and what follows from them.
struct Input<'a> {
    nic: &'a NicEnv,
    tap: &'a IfName,
    t: &'a str,
    flavour: Flavour,
    cfg: &'a IfupSettings,
    facts: &'a Facts,
    announce: bool,
    /// The NIC's SLAAC and link-local addresses, and its MAC.
    eui: Option<Ipv6Addr>,
    ll: Ipv6Addr,
    mac: MacAddr,
    /// The TAP's chains: what comes from the VM, what goes to it.
    from: String,
    to: String,
}

/// Mode bridged: the TAP joins bridge LINK (with its MTU) and its VLANs.
fn bridged(p: &mut Plan, i: &Input) -> anyhow::Result<()> {
    let (nic, t, facts) = (i.nic, i.t, i.facts);
    let Some(br) = nic.link.as_deref() else {
        bail!(
            "bridged NIC {} of {} has no LINK (bridge)",
            nic.index,
            nic.instance
        );
    };
    let Some(bf) = &facts.bridge else {
        if facts.link_exists {
            bail!("LINK {br} is not a bridge");
        }
        bail!("bridge {br} does not exist");
    };
    port_mac(p, t, i.flavour, facts);
    p.ip4.push(format!("link set dev {t} mtu {}", bf.mtu));
    p.ip4.push(format!("link set dev {t} master {br}"));
    p.ip4.push(format!("link set dev {t} up"));
    p.undo.bridge = Some(br.to_owned());
    if !nic.vlan.is_empty() {
        if bf.vlan_filtering != Some(true) {
            bail!(
                "Instance {} NIC {} configured for VLAN support, but bridge {br} has VLAN filtering disabled{}",
                nic.instance,
                nic.index,
                if bf.vlan_filtering.is_none() {
                    " (this kernel has no bridge VLAN filtering)"
                } else {
                    ""
                }
            );
        }
        if let Some(u) = nic.vlan.untagged {
            p.bridge
                .push(format!("vlan add dev {t} vid {u} pvid untagged master"));
        }
        for v in &nic.vlan.tagged {
            p.bridge.push(format!("vlan add dev {t} vid {v} master"));
        }
    }
    Ok(())
}

/// Mode routed: the TAP routes (proxy ARP/NDP, forwarding) through routing table LINK,
/// with a host route to each of the VM's addresses.
fn routed(p: &mut Plan, i: &Input) -> anyhow::Result<()> {
    let (nic, t, facts) = (i.nic, i.t, i.facts);
    check_table(nic.link.as_deref(), facts.table_id)?;
    let subnet6 = nic.network.as_ref().and_then(|n| n.subnet6).is_some();
    // A NIC on an L2-only network (no IPv4 subnet, beyond Ganeti) is routed over IPv6
    // alone: no IPv4 rule, proxy ARP or forwarding is set up for it.
    let l2_only = nic.ip.is_none() && nic.network.as_ref().is_some_and(|n| n.subnet.is_none());
    if l2_only && !subnet6 {
        bail!(
            "mode routed needs an address to route: network {} has neither an IPv4 nor an IPv6 subnet",
            nic.network.as_ref().map_or("", |n| n.name.as_str())
        );
    }
    routed_mac(p, i);
    p.ip4.push(format!("link set dev {t} up"));
    let table = table_of(nic);
    for (k, v) in [
        // The TAP's link-local address is the VM's router: usable at once, no DAD
        // (every routed TAP has the same one, by design).
        ("net.ipv6.conf.{}.accept_dad", "0"),
        ("net.ipv4.conf.{}.proxy_arp", "1"),
        ("net.ipv4.conf.{}.forwarding", "1"),
        ("net.ipv6.conf.{}.proxy_ndp", "1"),
        ("net.ipv6.conf.{}.forwarding", "1"),
    ] {
        if !(l2_only && k.starts_with("net.ipv4.")) {
            p.sysctls.push((k.replace("{}", t), v.to_owned()));
        }
    }
    let link = nic.link.as_deref();
    if !l2_only {
        rules(&mut p.ip4, &facts.rules4, t, link, facts.table_id);
    }
    if subnet6 {
        rules(&mut p.ip6, &facts.rules6, t, link, facts.table_id);
    }
    if nic.link.is_some() {
        if !l2_only {
            p.undo.rule_tables4.push(table.clone());
        }
        if subnet6 {
            p.undo.rule_tables6.push(table.clone());
        }
    }
    if let Some(ip) = nic.ip {
        p.ip4.push(format!(
            "route replace {ip}/32 dev {t} table {table} proto static"
        ));
        p.undo.routes4.push((format!("{ip}/32"), table.clone()));
        announce_garp(p, i, ip, &table);
    }
    if let Some(e) = i.eui {
        p.ip6.push(format!(
            "route replace {e}/128 dev {t} table {table} proto static"
        ));
        p.undo.routes6.push((format!("{e}/128"), table.clone()));
        match &facts.uplink6 {
            Some(up) => {
                p.ip6.push(format!("neigh replace proxy {e} dev {up}"));
                p.undo.neigh_proxies.push((e.to_string(), up.to_string()));
                announce_na(p, i, e, up);
            }
            None => p.warnings.push(format!(
                "no IPv6 default route in table {table}: no neighbour proxy entry for {e}"
            )),
        }
    }
    Ok(())
}

/// A routed KVM TAP gets the configured constant MAC (the VM's router is the same on
/// every node); the old one is kept to restore.
fn routed_mac(p: &mut Plan, i: &Input) {
    let (t, cfg, facts) = (i.t, i.cfg, i.facts);
    if i.flavour == Flavour::Kvm && facts.tap_mac != Some(cfg.tap_constant_mac) {
        p.ip4
            .push(format!("link set dev {t} address {}", cfg.tap_constant_mac));
        p.undo.mac = facts.tap_mac;
    }
}

/// A gratuitous ARP for a routed VM's IPv4 address on the uplink, so that the network
/// sends its traffic here (after a migration, at once).
fn announce_garp(p: &mut Plan, i: &Input, ip: Ipv4Addr, table: &str) {
    match &i.facts.uplink4 {
        Some(up) if i.announce => p.announce.push(Announce::Garp {
            ip,
            dev: up.clone(),
        }),
        Some(_) => {}
        None => p.warnings.push(format!(
            "no IPv4 default route in table {table}: no gratuitous ARP for {ip}"
        )),
    }
}

/// An unsolicited neighbour advertisement for a routed VM's SLAAC address on `uplink`.
fn announce_na(p: &mut Plan, i: &Input, ip: Ipv6Addr, uplink: &IfName) {
    if i.announce {
        p.announce.push(Announce::UnsolicitedNa {
            ip,
            dev: uplink.clone(),
        });
    }
}

/// Mode openvswitch: the TAP becomes a port of switch LINK, access or trunk per its
/// VLANs, in one `ovs-vsctl` call.
fn openvswitch(p: &mut Plan, i: &Input) -> anyhow::Result<()> {
    let (nic, t) = (i.nic, i.t);
    let Some(sw) = nic.link.as_deref() else {
        bail!(
            "openvswitch NIC {} of {} has no LINK (switch)",
            nic.index,
            nic.instance
        );
    };
    if !i.facts.ovs_available {
        bail!("mode openvswitch needs Open vSwitch, but ovs-vsctl was not found in PATH");
    }
    port_mac(p, t, i.flavour, i.facts);
    p.ip4.push(format!("link set dev {t} up"));
    let mut ovs = vec![ovs_timeout_arg(i.cfg.ovs_timeout)];
    ovs.extend(["--may-exist", "add-port", sw, t].map(str::to_owned));
    ovs.extend(["--", "clear", "port", t, "tag", "trunks", "vlan_mode"].map(str::to_owned));
    if let Some(u) = nic.vlan.untagged {
        ovs.extend(["--", "set", "port", t].map(str::to_owned));
        ovs.push(format!("tag={u}"));
    }
    if !nic.vlan.tagged.is_empty() {
        let list: Vec<String> = nic.vlan.tagged.iter().map(u16::to_string).collect();
        ovs.extend(["--", "set", "port", t].map(str::to_owned));
        ovs.push(format!("trunks={}", list.join(",")));
        // With a tag and no vlan_mode, Open vSwitch makes an access port and ignores
        // the trunks (Ganeti's script has this bug); `.N:M` means N untagged plus M
        // tagged, as in bridged mode.
        if nic.vlan.untagged.is_some() {
            ovs.push("vlan_mode=native-untagged".to_owned());
        }
    }
    p.ovs = ovs;
    p.undo.ovs_bridge = Some(sw.to_owned());
    Ok(())
}

/// Network tag ip-less-routed (routed only): traffic from the TAP must come from the
/// VM's own addresses, and the node's ARP requests into it carry the gateway's.
fn ip_less_routed(p: &mut Plan, i: &Input) {
    let (nic, t, from) = (i.nic, i.t, &i.from);
    if nic.mode != NicMode::Routed {
        p.warnings.push(format!(
            "network tag ip-less-routed ignored in mode {}",
            nic.mode
        ));
        return;
    }
    // The node has no address in the VM's subnet: its ARP requests into the TAP
    // carry the gateway's, so that guests that ignore off-subnet senders answer.
    if let (Some(_), Some(gw)) = (nic.ip, nic.network.as_ref().and_then(|n| n.gateway)) {
        let rule = crate::arp::mangle_rule(t, gw);
        p.arp.push(rule.clone());
        p.undo.arp.push(rule);
    }
    let v4 = p.firewall.entry(Family::Ip4).or_default();
    if let Some(ip) = nic.ip {
        v4.push_rule(from, Rule::new([Match::not_src(ip)], Verdict::Drop));
        v4.push_jump(Hook::Forward, JumpMatch::In(t.to_owned()), from);
    }
    if let Some(e) = i.eui {
        let v6 = p.firewall.entry(Family::Ip6).or_default();
        v6.push_rule(from, Rule::new([Match::not_src(e)], Verdict::Drop));
        v6.push_jump(Hook::Forward, JumpMatch::In(t.to_owned()), from);
    }
}

/// Network tag private-filtered (bridged only): the TAP sends only with its own MAC and
/// hears only MACs of the same prefix (the configured mask).
fn mac_filtered(p: &mut Plan, i: &Input) -> anyhow::Result<()> {
    let (t, mac, from, to) = (i.t, i.mac, &i.from, &i.to);
    match i.nic.mode {
        NicMode::Bridged => {
            let eb = p.firewall.entry(Family::Eb).or_default();
            let other_prefix = Match::SrcMac {
                not: true,
                mac,
                mask: Some(i.cfg.mac_mask),
            };
            eb.push_rule(from, Rule::new([Match::not_src_mac(mac)], Verdict::Drop));
            eb.push_rule(to, Rule::new([other_prefix], Verdict::Drop));
            eb.push_jump(Hook::Forward, JumpMatch::In(t.to_owned()), from);
            eb.push_jump(Hook::Input, JumpMatch::In(t.to_owned()), from);
            eb.push_jump(Hook::Forward, JumpMatch::Out(t.to_owned()), to);
            eb.push_jump(Hook::Output, JumpMatch::Out(t.to_owned()), to);
        }
        NicMode::Routed => p
            .warnings
            .push("network tag private-filtered ignored in mode routed".to_owned()),
        NicMode::OpenVSwitch => bail!(
            "network tag private-filtered is not supported in mode openvswitch (ebtables does not see Open vSwitch ports)"
        ),
    }
    Ok(())
}

/// Network tag spoof-protected: the VM sends only from its own MAC and addresses, and
/// serves no DHCP or router advertisements.
fn spoof_protected(p: &mut Plan, i: &Input) -> anyhow::Result<()> {
    let (nic, t, mac, from) = (i.nic, i.t, i.mac, &i.from);
    match nic.mode {
        NicMode::Bridged => {
            let eb = p.firewall.entry(Family::Eb).or_default();
            for r in spoof_rules_eb(mac, nic.ip, i.eui, i.ll) {
                eb.push_rule(from, r);
            }
            eb.push_jump(Hook::Forward, JumpMatch::In(t.to_owned()), from);
            eb.push_jump(Hook::Input, JumpMatch::In(t.to_owned()), from);
        }
        NicMode::Routed => {
            let v4 = p.firewall.entry(Family::Ip4).or_default();
            for r in spoof_rules_ip4(mac, nic.ip) {
                v4.push_rule(from, r);
            }
            v4.push_jump(Hook::Forward, JumpMatch::In(t.to_owned()), from);
            v4.push_jump(Hook::Input, JumpMatch::In(t.to_owned()), from);
            let v6 = p.firewall.entry(Family::Ip6).or_default();
            for r in spoof_rules_ip6(mac, i.eui, i.ll) {
                v6.push_rule(from, r);
            }
            v6.push_jump(Hook::Forward, JumpMatch::In(t.to_owned()), from);
            v6.push_jump(Hook::Input, JumpMatch::In(t.to_owned()), from);
        }
        NicMode::OpenVSwitch => bail!(
            "network tag spoof-protected is not supported in mode openvswitch (ebtables does not see Open vSwitch ports)"
        ),
    }
    Ok(())
}

/// The firewall profile an instance tag picked: traffic to the VM goes through the
/// shared profile chain (not in mode openvswitch, whose ports iptables does not see).
fn firewall_profile(p: &mut Plan, i: &Input, prof: Profile) {
    let (t, to) = (i.t, &i.to);
    let matches = match i.nic.mode {
        NicMode::Bridged => JumpMatch::BridgedOut(t.to_owned()),
        NicMode::Routed => JumpMatch::Out(t.to_owned()),
        NicMode::OpenVSwitch => {
            p.warnings
                .push("firewall profiles are not applied in mode openvswitch".to_owned());
            return;
        }
    };
    for fam in [Family::Ip4, Family::Ip6] {
        let spec = p.firewall.entry(fam).or_default();
        spec.push_rule(to, Rule::new([], Verdict::Jump(prof.chain().to_owned())));
        spec.push_shared(prof.definition(fam));
        spec.push_jump(Hook::Forward, matches.clone(), to);
    }
}

/// Network tag nfdhcpd: the binding nfdhcpd answers the VM's DHCP, NDP and DHCPv6 from.
fn nfdhcpd_binding(i: &Input) -> Binding {
    let nic = i.nic;
    let mut b = Binding::new(i.mac, nic.instance.clone());
    b.indev = match nic.mode {
        NicMode::Routed => Some(i.tap.clone()),
        _ => nic.link.as_deref().and_then(|l| l.parse().ok()),
    };
    b.ip = nic.ip;
    b.tags = nic.tags.join(" ");
    if let Some(n) = &nic.network {
        b.gateway = n.gateway;
        b.subnet = n.subnet;
        b.gateway6 = n.gateway6;
        b.subnet6 = n.subnet6;
    }
    b.eui64 = i.eui;
    b
}

/// Gives a KVM TAP that becomes a bridge port its `fe:` MAC before it is enslaved. Xen's
/// netback vifs are `fe:ff:ff:ff:ff:ff` already and refuse a new address.
fn port_mac(p: &mut Plan, t: &str, flavour: Flavour, facts: &Facts) {
    if flavour != Flavour::Kvm {
        return;
    }
    if let Some(m) = facts.tap_mac
        && m.octets()[0] != 0xfe
    {
        p.ip4
            .push(format!("link set dev {t} address {}", bridge_port_mac(m)));
        p.undo.mac = Some(m);
    }
}

/// Keeps exactly one `iif <tap> lookup <LINK>` rule (none when LINK is unset).
fn rules(
    out: &mut Vec<String>,
    existing: &[IpRule],
    tap: &str,
    link: Option<&str>,
    table_id: Option<u32>,
) {
    let mut have = false;
    for r in existing {
        if link.is_some() && Some(r.table) == table_id && !have {
            have = true;
        } else {
            out.push(format!(
                "rule del priority {} iif {tap} lookup {}",
                r.priority, r.table
            ));
        }
    }
    if let (Some(l), false) = (link, have) {
        out.push(format!("rule add iif {tap} table {l}"));
    }
}

/// ebtables rules (chain SNF-FROM-<tap>) letting only the NIC's own MAC, IPv4 and IPv6
/// (EUI-64 and link-local) out of a bridged TAP, and no DHCP server or RA packets. Drops
/// come before the RETURNs that accept the NIC's addresses.
pub fn spoof_rules_eb(
    mac: MacAddr,
    ip: Option<Ipv4Addr>,
    eui: Option<Ipv6Addr>,
    ll: Ipv6Addr,
) -> Vec<Rule> {
    use EtherType::{Arp, Ip4, Ip6, Vlan};
    use Match::{ArpSrcIp, ArpSrcMac, DstPort, Proto, SrcPort};
    use Verdict::{Drop, Return};
    let ty = Match::EtherType;
    let any4 = Ipv4Addr::UNSPECIFIED;
    let mut r = vec![
        Rule::new([Match::not_src_mac(mac)], Drop),
        Rule::new([ty(Vlan)], Drop),
        Rule::new([ty(Ip4), Proto(L4::Udp), SrcPort(67)], Drop),
        Rule::new(
            [
                ty(Ip6),
                Proto(L4::Icmp6),
                Match::Icmp6(Icmp6Type::RouterAdvert),
            ],
            Drop,
        ),
        Rule::new([ty(Ip6), Proto(L4::Udp), SrcPort(547)], Drop),
        Rule::new([ty(Arp), ArpSrcMac { not: true, mac }], Drop),
    ];
    // ARP probes (RFC 5227) come from 0.0.0.0.
    r.push(Rule::new(
        [
            ty(Arp),
            ArpSrcIp {
                not: false,
                ip: any4,
            },
        ],
        Return,
    ));
    match ip {
        Some(ip) => {
            r.push(Rule::new([ty(Arp), ArpSrcIp { not: true, ip }], Drop));
            r.push(Rule::new([ty(Ip4), Match::src(ip)], Return));
        }
        None => r.push(Rule::new([ty(Arp)], Drop)),
    }
    // A DHCP client before it has its address.
    r.push(Rule::new(
        [ty(Ip4), Match::src(any4), Proto(L4::Udp), DstPort(67)],
        Return,
    ));
    r.push(Rule::new([ty(Ip4)], Drop));
    if let Some(e) = eui {
        r.push(Rule::new([ty(Ip6), Match::src(e)], Return));
    }
    r.push(Rule::new([ty(Ip6), Match::src(ll)], Return));
    // Duplicate address detection and MLD reports are sent from ::.
    r.push(Rule::new(
        [ty(Ip6), Match::src(Ipv6Addr::UNSPECIFIED), Proto(L4::Icmp6)],
        Return,
    ));
    r.push(Rule::new([ty(Ip6)], Drop));
    r
}

/// iptables rules for a routed TAP (FORWARD and INPUT from the TAP).
pub fn spoof_rules_ip4(mac: MacAddr, ip: Option<Ipv4Addr>) -> Vec<Rule> {
    use Match::{DstPort, Proto, SrcPort};
    use Verdict::{Drop, Return};
    let any4 = Ipv4Addr::UNSPECIFIED;
    let mut r = vec![
        Rule::new([Match::not_src_mac(mac)], Drop),
        Rule::new([Proto(L4::Udp), SrcPort(67)], Drop),
        Rule::new([Match::src(any4), Proto(L4::Udp), DstPort(67)], Return),
    ];
    match ip {
        Some(ip) => r.push(Rule::new([Match::not_src(ip)], Drop)),
        None => r.push(Rule::new([], Drop)),
    }
    r
}

/// ip6tables rules for a routed TAP.
pub fn spoof_rules_ip6(mac: MacAddr, eui: Option<Ipv6Addr>, ll: Ipv6Addr) -> Vec<Rule> {
    use Match::{Proto, SrcPort};
    use Verdict::{Drop, Return};
    let mut r = vec![
        Rule::new([Match::not_src_mac(mac)], Drop),
        Rule::new(
            [Proto(L4::Icmp6), Match::Icmp6(Icmp6Type::RouterAdvert)],
            Drop,
        ),
        Rule::new([Proto(L4::Udp), SrcPort(547)], Drop),
    ];
    if let Some(e) = eui {
        r.push(Rule::new([Match::src(e)], Return));
    }
    r.push(Rule::new([Match::src(ll)], Return));
    r.push(Rule::new(
        [Match::src(Ipv6Addr::UNSPECIFIED), Proto(L4::Icmp6)],
        Return,
    ));
    r.push(Rule::new([], Drop));
    r
}

#[cfg(test)]
mod snapshots;

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(mode: &str, net_tags: &str, tags: &str) -> NicEnv {
        NicEnv::from_env([
            ("INSTANCE", "vm1"),
            ("INTERFACE", "tap1"),
            ("INTERFACE_INDEX", "0"),
            ("INTERFACE_UUID", "u0"),
            ("INTERFACE_NAME", "eth-a"),
            ("MAC", "aa:00:00:12:34:56"),
            ("IP", "198.51.100.10"),
            ("MODE", mode),
            ("LINK", if mode == "routed" { "100" } else { "br0" }),
            ("TAGS", tags),
            ("NETWORK_NAME", "n"),
            ("NETWORK_TAGS", net_tags),
            ("NETWORK_SUBNET", "198.51.100.0/24"),
            ("NETWORK_GATEWAY", "198.51.100.1"),
            ("NETWORK_SUBNET6", "2001:db8:1::/64"),
        ])
        .unwrap()
    }

    fn facts() -> Facts {
        Facts {
            tap_exists: true,
            bridge: Some(BridgeFacts {
                mtu: 1400,
                vlan_filtering: Some(false),
            }),
            link_exists: true,
            uplink4: Some("up0".parse().unwrap()),
            uplink6: Some("up0".parse().unwrap()),
            table_id: Some(100),
            ..Facts::default()
        }
    }

    fn tap() -> IfName {
        "tap1".parse().unwrap()
    }

    #[test]
    fn bridged_links_and_vlan_error() {
        let cfg = IfupSettings::default();
        let p = build(
            &nic("bridged", "", ""),
            &tap(),
            Flavour::Kvm,
            &cfg,
            &facts(),
            true,
        )
        .unwrap();
        assert_eq!(
            p.ip4,
            [
                "link set dev tap1 mtu 1400",
                "link set dev tap1 master br0",
                "link set dev tap1 up"
            ]
        );
        assert!(p.firewall.is_empty() && p.binding.is_none());
        let mut n = nic("bridged", "", "");
        n.vlan = ".100:200".parse().unwrap();
        let e = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap_err();
        assert!(e.to_string().contains("has VLAN filtering disabled"));
        let mut f = facts();
        f.bridge.as_mut().unwrap().vlan_filtering = Some(true);
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &f, true).unwrap();
        assert_eq!(
            p.bridge,
            [
                "vlan add dev tap1 vid 100 pvid untagged master",
                "vlan add dev tap1 vid 200 master"
            ]
        );
    }

    /// `nic` on an L2-only network: no IP, no IPv4 subnet or gateway.
    fn l2_nic(mode: &str, net_tags: &str) -> NicEnv {
        let mut n = nic(mode, net_tags, "");
        n.ip = None;
        let net = n.network.as_mut().unwrap();
        net.subnet = None;
        net.gateway = None;
        n
    }

    #[test]
    fn an_l2_only_nic_gets_no_ipv4_rules_routes_or_lease() {
        let cfg = IfupSettings::default();
        let n = l2_nic("bridged", "nfdhcpd spoof-protected");
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap();
        assert!(
            !p.ip4
                .iter()
                .any(|l| l.contains("route") || l.contains("rule"))
        );
        assert!(p.ip6.is_empty() && p.arp.is_empty() && p.announce.is_empty());
        // Spoof protection lets no IPv4 out but a DHCP request, which nfdhcpd leaves
        // unanswered (the binding has no IP).
        let eb = &p.firewall[&Family::Eb].chains[0].rules;
        assert!(eb.iter().any(|r| *r == "-p ARP -j DROP"));
        assert!(eb.iter().any(|r| *r == "-p IPv4 -j DROP"));
        let b = p.binding.unwrap();
        assert!(b.ip.is_none() && b.subnet.is_none() && b.gateway.is_none());
        assert_eq!(
            b.eui64.unwrap().to_string(),
            "2001:db8:1:0:a800:ff:fe12:3456"
        );

        // Routed: IPv6 alone (route, proxy NDP), nothing of IPv4 but the link.
        let n = l2_nic("routed", "nfdhcpd");
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap();
        assert_eq!(
            p.ip4,
            [
                "link set dev tap1 address cc:47:52:4e:45:54",
                "link set dev tap1 up"
            ]
        );
        assert_eq!(
            p.ip6,
            [
                "rule add iif tap1 table 100",
                "route replace 2001:db8:1:0:a800:ff:fe12:3456/128 dev tap1 table 100 proto static",
                "neigh replace proxy 2001:db8:1:0:a800:ff:fe12:3456 dev up0"
            ]
        );
        assert!(!p.sysctls.iter().any(|(k, _)| k.starts_with("net.ipv4.")));
        assert!(p.undo.rule_tables4.is_empty() && p.undo.routes4.is_empty());
        // Without an IPv6 subnet either there is nothing to route.
        let mut n = l2_nic("routed", "");
        n.network.as_mut().unwrap().subnet6 = None;
        let e = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap_err();
        assert!(
            e.to_string()
                .contains("mode routed needs an address to route: network n has neither an IPv4 nor an IPv6 subnet"),
            "{e}"
        );
    }

    #[test]
    fn bridge_ports_get_an_fe_mac_before_they_are_enslaved() {
        let cfg = IfupSettings::default();
        let port = |f: &Facts, mode: &str, flavour: Flavour| {
            build(&nic(mode, "", ""), &tap(), flavour, &cfg, f, true).unwrap()
        };
        let mut f = facts();
        f.tap_mac = Some("02:11:22:33:44:55".parse().unwrap());
        let p = port(&f, "bridged", Flavour::Kvm);
        assert_eq!(
            p.ip4,
            [
                "link set dev tap1 address fe:11:22:33:44:55",
                "link set dev tap1 mtu 1400",
                "link set dev tap1 master br0",
                "link set dev tap1 up"
            ]
        );
        assert_eq!(p.undo.mac, f.tap_mac);
        // Open vSwitch bridges pick the lowest port MAC too.
        f.ovs_available = true;
        let p = port(&f, "openvswitch", Flavour::Kvm);
        assert_eq!(
            p.ip4,
            [
                "link set dev tap1 address fe:11:22:33:44:55",
                "link set dev tap1 up"
            ]
        );
        // Already fe: (a re-`up`, or a Xen vif): nothing to change; Xen vifs never.
        f.tap_mac = Some("fe:ff:ff:ff:ff:ff".parse().unwrap());
        let p = port(&f, "bridged", Flavour::Kvm);
        assert_eq!(p.ip4[0], "link set dev tap1 mtu 1400");
        assert_eq!(p.undo.mac, None);
        f.tap_mac = Some("02:11:22:33:44:55".parse().unwrap());
        let p = port(&f, "bridged", Flavour::Xen);
        assert_eq!(p.ip4[0], "link set dev tap1 mtu 1400");
    }

    #[test]
    fn routed_table_must_exist_before_anything_changes() {
        let cfg = IfupSettings::default();
        let mut n = nic("routed", "", "");
        n.link = Some("rt_missing".into());
        let mut f = facts();
        f.table_id = None;
        let e = build(&n, &tap(), Flavour::Kvm, &cfg, &f, true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("routing table 'rt_missing' (LINK) does not exist"),
            "{e}"
        );
        f.table_id = Some(0);
        assert!(build(&n, &tap(), Flavour::Kvm, &cfg, &f, true).is_err());
        // No LINK: the main table.
        n.link = None;
        f.table_id = Some(254);
        assert!(build(&n, &tap(), Flavour::Kvm, &cfg, &f, true).is_ok());
    }

    #[test]
    fn routed_full() {
        let cfg = IfupSettings::default();
        let n = nic(
            "routed",
            "nfdhcpd ip-less-routed",
            "synnefo:network:eth-a:limited",
        );
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap();
        assert_eq!(
            p.ip4,
            [
                "link set dev tap1 address cc:47:52:4e:45:54",
                "link set dev tap1 up",
                "rule add iif tap1 table 100",
                "route replace 198.51.100.10/32 dev tap1 table 100 proto static"
            ]
        );
        assert_eq!(
            p.ip6,
            [
                "rule add iif tap1 table 100",
                "route replace 2001:db8:1:0:a800:ff:fe12:3456/128 dev tap1 table 100 proto static",
                "neigh replace proxy 2001:db8:1:0:a800:ff:fe12:3456 dev up0"
            ]
        );
        assert_eq!(p.announce.len(), 2);
        let arp = ["-j mangle -o tap1 --opcode 1 --mangle-ip-s 198.51.100.1"];
        assert_eq!(p.arp, arp);
        assert_eq!(p.undo.arp, arp);
        let v4 = &p.firewall[&Family::Ip4];
        assert_eq!(v4.chains[0].rules, ["! -s 198.51.100.10/32 -j DROP"]);
        assert_eq!(v4.chains[1].rules, ["-j snf-limited"]);
        let b = p.binding.unwrap();
        assert_eq!(b.indev.unwrap().as_str(), "tap1");
        assert_eq!(
            b.eui64.unwrap().to_string(),
            "2001:db8:1:0:a800:ff:fe12:3456"
        );
        // Xen keeps the vif's MAC; a pre-migration call announces nothing.
        let p = build(&n, &tap(), Flavour::Xen, &cfg, &facts(), false).unwrap();
        assert_eq!(p.ip4[0], "link set dev tap1 up");
        assert!(p.announce.is_empty());
    }

    #[test]
    fn existing_rules_are_kept_or_replaced() {
        let cfg = IfupSettings::default();
        let mut f = facts();
        f.rules4 = vec![
            IpRule {
                priority: 32765,
                table: 100,
            },
            IpRule {
                priority: 32764,
                table: 7,
            },
        ];
        let p = build(&nic("routed", "", ""), &tap(), Flavour::Kvm, &cfg, &f, true).unwrap();
        assert!(
            p.ip4
                .contains(&"rule del priority 32764 iif tap1 lookup 7".to_owned())
        );
        assert!(!p.ip4.iter().any(|l| l.starts_with("rule add")));
    }

    #[test]
    fn openvswitch_port_and_vlans() {
        let cfg = IfupSettings::default();
        let mut n = nic("openvswitch", "", "");
        n.vlan = ".10:20:30".parse().unwrap();
        let mut f = facts();
        f.ovs_available = true;
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &f, true).unwrap();
        assert_eq!(p.ip4, ["link set dev tap1 up"]);
        assert_eq!(
            p.ovs.join(" "),
            "--timeout=10 --may-exist add-port br0 tap1 -- clear port tap1 tag trunks vlan_mode -- set port tap1 tag=10 -- set port tap1 trunks=20,30 vlan_mode=native-untagged"
        );
        assert_eq!(p.undo.ovs_bridge.as_deref(), Some("br0"));
        for (vlan, set) in [
            (":20:30", "-- set port tap1 trunks=20,30"),
            (".10", "-- set port tap1 tag=10"),
            ("", ""),
        ] {
            n.vlan = vlan.parse().unwrap();
            let p = build(&n, &tap(), Flavour::Kvm, &cfg, &f, true).unwrap();
            assert_eq!(
                p.ovs.join(" "),
                format!(
                    "--timeout=10 --may-exist add-port br0 tap1 -- clear port tap1 tag trunks vlan_mode {set}"
                )
                .trim_end(),
                "{vlan}"
            );
        }
    }

    #[test]
    fn tag_names_come_from_the_configuration() {
        let cfg: IfupSettings =
            toml::from_str("[tags]\nmac_filtered = [\"isolated\"]\nnfdhcpd = []\n").unwrap();
        let n = nic("bridged", "isolated nfdhcpd private-filtered", "");
        assert_eq!(features(&n, &cfg), [Feature::MacFiltered]);
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap();
        assert!(p.binding.is_none());
        assert!(p.firewall.contains_key(&Family::Eb));
    }

    #[test]
    fn tags_and_profiles() {
        let cfg = IfupSettings::default();
        let n = nic(
            "bridged",
            "mac-filtered spoof-protected public",
            "synnefo:network:1:protected synnefo:network:u0:unprotected synnefo:network:0:bogus",
        );
        assert_eq!(
            features(&n, &cfg),
            [Feature::MacFiltered, Feature::SpoofProtected]
        );
        assert_eq!(profile(&n, &cfg).unwrap(), Some(Profile::Unprotected));
        let p = build(&n, &tap(), Flavour::Kvm, &cfg, &facts(), true).unwrap();
        let eb = &p.firewall[&Family::Eb];
        let from = &eb.chains[0];
        // MAC check once even though both features ask for it.
        assert_eq!(
            from.rules
                .iter()
                .filter(|r| *r == "-s ! aa:00:00:12:34:56 -j DROP")
                .count(),
            1
        );
        assert_eq!(
            eb.chains[1].rules,
            ["-s ! aa:00:00:12:34:56/ff:ff:f0:00:00:00 -j DROP"]
        );
        assert_eq!(eb.jumps.len(), 4);
        let v4 = &p.firewall[&Family::Ip4];
        assert_eq!(
            v4.jumps[0].matches,
            "-m physdev --physdev-out tap1 --physdev-is-bridged"
        );
        let ovs = nic("openvswitch", "spoof-protected", "");
        let mut f = facts();
        f.ovs_available = true;
        assert!(build(&ovs, &tap(), Flavour::Kvm, &cfg, &f, true).is_err());
        f.ovs_available = false;
        let e = build(
            &nic("openvswitch", "", ""),
            &tap(),
            Flavour::Kvm,
            &cfg,
            &f,
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ovs-vsctl was not found"));
    }
}
