//! The nftables driver: one `nft -f -` transaction per `up`, `down` and `reapply`, in the
//! tables snf-ifup owns (`table bridge snf_ifup`, `table inet snf_ifup`,
//! `table arp snf_ifup`).
//!
//! Each table has fixed base chains whose only rules dispatch through verdict maps keyed
//! by interface name (`iifname vmap @fwd_iif`): a NIC is one element per hook and
//! direction plus its own chains, so adding or removing it never needs a rule handle.
//! `up` and `down` of one NIC write only what changes, from its recorded state and an
//! index of the tables ([`Index`]), without reading the ruleset; `reapply`, and any NIC
//! whose record is missing or contradicted, is computed from `nft list chains`, where
//! removal is written as "add, then delete" (a no-op for what exists, no error for what
//! does not). The last NIC of a table takes the table with it, so that `down` leaves the
//! ruleset as it was before the first `up`.
//!
//! Rules are translated from the model's iptables syntax token by token; an unknown token
//! is an error, never a silently dropped match.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use netconf::MacAddr;
use serde::{Deserialize, Serialize};

use super::{Family, Firewall, FwMap, NicRules, from_chain, is_shared, to_chain};
use crate::{exec, log};

const TABLE: &str = "snf_ifup";

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

    fn from_family(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.family() == s)
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
#[derive(Debug, Default)]
struct Want {
    /// (table, chain) → statements, in order.
    chains: BTreeMap<(Table, String), Vec<String>>,
    /// Shared profile chains.
    shared: BTreeMap<(Table, String), Vec<String>>,
    /// (table, map, chain).
    elements: BTreeSet<(Table, &'static str, String)>,
}

impl Want {
    fn tables(&self) -> BTreeSet<Table> {
        self.elements.iter().map(|(t, _, _)| *t).collect()
    }
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
        let bridged = spec.jumps.iter().any(|j| j.matches.contains("physdev"));
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
            let dir = if j.matches == format!("-i {tap}") {
                "iif"
            } else if j.matches == format!("-o {tap}")
                || j.matches == format!("-m physdev --physdev-out {tap} --physdev-is-bridged")
            {
                "oif"
            } else {
                bail!(
                    "nftables driver: cannot translate the jump match {:?}",
                    j.matches
                );
            };
            let hook = match j.from.as_str() {
                "FORWARD" => "fwd",
                "INPUT" => "in",
                "OUTPUT" => "out",
                other => bail!("nftables driver: unknown hook {other}"),
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
        for c in &spec.chains {
            let rules = c
                .rules
                .iter()
                .map(|r| translate(fam, r, &name))
                .collect::<anyhow::Result<Vec<_>>>()?;
            w.chains.insert((table, name(&c.name)?), rules);
        }
        for c in &spec.shared {
            let rules = c
                .rules
                .iter()
                .map(|r| translate(fam, r, &name))
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

struct Tokens<'a> {
    toks: Vec<&'a str>,
    i: usize,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let t = self.toks.get(self.i).copied();
        self.i += 1;
        t
    }

    /// An option's value; ebtables writes a negation after the option (`-s ! MAC`).
    fn value(&mut self, opt: &str) -> anyhow::Result<(bool, &'a str)> {
        match self.next() {
            Some("!") => Ok((true, self.value(opt)?.1)),
            Some(v) => Ok((false, v)),
            None => bail!("nftables driver: {opt} without a value"),
        }
    }
}

/// One model rule (iptables/ebtables syntax) as an nft statement.
fn translate(
    fam: Family,
    rule: &str,
    chain: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut t = Tokens {
        toks: rule.split_whitespace().collect(),
        i: 0,
    };
    let mut out: Vec<String> = Vec::new();
    let mut neg = false;
    let mut proto: Option<&str> = None;
    let unknown =
        |tok: &str| anyhow::anyhow!("nftables driver: cannot translate {tok:?} in {rule:?}");
    while let Some(tok) = t.next() {
        if tok == "!" {
            neg = true;
            continue;
        }
        let (n, v) = match tok {
            "--syn" => (false, ""),
            _ => t.value(tok)?,
        };
        let ne = if neg || n { "!= " } else { "" };
        neg = false;
        let addr = |fam: Family| if fam == Family::Ip6 { "ip6" } else { "ip" };
        let s = match (fam, tok) {
            (_, "-j") => match v {
                "DROP" => "drop".to_owned(),
                "ACCEPT" => "accept".to_owned(),
                "RETURN" => "return".to_owned(),
                other => format!("jump {}", chain(other)?),
            },
            (_, "-m") => continue,
            (Family::Ip4 | Family::Ip6, "-s") => format!("{} saddr {ne}{v}", addr(fam)),
            (Family::Ip4 | Family::Ip6, "-p") | (Family::Eb, "--ip-proto" | "--ip6-proto") => {
                proto = Some(v);
                format!("meta l4proto {ne}{v}")
            }
            (_, "--sport" | "--dport" | "--ip-sport" | "--ip-dport" | "--ip6-sport") => {
                let Some(p @ ("tcp" | "udp")) = proto else {
                    return Err(unknown(tok));
                };
                let dir = if tok.ends_with("sport") {
                    "sport"
                } else {
                    "dport"
                };
                format!("{p} {dir} {ne}{v}")
            }
            (_, "--syn") if proto == Some("tcp") => {
                let op = if ne.is_empty() { "==" } else { "!=" };
                format!("tcp flags & (fin|syn|rst|ack) {op} syn")
            }
            (_, "--mac-source") => format!("ether saddr {ne}{v}"),
            (_, "--ctstate") if ne.is_empty() => format!("ct state {}", v.to_lowercase()),
            (_, "--icmpv6-type") => format!("icmpv6 type {ne}{v}"),
            (Family::Eb, "-s") => match v.split_once('/') {
                None => format!("ether saddr {ne}{v}"),
                Some((mac, mask)) => {
                    let (Ok(mac), Ok(mask)) = (mac.parse::<MacAddr>(), mask.parse::<MacAddr>())
                    else {
                        return Err(unknown(v));
                    };
                    let mut net = mac.0;
                    for (b, m) in net.iter_mut().zip(mask.0) {
                        *b &= m;
                    }
                    format!("ether saddr & {mask} {ne}{}", MacAddr(net))
                }
            },
            (Family::Eb, "-p") => {
                let ty = match v {
                    "802_1Q" => "vlan",
                    "IPv4" => "ip",
                    "IPv6" => "ip6",
                    "ARP" => "arp",
                    _ => return Err(unknown(v)),
                };
                format!("ether type {ne}{ty}")
            }
            (Family::Eb, "--ip-src") => format!("ip saddr {ne}{v}"),
            (Family::Eb, "--ip6-src") => format!("ip6 saddr {ne}{v}"),
            (Family::Eb, "--ip6-icmp-type") if v == "router-advertisement" => {
                format!("icmpv6 type {ne}nd-router-advert")
            }
            (Family::Eb, "--arp-mac-src") => format!("arp saddr ether {ne}{v}"),
            (Family::Eb, "--arp-ip-src") => format!("arp saddr ip {ne}{v}"),
            _ => return Err(unknown(tok)),
        };
        out.push(s);
    }
    Ok(out.join(" "))
}

/// The arptables mangle rule of `arp::mangle_rule` as an nft statement.
fn translate_arp(tap: &str, rule: &str) -> anyhow::Result<String> {
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
            Ok(format!("arp operation request arp saddr ip set {gw}"))
        }
        _ => bail!("nftables driver: cannot translate the arptables rule {rule:?}"),
    }
}

