//! Executing plans (`up`, `reapply`), undoing them (`down`), and showing them (`status`,
//! `--dry-run`).
//!
//! Speed: links, rules, routes, proxy entries and bridge VLANs are rtnetlink requests
//! from this process (`rtnl`; the plan still describes them as `ip`/`bridge` lines), one
//! `*-restore` per firewall table (or one `nft` transaction), and no `*-save` when the
//! recorded state says what the tables hold (the batch then asserts it: a wrong guess
//! fails atomically and we retry from a real dump). `reapply` does all NICs in one batch
//! per tool.

mod down;
mod reapply;
mod report;
mod rtnl;
mod up;

pub use down::{down, down_if_gone};
pub use reapply::reapply;
#[cfg(test)]
pub use report::fresh_dry_run_text;
pub use report::status;
pub use up::up;

use std::path::Path;

use anyhow::{Context, bail};
use netconf::IfName;
use netconf_sys::netlink;
use rtnl::Tool;

use crate::announce;
use crate::config::IfupSettings;
use crate::exec;
use crate::firewall::{Driver, Family, NicRules};
use crate::log;
use crate::node::{self, RoutingCache};
use crate::plan::{Announce, Plan, Undo};
use crate::state::{self, FwMap, State};

pub struct Ctx {
    pub cfg: IfupSettings,
    pub dry_run: bool,
}

/// Removes a NIC's rules with the driver that applied them, when the configured one is
/// another; returns its state without them (saved, so that a crash leaves no stale record).
fn switch_driver(ctx: &Ctx, tap: &IfName, mut p: State) -> anyhow::Result<State> {
    let old = p.driver.get(&ctx.cfg.state_dir);
    let known = p.complete.then(|| p.fw_map());
    old.apply(&[NicRules {
        tap: tap.as_str(),
        want: &FwMap::new(),
        arp_old: &p.undo.arp,
        arp_new: &[],
        known: known.as_ref(),
        recorded: None,
        maybe: &p.families,
    }])
    .with_context(|| format!("removing {tap}'s {} rules", old.name()))?;
    p.families.clear();
    p.firewall.clear();
    p.undo.arp.clear();
    p.driver = driver(ctx);
    state::save(&ctx.cfg.state_dir, &p)?;
    Ok(p)
}

/// The firewall driver of this run (`auto` probes once).
fn driver(ctx: &Ctx) -> Driver {
    static DRIVER: std::sync::OnceLock<Driver> = std::sync::OnceLock::new();
    *DRIVER.get_or_init(|| ctx.cfg.firewall.resolve())
}

/// One NIC to apply.
struct Work<'a> {
    tap: &'a IfName,
    plan: &'a Plan,
    prev: Option<&'a State>,
    /// What the firewall holds of this TAP, if known without reading it.
    known: Option<FwMap>,
}

fn lock(ctx: &Ctx) -> anyhow::Result<Option<std::fs::File>> {
    if ctx.dry_run {
        Ok(None)
    } else {
        state::lock(&ctx.cfg.state_dir).map(Some)
    }
}

/// Whether `ip` can name routing table `t` (a recorded table may have been removed from
/// rt_tables, or be one that never existed, recorded by an older version).
fn table_known(t: &str) -> bool {
    netlink::table_id(t).is_some_and(|id| id != 0)
}

fn stale_lines(old: &Undo, new: &Undo, tap: &str) -> (Vec<String>, Vec<String>) {
    let nameable = |r: &(String, String)| {
        let known = table_known(&r.1);
        if !known {
            log::warn(&format!(
                "{tap}: forgetting route {} in table '{}': no such table",
                r.0, r.1
            ));
        }
        known
    };
    let stale_routes = |old: &[(String, String)], new: &[(String, String)]| -> Vec<String> {
        old.iter()
            .filter(|r| !new.contains(r))
            .filter(|r| nameable(r))
            .map(|r| format!("route del {} dev {tap} table {}", r.0, r.1))
            .collect()
    };
    let v4 = stale_routes(&old.routes4, &new.routes4);
    let mut v6 = stale_routes(&old.routes6, &new.routes6);
    for n in old
        .neigh_proxies
        .iter()
        .filter(|n| !new.neigh_proxies.contains(n))
    {
        v6.push(format!("neigh del proxy {} dev {}", n.0, n.1));
    }
    (v4, v6)
}

