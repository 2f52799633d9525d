//! The nftables driver: one nf_tables transaction per `up`, `down` and `reapply` (sent
//! over netlink, see `nftnl`; its `nft -f -` text is what `--dry-run` prints), in the
//! tables snf-ifup owns (`table bridge snf_ifup`, `table inet snf_ifup`,
//! `table arp snf_ifup`).
//!
//! Each table has fixed base chains whose only rules dispatch through verdict maps keyed
//! by interface name (`iifname vmap @fwd_iif`): a NIC is one element per hook and
//! direction plus its own chains, so adding or removing it never needs a rule handle.
//! `up` and `down` of one NIC write only what changes, from its recorded state and an
//! index of the tables ([`Index`]), without reading the ruleset; `reapply`, and any NIC
//! whose record is missing or contradicted, is computed from the chain listing, where
//! removal is written as "add, then delete" (a no-op for what exists, no error for what
//! does not). The last NIC of a table takes the table with it, so that `down` leaves the
//! ruleset as it was before the first `up`.
//!
//! Rules are rendered from the typed model ([`Rule`]); a combination nft cannot express
//! (a port without TCP or UDP) is an error, never a silently dropped match.
//!
//! A bridged NIC's profile is where the iptables driver's `physdev` match is: after
//! br_netfilter. The bridge family knows the port but has no conntrack without
//! nf_conntrack_bridge, so the port's chain only marks the packet (two bits of the mark,
//! [`MARK_MASK`]) and a base chain of the inet table, which br_netfilter runs on bridged
//! packets and which has conntrack, applies the profile to the packets carrying its value
//! and clears the bits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use netconf::MacAddr;
use serde::{Deserialize, Serialize};

use netconf_sys::nftables::{self as nfnl, Family as NfFamily};

use super::nftnl::{self, Stmt, TABLE, Tx};
use super::{
    EtherType, Family, Firewall, FwMap, Hook, Icmp6Type, JumpMatch, L4, Match, NicRules, Rule,
    Verdict, from_chain, is_shared, to_chain,
};
use crate::{exec, log};

pub struct Nft {
    /// snf-ifup's record of its tables (see [`Index`]).
    pub index: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Table {
    Bridge,
    Inet,
    Arp,
}

impl Table {
    const ALL: [Table; 3] = [Table::Bridge, Table::Inet, Table::Arp];

    fn family(self) -> &'static str {
        match self {
            Table::Bridge => "bridge",
            Table::Inet => "inet",
            Table::Arp => "arp",
        }
    }

    #[cfg(test)]
    fn from_family(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.family() == s)
    }

    fn nf(self) -> NfFamily {
        match self {
            Table::Bridge => NfFamily::Bridge,
            Table::Inet => NfFamily::Inet,
            Table::Arp => NfFamily::Arp,
        }
    }

    /// Base chains: (name, hook, dispatch rules as (match prefix, map)).
    fn skeleton(self) -> &'static [(&'static str, &'static [(&'static str, &'static str)])] {
        match self {
            Table::Bridge => &[
                (
                    "forward",
                    &[
                        ("iifname", "fwd_iif"),
                        ("oifname", "fwd_oif"),
                        ("ether type ip oifname", "fwd_oif4"),
                        ("ether type ip6 oifname", "fwd_oif6"),
                    ],
                ),
                ("input", &[("iifname", "in_iif")]),
                ("output", &[("oifname", "out_oif")]),
            ],
            Table::Inet => &[
                (
                    "forward",
                    &[
                        ("meta nfproto ipv4 iifname", "fwd_iif4"),
                        ("meta nfproto ipv4 oifname", "fwd_oif4"),
                        ("meta nfproto ipv6 iifname", "fwd_iif6"),
                        ("meta nfproto ipv6 oifname", "fwd_oif6"),
                    ],
                ),
                (
                    "input",
                    &[
                        ("meta nfproto ipv4 iifname", "in_iif4"),
                        ("meta nfproto ipv6 iifname", "in_iif6"),
                    ],
                ),
            ],
            Table::Arp => &[("output", &[("oifname", "out_oif")])],
        }
    }

    /// Every (map, chain) a TAP can have in this table.
    fn slots(self, tap: &str) -> Vec<(&'static str, String)> {
        let c = |p: &str| format!("{p}-{tap}");
        match self {
            Table::Bridge => vec![
                ("fwd_iif", c("from")),
                ("in_iif", c("from")),
                ("fwd_oif", c("to")),
                ("out_oif", c("to")),
                ("fwd_oif4", c("to4")),
                ("fwd_oif6", c("to6")),
            ],
            Table::Inet => vec![
                ("fwd_iif4", c("from4")),
                ("in_iif4", c("from4")),
                ("fwd_oif4", c("to4")),
                ("fwd_iif6", c("from6")),
                ("in_iif6", c("from6")),
                ("fwd_oif6", c("to6")),
            ],
            Table::Arp => vec![("out_oif", c("mangle"))],
        }
    }

    fn chains_of(self, tap: &str) -> BTreeSet<String> {
        self.slots(tap).into_iter().map(|(_, c)| c).collect()
    }
}

fn is_base(name: &str) -> bool {
    matches!(name, "forward" | "input" | "output")
}

/// What one NIC wants in nftables terms.
#[derive(Clone, Debug, Default)]
struct Want {
    /// (table, chain) → statements, in order.
    chains: BTreeMap<(Table, String), Vec<Stmt>>,
    /// Shared profile chains.
    shared: BTreeMap<(Table, String), Vec<Stmt>>,
    /// (table, map, chain).
    elements: BTreeSet<(Table, &'static str, String)>,
}

impl Want {
    /// The tables this NIC uses: where it has elements, and where its bridged profile's
    /// shared chains are (the inet table, which has no element of a bridge port).
    fn tables(&self) -> BTreeSet<Table> {
        let shared = self.shared.keys().map(|(t, _)| *t);
        self.elements
            .iter()
            .map(|(t, _, _)| *t)
            .chain(shared)
            .collect()
    }
}

/// The bits of the packet mark (`meta mark`) that carry a bridged profile from the bridge
/// family, which knows the output port but has no conntrack without nf_conntrack_bridge,
/// to the inet family, which br_netfilter (bridge-nf-call-ip6tables/iptables) runs on
/// bridged packets and which has conntrack. Only these bits are changed, and they are
/// cleared again where the profile is applied.
const MARK_MASK: u32 = 0x0030_0000;

/// The profile chains that need conntrack, each with its value under [`MARK_MASK`] (two
/// bits: three values besides "none").
const MARKED: [&str; 2] = ["snf-protected", "snf-limited"];
const _: () = assert!(MARKED.len() as u32 <= MARK_MASK >> MARK_MASK.trailing_zeros());

fn mark_of(profile: &str) -> anyhow::Result<u32> {
    match MARKED.iter().position(|p| *p == profile) {
        Some(i) => Ok(((i as u32) + 1) << MARK_MASK.trailing_zeros()),
        None => bail!("nftables driver: no packet mark for the bridged profile {profile}"),
    }
}

/// The inet chain that applies a bridged profile: a base chain of the forward hook (the
/// mark, not an interface, says which packets are its own).
fn bridged_profile_chain(profile: &str, fam: Family) -> String {
    let suffix = if fam == Family::Ip6 { "6" } else { "4" };
    format!("{profile}-br{suffix}")
}

/// `add chain` / `create chain` arguments after the name: bridged profile chains are base
/// chains, every other chain of a NIC is a regular one.
fn chain_spec(name: &str) -> &'static str {
    if chain_hook(name).is_some() {
        " { type filter hook forward priority filter; policy accept; }"
    } else {
        ""
    }
}

/// The hook of a NIC's chain that is a base chain (see [`chain_spec`]).
fn chain_hook(name: &str) -> Option<nfnl::Hook> {
    (is_shared(name) && (name.ends_with("-br4") || name.ends_with("-br6")))
        .then_some(nfnl::Hook::Forward)
}

/// The rules of a bridged profile's inet chain: only the packets marked for it, whose
/// mark bits it clears before the profile's own rules decide.
fn bridged_profile_rules(
    profile: &str,
    fam: Family,
    rules: Vec<Stmt>,
) -> anyhow::Result<Vec<Stmt>> {
    let v6 = fam == Family::Ip6;
    let proto = if v6 { "ipv6" } else { "ipv4" };
    let mark = mark_of(profile)?;
    let mut out = vec![
        Stmt::new(
            format!("meta nfproto != {proto} return"),
            Some(nftnl::nfproto_not_return(v6)),
        ),
        Stmt::new(
            format!("meta mark & {MARK_MASK:#010x} != {mark:#010x} return"),
            Some(nftnl::mark_not_return(MARK_MASK, mark)),
        ),
        Stmt::new(
            format!("meta mark set meta mark & {:#010x}", !MARK_MASK),
            Some(nftnl::mark_set(!MARK_MASK, 0)),
        ),
    ];
    out.extend(rules);
    Ok(out)
}

/// The bridge-family rule of a port's `SNF-TO` chain that sends its packets to `profile`.
fn bridged_profile_mark(profile: &str) -> anyhow::Result<Stmt> {
    let mark = mark_of(profile)?;
    Ok(Stmt::new(
        format!(
            "meta mark set meta mark & {:#010x} | {mark:#010x}",
            !MARK_MASK
        ),
        Some(nftnl::mark_set(!MARK_MASK, mark)),
    ))
}

/// An nft name for a model chain.
fn chain_name(fam: Family, tap: &str, name: &str) -> anyhow::Result<String> {
    let suffix = match fam {
        Family::Eb => "",
        Family::Ip4 => "4",
        Family::Ip6 => "6",
    };
    if name == from_chain(tap) {
        Ok(format!("from{suffix}-{tap}"))
    } else if name == to_chain(tap) {
        Ok(format!("to{suffix}-{tap}"))
    } else if is_shared(name) && fam != Family::Eb {
        Ok(format!("{name}{suffix}"))
    } else {
        bail!("nftables driver: unknown chain {name}")
    }
}

