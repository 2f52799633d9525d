//! Per-NIC firewall chains for iptables, ip6tables and ebtables (filter tables).
//!
//! snf-ifup owns, per TAP, the chains `SNF-FROM-<tap>` (traffic from the VM) and
//! `SNF-TO-<tap>` (traffic to the VM), the jumps into them, and the shared firewall-profile
//! chains `snf-<profile>` (kept while some NIC uses them). Everything is changed in one
//! `*-restore --noflush` batch per table computed from a fresh `*-save` dump, so rules of
//! others are never flushed or reordered and a NIC's chains change atomically.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::exec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ip4,
    Ip6,
    Eb,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Ip4, Family::Ip6, Family::Eb];

    pub fn tool(self) -> &'static str {
        match self {
            Family::Ip4 => "iptables",
            Family::Ip6 => "ip6tables",
            Family::Eb => "ebtables",
        }
    }

    fn save_cmd(self) -> &'static str {
        match self {
            Family::Ip4 => "iptables-save",
            Family::Ip6 => "ip6tables-save",
            Family::Eb => "ebtables-save",
        }
    }

    fn restore_cmd(self) -> &'static str {
        match self {
            Family::Ip4 => "iptables-restore",
            Family::Ip6 => "ip6tables-restore",
            Family::Eb => "ebtables-restore",
        }
    }

    /// A chain declaration; in `--noflush` mode it creates the chain or flushes it.
    fn declare(self, chain: &str) -> String {
        match self {
            Family::Eb => format!(":{chain} RETURN"),
            _ => format!(":{chain} - [0:0]"),
        }
    }

    /// Jumps into our chains carry a comment where the tool supports one.
    fn jump_tail(self, target: &str) -> String {
        match self {
            Family::Eb => format!("-j {target}"),
            _ => format!("-m comment --comment snf-ifup -j {target}"),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tool())
    }
}

/// A chain and its rules (each rule is the text after `-A <chain> `).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub name: String,
    pub rules: Vec<String>,
}

/// A rule in a built-in chain that jumps to one of our chains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jump {
    pub from: String,
    pub matches: String,
    pub target: String,
}

/// What one NIC wants in one table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    /// Per-TAP chains (`SNF-FROM-<tap>`, `SNF-TO-<tap>`).
    pub chains: Vec<Chain>,
    /// Shared chains this NIC jumps to (firewall profiles).
    pub shared: Vec<Chain>,
    pub jumps: Vec<Jump>,
}

impl TableSpec {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.jumps.is_empty() && self.shared.is_empty()
    }

    /// Appends `rule` to chain `name` (created on first use), skipping duplicates so that
    /// features asking for the same rule share it.
    pub fn push_rule(&mut self, name: &str, rule: String) {
        let chain = match self.chains.iter_mut().position(|c| c.name == name) {
            Some(i) => &mut self.chains[i],
            None => {
                self.chains.push(Chain {
                    name: name.to_owned(),
                    rules: Vec::new(),
                });
                self.chains.last_mut().expect("just pushed")
            }
        };
        if !chain.rules.contains(&rule) {
            chain.rules.push(rule);
        }
    }

    pub fn push_jump(&mut self, from: &str, matches: String, target: &str) {
        let j = Jump {
            from: from.to_owned(),
            matches,
            target: target.to_owned(),
        };
        if !self.jumps.contains(&j) {
            self.jumps.push(j);
        }
    }

    pub fn push_shared(&mut self, chain: Chain) {
        if !self.shared.iter().any(|c| c.name == chain.name) {
            self.shared.push(chain);
        }
    }
}

pub fn from_chain(tap: &str) -> String {
    format!("SNF-FROM-{tap}")
}

pub fn to_chain(tap: &str) -> String {
    format!("SNF-TO-{tap}")
}

/// Shared chains snf-ifup creates and garbage-collects.
pub fn is_shared(name: &str) -> bool {
    name.starts_with("snf-")
}

/// A parsed `*-save -t filter` dump.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub chains: Vec<String>,
    /// (chain, rest of the `-A` line).
    pub rules: Vec<(String, String)>,
}