fn execute(ctx: &Ctx, works: &[Work]) -> anyhow::Result<()> {
    // The firewall, the links/routes and the bindings are independent: they run side by
    // side (the kernel's nf_tables commits mostly wait, they do not compute).
    let maybes: Vec<Vec<Family>> = works
        .iter()
        .map(|w| w.prev.map_or(Family::ALL.to_vec(), |p| p.families.clone()))
        .collect();
    let drv = driver(ctx);
    let recorded: Vec<Option<FwMap>> = works
        .iter()
        .map(|w| {
            w.prev
                .filter(|p| p.complete && p.driver == drv)
                .map(State::fw_map)
        })
        .collect();
    let rules: Vec<NicRules> = works
        .iter()
        .zip(maybes.iter().zip(&recorded))
        .map(|(w, (maybe, recorded))| NicRules {
            tap: w.tap.as_str(),
            want: &w.plan.firewall,
            arp_old: w.prev.map_or(&[][..], |p| &p.undo.arp),
            arp_new: &w.plan.arp,
            known: w.known.as_ref(),
            recorded: recorded.as_ref(),
            maybe,
        })
        .collect();
    let fw = driver(ctx).get(&ctx.cfg.state_dir);
    std::thread::scope(|scope| {
        let fw = scope.spawn(|| {
            let t0 = std::time::Instant::now();
            fw.apply(&rules).inspect(|()| {
                log::info(&format!(
                    "firewall ({}) in {:.1} ms",
                    fw.name(),
                    t0.elapsed().as_secs_f64() * 1000.0
                ));
            })
        });
        let files = scope.spawn(|| -> anyhow::Result<()> {
            for w in works {
                write_binding(&ctx.cfg, w.tap, w.plan)?;
            }
            Ok(())
        });
        // Announcements need the routes and proxy entries, not the firewall: they go out
        // while the firewall batches are still running.
        let t0 = std::time::Instant::now();
        let links = sysctls(works)
            .and_then(|()| links_and_routes(works))
            .inspect(|()| {
                log::info(&format!(
                    "sysctls, links and routes in {:.1} ms",
                    t0.elapsed().as_secs_f64() * 1000.0
                ));
                for w in works {
                    announce_all(w.tap.as_str(), &w.plan.announce);
                }
            });
        let mut errors = Vec::new();
        for h in [fw, files] {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(anyhow::anyhow!("internal error: a worker panicked")),
            }
        }
        if let Err(e) = links {
            errors.insert(0, e);
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => {
                let all: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
                bail!("{}", all.join("; "))
            }
        }
    })
}

/// Before the links come up (accept_dad only matters then); the firewall need not wait.
fn sysctls(works: &[Work]) -> anyhow::Result<()> {
    for w in works {
        for (k, v) in &w.plan.sysctls {
            std::fs::write(node::sysctl_path(k), v)
                .with_context(|| format!("cannot set {k}={v}"))?;
        }
    }
    Ok(())
}

fn links_and_routes(works: &[Work]) -> anyhow::Result<()> {
    let all = |f: fn(&Plan) -> &Vec<String>| -> Vec<String> {
        works
            .iter()
            .flat_map(|w| f(w.plan).iter().cloned())
            .collect()
    };
    // In the plan's order: links (address before up, so that the link-local address is
    // derived from the final MAC), then bridge VLANs, then IPv6 (its routes need the link
    // up). Each request takes microseconds: nothing is gained by running them side by side.
    let mut nl = rtnl::open()?;
    rtnl::run(&mut nl, Tool::Ip4, &all(|p| &p.ip4))?;
    rtnl::run(&mut nl, Tool::Bridge, &all(|p| &p.bridge))?;
    rtnl::run(&mut nl, Tool::Ip6, &all(|p| &p.ip6))?;
    for w in works.iter().filter(|w| !w.plan.ovs.is_empty()) {
        let args: Vec<&str> = w.plan.ovs.iter().map(String::as_str).collect();
        exec::run("ovs-vsctl", &args)?;
    }
    // What the previous configuration left that the new one does not use: cleaning it is
    // not the new configuration's job, so a failure there is a warning, not a failed `up`.
    let (mut s4, mut s6) = (Vec::new(), Vec::new());
    for w in works {
        let t = w.tap.as_str();
        if let Some(p) = w.prev {
            let (a, b) = stale_lines(&p.undo, &w.plan.undo, t);
            s4.extend(a);
            s6.extend(b);
            if let Some(old) = &p.undo.bridge
                && w.plan.undo.bridge.as_ref() != Some(old)
                && node::master(t).as_deref() == Some(old.as_str())
                && let Err(e) = rtnl::nomaster(&mut nl, t)
            {
                log::warn(&format!("{t}: leaving bridge {old}: {e:#}"));
            }
        }
    }
    for r in [
        rtnl::run_forgiving(&mut nl, Tool::Ip4, &s4),
        rtnl::run_forgiving(&mut nl, Tool::Ip6, &s6),
    ] {
        if let Err(e) = r {
            log::warn(&format!("removing stale routes: {e:#}"));
        }
    }
    Ok(())
}

