//! arptables OUTPUT rules (ip-less-routed: the node's ARP requests into a TAP carry the
//! gateway's address). arptables has no restore format fit for partial updates (its save
//! output reorders rule text, and redeclaring a chain drops the jumps into it) and no
//! "check" command, so rules are kept exactly once by deleting every copy, then appending.

use anyhow::bail;

use crate::exec;

const TOOL: &str = "arptables";

fn args<'a>(op: &'a str, rule: &'a str) -> Vec<&'a str> {
    let mut a = vec![op, "OUTPUT"];
    a.extend(rule.split_whitespace());
    a
}

/// Deletes every copy of `rule`; none is fine.
pub fn remove(rule: &str) -> anyhow::Result<()> {
    // A node cannot hold more copies than this of one rule unless something loops.
    for _ in 0..64 {
        let (deleted, _) = exec::with_stdin_status(TOOL, &args("-D", rule), "")?;
        if !deleted {
            return Ok(());
        }
    }
    bail!("`{TOOL} -D OUTPUT {rule}` keeps finding copies of the rule");
}

/// Makes `rule` present exactly once.
pub fn ensure(rule: &str) -> anyhow::Result<()> {
    remove(rule)?;
    exec::run(TOOL, &args("-A", rule))
}

/// Brings the rules from `old` to `new`.
pub fn sync(old: &[String], new: &[String]) -> anyhow::Result<()> {
    for r in old.iter().filter(|r| !new.contains(r)) {
        remove(r)?;
    }
    for r in new {
        ensure(r)?;
    }
    Ok(())
}