impl Dump {
    pub fn parse(text: &str) -> Dump {
        let mut d = Dump::default();
        let mut in_filter = false;
        for line in text.lines() {
            if let Some(t) = line.strip_prefix('*') {
                in_filter = t.trim() == "filter";
                continue;
            }
            if !in_filter {
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    d.chains.push(name.to_owned());
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, rest) = rule.split_once(' ').unwrap_or((rule, ""));
                d.rules.push((chain.to_owned(), rest.to_owned()));
            }
        }
        d
    }

    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c == name)
    }

    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.rules
            .iter()
            .filter(move |(c, _)| c == chain)
            .map(|(_, r)| r.as_str())
    }
}

/// The jump/goto target of a rule's text, if any.
pub fn target_of(rule: &str) -> Option<&str> {
    let mut it = rule.split_whitespace();
    let mut target = None;
    while let Some(tok) = it.next() {
        if tok == "-j" || tok == "-g" || tok == "--jump" || tok == "--goto" {
            target = it.next();
        }
    }
    target
}

impl Dump {
    /// What the table holds of a TAP if `spec` was applied and nobody touched it since:
    /// lets `up`/`down` skip the `*-save` call. A wrong guess makes the batch fail (a `-D`
    /// of a missing jump, a `-N` of an existing chain), and the caller then falls back to
    /// a real dump.
    pub fn assumed(family: Family, spec: &TableSpec) -> Dump {
        let mut d = Dump::default();
        for c in &spec.chains {
            d.chains.push(c.name.clone());
        }
        for c in &spec.shared {
            d.chains.push(c.name.clone());
        }
        for j in &spec.jumps {
            d.rules.push((
                j.from.clone(),
                format!("{} {}", j.matches, family.jump_tail(&j.target)),
            ));
        }
        d
    }
}

/// The restore batch that makes `tap`'s chains in this table equal `spec` (an empty spec
/// removes them), or `None` when nothing of ours is there and nothing is wanted.
pub fn render(family: Family, dump: &Dump, tap: &str, spec: &TableSpec) -> Option<String> {
    render_many(family, dump, &[(tap, spec)], true)
}