/// Our tables as they are: table → chain → the chains its rules jump to (empty when
/// listed without rules).
type Listing = BTreeMap<Table, BTreeMap<String, BTreeSet<String>>>;

fn list() -> anyhow::Result<Listing> {
    let text = exec::output("nft", &["list", "chains"])?;
    Ok(parse_listing(&text))
}

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
fn transaction(items: &[Item], listing: Option<&Listing>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut tables: BTreeSet<Table> = BTreeSet::new();
    for it in items {
        tables.extend(&it.touch);
        tables.extend(it.want.tables());
    }
    for table in tables {
        let fam = table.family();
        let touched: Vec<&Item> = items
            .iter()
            .filter(|i| i.touch.contains(&table) || i.want.tables().contains(&table))
            .collect();
        let ours: BTreeSet<String> = touched
            .iter()
            .flat_map(|i| table.chains_of(i.tap))
            .collect();
        let wanted: Vec<(&String, &Vec<String>)> = touched
            .iter()
            .flat_map(|i| i.want.chains.iter())
            .filter(|((t, _), _)| *t == table)
            .map(|((_, c), r)| (c, r))
            .collect();
        let mut shared: BTreeMap<&String, &Vec<String>> = BTreeMap::new();
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
            let others: Vec<(&String, &BTreeSet<String>)> = now
                .into_iter()
                .flatten()
                .filter(|(c, _)| !is_base(c) && !is_shared(c) && !ours.contains(*c))
                .collect();
            if others.is_empty() && wanted.is_empty() {
                if now.is_some() {
                    out.push(format!("delete table {fam} {TABLE}"));
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
        out.push(format!("add table {fam} {TABLE}"));
        skeleton(&mut out, table, true);
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
        // A chain the listing shows needs no `add` (nft parses every line: at 200 NICs the
        // no-op lines cost more than the commit).
        let listed =
            |c: &String| listing.is_some_and(|l| l.get(&table).is_some_and(|m| m.contains_key(c)));
        for c in ours
            .iter()
            .filter(|c| exists(c) || is_wanted(c))
            .chain(shared.keys().copied())
            .filter(|c| !listed(c))
        {
            out.push(format!("add chain {fam} {TABLE} {c}"));
        }
        // One statement per map and operation, whatever the number of NICs.
        let mut by_map: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
        let mut maps: Vec<&str> = Vec::new();
        for i in &touched {
            for (map, chain) in table.slots(i.tap) {
                let want_it = i.want.elements.contains(&(table, map, chain.clone()));
                if !want_it && !exists(&chain) {
                    continue;
                }
                if !maps.contains(&map) {
                    maps.push(map);
                }
                let (add, del) = by_map.entry(map).or_default();
                add.push(format!("\"{}\" : jump {chain}", i.tap));
                if !want_it {
                    del.push(format!("\"{}\"", i.tap));
                }
            }
        }
        for map in maps {
            let (add, del) = &by_map[map];
            out.push(format!(
                "add element {fam} {TABLE} {map} {{ {} }}",
                add.join(", ")
            ));
            if !del.is_empty() {
                out.push(format!(
                    "delete element {fam} {TABLE} {map} {{ {} }}",
                    del.join(", ")
                ));
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
                out.push(format!("flush chain {fam} {TABLE} {c}"));
            }
            for r in rules {
                out.push(format!("add rule {fam} {TABLE} {c} {r}"));
            }
        }
        for c in &ours {
            if !is_wanted(c) && exists(c) {
                out.push(format!("delete chain {fam} {TABLE} {c}"));
            }
        }
        for c in gc_shared {
            out.push(format!("delete chain {fam} {TABLE} {c}"));
        }
    }
    let mut s = out.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

fn run(tx: &str) -> anyhow::Result<()> {
    if tx.is_empty() {
        return Ok(());
    }
    exec::with_stdin("nft", &["-f", "-"], tx).map_err(|e| {
        if format!("{e:#}").contains("Protocol error") {
            e.context("nft: the kernel lacks a feature these rules need (a bridged firewall profile needs bridge conntrack, nf_conntrack_bridge)")
        } else {
            e
        }
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
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.is_file() || md.len() > 4 << 20 {
        return None;
    }
    toml::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn save_index(path: &Path, ix: &Index) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".nftables-index.tmp{}", std::process::id()));
    let text = toml::to_string(ix).context("serialising the nftables index")?;
    let res = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
}

type Parts<'a> = (
    BTreeMap<&'a String, &'a Vec<String>>,
    BTreeMap<&'a String, &'a Vec<String>>,
    BTreeSet<(&'static str, &'a String)>,
);

fn pick(
    m: &BTreeMap<(Table, String), Vec<String>>,
    table: Table,
) -> BTreeMap<&String, &Vec<String>> {
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

fn skeleton(out: &mut Vec<String>, table: Table, flush: bool) {
    let fam = table.family();
    for (base, rules) in table.skeleton() {
        out.push(format!(
            "add chain {fam} {TABLE} {base} {{ type filter hook {base} priority filter; policy accept; }}"
        ));
        for (_, map) in *rules {
            out.push(format!(
                "add map {fam} {TABLE} {map} {{ type ifname : verdict; }}"
            ));
        }
    }
    for (base, rules) in table.skeleton() {
        if flush {
            out.push(format!("flush chain {fam} {TABLE} {base}"));
        }
        for (m, map) in *rules {
            out.push(format!("add rule {fam} {TABLE} {base} {m} vmap @{map}"));
        }
    }
}

/// The transaction for one NIC going from `old` (its recorded rules) to `want`, given the
/// index; `None` when the index contradicts the record (then the ruleset is read). Only
/// what changes is written: nothing is flushed or deleted that does not have to be, since
/// every deletion makes the kernel wait for a grace period.
fn fast(tap: &str, want: &Want, old: &Want, index: &Index) -> Option<(String, Index)> {
    let mut out = Vec::new();
    let mut after = index.clone();
    let tables: BTreeSet<Table> = want.tables().union(&old.tables()).copied().collect();
    for table in tables {
        let fam = table.family();
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
        if we.is_empty() {
            if let Some(t) = after.tables.get_mut(fam) {
                t.remove(tap);
                if t.is_empty() {
                    after.tables.remove(fam);
                }
            }
            if others.is_empty() {
                entry?;
                out.push(format!("delete table {fam} {TABLE}"));
                continue;
            }
        } else {
            after
                .tables
                .entry(fam.to_owned())
                .or_default()
                .insert(tap.to_owned(), ws.keys().map(|c| (*c).clone()).collect());
            if entry.is_none() {
                out.push(format!("create table {fam} {TABLE}"));
                skeleton(&mut out, table, false);
            }
        }
        let new_shared = |c: &str| !os.contains_key(&c.to_owned()) && !used_by_others(c);
        for c in wc.keys().filter(|c| !oc.contains_key(*c)) {
            out.push(format!("create chain {fam} {TABLE} {c}"));
        }
        for c in ws.keys().filter(|c| new_shared(c)) {
            out.push(format!("create chain {fam} {TABLE} {c}"));
        }
        for (c, rules) in &wc {
            match oc.get(c) {
                Some(o) if o == rules => continue,
                Some(_) => out.push(format!("flush chain {fam} {TABLE} {c}")),
                None => {}
            }
            for r in *rules {
                out.push(format!("add rule {fam} {TABLE} {c} {r}"));
            }
        }
        for (c, rules) in ws.iter().filter(|(c, _)| new_shared(c)) {
            for r in *rules {
                out.push(format!("add rule {fam} {TABLE} {c} {r}"));
            }
        }
        for (map, c) in we.difference(&oe) {
            out.push(format!(
                "add element {fam} {TABLE} {map} {{ \"{tap}\" : jump {c} }}"
            ));
        }
        for (map, _) in oe.difference(&we) {
            out.push(format!(
                "delete element {fam} {TABLE} {map} {{ \"{tap}\" }}"
            ));
        }
        for c in oc.keys().filter(|c| !wc.contains_key(*c)) {
            out.push(format!("delete chain {fam} {TABLE} {c}"));
        }
        for c in os
            .keys()
            .filter(|c| !ws.contains_key(*c) && !used_by_others(c))
        {
            out.push(format!("delete chain {fam} {TABLE} {c}"));
        }
    }
    let mut s = out.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    Some((s, after))
}

fn wants<'a>(nics: &[NicRules<'a>]) -> anyhow::Result<Vec<Item<'a>>> {
    nics.iter()
        .map(|n| {
            Ok(Item {
                tap: n.tap,
                want: want_of(n.tap, n.want, n.arp_new)?,
                recorded: n
                    .recorded
                    .map(|r| want_of(n.tap, r, n.arp_old))
                    .transpose()?,
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
) -> anyhow::Result<Option<(String, Index, Index)>> {
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
fn listed(items: Vec<Item>) -> anyhow::Result<(String, Index, Index)> {
    Ok(listed_from(items, &list()?))
}

/// [`listed`] with the ruleset as `l` says.
fn listed_from(mut items: Vec<Item>, l: &Listing) -> (String, Index, Index) {
    // Tables that do not exist hold nothing to remove.
    for it in &mut items {
        let wanted = it.want.tables();
        it.touch.retain(|t| l.contains_key(t) || wanted.contains(t));
    }
    let before = Index::from_listing(l, &[]);
    let after = Index::from_listing(l, &items);
    (transaction(&items, Some(l)), before, after)
}

fn commit(index_path: &Path, tx: &str, before: &Index, after: &Index) -> anyhow::Result<()> {
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
            Some((tx, _, _)) => tx,
            None => listed_from(items, &list()?).0,
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
        let text = if exec::in_path("nft") {
            exec::output("nft", &["list", "chains"])?
        } else {
            String::new()
        };
        let l = parse_listing(&text);
        Ok(taps
            .iter()
            .map(|t| {
                let mut lines = Vec::new();
                for (table, chains) in &l {
                    for c in table.chains_of(t) {
                        if chains.contains_key(&c) {
                            lines.push(format!("nft {} {TABLE}: chain {c}", table.family()));
                        }
                    }
                }
                lines
            })
            .collect())
    }
}

/// Whether `nft` is installed and the kernel takes our tables (checked, not applied, in
/// the current network namespace). Also says whether nfdhcpd could use nft's `queue`: it
/// does not, its NFQUEUE rules stay on the iptables (xt) path either way.
pub fn usable() -> bool {
    if !exec::in_path("nft") {
        return false;
    }
    let mut probe = String::new();
    for t in Table::ALL {
        probe.push_str(&format!("add table {} {TABLE}\n", t.family()));
    }
    // A bridged profile needs conntrack in the bridge family.
    probe.push_str(&format!(
        "add chain bridge {TABLE} probe\nadd rule bridge {TABLE} probe ct state established accept\n"
    ));
    let ok = matches!(
        exec::with_stdin_status("nft", &["-c", "-f", "-"], &probe),
        Ok((true, _))
    );
    if !ok {
        log::info("nftables unusable here (no nft, or no bridge conntrack); using iptables");
    }
    ok
}

/// Whether nft's `queue` statement (the kernel's nft_queue) works here; checked with
/// `nft -c`, nothing is applied. nfdhcpd does not depend on it: it queues through iptables.
pub fn queue_supported() -> bool {
    let probe = "add table inet snf_ifup_probe\n\
        add chain inet snf_ifup_probe c { type filter hook input priority filter; }\n\
        add rule inet snf_ifup_probe c udp dport 67 queue num 42 bypass\n";
    exec::in_path("nft")
        && matches!(
            exec::with_stdin_status("nft", &["-c", "-f", "-"], probe),
            Ok((true, _))
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::TableSpec;

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
        let tap: netconf::IfName = "tap1".parse().unwrap();
        let mut seen = 0;
        for (mode, link, tags) in [
            (
                "bridged",
                "br0",
                "nfdhcpd private-filtered spoof-protected masq",
            ),
            (
                "routed",
                "100",
                "nfdhcpd ip-less-routed spoof-protected masq",
            ),
        ] {
            for profile in ["", "protected", "limited", "unprotected"] {
                for ip in ["198.51.100.10", ""] {
                    let itags = if profile.is_empty() {
                        String::new()
                    } else {
                        format!("synnefo:network:0:{profile}")
                    };
                    let nic = netconf::NicEnv::from_env([
                        ("INSTANCE", "vm1"),
                        ("INTERFACE", "tap1"),
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
                    let p = build(&nic, &tap, Flavour::Kvm, &cfg, &facts, false).unwrap();
                    let w = want_of("tap1", &p.firewall, &p.arp)
                        .unwrap_or_else(|e| panic!("{mode} {profile} {ip}: {e:#}"));
                    seen += w.chains.values().map(Vec::len).sum::<usize>();
                }
            }
        }
        assert!(seen > 100, "{seen}");
    }

    #[test]
    fn removal_needs_no_listing_and_gc_reads_it() {
        let mut spec = TableSpec::default();
        spec.push_rule("SNF-FROM-tap1", "-s ! aa:00:00:00:00:01 -j DROP".into());
        spec.push_jump("FORWARD", "-i tap1".into(), "SNF-FROM-tap1");
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
            spec.push_jump("FORWARD", format!("-i {tap}"), &from);
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
}