/// Interface names go into nft's syntax unquoted (chain names) and quoted (map keys):
/// only the characters that are safe in both.
fn check_tap(tap: &str) -> anyhow::Result<()> {
    if tap.starts_with(|c: char| c.is_ascii_alphabetic())
        && tap
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        Ok(())
    } else {
        bail!("nftables driver: interface name {tap:?} has characters nft cannot name a chain with")
    }
}

fn want_of(tap: &str, fw: &FwMap, arp: &[String]) -> anyhow::Result<Want> {
    check_tap(tap)?;
    let mut w = Want::default();
    for (&fam, spec) in fw {
        let bridged = spec
            .jumps
            .iter()
            .any(|j| matches!(j.matches, JumpMatch::BridgedOut(_)));
        let table = if fam == Family::Eb || bridged {
            Table::Bridge
        } else {
            Table::Inet
        };
        let suffix = match fam {
            Family::Eb => "",
            Family::Ip4 => "4",
            Family::Ip6 => "6",
        };
        for j in &spec.jumps {
            if j.matches.tap() != tap {
                bail!(
                    "nftables driver: a jump of {tap} matches another interface ({})",
                    j.matches
                );
            }
            let dir = match j.matches {
                JumpMatch::In(_) => "iif",
                JumpMatch::Out(_) | JumpMatch::BridgedOut(_) => "oif",
            };
            let hook = match j.from {
                Hook::Forward => "fwd",
                Hook::Input => "in",
                Hook::Output => "out",
            };
            let map = format!("{hook}_{dir}{suffix}");
            let target = chain_name(fam, tap, &j.target)?;
            let Some((m, c)) = table
                .slots(tap)
                .into_iter()
                .find(|(m, c)| *m == map && *c == target)
            else {
                bail!(
                    "nftables driver: no slot for {} {} -> {}",
                    j.from,
                    j.matches,
                    j.target
                );
            };
            w.elements.insert((table, m, c));
        }
        let name = |n: &str| chain_name(fam, tap, n);
        if bridged {
            bridged_profile(&mut w, fam, spec, &name)?;
            continue;
        }
        for c in &spec.chains {
            let rules = c
                .rules
                .iter()
                .map(|r| stmt(fam, table, r, &name))
                .collect::<anyhow::Result<Vec<_>>>()?;
            w.chains.insert((table, name(&c.name)?), rules);
        }
        for c in &spec.shared {
            let rules = c
                .rules
                .iter()
                .map(|r| stmt(fam, table, r, &name))
                .collect::<anyhow::Result<Vec<_>>>()?;
            w.shared.insert((table, name(&c.name)?), rules);
        }
    }
    if !arp.is_empty() {
        let chain = format!("mangle-{tap}");
        let rules = arp
            .iter()
            .map(|r| translate_arp(tap, r))
            .collect::<anyhow::Result<Vec<_>>>()?;
        w.chains.insert((Table::Arp, chain.clone()), rules);
        w.elements.insert((Table::Arp, "out_oif", chain));
    }
    Ok(w)
}

