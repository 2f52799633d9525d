//! The NFQUEUE rules nfdhcpd owns (reference B11): a chain in the mangle table of
//! iptables and ip6tables, jumped to from PREROUTING, removed again when the daemon ends,
//! however it ends: [`InstalledRules`] removes them on drop.

use netconf_sys::xtables::{self, Wait};

use crate::config::DaemonSettings;
use crate::{debug, info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn xtables(self) -> xtables::Family {
        match self {
            Family::V4 => xtables::Family::Ip4,
            Family::V6 => xtables::Family::Ip6,
        }
    }

    fn tool(self) -> &'static str {
        self.xtables().tool()
    }
}

/// The rules inside the chain, as argument lists for `-A <chain>`.
pub fn chain_rules(cfg: &DaemonSettings) -> Vec<(Family, Vec<String>)> {
    let r = &cfg.rules;
    let plan = cfg.ipv6.plan;
    let pattern = format!("{}+", r.tap_prefix);
    let mut matches: Vec<Vec<String>> = Vec::new();
    if r.routed {
        matches.push(vec!["-i".into(), pattern.clone()]);
    }
    if r.bridged {
        matches.push(vec![
            "-m".into(),
            "physdev".into(),
            "--physdev-in".into(),
            pattern,
        ]);
    }
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    // One rule: the input match, `what` it catches, then the queue (with no listener the
    // packets continue instead of vanishing).
    let rule = |m: &[String], what: &[&str], q: u16| -> Vec<String> {
        let mut a = m.to_vec();
        a.extend(s(what));
        a.extend(s(&[
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q.to_string(),
            "--queue-bypass",
        ]));
        a
    };
    let mut out = Vec::new();
    for m in &matches {
        if cfg.dhcp.enable_dhcp {
            let dhcp = ["-p", "udp", "--dport", "67"];
            out.push((Family::V4, rule(m, &dhcp, cfg.dhcp.dhcp_queue)));
        }
        if let Some(p) = plan {
            for (t, q) in [
                ("router-solicitation", p.rs_queue),
                ("neighbour-solicitation", p.ns_queue),
            ] {
                let icmp6 = ["-p", "ipv6-icmp", "--icmpv6-type", t];
                out.push((Family::V6, rule(m, &icmp6, q)));
            }
            if let Some(q) = p.dhcpv6_queue {
                out.push((Family::V6, rule(m, &["-p", "udp", "--dport", "547"], q)));
            }
        }
    }
    out
}

/// A lock another process holds is waited for this long at most, so that neither start
/// nor exit hangs on it.
const WAIT: Wait = Wait::Seconds(5);

fn run(fam: Family, args: &[String]) -> anyhow::Result<()> {
    debug!("{} {}", fam.tool(), args.join(" "));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    xtables::command(fam.xtables(), WAIT, &args)?.check()?;
    Ok(())
}

fn quiet(fam: Family, args: &[&str]) -> bool {
    xtables::command(fam.xtables(), WAIT, args).is_ok_and(|f| f.success)
}

fn families(ipv6: bool) -> Vec<Family> {
    let mut f = vec![Family::V4];
    if ipv6 {
        f.push(Family::V6);
    }
    f
}

/// The rules while they are in place; dropping it removes them.
#[must_use = "dropping it removes the rules"]
#[derive(Debug)]
pub struct InstalledRules {
    chain: String,
    ipv6: bool,
}

impl Drop for InstalledRules {
    fn drop(&mut self) {
        remove(&self.chain, self.ipv6);
        info!("NFQUEUE rules removed");
    }
}

/// Creates (or empties) the chain, fills it and hooks it into PREROUTING once.
pub fn install(cfg: &DaemonSettings) -> anyhow::Result<InstalledRules> {
    let ipv6 = cfg.ipv6.plan.is_some();
    // Held from the first command on: a step failing half-way takes the earlier ones back.
    let installed = InstalledRules {
        chain: cfg.rules.chain.clone(),
        ipv6,
    };
    let chain = cfg.rules.chain.as_str();
    for fam in families(ipv6) {
        if !quiet(fam, &["-t", "mangle", "-N", chain]) {
            run(
                fam,
                &["-t".into(), "mangle".into(), "-F".into(), chain.into()],
            )?;
        }
    }
    for (fam, rule) in chain_rules(cfg) {
        let mut a: Vec<String> = vec!["-t".into(), "mangle".into(), "-A".into(), chain.into()];
        a.extend(rule);
        run(fam, &a)?;
    }
    for fam in families(ipv6) {
        if !quiet(fam, &["-t", "mangle", "-C", "PREROUTING", "-j", chain]) {
            run(
                fam,
                &["-t", "mangle", "-I", "PREROUTING", "1", "-j", chain].map(String::from),
            )?;
        }
    }
    Ok(installed)
}

/// Removes the jump and the chain; logs and goes on, so exit always completes.
fn remove(chain: &str, ipv6: bool) {
    for fam in [Family::V4, Family::V6] {
        if fam == Family::V6 && !ipv6 && !quiet(fam, &["-t", "mangle", "-L", chain, "-n"]) {
            continue;
        }
        while quiet(fam, &["-t", "mangle", "-D", "PREROUTING", "-j", chain]) {}
        quiet(fam, &["-t", "mangle", "-F", chain]);
        if !quiet(fam, &["-t", "mangle", "-X", chain])
            && quiet(fam, &["-t", "mangle", "-L", chain, "-n"])
        {
            warn!("could not delete {} chain {chain}", fam.tool());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_both_modes_and_all_queues() {
        let cfg = DaemonSettings::parse("").unwrap();
        let rules = chain_rules(&cfg);
        // 4 kinds × (routed + bridged)
        assert_eq!(rules.len(), 8);
        let text: Vec<String> = rules.iter().map(|(_, r)| r.join(" ")).collect();
        assert!(text.contains(
            &"-i tap+ -p udp --dport 67 -j NFQUEUE --queue-num 42 --queue-bypass".to_owned()
        ));
        assert!(text.iter().any(|t| t.starts_with(
            "-m physdev --physdev-in tap+ -p ipv6-icmp --icmpv6-type neighbour-solicitation"
        ) && t.contains("--queue-num 44")));
        assert!(text.iter().all(|t| t.ends_with("--queue-bypass")));
        let mut c = DaemonSettings::parse("[ipv6]\nenable_ipv6 = false\n").unwrap();
        c.rules.bridged = false;
        assert_eq!(chain_rules(&c).len(), 1);
    }
}
