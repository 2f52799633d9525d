//! `up`: building a NIC's plan, recording it, applying it, and rolling back on failure.

use anyhow::Context;
use netconf::{IfName, NicEnv};

use super::down::teardown;
use super::reapply::reapply_one;
use super::report::print_plan;
use super::{Ctx, Work, carried_mac, driver, execute, lock, switch_driver};
use crate::firewall::Family;
use crate::log;
use crate::node::{self, RoutingCache};
use crate::plan::{self, Flavour};
use crate::state::{self, FwMap, State};

/// Brings one NIC up. On failure everything this call changed is rolled back: to the
/// previous configuration if there was a complete one, else to nothing.
pub fn up(
    ctx: &Ctx,
    nic: &NicEnv,
    tap: &IfName,
    flavour: Flavour,
    announce: bool,
) -> anyhow::Result<()> {
    let _lock = lock(ctx)?;
    let dir = &ctx.cfg.state_dir;
    let prev = state::load(dir, tap)?;
    let mut routing = RoutingCache::default();
    let facts = node::facts(nic, tap, &mut routing)?;
    let plan = plan::build(nic, tap, flavour, &ctx.cfg, &facts, announce)?;
    for w in &plan.warnings {
        log::warn(&format!("{tap}: {w}"));
    }
    let binding_path = ctx.cfg.nfdhcpd_state_dir.join(tap.as_str());
    if ctx.dry_run {
        return print_plan(ctx, tap, &plan, prev.as_ref(), &binding_path);
    }
    log::info(&format!(
        "configuring {tap} (instance {}, NIC {}, mode {})",
        nic.instance, nic.index, nic.mode
    ));

    // Rules of another driver (the configuration changed) go first, with that driver.
    let drv = driver(ctx);
    let prev = match prev {
        Some(p) if p.driver != drv => Some(switch_driver(ctx, tap, p)?),
        p => p,
    };
    // Record first, so that a `down` after a crash half-way knows everything to look for.
    let mut families: Vec<Family> = plan.firewall.keys().copied().collect();
    let mut undo = plan.undo.clone();
    let mut sysctl_restore = Vec::new();
    for (k, _) in &plan.sysctls {
        let old = prev
            .as_ref()
            .and_then(|p| p.sysctl_restore.iter().find(|(n, _)| n == k).cloned())
            .or_else(|| node::sysctl_get(k).map(|v| (k.clone(), v)));
        sysctl_restore.extend(old);
    }
    if let Some(p) = &prev {
        for f in &p.families {
            if !families.contains(f) {
                families.push(*f);
            }
        }
        undo = undo.merged(&p.undo);
    }
    let ifindex = node::ifindex(tap.as_str());
    let mut st = State {
        tap: tap.to_string(),
        flavour,
        complete: false,
        ifindex,
        env: nic.to_env(),
        families,
        sysctl_restore,
        binding: plan
            .binding
            .as_ref()
            .map(|_| binding_path.clone())
            .or_else(|| prev.as_ref().and_then(|p| p.binding.clone())),
        undo,
        firewall: prev
            .as_ref()
            .map(|p| p.firewall.clone())
            .unwrap_or_default(),
        driver: drv,
        // The caller that took the NIC from the store says so (`state::mark_from_store`).
        store: None,
    };
    state::save(dir, &st)?;

    let known = match &prev {
        None => Some(FwMap::new()),
        Some(p) if p.complete => Some(p.fw_map()),
        Some(_) => None,
    };
    let work = Work {
        tap,
        plan: &plan,
        prev: prev.as_ref(),
        known,
    };
    match execute(ctx, &[work]) {
        Ok(()) => {
            st.complete = true;
            st.families = plan.firewall.keys().copied().collect();
            st.firewall = state::to_records(&plan.firewall);
            st.undo = plan.undo.clone();
            st.undo.mac = carried_mac(&plan.undo, prev.as_ref(), ifindex);
            st.binding = plan.binding.as_ref().map(|_| binding_path);
            state::save(dir, &st)?;
            log::info(&format!("{tap} configured"));
            Ok(())
        }
        Err(e) => {
            rollback(ctx, tap, &st, prev.as_ref());
            Err(e.context(format!("cannot configure {tap}; changes rolled back")))
        }
    }
}

fn rollback(ctx: &Ctx, tap: &IfName, pending: &State, prev: Option<&State>) {
    let res = match prev.filter(|p| p.complete) {
        Some(p) => {
            // The previous state file is what we restore; write it back first.
            let r = state::save(&ctx.cfg.state_dir, p).and_then(|()| reapply_one(ctx, tap, p));
            r.context("restoring the previous configuration")
        }
        None => teardown(ctx, tap, Some(pending)),
    };
    if let Err(e) = res {
        log::warn(&format!("{tap}: rollback incomplete: {e:#}"));
    }
}