/// A bridged NIC's profile. The bridge family has no conntrack without
/// nf_conntrack_bridge, so a profile that needs it is applied in the inet family: the
/// port's chain marks the packet (see [`MARK_MASK`]) and the profile's inet chain takes
/// the packets so marked. A profile without conntrack stays in the bridge family.
fn bridged_profile(
    w: &mut Want,
    fam: Family,
    spec: &super::TableSpec,
    name: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let mut marked = BTreeSet::new();
    for c in &spec.shared {
        let conntrack = c.rules.iter().flat_map(|r| &r.matches);
        let conntrack = conntrack.into_iter().any(|m| *m == Match::ReplyOrRelated);
        let table = if conntrack {
            Table::Inet
        } else {
            Table::Bridge
        };
        let rules = c
            .rules
            .iter()
            .map(|r| stmt(fam, table, r, name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if conntrack {
            let rules = bridged_profile_rules(&c.name, fam, rules)?;
            w.shared
                .insert((Table::Inet, bridged_profile_chain(&c.name, fam)), rules);
            marked.insert(c.name.as_str());
        } else {
            w.shared.insert((Table::Bridge, name(&c.name)?), rules);
        }
    }
    for c in &spec.chains {
        let rules = c
            .rules
            .iter()
            .map(|r| match (r.matches.as_slice(), r.target()) {
                ([], Some(p)) if marked.contains(p) => bridged_profile_mark(p),
                _ => stmt(fam, Table::Bridge, r, name),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        w.chains.insert((Table::Bridge, name(&c.name)?), rules);
    }
    Ok(())
}

/// One rule as an nft statement in a chain of `table`, with its bytecode.
fn stmt(
    fam: Family,
    table: Table,
    rule: &Rule,
    chain: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Stmt> {
    let text = translate(fam, rule, chain)?;
    Ok(Stmt::new(text, nftnl::encode(table.nf(), rule, chain)))
}

/// One rule as an nft statement.
fn translate(
    fam: Family,
    rule: &Rule,
    chain: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut out: Vec<String> = Vec::new();
    let mut proto: Option<L4> = None;
    let unknown = |what: &str| {
        anyhow::anyhow!(
            "nftables driver: cannot translate {what} in {:?}",
            super::rule_text(fam, rule)
        )
    };
    let ne = |not: bool| if not { "!= " } else { "" };
    for m in &rule.matches {
        out.push(match m {
            // The address as the iptables family writes it (ebtables: without the length
            // of a single address).
            Match::Src { not, addr, len } => {
                let (l3, full) = if addr.is_ipv6() {
                    ("ip6", 128)
                } else {
                    ("ip", 32)
                };
                if fam == Family::Eb && *len == full {
                    format!("{l3} saddr {}{addr}", ne(*not))
                } else {
                    format!("{l3} saddr {}{addr}/{len}", ne(*not))
                }
            }
            Match::SrcMac {
                not,
                mac,
                mask: None,
            } => format!("ether saddr {}{mac}", ne(*not)),
            Match::SrcMac {
                not,
                mac,
                mask: Some(mask),
            } => {
                let mut net = mac.0;
                for (b, m) in net.iter_mut().zip(mask.0) {
                    *b &= m;
                }
                format!("ether saddr & {mask} {}{}", ne(*not), MacAddr(net))
            }
            Match::EtherType(t) => {
                let ty = match t {
                    EtherType::Vlan => "vlan",
                    EtherType::Ip4 => "ip",
                    EtherType::Ip6 => "ip6",
                    EtherType::Arp => "arp",
                };
                format!("ether type {ty}")
            }
            Match::Proto(p) => {
                proto = Some(*p);
                format!("meta l4proto {}", p.name())
            }
            Match::SrcPort(n) | Match::DstPort(n) => {
                let Some(p @ (L4::Tcp | L4::Udp)) = proto else {
                    return Err(unknown("a port without TCP or UDP"));
                };
                let dir = if matches!(m, Match::SrcPort(_)) {
                    "sport"
                } else {
                    "dport"
                };
                format!("{} {dir} {n}", p.name())
            }
            Match::NotSyn if proto == Some(L4::Tcp) => {
                "tcp flags & (fin|syn|rst|ack) != syn".to_owned()
            }
            Match::NotSyn => return Err(unknown("a SYN match without TCP")),
            Match::ReplyOrRelated => "ct state related,established".to_owned(),
            // ip6tables names the type by number, ebtables by name; nft takes both.
            Match::Icmp6(Icmp6Type::RouterAdvert) if fam == Family::Eb => {
                "icmpv6 type nd-router-advert".to_owned()
            }
            Match::Icmp6(Icmp6Type::RouterAdvert) => "icmpv6 type 134".to_owned(),
            Match::ArpSrcMac { not, mac } => format!("arp saddr ether {}{mac}", ne(*not)),
            Match::ArpSrcIp { not, ip } => format!("arp saddr ip {}{ip}", ne(*not)),
        });
    }
    out.push(match &rule.verdict {
        Verdict::Drop => "drop".to_owned(),
        Verdict::Accept => "accept".to_owned(),
        Verdict::Return => "return".to_owned(),
        Verdict::Jump(t) => format!("jump {}", chain(t)?),
    });
    Ok(out.join(" "))
}

/// The arptables mangle rule of `arp::mangle_rule` as an nft statement.
fn translate_arp(tap: &str, rule: &str) -> anyhow::Result<Stmt> {
    let toks: Vec<&str> = rule.split_whitespace().collect();
    match toks.as_slice() {
        [
            "-j",
            "mangle",
            "-o",
            o,
            "--opcode",
            "1",
            "--mangle-ip-s",
            gw,
        ] if *o == tap => {
            let gw: std::net::Ipv4Addr = gw
                .parse()
                .with_context(|| format!("nftables driver: bad address in {rule:?}"))?;
            Ok(Stmt::new(
                format!("arp operation request arp saddr ip set {gw}"),
                Some(nftnl::arp_mangle(gw)),
            ))
        }
        _ => bail!("nftables driver: cannot translate the arptables rule {rule:?}"),
    }
}

/// Our tables as they are: table → chain → the chains its rules jump to (empty when
/// listed without rules).
type Listing = BTreeMap<Table, BTreeMap<String, BTreeSet<String>>>;

/// Our tables' chain names, read over netlink (as `nft list chains` prints them, without
/// starting `nft`).
fn list() -> anyhow::Result<Listing> {
    let table = |f| match f {
        NfFamily::Bridge => Table::Bridge,
        NfFamily::Inet => Table::Inet,
        NfFamily::Arp => Table::Arp,
    };
    let mut sock = nfnl::Socket::open()?;
    let mut out = Listing::new();
    for f in sock.tables(TABLE)? {
        out.entry(table(f)).or_default();
    }
    for (f, chain) in sock.chains(TABLE)? {
        out.entry(table(f))
            .or_default()
            .insert(chain, BTreeSet::new());
    }
    Ok(out)
}

/// `nft list chains` (or `list ruleset`) text as a [`Listing`]: the tests hold the
/// netlink listing to it.
#[cfg(test)]
fn parse_listing(text: &str) -> Listing {
    let mut out = Listing::new();
    let mut table: Option<Table> = None;
    let mut chain: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("table ") {
            table = match rest
                .trim_end_matches('{')
                .split_whitespace()
                .collect::<Vec<_>>()[..]
            {
                [fam, TABLE] => Table::from_family(fam),
                _ => None,
            };
            if let Some(t) = table {
                out.entry(t).or_default();
            }
            chain = None;
            continue;
        }
        let Some(t) = table else { continue };
        if let Some(rest) = line.strip_prefix("\tchain ") {
            let name = rest.trim_end_matches('{').trim().to_owned();
            out.entry(t).or_default().entry(name.clone()).or_default();
            chain = Some(name);
        } else if line.starts_with("\t}") || line.starts_with("\tmap ") {
            chain = None;
        } else if let Some(c) = &chain {
            let mut it = line.split_whitespace();
            while let Some(tok) = it.next() {
                if (tok == "jump" || tok == "goto")
                    && let Some(target) = it.next()
                {
                    out.entry(t)
                        .or_default()
                        .entry(c.clone())
                        .or_default()
                        .insert(target.trim_end_matches(',').to_owned());
                }
            }
        }
    }
    out
}

/// The bridge ports, other than `items`' own, whose profiles live in the inet table: their
/// port chains (`to4-`, `to6-`) in the bridge table, with the profile chains they use
/// (none listed: the listing has names only).
fn bridged_users<'a>(
    l: &'a Listing,
    items: &[Item],
) -> impl Iterator<Item = (&'a String, &'a BTreeSet<String>)> {
    let mine: BTreeSet<String> = items
        .iter()
        .flat_map(|i| Table::Bridge.chains_of(i.tap))
        .collect();
    l.get(&Table::Bridge)
        .into_iter()
        .flatten()
        .filter(move |(c, _)| {
            (c.starts_with("to4-") || c.starts_with("to6-")) && !mine.contains(*c)
        })
}

/// A map's elements to add (interface, chain) and to remove (interface).
type MapChange<'a> = (Vec<(&'a str, String)>, Vec<&'a str>);

/// One NIC in a transaction.
struct Item<'a> {
    tap: &'a str,
    want: Want,
    /// What this driver last applied for it, per its state file.
    recorded: Option<Want>,
    /// Tables that may hold something of this TAP.
    touch: BTreeSet<Table>,
}

/// The transaction for `items`. With a listing, profile chains and tables nobody uses any
/// more are removed too.
#[cfg(test)]
fn transaction(items: &[Item], listing: Option<&Listing>) -> String {
    transaction_tx(items, listing, None).text()
}

/// What our tables hold beyond chain names, read over netlink for a listed transaction:
/// the rule count of each base chain and each map's elements, so that what is already
/// right is not written again (a rewrite deletes, and the socket of a transaction that
/// deleted waits for a grace period when it closes).
#[derive(Debug, Default)]
struct Live {
    base_rules: BTreeMap<(Table, &'static str), usize>,
    /// (table, map) → interface → chain.
    elements: BTreeMap<(Table, &'static str), BTreeMap<String, String>>,
}

fn read_live(l: &Listing) -> anyhow::Result<Live> {
    let mut sock = nfnl::Socket::open()?;
    let mut live = Live::default();
    for (&table, chains) in l {
        for (base, rules) in table.skeleton() {
            if chains.contains_key(*base) {
                let n = sock.rule_count(table.nf(), TABLE, base)?;
                live.base_rules.insert((table, *base), n);
            }
            for (_, map) in *rules {
                // A missing map is an error of the dump: nothing of it is known then.
                if let Ok(els) = sock.vmap_elements(table.nf(), TABLE, map) {
                    live.elements
                        .insert((table, *map), els.into_iter().collect());
                }
            }
        }
    }
    Ok(live)
}

/// [`transaction`] as text and batch.
fn transaction_tx(items: &[Item], listing: Option<&Listing>, live: Option<&Live>) -> Tx {
    let mut out = Tx::default();
    let mut tables: BTreeSet<Table> = BTreeSet::new();
    for it in items {
        tables.extend(&it.touch);
        tables.extend(it.want.tables());
    }
    for table in tables {
        let fam = table.family();
        let nf = table.nf();
        let touched: Vec<&Item> = items
            .iter()
            .filter(|i| i.touch.contains(&table) || i.want.tables().contains(&table))
            .collect();
        let ours: BTreeSet<String> = touched
            .iter()
            .flat_map(|i| table.chains_of(i.tap))
            .collect();
        let wanted: Vec<(&String, &Vec<Stmt>)> = touched
            .iter()
            .flat_map(|i| i.want.chains.iter())
            .filter(|((t, _), _)| *t == table)
            .map(|((_, c), r)| (c, r))
            .collect();
        let mut shared: BTreeMap<&String, &Vec<Stmt>> = BTreeMap::new();
        for i in &touched {
            for ((t, c), r) in &i.want.shared {
                if *t == table {
                    shared.insert(c, r);
                }
            }
        }
        // What exists (from the listing; without one, anything may): chains of this
        // transaction's TAPs that are absent need no removal, present ones are refilled.
        let exists =
            |c: &String| listing.is_none_or(|l| l.get(&table).is_some_and(|m| m.contains_key(c)));
        // The listing has chain names only (reading every rule costs more than the whole
        // transaction): other TAPs' chains are assumed to use every profile chain there.
        let mut gc_shared: Vec<&String> = Vec::new();
        if let Some(l) = listing {
            let now = l.get(&table);
            let mut others: Vec<(&String, &BTreeSet<String>)> = now
                .into_iter()
                .flatten()
                .filter(|(c, _)| !is_base(c) && !is_shared(c) && !ours.contains(*c))
                .collect();
            if table == Table::Inet {
                others.extend(bridged_users(l, items));
            }
            if others.is_empty() && wanted.is_empty() && shared.is_empty() {
                if now.is_some() {
                    out.del_table(nf, fam);
                }
                continue;
            }
            for (c, _) in now.into_iter().flatten().filter(|(c, _)| is_shared(c)) {
                let used = shared.contains_key(c)
                    || others.iter().any(|(_, j)| j.is_empty() || j.contains(c));
                if !used {
                    gc_shared.push(c);
                }
            }
        }
        out.add_table(nf, fam, false);
        skeleton(&mut out, table, true, live);
        // A set: a linear search per chain is quadratic in the NICs of a reapply.
        let wanted_names: BTreeSet<&String> = wanted.iter().map(|(c, _)| *c).collect();
        let is_wanted = |c: &String| wanted_names.contains(c);
        // A chain that exists and was last filled with what is wanted now is left as it
        // is (a refill is a deletion, and every deletion waits for a grace period).
        let mut unchanged: BTreeSet<&String> = BTreeSet::new();
        for i in &touched {
            let Some(r) = &i.recorded else { continue };
            for (key, rules) in i.want.chains.iter().chain(&i.want.shared) {
                let before = r.chains.get(key).or_else(|| r.shared.get(key));
                if key.0 == table && exists(&key.1) && before == Some(rules) {
                    unchanged.insert(&key.1);
                }
            }
        }
        // Base chains first, so that a rebuild lists them where a run of `up`s put them. A
        // chain the listing shows needs no `add` (nft parses every line: at 200 NICs the
        // no-op lines cost more than the commit).
        let listed =
            |c: &String| listing.is_some_and(|l| l.get(&table).is_some_and(|m| m.contains_key(c)));
        let (base, regular): (Vec<&String>, Vec<&String>) =
            shared.keys().partition(|c| !chain_spec(c).is_empty());
        for c in base
            .into_iter()
            .chain(ours.iter().filter(|c| exists(c) || is_wanted(c)))
            .chain(regular)
            .filter(|c| !listed(c))
        {
            out.add_chain(nf, fam, c, chain_hook(c), chain_spec(c), false);
        }
        // One statement per map and operation, whatever the number of NICs.
        let mut by_map: BTreeMap<&str, MapChange> = BTreeMap::new();
        let mut maps: Vec<&str> = Vec::new();
        for i in &touched {
            for (map, chain) in table.slots(i.tap) {
                let want_it = i.want.elements.contains(&(table, map, chain.clone()));
                if !want_it && !exists(&chain) {
                    continue;
                }
                // Known elements: only what differs is written.
                if let Some(els) = live.and_then(|l| l.elements.get(&(table, map))) {
                    let now = els.get(i.tap);
                    if want_it && now != Some(&chain) {
                        by_map.entry(map).or_default().0.push((i.tap, chain));
                    } else if !want_it && now.is_some() {
                        by_map.entry(map).or_default().1.push(i.tap);
                    } else {
                        continue;
                    }
                    if !maps.contains(&map) {
                        maps.push(map);
                    }
                    continue;
                }
                if !maps.contains(&map) {
                    maps.push(map);
                }
                let (add, del) = by_map.entry(map).or_default();
                add.push((i.tap, chain));
                if !want_it {
                    del.push(i.tap);
                }
            }
        }
        for map in maps {
            let (add, del) = &by_map[map];
            let add: Vec<(&str, &str)> = add.iter().map(|(t, c)| (*t, c.as_str())).collect();
            if !add.is_empty() {
                out.add_elements(nf, fam, map, &add);
            }
            if !del.is_empty() {
                out.del_elements(nf, fam, map, del);
            }
        }
        for (c, rules) in wanted
            .iter()
            .copied()
            .chain(shared.iter().map(|(c, r)| (*c, *r)))
        {
            if unchanged.contains(c) {
                continue;
            }
            if exists(c) {
                out.flush_chain(nf, fam, c);
            }
            for r in rules {
                out.add_rule(nf, fam, c, &r.text, r.exprs.as_deref());
            }
        }
        for c in &ours {
            if !is_wanted(c) && exists(c) {
                out.del_chain(nf, fam, c);
            }
        }
        for c in gc_shared {
            out.del_chain(nf, fam, c);
        }
    }
    out
}

/// Applies `tx`: over netlink when every statement has bytecode, else with `nft -f`.
fn run(tx: &Tx) -> anyhow::Result<()> {
    if tx.is_empty() {
        return Ok(());
    }
    let Some(batch) = tx.batch() else {
        return exec::with_stdin("nft", &["-f", "-"], &tx.text());
    };
    let t0 = std::time::Instant::now();
    let mut sock = nfnl::Socket::open()?;
    let res = sock.commit(batch);
    log::info(&format!(
        "nf_tables batch of {} messages in {:.1} ms",
        batch.len(),
        t0.elapsed().as_secs_f64() * 1000.0
    ));
    // Closing the socket of a transaction that deleted something waits for the kernel's
    // destroy work (an RCU grace period, 8-20 ms here): it closes on a thread of its own,
    // so that the index and state files are written meanwhile. The process still waits
    // for it before it exits (a thread in the kernel's wait outlives exit_group only until
    // the wait ends), so callers see the rules' memory released, as with `nft`.
    // (If no thread can be started, the closure and the socket with it are dropped here.)
    let _ = std::thread::Builder::new().spawn(move || drop(sock));

    res.map_err(|e| {
        let what = e.index.and_then(|i| tx.line(i)).unwrap_or("the commit");
        anyhow::anyhow!("nf_tables refused {what}: {e}")
    })
}

/// snf-ifup's own record of what its nftables tables hold (table family → TAP → the
/// profile chains it jumps to), so that `up` and `down` of one NIC need not read the
/// ruleset. Changed only under the state lock; written before a transaction that adds and
/// after it, so it never holds less than the kernel does: a stale entry can only keep a
/// table or profile chain alive (until the next `reapply`), never remove another NIC's.
/// A wrong guess about what exists makes the transaction fail as a whole (`create` of
/// something present, `delete` or `jump` to something absent), and the ruleset is read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Index {
    tables: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Index {
    fn union(&self, other: &Index) -> Index {
        let mut u = self.clone();
        for (t, taps) in &other.tables {
            let e = u.tables.entry(t.clone()).or_default();
            for (tap, shared) in taps {
                e.entry(tap.clone())
                    .or_default()
                    .extend(shared.iter().cloned());
            }
        }
        u
    }

    /// What the tables hold per the listing, after `items` got what they want.
    fn from_listing(l: &Listing, items: &[Item]) -> Index {
        let mut ix = Index::default();
        for (table, chains) in l {
            let e = ix.tables.entry(table.family().to_owned()).or_default();
            for (c, jumps) in chains {
                if is_base(c) || is_shared(c) {
                    continue;
                }
                let Some((_, tap)) = c.split_once('-') else {
                    continue;
                };
                if items.iter().any(|i| i.tap == tap) {
                    continue;
                }
                // A listing of chain names only says nothing about jumps: assume every
                // profile chain of the table is used (an index may hold too much, never
                // too little).
                let all_shared = chains.keys().filter(|c| is_shared(c));
                let e = e.entry(tap.to_owned()).or_default();
                if jumps.is_empty() {
                    e.extend(all_shared.cloned());
                } else {
                    e.extend(jumps.iter().filter(|j| is_shared(j)).cloned());
                }
            }
        }
        // Bridge ports with a profile use the inet table's profile chains.
        if let Some(inet) = l.get(&Table::Inet) {
            let all_shared: BTreeSet<String> =
                inet.keys().filter(|c| is_shared(c)).cloned().collect();
            let e = ix
                .tables
                .entry(Table::Inet.family().to_owned())
                .or_default();
            for (c, _) in bridged_users(l, items) {
                if let Some((_, tap)) = c.split_once('-') {
                    e.entry(tap.to_owned())
                        .or_default()
                        .extend(all_shared.iter().cloned());
                }
            }
        }
        for it in items {
            for table in it.want.tables() {
                let shared = it
                    .want
                    .shared
                    .keys()
                    .filter(|(t, _)| *t == table)
                    .map(|(_, c)| c.clone())
                    .collect();
                ix.tables
                    .entry(table.family().to_owned())
                    .or_default()
                    .insert(it.tap.to_owned(), shared);
            }
        }
        ix.tables.retain(|_, taps| !taps.is_empty());
        ix
    }
}

fn load_index(path: &Path) -> Option<Index> {
    // Our own file in a root-owned directory, still read with care: a regular file of
    // sane size, anything else (or unparsable) means "unknown" and the ruleset is read.
    // (One open, checked after: a check of the name before opening it could pass a file
    // replaced by a FIFO in between.)
    toml::from_str(&netconf::textfile::read(path, 4 << 20).ok()?).ok()
}

/// Written atomically and never through a link planted under the temporary name (see
/// [`netconf::textfile::write_atomic`]), mode 0644 as before. No fsync: it is on every
/// command's path, and a lost or torn index only means the ruleset is read.
fn save_index(path: &Path, ix: &Index) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = toml::to_string(ix).context("serialising the nftables index")?;
    netconf::textfile::write_atomic(
        path,
        text.as_bytes(),
        0o644,
        netconf::textfile::Durability::None,
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

type Parts<'a> = (
    BTreeMap<&'a String, &'a Vec<Stmt>>,
    BTreeMap<&'a String, &'a Vec<Stmt>>,
    BTreeSet<(&'static str, &'a String)>,
);

fn pick(m: &BTreeMap<(Table, String), Vec<Stmt>>, table: Table) -> BTreeMap<&String, &Vec<Stmt>> {
    m.iter()
        .filter(|((t, _), _)| *t == table)
        .map(|((_, c), r)| (c, r))
        .collect()
}

fn parts(w: &Want, table: Table) -> Parts<'_> {
    let els = w
        .elements
        .iter()
        .filter(|(t, _, _)| *t == table)
        .map(|(_, m, c)| (*m, c))
        .collect();
    (pick(&w.chains, table), pick(&w.shared, table), els)
}

fn skeleton(out: &mut Tx, table: Table, flush: bool, live: Option<&Live>) {
    let fam = table.family();
    let nf = table.nf();
    // A base chain that exists with as many rules as it should have is left as it is: its
    // rules are only ever written here (a chain update, like a deletion, is released
    // after a grace period).
    let intact = |base: &str, rules: &[(&str, &str)]| {
        live.is_some_and(|l| {
            l.base_rules
                .iter()
                .any(|((t, b), n)| *t == table && *b == base && *n == rules.len())
        })
    };
    for (base, rules) in table.skeleton() {
        if intact(base, rules) {
            for (_, map) in *rules {
                out.add_vmap(nf, fam, map);
            }
            continue;
        }
        let hook = match *base {
            "input" => nfnl::Hook::Input,
            "output" => nfnl::Hook::Output,
            _ => nfnl::Hook::Forward,
        };
        let spec = format!(" {{ type filter hook {base} priority filter; policy accept; }}");
        out.add_chain(nf, fam, base, Some(hook), &spec, false);
        for (_, map) in *rules {
            out.add_vmap(nf, fam, map);
        }
    }
    for (base, rules) in table.skeleton() {
        if intact(base, rules) {
            continue;
        }
        if flush {
            out.flush_chain(nf, fam, base);
        }
        for (m, map) in *rules {
            let exprs = nftnl::dispatch(m, map);
            out.add_rule(nf, fam, base, &format!("{m} vmap @{map}"), exprs.as_deref());
        }
    }
}

/// The transaction for one NIC going from `old` (its recorded rules) to `want`, given the
/// index; `None` when the index contradicts the record (then the ruleset is read). Only
/// what changes is written: nothing is flushed or deleted that does not have to be, since
/// every deletion makes the kernel wait for a grace period.
fn fast(tap: &str, want: &Want, old: &Want, index: &Index) -> Option<(Tx, Index)> {
    let mut out = Tx::default();
    let mut after = index.clone();
    let tables: BTreeSet<Table> = want.tables().union(&old.tables()).copied().collect();
    for table in tables {
        let fam = table.family();
        let nf = table.nf();
        let entry = index.tables.get(fam);
        let others: Vec<&BTreeSet<String>> = entry
            .into_iter()
            .flatten()
            .filter(|(t, _)| t.as_str() != tap)
            .map(|(_, s)| s)
            .collect();
        let used_by_others = |c: &str| others.iter().any(|s| s.contains(c));
        let (wc, ws, we) = parts(want, table);
        let (oc, os, oe) = parts(old, table);
        if we.is_empty() && ws.is_empty() {
            if let Some(t) = after.tables.get_mut(fam) {
                t.remove(tap);
                if t.is_empty() {
                    after.tables.remove(fam);
                }
            }
            if others.is_empty() {
                entry?;
                out.del_table(nf, fam);
                continue;
            }
        } else {
            after
                .tables
                .entry(fam.to_owned())
                .or_default()
                .insert(tap.to_owned(), ws.keys().map(|c| (*c).clone()).collect());
            if entry.is_none() {
                out.add_table(nf, fam, true);
                skeleton(&mut out, table, false, None);
            }
        }
        let new_shared = |c: &str| !os.contains_key(&c.to_owned()) && !used_by_others(c);
        for c in wc.keys().filter(|c| !oc.contains_key(*c)) {
            out.add_chain(nf, fam, c, None, "", true);
        }
        for c in ws.keys().filter(|c| new_shared(c)) {
            out.add_chain(nf, fam, c, chain_hook(c), chain_spec(c), true);
        }
        for (c, rules) in &wc {
            match oc.get(c) {
                Some(o) if o == rules => continue,
                Some(_) => out.flush_chain(nf, fam, c),
                None => {}
            }
            for r in *rules {
                out.add_rule(nf, fam, c, &r.text, r.exprs.as_deref());
            }
        }
        for (c, rules) in ws.iter().filter(|(c, _)| new_shared(c)) {
            for r in *rules {
                out.add_rule(nf, fam, c, &r.text, r.exprs.as_deref());
            }
        }
        for (map, c) in we.difference(&oe) {
            out.add_elements(nf, fam, map, &[(tap, c.as_str())]);
        }
        for (map, _) in oe.difference(&we) {
            out.del_elements(nf, fam, map, &[tap]);
        }
        for c in oc.keys().filter(|c| !wc.contains_key(*c)) {
            out.del_chain(nf, fam, c);
        }
        for c in os
            .keys()
            .filter(|c| !ws.contains_key(*c) && !used_by_others(c))
        {
            out.del_chain(nf, fam, c);
        }
    }
    Some((out, after))
}

fn wants<'a>(nics: &[NicRules<'a>]) -> anyhow::Result<Vec<Item<'a>>> {
    nics.iter()
        .map(|n| {
            let want = want_of(n.tap, n.want, n.arp_new)?;
            // Mostly the record is what is wanted (a reapply): translated once, not twice.
            let recorded = match n.recorded {
                Some(r) if r == n.want && n.arp_old == n.arp_new => Some(want.clone()),
                Some(r) => Some(want_of(n.tap, r, n.arp_old)?),
                None => None,
            };
            Ok(Item {
                tap: n.tap,
                want,
                recorded,
                touch: Table::ALL.into_iter().collect(),
            })
        })
        .collect()
}