/// [`render`] for several TAPs in one batch. With `gc`, shared chains that nothing
/// references any more are removed; that needs a real dump (references by other TAPs).
pub fn render_many(
    family: Family,
    dump: &Dump,
    items: &[(&str, &TableSpec)],
    gc: bool,
) -> Option<String> {
    let ours: Vec<String> = items
        .iter()
        .flat_map(|(t, _)| [from_chain(t), to_chain(t)])
        .filter(|c| dump.has_chain(c))
        .collect();
    if ours.is_empty() && items.iter().all(|(_, s)| s.is_empty()) {
        return None;
    }
    let is_ours = |c: &str| ours.iter().any(|o| o == c);
    let wanted: BTreeSet<&str> = items
        .iter()
        .flat_map(|(_, s)| s.chains.iter().map(|c| c.name.as_str()))
        .collect();
    let mut shared: Vec<&Chain> = Vec::new();
    for (_, s) in items {
        for c in &s.shared {
            if !shared.iter().any(|x| x.name == c.name) {
                shared.push(c);
            }
        }
    }
    let mut out = vec!["*filter".to_owned()];

    // A wanted jump that is already there stays where it is (so `up` twice keeps the
    // order of the built-in chains); other jumps into our chains are deleted.
    let wanted_jumps: Vec<(&str, String)> = items
        .iter()
        .flat_map(|(_, s)| {
            s.jumps.iter().map(|j| {
                (
                    j.from.as_str(),
                    format!("{} {}", j.matches, family.jump_tail(&j.target)),
                )
            })
        })
        .collect();
    let mut kept: Vec<(&str, &str)> = Vec::new();
    let mut deleted: Vec<(&str, &str)> = Vec::new();
    for (chain, rule) in &dump.rules {
        if is_ours(chain) || !target_of(rule).is_some_and(is_ours) {
            continue;
        }
        let wanted = wanted_jumps
            .iter()
            .any(|(c, r)| *c == chain.as_str() && r == rule);
        if wanted && !kept.contains(&(chain.as_str(), rule.as_str())) {
            kept.push((chain, rule));
        } else {
            out.push(format!("-D {chain} {rule}"));
            deleted.push((chain, rule));
        }
    }
    // A chain we believe absent is created with -N, which fails if it exists after all;
    // declaring an existing one flushes it.
    for (_, s) in items {
        for c in &s.chains {
            if dump.has_chain(&c.name) {
                out.push(family.declare(&c.name));
            } else {
                out.push(format!("-N {}", c.name));
                if family == Family::Eb {
                    out.push(format!("-P {} RETURN", c.name));
                }
            }
        }
    }
    for c in &shared {
        out.push(family.declare(&c.name));
    }
    for (_, s) in items {
        for c in &s.chains {
            for r in &c.rules {
                out.push(format!("-A {} {r}", c.name));
            }
        }
    }
    for c in &shared {
        for r in &c.rules {
            out.push(format!("-A {} {r}", c.name));
        }
    }
    for c in &ours {
        if !wanted.contains(c.as_str()) {
            out.push(format!("-F {c}"));
            out.push(format!("-X {c}"));
        }
    }
    // Insert at the top, each spec's jumps in reverse so that they keep the spec's order;
    // later items end up above earlier ones, as if brought up one after the other.
    for (_, s) in items {
        for j in s.jumps.iter().rev() {
            let text = format!("{} {}", j.matches, family.jump_tail(&j.target));
            if kept.contains(&(j.from.as_str(), text.as_str())) {
                continue;
            }
            out.push(format!("-I {} 1 {text}", j.from));
        }
    }
    if gc {
        // Shared chains nobody references any more are removed.
        for name in dump.chains.iter().filter(|c| is_shared(c)) {
            if shared.iter().any(|c| &c.name == name) {
                continue;
            }
            let referenced_elsewhere = dump.rules.iter().any(|(chain, rule)| {
                target_of(rule) == Some(name.as_str())
                    && !is_ours(chain)
                    && !wanted.contains(chain.as_str())
                    && !deleted
                        .iter()
                        .any(|(c, r)| *c == chain.as_str() && *r == rule.as_str())
            });
            let referenced_by_spec = items.iter().any(|(_, s)| {
                s.chains
                    .iter()
                    .any(|c| c.rules.iter().any(|r| target_of(r) == Some(name.as_str())))
            });
            if !referenced_elsewhere && !referenced_by_spec {
                out.push(format!("-F {name}"));
                out.push(format!("-X {name}"));
            }
        }
    }
    out.push("COMMIT".to_owned());
    let mut s = out.join("\n");
    s.push('\n');
    Some(s)
}

/// Reads the filter table of `family`.
pub fn dump(family: Family) -> anyhow::Result<Dump> {
    let args: &[&str] = &["-t", "filter"];
    let text = exec::output(family.save_cmd(), args)?;
    Ok(Dump::parse(&text))
}

