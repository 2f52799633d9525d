//! What is shown rather than done: `--dry-run` plans and teardowns, and `status`.

use std::path::{Path, PathBuf};

use netconf::IfName;
use serde::Serialize;

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

/// What `status` shows of one TAP; the text lines and the JSON object (snf-ifup(8),
/// JSON OUTPUT) are both made from it.
#[derive(Serialize)]
struct TapStatus {
    tap: String,
    /// A state is recorded for the TAP.
    configured: bool,
    /// Why the recorded NIC is refused today.
    error: Option<String>,
    instance: Option<String>,
    nic: Option<u32>,
    mode: Option<String>,
    link: Option<String>,
    complete: Option<bool>,
    network_tags: Vec<String>,
    device: Device,
    firewall: Vec<String>,
    ip_rules: Vec<Rule>,
    ip6_rules: Vec<Rule>,
    routes: Vec<Route>,
    neighbour_proxies: Vec<Proxy>,
    arptables: Vec<String>,
    binding: Option<String>,
}

#[derive(Serialize)]
struct Device {
    present: bool,
    master: Option<String>,
}

#[derive(Serialize)]
struct Rule {
    priority: u32,
    table: u32,
}

#[derive(Serialize)]
struct Route {
    destination: String,
    table: String,
}

#[derive(Serialize)]
struct Proxy {
    address: String,
    dev: String,
}

impl TapStatus {
    fn text(&self) -> String {
        use std::fmt::Write;
        let t = &self.tap;
        let mut s = String::new();
        if let Some(e) = &self.error {
            let _ = writeln!(s, "{t}: {e}");
        } else if let (Some(instance), Some(nic), Some(mode)) =
            (&self.instance, self.nic, &self.mode)
        {
            let _ = writeln!(
                s,
                "{t}: instance {instance} NIC {nic} mode {mode} link {}{}",
                self.link.as_deref().unwrap_or("-"),
                if self.complete == Some(false) {
                    " (incomplete up)"
                } else {
                    ""
                }
            );
            if !self.network_tags.is_empty() {
                let _ = writeln!(s, "  network tags: {}", self.network_tags.join(" "));
            }
        } else {
            let _ = writeln!(s, "{t}: not configured by snf-ifup");
        }
        if self.device.present {
            let _ = writeln!(
                s,
                "  link: master {}",
                self.device.master.as_deref().unwrap_or("-")
            );
        } else {
            let _ = writeln!(s, "  link: absent");
        }
        for l in &self.firewall {
            let _ = writeln!(s, "  {l}");
        }
        for r in &self.ip_rules {
            let _ = writeln!(s, "  ip rule: {}: iif {t} lookup {}", r.priority, r.table);
        }
        for r in &self.ip6_rules {
            let _ = writeln!(
                s,
                "  ip -6 rule: {}: iif {t} lookup {}",
                r.priority, r.table
            );
        }
        for r in &self.routes {
            let _ = writeln!(s, "  route: {} dev {t} table {}", r.destination, r.table);
        }
        for p in &self.neighbour_proxies {
            let _ = writeln!(s, "  neighbour proxy: {} dev {}", p.address, p.dev);
        }
        for r in &self.arptables {
            let _ = writeln!(s, "  arptables: OUTPUT {r}");
        }
        if let Some(b) = &self.binding {
            let _ = writeln!(s, "  binding: {b}");
        }
        s
    }
}

/// Prints what is applied for `taps` (all recorded ones when empty), as text or, with
/// `json`, as one JSON object. Returns false when a named TAP has no recorded state.
pub fn status(ctx: &Ctx, taps: &[IfName], json: bool) -> anyhow::Result<bool> {
    let all = state::all(&ctx.cfg.state_dir)?;
    let list: Vec<IfName> = if taps.is_empty() { all } else { taps.to_vec() };
    let drv = driver(ctx);
    let nft_queue = (drv == Driver::Nftables).then(crate::firewall::nft_queue_supported);
    if !json {
        match nft_queue {
            None => println!("firewall: iptables"),
            Some(q) => println!(
                "firewall: nftables (nft queue {}; nfdhcpd's NFQUEUE rules use iptables)",
                if q { "supported" } else { "unsupported" }
            ),
        }
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
    let mut shown = Vec::new();
    for (tap, fw) in list.iter().zip(fw_lines) {
        let t = tap.as_str();
        let st = state::load(&ctx.cfg.state_dir, tap)?;
        let rules = |r: Vec<plan::IpRule>| -> Vec<Rule> {
            r.into_iter()
                .map(|r| Rule {
                    priority: r.priority,
                    table: r.table,
                })
                .collect()
        };
        let mut ts = TapStatus {
            tap: t.to_owned(),
            configured: st.is_some(),
            error: None,
            instance: None,
            nic: None,
            mode: None,
            link: None,
            complete: None,
            network_tags: Vec::new(),
            device: Device {
                present: false,
                master: None,
            },
            firewall: fw,
            ip_rules: Vec::new(),
            ip6_rules: Vec::new(),
            routes: Vec::new(),
            neighbour_proxies: Vec::new(),
            arptables: Vec::new(),
            binding: None,
        };
        match &st {
            // A NIC recorded by an older version may hold values refused today: it is
            // still shown (and `down` still takes it down).
            Some(s) => match s.nic() {
                Ok(nic) => {
                    ts.instance = Some(nic.instance.to_string());
                    ts.nic = Some(nic.index);
                    ts.mode = Some(nic.mode.to_string());
                    ts.link = nic.link.clone();
                    ts.complete = Some(s.complete);
                    ts.network_tags = nic.network_tags().to_vec();
                }
                Err(e) => {
                    ok = false;
                    ts.error = Some(format!("{e:#}"));
                }
            },
            None => ok = false,
        }
        ts.device.present = node::link_exists(t);
        if ts.device.present {
            ts.device.master = node::master(t);
        }
        ts.ip_rules = rules(routing.get(false)?.rules_for(t));
        ts.ip6_rules = rules(routing.get(true)?.rules_for(t));
        if let Some(s) = &st {
            ts.routes = s
                .undo
                .routes4
                .iter()
                .chain(&s.undo.routes6)
                .map(|(d, tb)| Route {
                    destination: d.clone(),
                    table: tb.clone(),
                })
                .collect();
            ts.neighbour_proxies = s
                .undo
                .neigh_proxies
                .iter()
                .map(|(a, d)| Proxy {
                    address: a.clone(),
                    dev: d.clone(),
                })
                .collect();
            ts.arptables = s.undo.arp.clone();
        }
        let b = ctx.cfg.nfdhcpd_state_dir.join(t);
        if b.exists() {
            ts.binding = Some(b.display().to_string());
        }
        if json {
            shown.push(ts);
        } else {
            print!("{}", ts.text());
        }
    }
    if json {
        let doc = serde_json::json!({
            "firewall": {
                "driver": if nft_queue.is_some() { "nftables" } else { "iptables" },
                "nft_queue": nft_queue,
            },
            "nics": shown,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
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
