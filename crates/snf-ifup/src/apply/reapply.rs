//! `reapply`: rebuilding recorded NICs, all in one batch per tool.

use anyhow::bail;
use netconf::IfName;

use super::carried_mac;
use super::report::print_plan;
use super::{Ctx, Work, driver, execute, lock, switch_driver};
use crate::log;
use crate::node::{self, RoutingCache};
use crate::plan::{self, Plan};
use crate::state::{self, State};

/// Rebuilds NICs from their recorded state, reading the firewall tables (they may have
/// been reloaded) and doing every NIC in one batch per tool.
pub fn reapply(ctx: &Ctx, taps: &[IfName]) -> anyhow::Result<()> {
    let _lock = lock(ctx)?;
    let mut failed = Vec::new();
    let mut routing = RoutingCache::default();
    let mut ready: Vec<(IfName, State, Plan)> = Vec::new();
    let started = std::time::Instant::now();
    for tap in taps {
        let res = (|| {
            let Some(st) = state::load(&ctx.cfg.state_dir, tap)? else {
                bail!("no recorded state for {tap}");
            };
            if !node::link_exists(tap.as_str()) {
                return Ok(None);
            }
            let nic = st.nic()?;
            let facts = node::facts(&nic, tap, &mut routing)?;
            let plan = plan::build(&nic, tap, st.flavour, &ctx.cfg, &facts, false)?;
            Ok(Some((st, plan)))
        })();
        match res {
            Ok(Some((st, plan))) => ready.push((tap.clone(), st, plan)),
            // The VM stopped without a `down`: nothing to rebuild, and not an error.
            Ok(None) => log::warn(&format!(
                "{tap} no longer exists; skipped (`snf-ifup down {tap}` forgets it)"
            )),
            Err(e) => {
                log::error(&format!("reapply {tap}: {e:#}"));
                failed.push(tap.to_string());
            }
        }
    }
    log::info(&format!(
        "read and planned {} NICs in {:.1} ms",
        ready.len(),
        started.elapsed().as_secs_f64() * 1000.0
    ));
    if ctx.dry_run {
        for (tap, st, plan) in &ready {
            print_plan(
                ctx,
                tap,
                plan,
                Some(st),
                &ctx.cfg.nfdhcpd_state_dir.join(tap.as_str()),
            )?;
        }
    } else if !ready.is_empty() {
        let drv = driver(ctx);
        let mut switched = Vec::new();
        for (tap, st, plan) in ready.drain(..) {
            if st.driver == drv {
                switched.push((tap, st, plan));
                continue;
            }
            match switch_driver(ctx, &tap, st) {
                Ok(st) => switched.push((tap, st, plan)),
                Err(e) => {
                    log::error(&format!("reapply {tap}: {e:#}"));
                    failed.push(tap.to_string());
                }
            }
        }
        ready = switched;
        let works: Vec<Work> = ready
            .iter()
            .map(|(tap, st, plan)| Work {
                tap,
                plan,
                prev: Some(st),
                known: None,
            })
            .collect();
        let all_ok = match execute(ctx, &works) {
            Ok(()) => true,
            Err(e) => {
                log::warn(&format!("reapply in one batch failed ({e:#}); NIC by NIC"));
                false
            }
        };
        let t0 = std::time::Instant::now();
        for (tap, st, plan) in &ready {
            let r = if all_ok {
                Ok(())
            } else {
                execute(
                    ctx,
                    &[Work {
                        tap,
                        plan,
                        prev: Some(st),
                        known: None,
                    }],
                )
            };
            match r.and_then(|()| record(ctx, tap, st, plan)) {
                Ok(()) => {}
                Err(e) => {
                    log::error(&format!("reapply {tap}: {e:#}"));
                    failed.push(tap.to_string());
                }
            }
        }
        log::info(&format!(
            "recorded in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1000.0
        ));
    }
    if !failed.is_empty() {
        bail!("reapply failed for {}", failed.join(", "));
    }
    Ok(())
}

fn record(ctx: &Ctx, tap: &IfName, st: &State, plan: &Plan) -> anyhow::Result<()> {
    let mut new = st.clone();
    new.complete = true;
    new.families = plan.firewall.keys().copied().collect();
    new.firewall = state::to_records(&plan.firewall);
    new.driver = driver(ctx);
    new.undo = plan.undo.clone();
    new.undo.mac = carried_mac(&plan.undo, Some(st), node::ifindex(tap.as_str()));
    new.binding = plan
        .binding
        .as_ref()
        .map(|_| ctx.cfg.nfdhcpd_state_dir.join(tap.as_str()));
    if &new != st {
        state::save(&ctx.cfg.state_dir, &new)?;
    }
    Ok(())
}

pub(super) fn reapply_one(ctx: &Ctx, tap: &IfName, st: &State) -> anyhow::Result<()> {
    let nic = st.nic()?;
    let facts = node::facts(&nic, tap, &mut RoutingCache::default())?;
    let plan = plan::build(&nic, tap, st.flavour, &ctx.cfg, &facts, false)?;
    execute(
        ctx,
        &[Work {
            tap,
            plan: &plan,
            prev: Some(st),
            known: None,
        }],
    )?;
    record(ctx, tap, st, &plan)
}