/// The fast transaction for a single NIC with a trustworthy record, if there is one.
fn try_fast(
    index_path: &Path,
    nics: &[NicRules],
    items: &[Item],
) -> anyhow::Result<Option<(Tx, Index, Index)>> {
    let ([n], [it]) = (nics, items) else {
        return Ok(None);
    };
    let (Some(k), Some(ix)) = (n.known, load_index(index_path)) else {
        return Ok(None);
    };
    let old = want_of(n.tap, k, n.arp_old)?;
    Ok(fast(n.tap, &it.want, &old, &ix).map(|(tx, after)| (tx, ix, after)))
}

/// The transaction computed from the ruleset as it is, and the index before and after.
fn listed(items: Vec<Item>) -> anyhow::Result<(Tx, Index, Index)> {
    let l = list()?;
    let live = read_live(&l)?;
    Ok(listed_from(items, &l, Some(&live)))
}

/// [`listed`] with the ruleset as `l` says.
fn listed_from(mut items: Vec<Item>, l: &Listing, live: Option<&Live>) -> (Tx, Index, Index) {
    // Tables that do not exist hold nothing to remove.
    for it in &mut items {
        let wanted = it.want.tables();
        it.touch.retain(|t| l.contains_key(t) || wanted.contains(t));
    }
    let before = Index::from_listing(l, &[]);
    let after = Index::from_listing(l, &items);
    (transaction_tx(&items, Some(l), live), before, after)
}

