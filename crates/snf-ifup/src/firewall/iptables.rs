//! The iptables driver: per-NIC chains in the filter tables of iptables, ip6tables and
//! ebtables, plus arptables OUTPUT rules (`arp.rs`).
//!
//! Everything is changed in one `*-restore --noflush` batch per table computed from a fresh
//! `*-save` dump, so rules of others are never flushed or reordered and a NIC's chains
//! change atomically.

use std::collections::BTreeSet;

use anyhow::Context;

use super::{
    Chain, Family, Firewall, FwMap, NicRules, TableSpec, from_chain, is_shared, join_all,
    rule_text, target_of, to_chain,
};
use crate::{arp, exec, log};

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
                j.from.to_string(),
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
                    j.from.chain(),
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
                out.push(format!("-A {} {}", c.name, rule_text(family, r)));
            }
        }
    }
    for c in &shared {
        for r in &c.rules {
            out.push(format!("-A {} {}", c.name, rule_text(family, r)));
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
            if kept.contains(&(j.from.chain(), text.as_str())) {
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
                    .any(|c| c.rules.iter().any(|r| r.target() == Some(name.as_str())))
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
    let text = exec::xtables_save(family.xtables(), args)?;
    Ok(Dump::parse(&text))
}

/// Applies a batch with `*-restore --noflush`.
pub fn restore(family: Family, batch: &str) -> anyhow::Result<()> {
    exec::xtables_restore(family.xtables(), &["--noflush"], batch)
}

/// The iptables/ebtables/arptables driver.
pub struct Iptables;

impl Firewall for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn apply(&self, nics: &[NicRules]) -> anyhow::Result<()> {
        // The three tables and arptables are independent: they run side by side (the
        // kernel's nf_tables commits mostly wait, they do not compute).
        std::thread::scope(|scope| {
            let hs: Vec<_> = Family::ALL
                .into_iter()
                .map(|fam| scope.spawn(move || family(fam, nics)))
                .collect();
            let arp_rules = scope.spawn(|| {
                let old: Vec<&String> = nics.iter().flat_map(|n| n.arp_old.iter()).collect();
                let new: Vec<&String> = nics.iter().flat_map(|n| n.arp_new.iter()).collect();
                arp::sync(&old, &new).map_err(|e| e.context("arptables rules"))
            });
            join_all(hs.into_iter().chain([arp_rules]))
        })
    }

    fn print_plan(&self, nic: &NicRules) -> anyhow::Result<()> {
        print!("{}", plan_text(nic, dump)?);
        Ok(())
    }

    fn status(&self, taps: &[&str]) -> anyhow::Result<Vec<Vec<String>>> {
        let mut dumps = Vec::new();
        for fam in Family::ALL {
            if exec::in_path(fam.save_cmd()) {
                dumps.push((fam, dump(fam)?));
            }
        }
        Ok(taps
            .iter()
            .map(|t| {
                let mut lines = Vec::new();
                for (fam, d) in &dumps {
                    for c in [from_chain(t), to_chain(t)] {
                        if d.has_chain(&c) {
                            let jumps = d
                                .rules
                                .iter()
                                .filter(|(_, r)| target_of(r) == Some(c.as_str()))
                                .count();
                            lines.push(format!(
                                "{fam}: chain {c}: {} rules, {jumps} jumps",
                                d.rules_of(&c).count()
                            ));
                        }
                    }
                }
                lines
            })
            .collect())
    }
}

/// What `--dry-run` prints for one NIC, with the tables as `dump` reads them (the
/// plan snapshots pass empty ones, so that they need neither root nor the tools).
pub(super) fn plan_text(
    nic: &NicRules,
    dump: impl Fn(Family) -> anyhow::Result<Dump>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let stale: Vec<String> = nic
        .arp_old
        .iter()
        .filter(|r| !nic.arp_new.contains(r))
        .cloned()
        .collect();
    if nic.arp_new.is_empty() && nic.want.is_empty() {
        // A teardown: the tables first, arptables with the rest of the undo.
        tables_text(&mut out, nic, dump)?;
        section(&mut out, "arptables -D OUTPUT (every copy)", &stale);
        return Ok(out);
    }
    section(&mut out, "arptables -D OUTPUT (every copy)", &stale);
    section(&mut out, "arptables -A OUTPUT (exactly once)", nic.arp_new);
    tables_text(&mut out, nic, dump)?;
    Ok(out)
}

fn section(out: &mut String, title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    out.push_str(&format!("# {title}\n"));
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
}

fn tables_text(
    out: &mut String,
    nic: &NicRules,
    dump: impl Fn(Family) -> anyhow::Result<Dump>,
) -> anyhow::Result<()> {
    let empty = TableSpec::default();
    for fam in Family::ALL {
        let spec = nic.want.get(&fam);
        if spec.is_none() && !nic.maybe.contains(&fam) {
            continue;
        }
        let dump = dump(fam)?;
        if let Some(b) = render(fam, &dump, nic.tap, spec.unwrap_or(&empty)) {
            out.push_str(&format!("# {}-restore --noflush\n", fam.tool()));
            out.push_str(&b);
        }
    }
    Ok(())
}

/// One table for `nics`: the recorded-state fast path for a single NIC, one dump and one
/// batch for several.
fn family(fam: Family, nics: &[NicRules]) -> anyhow::Result<()> {
    if let [n] = nics {
        apply_one(fam, n.tap, n.want, n.known, n.maybe)
    } else {
        let empty = TableSpec::default();
        let list: Vec<(&str, &TableSpec)> = nics
            .iter()
            .map(|n| (n.tap, n.want.get(&fam).unwrap_or(&empty)))
            .collect();
        let dump = dump(fam)?;
        if let Some(b) = render_many(fam, &dump, &list, true) {
            restore(fam, &b).with_context(|| format!("{fam} rules"))?;
        }
        Ok(())
    }
}

/// Makes `tap`'s chains in table `fam` equal `want`. `known` is what the tables are
/// believed to hold (from the state file); `maybe` the tables to look at when it is not.
fn apply_one(
    fam: Family,
    tap: &str,
    want: &FwMap,
    known: Option<&FwMap>,
    maybe: &[Family],
) -> anyhow::Result<()> {
    let empty = TableSpec::default();
    let w = want.get(&fam).unwrap_or(&empty);
    let Some(k) = known else {
        if maybe.contains(&fam) || !w.is_empty() {
            from_dump(fam, tap, w)?;
        }
        return Ok(());
    };
    let old = k.get(&fam).unwrap_or(&empty);
    if old.is_empty() && w.is_empty() {
        return Ok(());
    }
    let assumed = Dump::assumed(fam, old);
    let Some(batch) = render_many(fam, &assumed, &[(tap, w)], false) else {
        return Ok(());
    };
    // Profile chains this NIC no longer uses go in the same batch if nobody else uses
    // them; if someone does, that batch fails as a whole and the one without them runs.
    let gc: Vec<&str> = old
        .shared
        .iter()
        .filter(|c| !w.shared.contains(c))
        .map(|c| c.name.as_str())
        .collect();
    let mut fast = Err(anyhow::anyhow!("not tried"));
    if !gc.is_empty() {
        let mut with_gc = batch.trim_end_matches("COMMIT\n").to_owned();
        for name in &gc {
            with_gc.push_str(&format!("-F {name}\n-X {name}\n"));
        }
        with_gc.push_str("COMMIT\n");
        fast = restore(fam, &with_gc);
    }
    if fast.is_err() {
        fast = restore(fam, &batch);
    }
    match fast {
        Ok(()) => Ok(()),
        Err(e) => {
            log::info(&format!(
                "{tap}: {fam} differs from the recorded state ({e:#}); reading it"
            ));
            from_dump(fam, tap, w)
        }
    }
}

fn from_dump(fam: Family, tap: &str, want: &TableSpec) -> anyhow::Result<()> {
    let dump = dump(fam)?;
    if let Some(b) = render(fam, &dump, tap, want) {
        restore(fam, &b).with_context(|| format!("{fam} rules for {tap}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Hook;

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
        s.push_jump(Hook::Forward, format!("-i {tap}").into(), &from_chain(tap));
        s.push_jump(Hook::Forward, format!("-o {tap}").into(), &to_chain(tap));
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