/// Applies a batch with `*-restore --noflush`.
pub fn restore(family: Family, batch: &str) -> anyhow::Result<()> {
    exec::with_stdin(family.restore_cmd(), &["--noflush"], batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOREIGN: &str = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:admin - [0:0]\n-A FORWARD -i eth9 -j admin\n-A admin -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";

    fn spec(tap: &str) -> TableSpec {
        let mut s = TableSpec::default();
        s.push_rule(&from_chain(tap), "! -s 198.51.100.5/32 -j DROP".into());
        s.push_rule(&to_chain(tap), "-j snf-protected".into());
        s.push_rule(&to_chain(tap), "-j snf-protected".into());
        s.push_shared(Chain {
            name: "snf-protected".into(),
            rules: vec!["-p icmp -j ACCEPT".into(), "-j DROP".into()],
        });
        s.push_jump("FORWARD", format!("-i {tap}"), &from_chain(tap));
        s.push_jump("FORWARD", format!("-o {tap}"), &to_chain(tap));
        s
    }

    #[test]
    fn fresh_apply_declares_fills_and_inserts_in_order() {
        let d = Dump::parse(FOREIGN);
        let b = render(Family::Ip4, &d, "tap1", &spec("tap1")).unwrap();
        assert_eq!(
            b,
            "*filter\n-N SNF-FROM-tap1\n-N SNF-TO-tap1\n:snf-protected - [0:0]\n\
             -A SNF-FROM-tap1 ! -s 198.51.100.5/32 -j DROP\n-A SNF-TO-tap1 -j snf-protected\n\
             -A snf-protected -p icmp -j ACCEPT\n-A snf-protected -j DROP\n\
             -I FORWARD 1 -o tap1 -m comment --comment snf-ifup -j SNF-TO-tap1\n\
             -I FORWARD 1 -i tap1 -m comment --comment snf-ifup -j SNF-FROM-tap1\nCOMMIT\n"
        );
        assert_eq!(render(Family::Ip4, &d, "tap1", &TableSpec::default()), None);
    }

    #[test]
    fn reapply_and_remove_touch_only_ours() {
        let applied = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:admin - [0:0]\n:SNF-FROM-tap1 - [0:0]\n:SNF-TO-tap1 - [0:0]\n:snf-protected - [0:0]\n:SNF-TO-tap2 - [0:0]\n-A FORWARD -i tap1 -m comment --comment snf-ifup -j SNF-FROM-tap1\n-A FORWARD -o tap1 -m comment --comment snf-ifup -j SNF-TO-tap1\n-A FORWARD -i eth9 -j admin\n-A SNF-TO-tap1 -j snf-protected\n-A SNF-TO-tap2 -j snf-protected\n-A snf-protected -j DROP\nCOMMIT\n";
        let d = Dump::parse(applied);
        let again = render(Family::Ip4, &d, "tap1", &spec("tap1")).unwrap();
        // The jumps are there already: kept in place, only the chains are refilled.
        assert!(!again.contains("-D ") && !again.contains("-I "), "{again}");
        assert!(again.contains(":SNF-FROM-tap1 - [0:0]\n"));
        assert!(!again.contains("admin"));
        let mut other = spec("tap1");
        other.jumps.pop();
        let changed = render(Family::Ip4, &d, "tap1", &other).unwrap();
        assert!(
            changed.contains("-D FORWARD -o tap1 -m comment --comment snf-ifup -j SNF-TO-tap1\n")
        );
        assert!(!changed.contains("-D FORWARD -i tap1"));
        let rm = render(Family::Ip4, &d, "tap1", &TableSpec::default()).unwrap();
        assert!(rm.contains("-F SNF-FROM-tap1\n-X SNF-FROM-tap1\n"));
        assert!(rm.contains("-X SNF-TO-tap1\n"));
        // tap2 still uses the profile: it stays.
        assert!(!rm.contains("snf-protected"));
        assert!(!rm.contains("tap2"));
        // Without tap2 the profile chain goes too.
        let alone = applied
            .replace(":SNF-TO-tap2 - [0:0]\n", "")
            .replace("-A SNF-TO-tap2 -j snf-protected\n", "");
        let rm = render(
            Family::Ip4,
            &Dump::parse(&alone),
            "tap1",
            &TableSpec::default(),
        )
        .unwrap();
        assert!(rm.contains("-F snf-protected\n-X snf-protected\n"));
    }

    #[test]
    fn assumed_dump_deletes_recorded_jumps_without_gc() {
        let sp = spec("tap1");
        let d = Dump::assumed(Family::Ip4, &sp);
        let b = render_many(Family::Ip4, &d, &[("tap1", &TableSpec::default())], false).unwrap();
        assert_eq!(
            b,
            "*filter\n-D FORWARD -i tap1 -m comment --comment snf-ifup -j SNF-FROM-tap1\n\
             -D FORWARD -o tap1 -m comment --comment snf-ifup -j SNF-TO-tap1\n\
             -F SNF-FROM-tap1\n-X SNF-FROM-tap1\n-F SNF-TO-tap1\n-X SNF-TO-tap1\nCOMMIT\n"
        );
        // Fresh ebtables chains get the RETURN policy.
        let mut eb = TableSpec::default();
        eb.push_rule("SNF-FROM-tap1", "-s ! aa:00:00:00:00:01 -j DROP".into());
        let b = render(Family::Eb, &Dump::default(), "tap1", &eb).unwrap();
        assert!(b.contains("-N SNF-FROM-tap1\n-P SNF-FROM-tap1 RETURN\n"));
    }

    #[test]
    fn target_parsing() {
        assert_eq!(target_of("-i x -j SNF-FROM-x"), Some("SNF-FROM-x"));
        assert_eq!(target_of("-i x -g foo"), Some("foo"));
        assert_eq!(target_of("-i x"), None);
    }
}