fn commit(index_path: &Path, tx: &Tx, before: &Index, after: &Index) -> anyhow::Result<()> {
    let grown = before.union(after);
    if &grown != before || load_index(index_path).is_none() {
        save_index(index_path, &grown)?;
    }
    run(tx)?;
    if &grown != after {
        save_index(index_path, after)?;
    }
    Ok(())
}

impl Nft {
    /// What `--dry-run` prints for one NIC, with the ruleset as `list` reads it (the plan
    /// snapshots pass an empty one, so that they need neither root nor `nft`).
    fn plan_text(
        &self,
        nic: &NicRules,
        list: impl FnOnce() -> anyhow::Result<Listing>,
    ) -> anyhow::Result<String> {
        let nics = std::slice::from_ref(nic);
        let items = wants(nics)?;
        let tx = match try_fast(&self.index, nics, &items)? {
            Some((tx, _, _)) => tx.text(),
            None => listed_from(items, &list()?, None).0.text(),
        };
        Ok(if tx.is_empty() {
            tx
        } else {
            format!("# nft -f -\n{tx}")
        })
    }

    /// [`Nft::plan_text`] when none of our tables exist yet.
    #[cfg(test)]
    pub(super) fn fresh_plan_text(&self, nic: &NicRules) -> anyhow::Result<String> {
        self.plan_text(nic, || Ok(Listing::new()))
    }
}

impl Firewall for Nft {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn apply(&self, nics: &[NicRules]) -> anyhow::Result<()> {
        let items = wants(nics)?;
        if let Some((tx, before, after)) = try_fast(&self.index, nics, &items)? {
            match commit(&self.index, &tx, &before, &after) {
                Ok(()) => return Ok(()),
                Err(e) => log::info(&format!(
                    "nftables differ from the recorded state ({e:#}); reading them"
                )),
            }
        }
        let (tx, before, after) = listed(items)?;
        commit(&self.index, &tx, &before, &after).context("nftables rules")
    }

    fn print_plan(&self, nic: &NicRules) -> anyhow::Result<()> {
        print!("{}", self.plan_text(nic, list)?);
        Ok(())
    }

    fn status(&self, taps: &[&str]) -> anyhow::Result<Vec<Vec<String>>> {
        Ok(status_lines(&list()?, taps))
    }
}

/// `status`'s lines for each TAP: the chains of its own that `l` holds.
fn status_lines(l: &Listing, taps: &[&str]) -> Vec<Vec<String>> {
    taps.iter()
        .map(|t| {
            let mut lines = Vec::new();
            for (table, chains) in l {
                for c in table.chains_of(t) {
                    if chains.contains_key(&c) {
                        lines.push(format!("nft {} {TABLE}: chain {c}", table.family()));
                    }
                }
            }
            lines
        })
        .collect()
}

/// What `auto` checks: our tables in each family; a profile needs conntrack in the inet
/// family, a bridged one also the packet mark in the bridge family (not bridge
/// conntrack: see [`MARK_MASK`]). The rules are forms the driver writes, so that they
/// have bytecode.
fn probe() -> anyhow::Result<Tx> {
    let mut tx = Tx::default();
    for t in Table::ALL {
        tx.add_table(t.nf(), t.family(), false);
    }
    let ct = stmt(
        Family::Ip4,
        Table::Inet,
        &Rule::new([Match::ReplyOrRelated], Verdict::Accept),
        &|c: &str| Ok(c.to_owned()),
    )?;
    let mark = bridged_profile_mark(MARKED[0])?;
    for (t, rule) in [(Table::Inet, ct), (Table::Bridge, mark)] {
        let (nf, fam) = (t.nf(), t.family());
        tx.add_chain(nf, fam, "probe", None, "", false);
        tx.add_rule(nf, fam, "probe", &rule.text, rule.exprs.as_deref());
    }
    Ok(tx)
}

/// Whether the kernel takes our tables and the expressions our rules need, checked over
/// netlink in the current network namespace without applying anything (the batch of
/// [`probe`] without its end: see `Socket::check`). The `nft` program is not asked for:
/// this driver sends every rule the plan writes as bytecode (`every_planned_rule_translates`
/// holds it to that) and starts `nft -f` only for a form without one, so a node without
/// `nft` still gets nftables under `auto`. Also says nothing about nfdhcpd: its NFQUEUE
/// rules stay on the iptables (xt) path either way.
pub fn usable() -> bool {
    let res = probe().and_then(|tx| check(&tx));
    if let Err(e) = &res {
        log::info(&format!(
            "nftables unusable here ({e:#}: the kernel lacks nf_tables, conntrack or marks in nf_tables); using iptables"
        ));
    }
    res.is_ok()
}

/// Has the kernel check `tx` without applying it.
fn check(tx: &Tx) -> anyhow::Result<()> {
    let Some(batch) = tx.batch() else {
        bail!("no bytecode for the probe");
    };
    nfnl::Socket::open()?.check(batch).map_err(|e| {
        let what = e.index.and_then(|i| tx.line(i)).unwrap_or("the probe");
        anyhow::anyhow!("nf_tables refused {what}: {e}")
    })
}

/// `udp dport 67 queue num 42 bypass` in a base chain on input: what [`queue_supported`]
/// has the kernel check.
fn queue_probe() -> Tx {
    udp_67_probe(
        "queue num 42 bypass",
        nfnl::Expr::Queue {
            num: 42,
            bypass: true,
        },
    )
}

/// `udp dport 67 STMT` in a base chain on input.
fn udp_67_probe(text: &str, stmt: nfnl::Expr) -> Tx {
    use nfnl::{Base, Expr, MetaKey};
    let (nf, fam) = (Table::Inet.nf(), Table::Inet.family());
    let mut tx = Tx::default();
    tx.add_table(nf, fam, false);
    tx.add_chain(
        nf,
        fam,
        "probe",
        Some(nfnl::Hook::Input),
        " { type filter hook input priority filter; policy accept; }",
        false,
    );
    let exprs = [
        Expr::Meta(MetaKey::L4Proto),
        Expr::Cmp {
            neq: false,
            data: vec![17],
        },
        Expr::Payload {
            base: Base::Transport,
            offset: 2,
            len: 2,
        },
        Expr::Cmp {
            neq: false,
            data: 67u16.to_be_bytes().to_vec(),
        },
        stmt,
    ];
    tx.add_rule(
        nf,
        fam,
        "probe",
        &format!("udp dport 67 {text}"),
        Some(&exprs),
    );
    tx
}

