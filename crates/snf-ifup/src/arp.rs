//! arptables OUTPUT rules (ip-less-routed: the node's ARP requests into a TAP carry the
//! gateway's address). arptables-restore cannot update partially (it rejects `-D`, and
//! redeclaring a chain drops the jumps into it), so rules are changed with plain
//! arptables calls, planned from one `arptables-save`: a NIC whose rule is in place costs
//! no call at all. Rules are written in the form arptables-save prints them, so that the
//! saved table can be compared as text.

use netconf_sys::xtables::Family;

use crate::exec;

/// The OUTPUT rule (text after `-A OUTPUT`) that makes requests into `tap` come from `gw`.
pub fn mangle_rule(tap: &str, gw: std::net::Ipv4Addr) -> String {
    format!("-j mangle -o {tap} --opcode 1 --mangle-ip-s {gw}")
}

/// The OUTPUT rules now in the table, one entry per copy.
fn current() -> anyhow::Result<Vec<String>> {
    let text = exec::xtables_save(Family::Arp, &[])?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("-A OUTPUT "))
        .map(|r| r.trim().to_owned())
        .collect())
}

/// The calls that bring `have` to: no copy of `remove`, exactly one of each of `keep`.
fn calls(have: &[String], remove: &[&String], keep: &[&String]) -> Vec<(&'static str, String)> {
    let count = |r: &str| have.iter().filter(|h| *h == r).count();
    let mut out = Vec::new();
    for r in remove.iter().filter(|r| !keep.contains(r)) {
        out.extend(std::iter::repeat_n(("-D", (*r).clone()), count(r)));
    }
    for r in keep {
        match count(r) {
            0 => out.push(("-A", (*r).clone())),
            n => out.extend(std::iter::repeat_n(("-D", (*r).clone()), n - 1)),
        }
    }
    out
}

fn run(calls: &[(&str, String)]) -> anyhow::Result<()> {
    for (op, rule) in calls {
        let mut args = vec![*op, "OUTPUT"];
        args.extend(rule.split_whitespace());
        exec::xtables(Family::Arp, &args)?;
    }
    Ok(())
}

/// Brings the table from the rules in `old` to exactly one copy of each in `new`
/// (`old` and `new` may hold many NICs' rules).
pub fn sync(old: &[&String], new: &[&String]) -> anyhow::Result<()> {
    if old.is_empty() && new.is_empty() {
        return Ok(());
    }
    run(&calls(&current()?, old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_keep_exactly_one_copy_and_touch_nothing_else() {
        let a = mangle_rule("tap1", "198.51.100.1".parse().unwrap());
        let b = mangle_rule("tap2", "198.51.100.1".parse().unwrap());
        let foreign = "-j ACCEPT -o lo --opcode 2".to_owned();
        let have = vec![foreign.clone(), a.clone(), a.clone(), b.clone()];
        assert_eq!(
            calls(&have, &[&b], &[&a]),
            [("-D", b.clone()), ("-D", a.clone())]
        );
        assert!(calls(&[foreign.clone(), a.clone()], &[&a], &[&a]).is_empty());
        assert_eq!(calls(&[foreign], &[], &[&a]), [("-A", a.clone())]);
        assert!(calls(&[], &[&a], &[]).is_empty());
    }
}
