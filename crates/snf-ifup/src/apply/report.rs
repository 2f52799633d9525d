//! What is shown rather than done: `--dry-run` plans and teardowns, and `status`.

use std::path::{Path, PathBuf};

use netconf::IfName;

use super::teardown_lines;
use super::{Ctx, driver, stale_lines};
use crate::firewall::{Driver, Family, NicRules};
use crate::node::{self, RoutingCache};
use crate::plan::{self, Announce, Plan};
use crate::state::{self, FwMap, State};

fn section(title: &str, lines: &[String]) {
    print!("{}", section_text(title, lines));
}

fn section_text(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!("# {title}\n");
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

pub(super) fn print_plan(
    ctx: &Ctx,
    tap: &IfName,
    plan: &Plan,
    prev: Option<&State>,
    binding_path: &Path,
) -> anyhow::Result<()> {
    let t = tap.as_str();
    print!("{}", links_text(tap, plan, prev));
    let maybe = prev.map_or(Vec::new(), |p| p.families.clone());
    driver(ctx).get(&ctx.cfg.state_dir).print_plan(&NicRules {
        tap: t,
        want: &plan.firewall,
        arp_old: prev.map_or(&[][..], |p| &p.undo.arp),
        arp_new: &plan.arp,
        known: None,
        recorded: None,
        maybe: &maybe,
    })?;
    print!("{}", files_text(plan, binding_path, binding_path.exists()));
    Ok(())
}

/// The part of a `--dry-run` plan before the firewall: sysctls, links, routes, and the
/// stale routes of `prev` that go.
pub(super) fn links_text(tap: &IfName, plan: &Plan, prev: Option<&State>) -> String {
    let sys: Vec<String> = plan
        .sysctls
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let mut out = section_text("sysctl", &sys);
    out += &section_text("ip -4 -batch -", &plan.ip4);
    out += &section_text("bridge -batch -", &plan.bridge);
    if !plan.ovs.is_empty() {
        out += &section_text("ovs-vsctl", &[plan.ovs.join(" ")]);
    }
    out += &section_text("ip -6 -batch -", &plan.ip6);
    if let Some(p) = prev {
        let (v4, v6) = stale_lines(&p.undo, &plan.undo, tap.as_str());
        out += &section_text("ip -4 -force -batch - (stale)", &v4);
        out += &section_text("ip -6 -force -batch - (stale)", &v6);
    }
    out
}

/// The part of a `--dry-run` plan after the firewall: the binding file and the
/// announcements. `binding_exists`: whether a binding is there to remove.
pub(super) fn files_text(plan: &Plan, binding_path: &Path, binding_exists: bool) -> String {
    let mut out = String::new();
    match &plan.binding {
        Some(b) => {
            out += &format!("# write {}\n", binding_path.display());
            out += &b.render();
        }
        None if binding_exists => out += &format!("# remove {}\n", binding_path.display()),
        None => {}
    }
    for a in &plan.announce {
        match a {
            Announce::Garp { ip, dev } => out += &format!("# gratuitous ARP for {ip} on {dev}\n"),
            Announce::UnsolicitedNa { ip, dev } => {
                out += &format!("# unsolicited NA for {ip} on {dev}\n");
            }
        }
    }
    out
}

pub(super) fn print_teardown(ctx: &Ctx, tap: &IfName, st: Option<&State>) -> anyhow::Result<()> {
    let t = tap.as_str();
    let families = st.map_or(Family::ALL.to_vec(), |s| s.families.clone());
    let drv = st.map_or_else(|| driver(ctx), |s| s.driver);
    drv.get(&ctx.cfg.state_dir).print_plan(&NicRules {
        tap: t,
        want: &FwMap::new(),
        arp_old: st.map_or(&[][..], |s| &s.undo.arp),
        arp_new: &[],
        known: None,
        recorded: None,
        maybe: &families,
    })?;
    let (v4, v6) = teardown_lines(t, st, &mut RoutingCache::default())?;
    section("ip -4 -force -batch -", &v4);
    section("ip -6 -force -batch -", &v6);
    if let Some(s) = st {
        if let Some(br) = &s.undo.bridge
            && node::master(t).as_deref() == Some(br.as_str())
        {
            println!("# ip link set dev {t} nomaster");
        }
        if s.undo.ovs_bridge.is_some() {
            println!(
                "# ovs-vsctl {} --no-wait --if-exists del-port {t}",
                plan::ovs_timeout_arg(ctx.cfg.ovs_timeout)
            );
        }
        let sys: Vec<String> = s
            .sysctl_restore
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        section("sysctl (restore)", &sys);
    }
    let mut files: Vec<PathBuf> = st.and_then(|s| s.binding.clone()).into_iter().collect();
    files.push(ctx.cfg.nfdhcpd_state_dir.join(t));
    files.dedup();
    for f in files.iter().filter(|f| f.exists()) {
        println!("# remove {}", f.display());
    }
    println!(
        "# remove {}",
        state::path(&ctx.cfg.state_dir, tap).display()
    );
    Ok(())
}

/// Prints what is applied for `taps` (all recorded ones when empty). Returns false when a
/// named TAP has no recorded state.
pub fn status(ctx: &Ctx, taps: &[IfName]) -> anyhow::Result<bool> {
    let all = state::all(&ctx.cfg.state_dir)?;
    let list: Vec<IfName> = if taps.is_empty() { all } else { taps.to_vec() };
    match driver(ctx) {
        Driver::Iptables => println!("firewall: iptables"),
        Driver::Nftables => println!(
            "firewall: nftables (nft queue {}; nfdhcpd's NFQUEUE rules use iptables)",
            if crate::firewall::nft_queue_supported() {
                "supported"
            } else {
                "unsupported"
            }
        ),
    }
    let names: Vec<&str> = list.iter().map(IfName::as_str).collect();
    let mut fw_lines: Vec<Vec<String>> = vec![Vec::new(); list.len()];
    for d in [Driver::Iptables, Driver::Nftables] {
        for (all, mut more) in fw_lines
            .iter_mut()
            .zip(d.get(&ctx.cfg.state_dir).status(&names)?)
        {
            all.append(&mut more);
        }
    }
    let mut routing = RoutingCache::default();
    let mut ok = true;
    for (tap, fw) in list.iter().zip(&fw_lines) {
        let t = tap.as_str();
        let st = state::load(&ctx.cfg.state_dir, tap)?;
        match &st {
            // A NIC recorded by an older version may hold values refused today: it is
            // still shown (and `down` still takes it down).
            Some(s) => match s.nic() {
                Ok(nic) => {
                    println!(
                        "{t}: instance {} NIC {} mode {} link {}{}",
                        nic.instance,
                        nic.index,
                        nic.mode,
                        nic.link.as_deref().unwrap_or("-"),
                        if s.complete { "" } else { " (incomplete up)" }
                    );
                    let tags = nic.network_tags().join(" ");
                    if !tags.is_empty() {
                        println!("  network tags: {tags}");
                    }
                }
                Err(e) => {
                    ok = false;
                    println!("{t}: {e:#}");
                }
            },
            None => {
                ok = false;
                println!("{t}: not configured by snf-ifup");
            }
        }
        if node::link_exists(t) {
            println!(
                "  link: master {}",
                node::master(t).unwrap_or_else(|| "-".to_owned())
            );
        } else {
            println!("  link: absent");
        }
        for l in fw {
            println!("  {l}");
        }
        for r in routing.get(false)?.rules_for(t) {
            println!("  ip rule: {}: iif {t} lookup {}", r.priority, r.table);
        }
        for r in routing.get(true)?.rules_for(t) {
            println!("  ip -6 rule: {}: iif {t} lookup {}", r.priority, r.table);
        }
        if let Some(s) = &st {
            for (d, tb) in s.undo.routes4.iter().chain(&s.undo.routes6) {
                println!("  route: {d} dev {t} table {tb}");
            }
            for (a, d) in &s.undo.neigh_proxies {
                println!("  neighbour proxy: {a} dev {d}");
            }
            for r in &s.undo.arp {
                println!("  arptables: OUTPUT {r}");
            }
        }
        let b = ctx.cfg.nfdhcpd_state_dir.join(t);
        if b.exists() {
            println!("  binding: {}", b.display());
        }
    }
    Ok(ok)
}

/// Everything `up --dry-run` prints for `plan` on a node that holds nothing of the NIC
/// yet (no state, no rules, no binding), without reading the node (the plan snapshots).
#[cfg(test)]
pub fn fresh_dry_run_text(
    tap: &IfName,
    plan: &Plan,
    drv: Driver,
    binding_path: &Path,
) -> anyhow::Result<String> {
    let mut out = links_text(tap, plan, None);
    out += &drv.fresh_plan_text(&NicRules {
        tap: tap.as_str(),
        want: &plan.firewall,
        arp_old: &[],
        arp_new: &plan.arp,
        known: None,
        recorded: None,
        maybe: &[],
    })?;
    out += &files_text(plan, binding_path, false);
    Ok(out)
}