fn write_binding(cfg: &IfupSettings, tap: &IfName, plan: &Plan) -> anyhow::Result<()> {
    let path = cfg.nfdhcpd_state_dir.join(tap.as_str());
    match &plan.binding {
        Some(b) => {
            // Unchanged bindings are not rewritten: nfdhcpd reloads on every write.
            // Read as nfdhcpd reads it: a FIFO or link there is not waited on or followed
            // but replaced (the rename replaces the name, not what a link points at).
            if netconf::binding::read_text(&path).is_ok_and(|old| old == b.render()) {
                return Ok(());
            }
            b.write_atomic(&cfg.nfdhcpd_state_dir, tap)
                .with_context(|| format!("cannot write binding {}", path.display()))?;
        }
        None => remove_file(&path)?,
    }
    Ok(())
}

fn announce_all(t: &str, list: &[Announce]) {
    let mut frames = Vec::new();
    let mut what = Vec::new();
    for a in list {
        let (dev, ip) = match a {
            Announce::Garp { ip, dev } => (dev, ip.to_string()),
            Announce::UnsolicitedNa { ip, dev } => (dev, ip.to_string()),
        };
        let Some(mac) = node::mac(dev.as_str()) else {
            log::warn(&format!(
                "{t}: cannot read the MAC of {dev}; no announcement"
            ));
            continue;
        };
        let (frame, kind) = match a {
            Announce::Garp { ip, .. } => (announce::garp_frame(mac, *ip), "gratuitous ARP"),
            Announce::UnsolicitedNa { ip, .. } => (announce::na_frame(mac, *ip), "unsolicited NA"),
        };
        frames.push((dev.to_string(), frame));
        what.push(format!("{kind} for {ip} on {dev}"));
    }
    for (r, w) in announce::send_all(&frames).into_iter().zip(what) {
        match r {
            Ok(()) => log::info(&format!("{t}: sent {w}")),
            Err(e) => log::warn(&format!("{t}: {w} failed: {e:#}")),
        }
    }
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        // A missing directory (or a file where a directory should be) means no file either.
        Err(e)
            if e.kind() != std::io::ErrorKind::NotFound
                && e.raw_os_error() != Some(libc::ENOTDIR) =>
        {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The TAP's original MAC: the one this plan replaces, else the one an earlier `up` of the
/// same TAP (same ifindex) replaced.
pub(super) fn carried_mac(
    undo: &Undo,
    prev: Option<&State>,
    ifindex: Option<u32>,
) -> Option<netconf::MacAddr> {
    undo.mac.or_else(|| {
        prev.filter(|p| ifindex.is_some() && p.ifindex == ifindex)
            .and_then(|p| p.undo.mac)
    })
}

/// The `ip` lines that take down what a NIC left on the node (rules through the TAP, and
/// its recorded routes and proxy entries), for `down` and for printing a teardown.
pub(super) fn teardown_lines(
    tap: &str,
    st: Option<&State>,
    routing: &mut RoutingCache,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    routing.load_both()?;
    for r in routing.get(false)?.rules_for(tap) {
        v4.push(format!(
            "rule del priority {} iif {tap} lookup {}",
            r.priority, r.table
        ));
    }
    for r in routing.get(true)?.rules_for(tap) {
        v6.push(format!(
            "rule del priority {} iif {tap} lookup {}",
            r.priority, r.table
        ));
    }
    if let Some(st) = st {
        let (a, b) = stale_lines(&st.undo, &Undo::default(), tap);
        // Routes through the TAP vanish with it; proxy entries are on the uplink.
        if node::link_exists(tap) {
            v4.extend(a);
            v6.extend(b.iter().filter(|l| l.starts_with("route")).cloned());
        }
        v6.extend(b.into_iter().filter(|l| l.starts_with("neigh")));
    }
    Ok((v4, v6))
}