/// Whether nft's `queue` statement (the kernel's nft_queue) works here; checked over
/// netlink as [`usable`] checks its probe, nothing is applied and `nft` is not started
/// (it cost about 40 ms of every `status`). nfdhcpd does not depend on it: it queues
/// through iptables.
pub fn queue_supported() -> bool {
    check(&queue_probe()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::TableSpec;

    /// [`super::translate`] of a rule the tests write in iptables syntax.
    fn translate(
        fam: Family,
        text: &str,
        name: &dyn Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<String> {
        super::translate(fam, &crate::firewall::parse_rule(fam, text)?, name)
    }

    fn name(fam: Family) -> impl Fn(&str) -> anyhow::Result<String> {
        move |n| chain_name(fam, "tap1", n)
    }

    #[test]
    fn translates_every_rule_form_the_plan_writes() {
        let eb = |r: &str| translate(Family::Eb, r, &name(Family::Eb)).unwrap();
        assert_eq!(
            eb("-s ! aa:00:00:00:00:01/ff:ff:f0:00:00:00 -j DROP"),
            "ether saddr & ff:ff:f0:00:00:00 != aa:00:00:00:00:00 drop"
        );
        assert_eq!(
            eb("-p IPv4 --ip-src 0.0.0.0 --ip-proto udp --ip-dport 67 -j RETURN"),
            "ether type ip ip saddr 0.0.0.0 meta l4proto udp udp dport 67 return"
        );
        assert_eq!(
            eb("-p ARP --arp-ip-src ! 198.51.100.3 -j DROP"),
            "ether type arp arp saddr ip != 198.51.100.3 drop"
        );
        assert_eq!(
            eb("-p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type router-advertisement -j DROP"),
            "ether type ip6 meta l4proto ipv6-icmp icmpv6 type nd-router-advert drop"
        );
        let v4 = |r: &str| translate(Family::Ip4, r, &name(Family::Ip4)).unwrap();
        assert_eq!(
            v4("-m mac ! --mac-source aa:00:00:00:00:01 -j DROP"),
            "ether saddr != aa:00:00:00:00:01 drop"
        );
        assert_eq!(
            v4("-p tcp ! --syn -j ACCEPT"),
            "meta l4proto tcp tcp flags & (fin|syn|rst|ack) != syn accept"
        );
        assert_eq!(
            v4("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            "ct state related,established accept"
        );
        assert_eq!(v4("-j snf-limited"), "jump snf-limited4");
        assert_eq!(
            v4("! -s 198.51.100.5/32 -j DROP"),
            "ip saddr != 198.51.100.5/32 drop"
        );
        assert!(
            translate(
                Family::Ip4,
                "-m owner --uid-owner 0 -j DROP",
                &name(Family::Ip4)
            )
            .is_err()
        );
        assert_eq!(
            translate_arp(
                "tap1",
                "-j mangle -o tap1 --opcode 1 --mangle-ip-s 198.51.100.1"
            )
            .unwrap(),
            "arp operation request arp saddr ip set 198.51.100.1"
        );
    }

    /// Every rule the plan writes, in every mode with every tag and profile, translates:
    /// a new rule form in `plan.rs` fails here, not on a node.
    #[test]
    fn every_planned_rule_translates() {
        let mut seen = 0;
        for (what, w) in planned_wants() {
            seen += w.chains.values().map(Vec::len).sum::<usize>();
            // Every planned rule has bytecode: none falls back to `nft -f`.
            let all = w.chains.values().chain(w.shared.values()).flatten();
            for s in all {
                assert!(s.exprs.is_some(), "{what}: {}", s.text);
            }
        }
        assert!(seen > 100, "{seen}");
    }

    /// What tap1 wants in every mode with every tag and profile, with and without an
    /// address: (what, want).
    fn planned_wants() -> Vec<(String, Want)> {
        let mut out = Vec::new();
        for mode in ["bridged", "routed"] {
            for profile in ["", "protected", "limited", "unprotected"] {
                for ip in ["198.51.100.10", ""] {
                    let what = format!("{mode} {profile} {ip}");
                    out.push((what, planned_want("tap1", mode, profile, ip)));
                }
            }
        }
        out
    }

    /// What `tap` wants as a NIC of mode `mode` with every tag, profile `profile` (or
    /// none) and address `ip` (or none).
    fn planned_want(tap: &str, mode: &str, profile: &str, ip: &str) -> Want {
        use crate::plan::{BridgeFacts, Facts, Flavour, build};
        let cfg = crate::config::IfupSettings::default();
        let facts = Facts {
            tap_exists: true,
            bridge: Some(BridgeFacts {
                mtu: 1500,
                vlan_filtering: Some(false),
            }),
            link_exists: true,
            table_id: Some(100),
            ..Facts::default()
        };
        let (link, tags) = if mode == "bridged" {
            ("br0", "nfdhcpd private-filtered spoof-protected masq")
        } else {
            ("100", "nfdhcpd ip-less-routed spoof-protected masq")
        };
        let itags = if profile.is_empty() {
            String::new()
        } else {
            format!("synnefo:network:0:{profile}")
        };
        let nic = netconf::NicEnv::from_env([
            ("INSTANCE", "vm1"),
            ("INTERFACE", tap),
            ("INTERFACE_INDEX", "0"),
            ("INTERFACE_UUID", "u0"),
            ("MAC", "aa:00:00:12:34:56"),
            ("IP", ip),
            ("MODE", mode),
            ("LINK", link),
            ("TAGS", itags.as_str()),
            ("NETWORK_NAME", "n"),
            ("NETWORK_TAGS", tags),
            ("NETWORK_SUBNET", "198.51.100.0/24"),
            ("NETWORK_GATEWAY", "198.51.100.1"),
            ("NETWORK_SUBNET6", "2001:db8:1::/64"),
        ])
        .unwrap();
        let name: netconf::IfName = tap.parse().unwrap();
        let p = build(&nic, &name, Flavour::Kvm, &cfg, &facts, false).unwrap();
        want_of(tap, &p.firewall, &p.arp)
            .unwrap_or_else(|e| panic!("{tap} {mode} {profile} {ip}: {e:#}"))
    }

    /// `nft` with `args` and `stdin` in the current namespace: (success, output).
    fn nft_cmd(args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let f = netconf_sys::command::run("nft", args, stdin).unwrap();
        match f.check() {
            Ok(out) => (true, out),
            Err(e) => (false, format!("{e:#}")),
        }
    }

    /// The queue probe over netlink answers as `nft -c -f` of the same text, applies
    /// nothing, and its bytecode, applied, is the ruleset `nft -f` makes of that text. In
    /// a namespace of its own.
    #[test]
    fn the_queue_probe_is_checked_as_nft_checks_it_and_applies_nothing() {
        use netconf_test_support::{Netns, need_root, on_path, skip, unique_name};
        let test = "the_queue_probe_is_checked_as_nft_checks_it_and_applies_nothing";
        if !need_root(test, "a network namespace and nf_tables") {
            return;
        }
        if !on_path("nft") {
            return skip(test, "needs nft");
        }
        let ns = Netns::add(&unique_name("nfe", "queue"));
        ns.run(|| {
            let ruleset = || nft_cmd(&["list", "ruleset"], None).1;
            let tx = queue_probe();
            assert!(tx.batch().is_some());
            let before = ruleset();
            // The same probe with `accept` passes both ways: a refusal is the queue's.
            let accept = udp_67_probe("accept", nfnl::Expr::Verdict(nfnl::Verdict::Accept));
            assert!(nft_cmd(&["-c", "-f", "-"], Some(&accept.text())).0);
            check(&accept).unwrap();
            let by_nft = nft_cmd(&["-c", "-f", "-"], Some(&tx.text()));
            assert_eq!(queue_supported(), by_nft.0, "{}", by_nft.1);
            assert_eq!(ruleset(), before);
            if by_nft.0 {
                run(&tx).unwrap();
                let ours = ruleset();
                assert!(ours.contains("udp dport 67 queue"), "{ours}");
                assert!(nft_cmd(&["flush", "ruleset"], None).0);
                let applied = nft_cmd(&["-f", "-"], Some(&tx.text()));
                assert!(applied.0, "{}", applied.1);
                assert_eq!(ruleset(), ours);
            }
        });
    }

    /// The probe of `auto` over netlink says usable exactly when `nft -c -f` of the same
    /// transaction succeeds, for the probe itself and for batches the kernel refuses (a
    /// rule in a chain that does not exist, a base chain on a hook the arp family lacks),
    /// and applies nothing either way: the ruleset is what it was, empty in a fresh
    /// namespace and unchanged where our tables already hold a NIC. In a namespace of its
    /// own.
    #[test]
    fn the_probe_is_checked_as_nft_checks_it_and_applies_nothing() {
        use netconf_test_support::{Netns, need_root, on_path, skip, unique_name};
        let test = "the_probe_is_checked_as_nft_checks_it_and_applies_nothing";
        if !need_root(test, "a network namespace and nf_tables") {
            return;
        }
        if !on_path("nft") {
            return skip(test, "needs nft");
        }
        let ns = Netns::add(&unique_name("nfe", "probe"));
        ns.run(|| {
            let ruleset = || nft_cmd(&["list", "ruleset"], None).1;
            let good = probe().unwrap();
            assert!(good.batch().is_some());
            let mut missing_chain = probe().unwrap();
            missing_chain.add_rule(
                NfFamily::Inet,
                "inet",
                "missing",
                "accept",
                Some(&nftnl::nfproto_not_return(false)),
            );
            let mut arp_forward = probe().unwrap();
            arp_forward.add_chain(
                NfFamily::Arp,
                "arp",
                "probe2",
                Some(nfnl::Hook::Forward),
                " { type filter hook forward priority filter; policy accept; }",
                false,
            );
            let cases = [
                ("the probe", &good, true),
                ("a rule in a missing chain", &missing_chain, false),
                ("an arp forward chain", &arp_forward, false),
            ];
            for round in ["empty", "with a NIC"] {
                let before = ruleset();
                for (what, tx, ok) in cases {
                    let by_nft = nft_cmd(&["-c", "-f", "-"], Some(&tx.text()));
                    assert_eq!(by_nft.0, ok, "{round}, {what}: nft -c: {}", by_nft.1);
                    let by_netlink = check(tx);
                    assert_eq!(by_netlink.is_ok(), ok, "{round}, {what}: {by_netlink:?}");
                    assert_eq!(ruleset(), before, "{round}, {what}: applied");
                }
                assert!(usable(), "{round}");
                assert_eq!(ruleset(), before, "{round}: usable() applied");
                if round == "empty" {
                    assert_eq!(before.trim(), "", "{round}");
                    let nfnl_tables = nfnl::Socket::open().unwrap().tables(TABLE).unwrap();
                    assert!(nfnl_tables.is_empty(), "{nfnl_tables:?}");
                    let item = Item {
                        tap: "tap1",
                        want: planned_want("tap1", "bridged", "protected", "198.51.100.10"),
                        recorded: None,
                        touch: Table::ALL.into_iter().collect(),
                    };
                    run(&listed(vec![item]).unwrap().0).unwrap();
                } else {
                    assert!(before.contains("from-tap1"), "{before}");
                }
            }
        });
    }

    /// `status` lists each TAP's chains over netlink exactly as it did from
    /// `nft list chains`'s text, for TAPs of every mode and one without rules. In a
    /// namespace of its own.
    #[test]
    fn status_over_netlink_prints_what_nft_list_chains_gave() {
        use netconf_test_support::{Netns, need_root, on_path, skip, unique_name};
        let test = "status_over_netlink_prints_what_nft_list_chains_gave";
        if !need_root(test, "a network namespace and nf_tables") {
            return;
        }
        if !on_path("nft") {
            return skip(test, "needs nft");
        }
        let ns = Netns::add(&unique_name("nfe", "st"));
        ns.run(|| {
            let nics = [
                ("tap1", "bridged", "protected", "198.51.100.10"),
                ("tap2", "routed", "limited", "198.51.100.11"),
                ("tap3", "routed", "", ""),
            ];
            let items: Vec<Item> = nics
                .iter()
                .map(|(tap, mode, profile, ip)| Item {
                    tap,
                    want: planned_want(tap, mode, profile, ip),
                    recorded: None,
                    touch: Table::ALL.into_iter().collect(),
                })
                .collect();
            run(&listed(items).unwrap().0).unwrap();
            let taps = ["tap1", "tap2", "tap3", "tap4"];
            let drv = Nft {
                index: PathBuf::new(),
            };
            let got = drv.status(&taps).unwrap();
            let text = nft_cmd(&["list", "chains"], None);
            assert!(text.0, "{}", text.1);
            assert_eq!(got, status_lines(&parse_listing(&text.1), &taps));
            assert_eq!(
                got[0],
                [
                    "nft bridge snf_ifup: chain from-tap1",
                    "nft bridge snf_ifup: chain to-tap1",
                    "nft bridge snf_ifup: chain to4-tap1",
                    "nft bridge snf_ifup: chain to6-tap1",
                ]
            );
            assert!(got[1].contains(&"nft inet snf_ifup: chain from4-tap2".to_owned()));
            assert!(got[1].contains(&"nft arp snf_ifup: chain mangle-tap2".to_owned()));
            assert!(got[3].is_empty());
        });
    }

    /// A rebuild of many NICs (a reapply after the ruleset was flushed) is one batch,
    /// larger than a socket's default send buffer. In a namespace of its own.
    #[test]
    fn a_rebuild_of_200_nics_is_one_batch() {
        use netconf_test_support::{Netns, need_root, unique_name};
        if !need_root("a_rebuild_of_200_nics_is_one_batch", "nf_tables") {
            return;
        }
        let ns = Netns::add(&unique_name("nfe", "big"));
        ns.run(|| {
            let taps: Vec<String> = (0..200).map(|i| format!("tap{i}")).collect();
            let items: Vec<Item> = taps
                .iter()
                .enumerate()
                .map(|(i, tap)| {
                    let mode = if i % 2 == 0 { "bridged" } else { "routed" };
                    Item {
                        tap,
                        want: planned_want(tap, mode, "protected", "198.51.100.10"),
                        recorded: None,
                        touch: Table::ALL.into_iter().collect(),
                    }
                })
                .collect();
            let (tx, _, _) = listed(items).unwrap();
            let size = tx.batch().map(nfnl::Batch::len).unwrap_or(0);
            assert!(size > 3000, "{size} messages");
            run(&tx).unwrap();
            let chains = nfnl::Socket::open().unwrap().chains(TABLE).unwrap();
            assert!(chains.contains(&(NfFamily::Bridge, "from-tap198".to_owned())));
            assert!(chains.contains(&(NfFamily::Inet, "from4-tap199".to_owned())));
        });
    }

    /// The netlink batch creates what `nft -f` creates from the same transaction's text,
    /// for every planned rule: the kernel's bytecode (`nft --debug=netlink list ruleset`,
    /// handles aside) and `nft --json list ruleset` are the same either way. In a
    /// namespace of its own.
    #[test]
    fn the_batch_creates_what_nft_creates_from_the_text() {
        use netconf_test_support::{Netns, need_root, on_path, skip, unique_name};
        let test = "the_batch_creates_what_nft_creates_from_the_text";
        if !need_root(test, "a network namespace and nf_tables") {
            return;
        }
        if !on_path("nft") {
            return skip(test, "needs nft");
        }
        let ns = Netns::add(&unique_name("nfe", "enc"));
        ns.run(|| {
            let nft = |args: &[&str], stdin: Option<&str>| {
                let f = netconf_sys::command::run("nft", args, stdin).unwrap();
                f.check().unwrap_or_else(|e| panic!("{e:#}"))
            };
            // Handles differ between the two runs; nothing else may.
            let state = || {
                let bytecode: String = nft(&["--debug=netlink", "list", "ruleset"], None)
                    .lines()
                    .map(|l| {
                        let w: Vec<&str> = l.split(' ').collect();
                        let handles =
                            w.len() > 3 && w[3..].iter().all(|x| x.parse::<u64>().is_ok());
                        if handles {
                            w[..3].join(" ")
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let json = nft(&["--json", "list", "ruleset"], None);
                let json: String = json
                    .split(',')
                    .filter(|f| !f.contains("\"handle\""))
                    .collect::<Vec<_>>()
                    .join(",");
                (bytecode, json)
            };
            let mut checked = 0;
            for (what, want) in planned_wants() {
                let item = Item {
                    tap: "tap1",
                    want,
                    recorded: None,
                    touch: BTreeSet::new(),
                };
                let tx = transaction_tx(std::slice::from_ref(&item), None, None);
                let batch = tx.batch().unwrap_or_else(|| panic!("{what}: no batch"));
                nft(&["-f", "-"], Some(&tx.text()));
                let by_text = state();
                nft(&["flush", "ruleset"], None);
                nfnl::Socket::open()
                    .unwrap()
                    .commit(batch)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let by_batch = state();
                nft(&["flush", "ruleset"], None);
                assert_eq!(by_batch.0, by_text.0, "{what}: bytecode");
                assert_eq!(by_batch.1, by_text.1, "{what}: json");
                assert!(by_text.0.contains("tap1"), "{what}: {}", by_text.0);
                checked += 1;
            }
            assert_eq!(checked, 16);
        });
    }

    /// A reapply of what the tables already hold writes nothing that deletes (a flush,
    /// a deleted element or chain, a re-added base chain): each would make the socket's
    /// close wait for a grace period. Also after a NIC's rules changed, only its chain
    /// is refilled. In a namespace of its own.
    #[test]
    fn an_unchanged_reapply_deletes_nothing() {
        use netconf_test_support::{Netns, need_root, unique_name};
        if !need_root("an_unchanged_reapply_deletes_nothing", "nf_tables") {
            return;
        }
        let ns = Netns::add(&unique_name("nfe", "re"));
        ns.run(|| {
            let wants = planned_wants();
            let pick = |what: &str| {
                let (_, w) = wants.iter().find(|(w, _)| w == what).unwrap();
                w.clone()
            };
            let item = |want: Want, recorded: Option<Want>| Item {
                tap: "tap1",
                want,
                recorded,
                touch: Table::ALL.into_iter().collect(),
            };
            let routed = pick("routed protected 198.51.100.10");
            let (tx, _, _) = listed(vec![item(routed.clone(), None)]).unwrap();
            run(&tx).unwrap();
            let (tx, _, _) = listed(vec![item(routed.clone(), Some(routed.clone()))]).unwrap();
            let text = tx.text();
            assert!(
                !text.contains("delete") && !text.contains("flush"),
                "{text}"
            );
            assert!(
                !text.contains("add chain") && !text.contains("add rule"),
                "{text}"
            );
            run(&tx).unwrap();
            // A changed profile: that chain is refilled, the base chains are not.
            let limited = pick("routed limited 198.51.100.10");
            let (tx, _, _) = listed(vec![item(limited, Some(routed))]).unwrap();
            let text = tx.text();
            assert!(
                text.contains("flush chain inet snf_ifup to4-tap1\n"),
                "{text}"
            );
            assert!(
                !text.contains("flush chain inet snf_ifup forward"),
                "{text}"
            );
            assert!(!text.contains("delete element"), "{text}");
            run(&tx).unwrap();
        });
    }

    #[test]
    fn removal_needs_no_listing_and_gc_reads_it() {
        let mut spec = TableSpec::default();
        spec.push_rule("SNF-FROM-tap1", "-s ! aa:00:00:00:00:01 -j DROP".into());
        spec.push_jump(Hook::Forward, "-i tap1".into(), "SNF-FROM-tap1");
        let fw: FwMap = [(Family::Eb, spec)].into_iter().collect();
        let want = want_of("tap1", &fw, &[]).unwrap();
        assert_eq!(want.tables(), [Table::Bridge].into_iter().collect());
        let tx = transaction(
            &[Item {
                tap: "tap1",
                want,
                recorded: None,
                touch: BTreeSet::new(),
            }],
            None,
        );
        assert!(tx.contains("add element bridge snf_ifup fwd_iif { \"tap1\" : jump from-tap1 }\n"));
        assert!(tx.contains("delete element bridge snf_ifup in_iif { \"tap1\" }\n"));
        assert!(tx.contains(
            "add rule bridge snf_ifup from-tap1 ether saddr != aa:00:00:00:00:01 drop\n"
        ));
        assert!(tx.contains("delete chain bridge snf_ifup to-tap1\n"));
        assert!(!tx.contains("inet"));
        // Removing the last NIC of a table removes the table.
        let l = parse_listing(
            "table bridge snf_ifup {\n\tchain forward {\n\t\tiifname vmap @fwd_iif\n\t}\n\n\tchain from-tap1 {\n\t\tjump snf-x\n\t}\n}\ntable ip filter {\n\tchain from-tap9 {\n\t}\n}\n",
        );
        assert_eq!(l.len(), 1);
        let rm = transaction(
            &[Item {
                tap: "tap1",
                want: Want::default(),
                recorded: None,
                touch: [Table::Bridge].into_iter().collect(),
            }],
            Some(&l),
        );
        assert_eq!(rm, "delete table bridge snf_ifup\n");
        assert!(check_tap("tap\"1").is_err());
    }

    #[test]
    fn a_listed_transaction_adds_no_listed_chain_and_one_element_statement_per_map() {
        let item = |tap: &'static str| {
            let mut spec = TableSpec::default();
            let from = from_chain(tap);
            spec.push_rule(&from, "-s ! aa:00:00:00:00:01 -j DROP".into());
            spec.push_jump(Hook::Forward, format!("-i {tap}").into(), &from);
            let fw: FwMap = [(Family::Eb, spec)].into_iter().collect();
            let want = want_of(tap, &fw, &[]).unwrap();
            Item {
                tap,
                recorded: Some(want_of(tap, &fw, &[]).unwrap()),
                want,
                touch: [Table::Bridge].into_iter().collect(),
            }
        };
        let l = parse_listing(
            "table bridge snf_ifup {\n\tchain forward {\n\t}\n\tchain from-tap1 {\n\t}\n\tchain from-tap2 {\n\t}\n}\n",
        );
        let tx = transaction(&[item("tap1"), item("tap2")], Some(&l));
        assert!(!tx.contains("add chain bridge snf_ifup from-"), "{tx}");
        assert!(
            tx.contains("add element bridge snf_ifup fwd_iif { \"tap1\" : jump from-tap1, \"tap2\" : jump from-tap2 }\n"),
            "{tx}"
        );
        // The unwanted slots whose chain exists: one removal for both NICs.
        assert!(
            tx.contains("delete element bridge snf_ifup in_iif { \"tap1\", \"tap2\" }\n"),
            "{tx}"
        );
        assert_eq!(
            tx.matches("element bridge snf_ifup in_iif").count(),
            2,
            "{tx}"
        );
        // Unchanged per the record and listed: neither flushed nor refilled.
        assert!(!tx.contains("from-tap1 ether saddr"), "{tx}");
    }

    /// The index is written in the state directory, which a link planted under its
    /// temporary name (the name the old code used, `.nftables-index.tmp<pid>`, and the next
    /// ones it uses now) must not redirect: the file it points to keeps its content.
    #[test]
    fn the_index_is_never_written_through_a_link_planted_under_its_temporary_name() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        let path = d.path().join(".nftables-index");
        let link = |tmp: PathBuf| std::os::unix::fs::symlink(&victim, tmp).unwrap();
        link(
            d.path()
                .join(format!(".nftables-index.tmp{}", std::process::id())),
        );
        for seq in 0..256 {
            link(netconf::textfile::temp_path(&path, seq).unwrap());
        }
        let mut ix = Index::default();
        ix.tables.entry("inet".into()).or_default().insert(
            "tap1".into(),
            ["snf-limited".to_owned()].into_iter().collect(),
        );
        save_index(&path, &ix).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(load_index(&path), Some(ix));
    }
}

#[cfg(test)]
mod bridged_profile_tests {
    use super::*;
    use crate::firewall::{Chain, TableSpec};

    /// The model of a bridged NIC with profile `p` (as `plan.rs` writes it).
    fn bridged(tap: &str, p: &str) -> FwMap {
        let mut fw = FwMap::new();
        for fam in [Family::Ip4, Family::Ip6] {
            let mut s = TableSpec::default();
            s.push_rule(&to_chain(tap), Rule::new([], Verdict::Jump(p.to_owned())));
            s.push_shared(Chain {
                name: p.to_owned(),
                rules: vec![
                    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".into(),
                    "-j DROP".into(),
                ],
            });
            s.push_jump(
                Hook::Forward,
                format!("-m physdev --physdev-out {tap} --physdev-is-bridged").into(),
                &to_chain(tap),
            );
            fw.insert(fam, s);
        }
        fw
    }

    #[test]
    fn a_bridged_profile_marks_in_the_bridge_and_filters_in_inet() {
        let w = want_of("tap1", &bridged("tap1", "snf-limited"), &[]).unwrap();
        assert_eq!(
            w.tables(),
            [Table::Bridge, Table::Inet].into_iter().collect()
        );
        assert_eq!(
            w.chains[&(Table::Bridge, "to4-tap1".to_owned())],
            ["meta mark set meta mark & 0xffcfffff | 0x00200000"]
        );
        assert_eq!(
            w.shared[&(Table::Inet, "snf-limited-br6".to_owned())],
            [
                "meta nfproto != ipv6 return",
                "meta mark & 0x00300000 != 0x00200000 return",
                "meta mark set meta mark & 0xffcfffff",
                "ct state related,established accept",
                "drop",
            ]
        );
        assert!(!w.elements.iter().any(|(t, _, _)| *t == Table::Inet));
        // A profile chain without conntrack stays in the bridge family.
        let mut fw = bridged("tap1", "snf-unprotected");
        for s in fw.values_mut() {
            s.shared[0].rules = vec!["-j ACCEPT".into()];
        }
        let w = want_of("tap1", &fw, &[]).unwrap();
        assert_eq!(w.tables(), [Table::Bridge].into_iter().collect());
        assert_eq!(
            w.chains[&(Table::Bridge, "to4-tap1".to_owned())],
            ["jump snf-unprotected4"]
        );
        // An unknown profile has no mark value: refused, not applied without its filter.
        assert!(want_of("tap1", &bridged("tap1", "snf-other"), &[]).is_err());
    }

    /// A bridge port with a profile keeps the inet table (and its profile chain) alive
    /// when the last routed NIC goes, whichever way the transaction is computed.
    #[test]
    fn the_inet_table_lives_while_a_bridge_port_uses_it() {
        let listing = parse_listing(
            "table bridge snf_ifup {\n\tchain forward {\n\t}\n\tchain to4-tap1 {\n\t}\n\tchain to6-tap1 {\n\t}\n}\n\
             table inet snf_ifup {\n\tchain forward {\n\t}\n\tchain snf-limited-br4 {\n\t}\n\tchain snf-limited-br6 {\n\t}\n\
             \tchain from4-tap2 {\n\t}\n}\n",
        );
        let rm = |tap| Item {
            tap,
            want: Want::default(),
            recorded: None,
            touch: [Table::Inet].into_iter().collect(),
        };
        let tx = transaction(&[rm("tap2")], Some(&listing));
        assert!(!tx.contains("delete table inet"), "{tx}");
        assert!(
            tx.contains("delete chain inet snf_ifup from4-tap2\n"),
            "{tx}"
        );
        assert!(
            !tx.contains("delete chain inet snf_ifup snf-limited-br4"),
            "{tx}"
        );
        // The index says so too, so that `down` of tap2 from the record agrees.
        let ix = Index::from_listing(&listing, &[]);
        assert_eq!(
            ix.tables["inet"]["tap1"],
            ["snf-limited-br4", "snf-limited-br6"]
                .into_iter()
                .map(str::to_owned)
                .collect()
        );
        // The bridge port's own `down` removes the inet table with it when it was the last.
        let alone = parse_listing(
            "table bridge snf_ifup {\n\tchain forward {\n\t}\n\tchain to4-tap1 {\n\t}\n}\n\
             table inet snf_ifup {\n\tchain forward {\n\t}\n\tchain snf-limited-br4 {\n\t}\n\
             \tchain snf-limited-br6 {\n\t}\n}\n",
        );
        let mut it = rm("tap1");
        it.touch = [Table::Bridge, Table::Inet].into_iter().collect();
        assert_eq!(
            transaction(&[it], Some(&alone)),
            "delete table bridge snf_ifup\ndelete table inet snf_ifup\n"
        );
        // From the record: the same, without a listing.
        let old = want_of("tap1", &bridged("tap1", "snf-limited"), &[]).unwrap();
        let ix = Index::from_listing(&alone, &[]);
        let (tx, after) = fast("tap1", &Want::default(), &old, &ix).unwrap();
        assert_eq!(
            tx.text(),
            "delete table bridge snf_ifup\ndelete table inet snf_ifup\n"
        );
        assert!(after.tables.is_empty());
        // `up` of a second port with the same profile creates nothing in inet.
        let new = want_of("tap3", &bridged("tap3", "snf-limited"), &[]).unwrap();
        let (tx, after) = fast("tap3", &new, &Want::default(), &ix).unwrap();
        let tx = tx.text();
        assert!(!tx.contains(" inet "), "{tx}");
        assert!(after.tables["inet"].contains_key("tap3"));
    }
}
