//! `down`: removing whatever of a NIC exists, recorded or not, and keeping what failed.

use anyhow::{Context, bail};
use netconf::IfName;

use super::report::print_teardown;
use super::rtnl::{self, Tool};
use super::{Ctx, driver, lock, remove_file, teardown_lines};
use crate::exec;
use crate::firewall::{Family, NicRules};
use crate::log;
use crate::node::{self, RoutingCache};
use crate::plan;
use crate::state::{self, FwMap, State};

/// Takes a NIC down: removes whatever of ours exists (recorded or not) and succeeds when
/// nothing is left.
pub fn down(ctx: &Ctx, tap: &IfName) -> anyhow::Result<()> {
    let _lock = lock(ctx)?;
    let st = state::load(&ctx.cfg.state_dir, tap)?;
    if ctx.dry_run {
        return print_teardown(ctx, tap, st.as_ref());
    }
    log::info(&format!("taking down {tap}"));
    teardown(ctx, tap, st.as_ref())
}

/// What `watch` does when `tap` may be gone: under the lock, takes its NIC down if it has a
/// recorded state, no link of that name exists, and the record is of the link that went
/// (`deleted`, its ifindex, when known). A TAP that came back under the same name keeps
/// its NIC: a new `up` (or the `up` that follows) owns it. Returns whether it tore down.
pub fn down_if_gone(ctx: &Ctx, tap: &IfName, deleted: Option<u32>) -> anyhow::Result<bool> {
    let _lock = lock(ctx)?;
    let Some(st) = state::load(&ctx.cfg.state_dir, tap)? else {
        return Ok(false);
    };
    if node::link_exists(tap.as_str()) {
        return Ok(false);
    }
    if let (Some(rec), Some(del)) = (st.ifindex, deleted)
        && rec != del
    {
        return Ok(false);
    }
    if ctx.dry_run {
        print_teardown(ctx, tap, Some(&st))?;
        return Ok(true);
    }
    // Recorded values are escaped: a log line is one line, whatever a name holds.
    let var = |k: &str| {
        st.env
            .iter()
            .find(|(n, _)| n == k)
            .map_or_else(|| "?".to_owned(), |(_, v)| v.escape_debug().to_string())
    };
    log::notice(&format!(
        "{tap} is gone; taking down NIC {} of {}",
        var("INTERFACE_INDEX"),
        var("INSTANCE")
    ));
    teardown(ctx, tap, Some(&st))?;
    Ok(true)
}

/// How one teardown step ended, and what of the recorded state it settles.
struct Steps {
    tap: String,
    /// What is still to undo (rewritten as the state file when something failed).
    left: Option<State>,
    errors: Vec<String>,
}

impl Steps {
    /// Records a step's result. Success settles `part`; so does a failure that can never
    /// turn into a success (the tool is not installed): keeping its entry would make every
    /// later `down` of the TAP fail. Other failures keep it for the next `down`.
    fn step(&mut self, r: anyhow::Result<()>, part: impl FnOnce(&mut State)) {
        match r {
            Ok(()) => {}
            Err(e) => {
                let msg = format!("{e:#}");
                if !msg.contains("not found in PATH") {
                    self.errors.push(msg);
                    return;
                }
                log::warn(&format!("{}: {msg}; forgetting that step", self.tap));
            }
        }
        if let Some(s) = &mut self.left {
            part(s);
        }
    }
}

pub(super) fn teardown(ctx: &Ctx, tap: &IfName, st: Option<&State>) -> anyhow::Result<()> {
    let t = tap.as_str();
    let known = st.filter(|s| s.complete).map(State::fw_map);
    let maybe = st.map_or(Family::ALL.to_vec(), |s| s.families.clone());
    let drv = st
        .map_or_else(|| driver(ctx), |s| s.driver)
        .get(&ctx.cfg.state_dir);
    let empty = FwMap::new();
    let rules = [NicRules {
        tap: t,
        want: &empty,
        arp_old: st.map_or(&[][..], |s| &s.undo.arp),
        arp_new: &[],
        known: known.as_ref(),
        recorded: None,
        maybe: &maybe,
    }];
    std::thread::scope(|scope| {
        // The firewall's removal runs while the rest is undone: an nf_tables commit that
        // deletes makes `nft` wait for a grace period of the kernel before it exits.
        let fw = scope.spawn(|| drv.apply(&rules));
        let mut rest = Steps {
            tap: t.to_owned(),
            left: st.cloned(),
            errors: Vec::new(),
        };
        undo_rest(ctx, t, st, &mut rest);
        let fw = fw
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: a worker panicked")));
        let mut steps = Steps {
            tap: t.to_owned(),
            left: rest.left,
            errors: Vec::new(),
        };
        // One driver call removes every table's rules: on failure all of it is retried
        // (each removal is idempotent).
        steps.step(fw, |s| {
            s.families.clear();
            s.firewall.clear();
            s.undo.arp.clear();
        });
        steps.errors.extend(rest.errors);
        steps.finish(ctx, tap)
    })
}

