//! Executing plans (`up`, `reapply`), undoing them (`down`), and showing them (`status`,
//! `--dry-run`).
//!
//! Speed: one `ip -batch` per address family, one `*-restore` per firewall table, and no
//! `*-save` when the recorded state says what the tables hold (the batch then asserts it:
//! a wrong guess fails atomically and we retry from a real dump). `reapply` does all NICs
//! in one batch per tool.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use netconf::{IfName, NicEnv};
use netconf_sys::netlink;

use crate::announce;
use crate::config::Config;
use crate::exec;
use crate::firewall::{Driver, Family, NicRules};
use crate::log;
use crate::node::{self, RoutingCache};
use crate::plan::{self, Announce, Flavour, Plan, Undo};
use crate::state::{self, FwMap, State};

pub struct Ctx {
    pub cfg: Config,
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

/// The TAP's original MAC: the one this plan replaces, else the one an earlier `up` of the
/// same TAP (same ifindex) replaced.
fn carried_mac(
    undo: &Undo,
    prev: Option<&State>,
    ifindex: Option<u32>,
) -> Option<netconf::MacAddr> {
    undo.mac.or_else(|| {
        prev.filter(|p| ifindex.is_some() && p.ifindex == ifindex)
            .and_then(|p| p.undo.mac)
    })
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

fn lock(ctx: &Ctx) -> anyhow::Result<Option<std::fs::File>> {
    if ctx.dry_run {
        Ok(None)
    } else {
        state::lock(&ctx.cfg.state_dir).map(Some)
    }
}

fn batch(cmd: &str, args: &[&str], lines: &[String]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = lines.join("\n");
    input.push('\n');
    exec::with_stdin(cmd, args, &input)
}

/// Runs a batch where "already gone" is success (teardown), returning other errors.
fn batch_forgiving(cmd: &str, args: &[&str], lines: &[String]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = lines.join("\n");
    input.push('\n');
    let (ok, stderr) = exec::with_stdin_status(cmd, args, &input)?;
    if ok {
        return Ok(());
    }
    let benign = [
        "No such file or directory",
        "No such process",
        "Cannot find device",
        "Command failed",
        "does not exist",
        "Nothing to flush",
    ];
    let real: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !benign.iter().any(|b| l.contains(b)))
        .collect();
    if real.is_empty() {
        Ok(())
    } else {
        bail!("`{cmd} {}` failed: {}", args.join(" "), real.join("; "))
    }
}

/// Whether `ip` can name routing table `t` (a recorded table may have been removed from
/// rt_tables, or be one that never existed, recorded by an older version).
fn table_known(t: &str) -> bool {
    netlink::table_id(t).is_some_and(|id| id != 0)
}

fn stale_lines(old: &Undo, new: &Undo, tap: &str) -> (Vec<String>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
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
    for r in old
        .routes4
        .iter()
        .filter(|r| !new.routes4.contains(r))
        .filter(|r| nameable(r))
    {
        v4.push(format!("route del {} dev {tap} table {}", r.0, r.1));
    }
    for r in old
        .routes6
        .iter()
        .filter(|r| !new.routes6.contains(r))
        .filter(|r| nameable(r))
    {
        v6.push(format!("route del {} dev {tap} table {}", r.0, r.1));
    }
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
    // Before the links come up (accept_dad only matters then).
    for w in works {
        for (k, v) in &w.plan.sysctls {
            std::fs::write(node::sysctl_path(k), v)
                .with_context(|| format!("cannot set {k}={v}"))?;
        }
    }
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
        let fw = scope.spawn(|| fw.apply(&rules));
        let files = scope.spawn(|| -> anyhow::Result<()> {
            for w in works {
                write_binding(&ctx.cfg, w.tap, w.plan)?;
            }
            Ok(())
        });
        // Announcements need the routes and proxy entries, not the firewall: they go out
        // while the firewall batches are still running.
        let links = links_and_routes(works).inspect(|()| {
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

fn links_and_routes(works: &[Work]) -> anyhow::Result<()> {
    let all = |f: fn(&Plan) -> &Vec<String>| -> Vec<String> {
        works
            .iter()
            .flat_map(|w| f(w.plan).iter().cloned())
            .collect()
    };
    let ip4 = all(|p| &p.ip4);
    // IPv6 routes need the link up: the IPv6 batch repeats the (idempotent) link lines, in
    // the same order (address before up, so the link-local address is derived from the
    // final MAC), and both batches run side by side.
    let mut ip6: Vec<String> = Vec::new();
    for w in works.iter().filter(|w| !w.plan.ip6.is_empty()) {
        ip6.extend(
            w.plan
                .ip4
                .iter()
                .filter(|l| l.starts_with("link "))
                .cloned(),
        );
        ip6.extend(w.plan.ip6.iter().cloned());
    }
    std::thread::scope(|scope| {
        let v6 = scope.spawn(|| batch("ip", &["-6", "-batch", "-"], &ip6));
        let v4 = (|| {
            batch("ip", &["-4", "-batch", "-"], &ip4)?;
            batch("bridge", &["-batch", "-"], &all(|p| &p.bridge))?;
            for w in works.iter().filter(|w| !w.plan.ovs.is_empty()) {
                let args: Vec<&str> = w.plan.ovs.iter().map(String::as_str).collect();
                exec::run("ovs-vsctl", &args)?;
            }
            Ok(())
        })();
        let v6 = v6
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: a worker panicked")));
        v4.and(v6)
    })?;
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
                && let Err(e) = exec::run("ip", &["link", "set", "dev", t, "nomaster"])
            {
                log::warn(&format!("{t}: leaving bridge {old}: {e:#}"));
            }
        }
    }
    for r in [
        batch_forgiving("ip", &["-4", "-force", "-batch", "-"], &s4),
        batch_forgiving("ip", &["-6", "-force", "-batch", "-"], &s6),
    ] {
        if let Err(e) = r {
            log::warn(&format!("removing stale routes: {e:#}"));
        }
    }
    Ok(())
}

fn write_binding(cfg: &Config, tap: &IfName, plan: &Plan) -> anyhow::Result<()> {
    let path = cfg.nfdhcpd_state_dir.join(tap.as_str());
    match &plan.binding {
        Some(b) => {
            // Unchanged bindings are not rewritten: nfdhcpd reloads on every write.
            if std::fs::read_to_string(&path).is_ok_and(|old| old == b.render()) {
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

fn teardown_lines(
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

fn teardown(ctx: &Ctx, tap: &IfName, st: Option<&State>) -> anyhow::Result<()> {
    let t = tap.as_str();
    let mut steps = Steps {
        tap: t.to_owned(),
        left: st.cloned(),
        errors: Vec::new(),
    };
    let known = st.filter(|s| s.complete).map(State::fw_map);
    let maybe = st.map_or(Family::ALL.to_vec(), |s| s.families.clone());
    let drv = st.map_or_else(|| driver(ctx), |s| s.driver);
    let fw = drv.get(&ctx.cfg.state_dir).apply(&[NicRules {
        tap: t,
        want: &FwMap::new(),
        arp_old: st.map_or(&[][..], |s| &s.undo.arp),
        arp_new: &[],
        known: known.as_ref(),
        recorded: None,
        maybe: &maybe,
    }]);
    // One driver call removes every table's rules: on failure all of it is retried (each
    // removal is idempotent).
    steps.step(fw, |s| {
        s.families.clear();
        s.firewall.clear();
        s.undo.arp.clear();
    });
    let mut routing = RoutingCache::default();
    match teardown_lines(t, st, &mut routing) {
        Ok((v4, v6)) => {
            steps.step(
                batch_forgiving("ip", &["-4", "-force", "-batch", "-"], &v4),
                |s| {
                    s.undo.routes4.clear();
                    s.undo.rule_tables4.clear();
                },
            );
            steps.step(
                batch_forgiving("ip", &["-6", "-force", "-batch", "-"], &v6),
                |s| {
                    s.undo.routes6.clear();
                    s.undo.rule_tables6.clear();
                    s.undo.neigh_proxies.clear();
                },
            );
        }
        Err(e) => steps.step(Err(e), |_| {}),
    }
    if let Some(s) = st {
        if let Some(br) = &s.undo.bridge {
            let r = if node::master(t).as_deref() == Some(br.as_str()) {
                exec::run("ip", &["link", "set", "dev", t, "nomaster"])
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
                let r = exec::run(
                    "ip",
                    &["link", "set", "dev", t, "address", &orig.to_string()],
                );
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
    if steps.errors.is_empty() {
        state::remove(&ctx.cfg.state_dir, tap)?;
        log::info(&format!("{tap} taken down"));
        return Ok(());
    }
    // Keep only what is still to undo, so that the next `down` retries exactly that.
    if let Some(mut left) = steps.left {
        left.complete = false;
        if let Err(e) = state::save(&ctx.cfg.state_dir, &left) {
            steps.errors.push(format!("{e:#}"));
        }
    }
    bail!("taking down {tap}: {}", steps.errors.join("; "))
}

/// Rebuilds NICs from their recorded state, reading the firewall tables (they may have
/// been reloaded) and doing every NIC in one batch per tool.
pub fn reapply(ctx: &Ctx, taps: &[IfName]) -> anyhow::Result<()> {
    let _lock = lock(ctx)?;
    let mut failed = Vec::new();
    let mut routing = RoutingCache::default();
    let mut ready: Vec<(IfName, State, Plan)> = Vec::new();
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

fn reapply_one(ctx: &Ctx, tap: &IfName, st: &State) -> anyhow::Result<()> {
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

fn section(title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("# {title}");
    for l in lines {
        println!("{l}");
    }
}

fn print_plan(
    ctx: &Ctx,
    tap: &IfName,
    plan: &Plan,
    prev: Option<&State>,
    binding_path: &Path,
) -> anyhow::Result<()> {
    let t = tap.as_str();
    let sys: Vec<String> = plan
        .sysctls
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    section("sysctl", &sys);
    section("ip -4 -batch -", &plan.ip4);
    section("bridge -batch -", &plan.bridge);
    if !plan.ovs.is_empty() {
        section("ovs-vsctl", &[plan.ovs.join(" ")]);
    }
    section("ip -6 -batch -", &plan.ip6);
    if let Some(p) = prev {
        let (v4, v6) = stale_lines(&p.undo, &plan.undo, t);
        section("ip -4 -force -batch - (stale)", &v4);
        section("ip -6 -force -batch - (stale)", &v6);
    }
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
    match &plan.binding {
        Some(b) => {
            println!("# write {}", binding_path.display());
            print!("{}", b.render());
        }
        None if binding_path.exists() => println!("# remove {}", binding_path.display()),
        None => {}
    }
    for a in &plan.announce {
        match a {
            Announce::Garp { ip, dev } => println!("# gratuitous ARP for {ip} on {dev}"),
            Announce::UnsolicitedNa { ip, dev } => {
                println!("# unsolicited NA for {ip} on {dev}");
            }
        }
    }
    Ok(())
}

fn print_teardown(ctx: &Ctx, tap: &IfName, st: Option<&State>) -> anyhow::Result<()> {
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