/// Everything of a teardown but the firewall: rules and routes, bridge or switch port,
/// MAC, sysctls, binding files.
fn undo_rest(ctx: &Ctx, t: &str, st: Option<&State>, steps: &mut Steps) {
    let mut routing = RoutingCache::default();
    let mut nl = match rtnl::open() {
        Ok(nl) => nl,
        Err(e) => return steps.step(Err(e), |_| {}),
    };
    match teardown_lines(t, st, &mut routing) {
        Ok((v4, v6)) => {
            steps.step(rtnl::run_forgiving(&mut nl, Tool::Ip4, &v4), |s| {
                s.undo.routes4.clear();
                s.undo.rule_tables4.clear();
            });
            steps.step(rtnl::run_forgiving(&mut nl, Tool::Ip6, &v6), |s| {
                s.undo.routes6.clear();
                s.undo.rule_tables6.clear();
                s.undo.neigh_proxies.clear();
            });
        }
        Err(e) => steps.step(Err(e), |_| {}),
    }
    if let Some(s) = st {
        if let Some(br) = &s.undo.bridge {
            let r = if node::master(t).as_deref() == Some(br.as_str()) {
                rtnl::nomaster(&mut nl, t)
            } else {
                Ok(())
            };
            steps.step(r, |s| s.undo.bridge = None);
        }
        if s.undo.ovs_bridge.is_some() {
            // By port name only: a switch that is gone must not make the port's removal
            // fail for ever. The database is what counts: a vswitchd that is down applies
            // it when it is back, and must not stall a rollback.
            let r = if exec::in_path("ovs-vsctl") {
                exec::run(
                    "ovs-vsctl",
                    &[
                        &plan::ovs_timeout_arg(ctx.cfg.ovs_timeout),
                        "--no-wait",
                        "--if-exists",
                        "del-port",
                        t,
                    ],
                )
            } else {
                Ok(())
            };
            steps.step(r, |s| s.undo.ovs_bridge = None);
        }
        if node::link_exists(t) {
            // Out of the bridge first, so that the old address never reaches it.
            if let (Some(orig), Some(now)) = (s.undo.mac, node::mac(t))
                && now != orig
                && (now.octets()[0] == 0xfe || now == ctx.cfg.tap_constant_mac)
            {
                let r = rtnl::set_address(&mut nl, t, orig);
                steps.step(r, |s| s.undo.mac = None);
            }
            for (k, v) in &s.sysctl_restore {
                let r = std::fs::write(node::sysctl_path(k), v)
                    .with_context(|| format!("cannot restore {k}={v}"));
                steps.step(r, |s| s.sysctl_restore.retain(|(n, _)| n != k));
            }
        }
        if let Some(b) = &s.binding {
            steps.step(remove_file(b), |s| s.binding = None);
        }
    }
    steps.step(remove_file(&ctx.cfg.nfdhcpd_state_dir.join(t)), |_| {});
}

impl Steps {
    /// Forgets the NIC when every step succeeded, else keeps only what is still to undo,
    /// so that the next `down` retries exactly that.
    fn finish(mut self, ctx: &Ctx, tap: &IfName) -> anyhow::Result<()> {
        if self.errors.is_empty() {
            state::remove(&ctx.cfg.state_dir, tap)?;
            log::info(&format!("{tap} taken down"));
            return Ok(());
        }
        if let Some(mut left) = self.left {
            left.complete = false;
            if let Err(e) = state::save(&ctx.cfg.state_dir, &left) {
                self.errors.push(format!("{e:#}"));
            }
        }
        bail!("taking down {tap}: {}", self.errors.join("; "))
    }
}
