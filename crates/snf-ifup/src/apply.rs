//! Executing a plan (`up`, `reapply`), undoing it (`down`), and showing it (`status`,
//! `--dry-run`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use netconf::{IfName, NicEnv};

use crate::announce;
use crate::config::Config;
use crate::exec;
use crate::firewall::{self, Family, TableSpec};
use crate::log;
use crate::node;
use crate::plan::{self, Announce, Flavour, Plan, Undo};
use crate::state::{self, State};

pub struct Ctx {
    pub cfg: Config,
    pub dry_run: bool,
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
    let facts = node::facts(nic, tap)?;
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
    let mut st = State {
        tap: tap.to_string(),
        flavour,
        complete: false,
        env: nic.to_env(),
        families,
        sysctl_restore,
        binding: plan
            .binding
            .as_ref()
            .map(|_| binding_path.clone())
            .or_else(|| prev.as_ref().and_then(|p| p.binding.clone())),
        undo,
    };
    state::save(dir, &st)?;

    match execute(ctx, tap, &plan, prev.as_ref()) {
        Ok(()) => {
            st.complete = true;
            st.families = plan.firewall.keys().copied().collect();
            st.undo = plan.undo.clone();
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

fn stale_lines(old: &Undo, new: &Undo, tap: &str) -> (Vec<String>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for r in old.routes4.iter().filter(|r| !new.routes4.contains(r)) {
        v4.push(format!("route del {} dev {tap} table {}", r.0, r.1));
    }
    for r in old.routes6.iter().filter(|r| !new.routes6.contains(r)) {
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

fn execute(ctx: &Ctx, tap: &IfName, plan: &Plan, prev: Option<&State>) -> anyhow::Result<()> {
    let t = tap.as_str();
    // Before the link comes up (accept_dad only matters then).
    for (k, v) in &plan.sysctls {
        std::fs::write(node::sysctl_path(k), v).with_context(|| format!("cannot set {k}={v}"))?;
    }
    batch("ip", &["-4", "-batch", "-"], &plan.ip4)?;
    batch("bridge", &["-batch", "-"], &plan.bridge)?;
    if !plan.ovs.is_empty() {
        let args: Vec<&str> = plan.ovs.iter().map(String::as_str).collect();
        exec::run("ovs-vsctl", &args)?;
    }
    batch("ip", &["-6", "-batch", "-"], &plan.ip6)?;
    if let Some(p) = prev {
        let (v4, v6) = stale_lines(&p.undo, &plan.undo, t);
        batch_forgiving("ip", &["-4", "-force", "-batch", "-"], &v4)?;
        batch_forgiving("ip", &["-6", "-force", "-batch", "-"], &v6)?;
        if let Some(old) = &p.undo.bridge
            && plan.undo.bridge.as_ref() != Some(old)
            && node::master(t).as_deref() == Some(old.as_str())
        {
            exec::run("ip", &["link", "set", "dev", t, "nomaster"])?;
        }
    }
    for fam in Family::ALL {
        let spec = plan.firewall.get(&fam);
        let before = prev.is_some_and(|p| p.families.contains(&fam));
        if spec.is_none() && !before {
            continue;
        }
        let empty = TableSpec::default();
        let dump = firewall::dump(fam)?;
        if let Some(b) = firewall::render(fam, &dump, t, spec.unwrap_or(&empty)) {
            firewall::restore(fam, &b).with_context(|| format!("{fam} rules for {t}"))?;
        }
    }
    let path = ctx.cfg.nfdhcpd_state_dir.join(t);
    match &plan.binding {
        Some(b) => {
            b.write_atomic(&ctx.cfg.nfdhcpd_state_dir, tap)
                .with_context(|| format!("cannot write binding {}", path.display()))?;
        }
        None => remove_file(&path)?,
    }
    for a in &plan.announce {
        let (dev, frame, what) = match a {
            Announce::Garp { ip, dev } => match node::mac(dev.as_str()) {
                Some(m) => (
                    dev,
                    announce::garp_frame(m, *ip),
                    format!("gratuitous ARP for {ip}"),
                ),
                None => continue,
            },
            Announce::UnsolicitedNa { ip, dev } => match node::mac(dev.as_str()) {
                Some(m) => (
                    dev,
                    announce::na_frame(m, *ip),
                    format!("unsolicited NA for {ip}"),
                ),
                None => continue,
            },
        };
        match announce::send(dev.as_str(), &frame) {
            Ok(()) => log::info(&format!("{t}: sent {what} on {dev}")),
            Err(e) => log::warn(&format!("{t}: {what} on {dev} failed: {e:#}")),
        }
    }
    Ok(())
}

fn remove_file(path: &std::path::Path) -> anyhow::Result<()> {
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

fn teardown_lines(tap: &str, st: Option<&State>) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for r in node::rules_for(tap, false)? {
        v4.push(format!(
            "rule del priority {} iif {tap} lookup {}",
            r.priority, r.table
        ));
    }
    for r in node::rules_for(tap, true)? {
        v6.push(format!(
            "rule del priority {} iif {tap} lookup {}",
            r.priority, r.table
        ));
    }
    if let Some(st) = st {
        let (a, b) = stale_lines(&st.undo, &Undo::default(), tap);
        if node::link_exists(tap) {
            v4.extend(a);
            v6.extend(b.iter().filter(|l| l.starts_with("route")).cloned());
        }
        v6.extend(b.into_iter().filter(|l| l.starts_with("neigh")));
    }
    Ok((v4, v6))
}

fn teardown(ctx: &Ctx, tap: &IfName, st: Option<&State>) -> anyhow::Result<()> {
    let t = tap.as_str();
    let mut errors: Vec<String> = Vec::new();
    let note = |errors: &mut Vec<String>, r: anyhow::Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{e:#}"));
        }
    };
    let families: Vec<Family> = match st {
        Some(s) => s.families.clone(),
        None => Family::ALL.to_vec(),
    };
    for fam in families {
        note(
            &mut errors,
            (|| {
                let dump = firewall::dump(fam)?;
                if let Some(b) = firewall::render(fam, &dump, t, &TableSpec::default()) {
                    firewall::restore(fam, &b)?;
                }
                Ok(())
            })(),
        );
    }
    match teardown_lines(t, st) {
        Ok((v4, v6)) => {
            note(
                &mut errors,
                batch_forgiving("ip", &["-4", "-force", "-batch", "-"], &v4),
            );
            note(
                &mut errors,
                batch_forgiving("ip", &["-6", "-force", "-batch", "-"], &v6),
            );
        }
        Err(e) => note(&mut errors, Err(e)),
    }
    if let Some(s) = st {
        if let Some(br) = &s.undo.bridge
            && node::master(t).as_deref() == Some(br.as_str())
        {
            note(
                &mut errors,
                exec::run("ip", &["link", "set", "dev", t, "nomaster"]),
            );
        }
        if let Some(sw) = &s.undo.ovs_bridge
            && exec::in_path("ovs-vsctl")
        {
            note(
                &mut errors,
                exec::run("ovs-vsctl", &["--if-exists", "del-port", sw, t]),
            );
        }
        if node::link_exists(t) {
            for (k, v) in &s.sysctl_restore {
                note(
                    &mut errors,
                    std::fs::write(node::sysctl_path(k), v)
                        .with_context(|| format!("cannot restore {k}={v}")),
                );
            }
        }
        if let Some(b) = &s.binding {
            note(&mut errors, remove_file(b));
        }
    }
    note(&mut errors, remove_file(&ctx.cfg.nfdhcpd_state_dir.join(t)));
    if errors.is_empty()
        && let Err(e) = state::remove(&ctx.cfg.state_dir, tap)
    {
        errors.push(format!("{e:#}"));
    }
    if errors.is_empty() {
        log::info(&format!("{tap} taken down"));
        Ok(())
    } else {
        bail!("taking down {tap}: {}", errors.join("; "))
    }
}

/// Rebuilds NICs from their recorded state.
pub fn reapply(ctx: &Ctx, taps: &[IfName]) -> anyhow::Result<()> {
    let _lock = lock(ctx)?;
    let mut failed = Vec::new();
    for tap in taps {
        let res = match state::load(&ctx.cfg.state_dir, tap) {
            Ok(Some(st)) => {
                if ctx.dry_run {
                    st.nic().and_then(|nic| {
                        let facts = node::facts(&nic, tap)?;
                        let plan = plan::build(&nic, tap, st.flavour, &ctx.cfg, &facts, false)?;
                        print_plan(
                            ctx,
                            tap,
                            &plan,
                            Some(&st),
                            &ctx.cfg.nfdhcpd_state_dir.join(tap.as_str()),
                        )
                    })
                } else {
                    reapply_one(ctx, tap, &st)
                }
            }
            Ok(None) => Err(anyhow::anyhow!("no recorded state for {tap}")),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            log::error(&format!("reapply {tap}: {e:#}"));
            failed.push(tap.to_string());
        }
    }
    if !failed.is_empty() {
        bail!("reapply failed for {}", failed.join(", "));
    }
    Ok(())
}

fn reapply_one(ctx: &Ctx, tap: &IfName, st: &State) -> anyhow::Result<()> {
    let nic = st.nic()?;
    let facts = node::facts(&nic, tap)?;
    let plan = plan::build(&nic, tap, st.flavour, &ctx.cfg, &facts, false)?;
    execute(ctx, tap, &plan, Some(st))?;
    let mut new = st.clone();
    new.complete = true;
    new.families = plan.firewall.keys().copied().collect();
    new.undo = plan.undo.clone();
    new.binding = plan
        .binding
        .as_ref()
        .map(|_| ctx.cfg.nfdhcpd_state_dir.join(tap.as_str()));
    state::save(&ctx.cfg.state_dir, &new)
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
    _ctx: &Ctx,
    tap: &IfName,
    plan: &Plan,
    prev: Option<&State>,
    binding_path: &std::path::Path,
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
    let sys: Vec<String> = plan
        .sysctls
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    section("sysctl", &sys);
    for fam in Family::ALL {
        let spec = plan.firewall.get(&fam);
        if spec.is_none() && !prev.is_some_and(|p| p.families.contains(&fam)) {
            continue;
        }
        let dump = firewall::dump(fam)?;
        let empty = TableSpec::default();
        if let Some(b) = firewall::render(fam, &dump, t, spec.unwrap_or(&empty)) {
            println!("# {}-restore --noflush", fam.tool());
            print!("{b}");
        }
    }
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
            Announce::UnsolicitedNa { ip, dev } => println!("# unsolicited NA for {ip} on {dev}"),
        }
    }
    Ok(())
}

fn print_teardown(ctx: &Ctx, tap: &IfName, st: Option<&State>) -> anyhow::Result<()> {
    let t = tap.as_str();
    let families = st.map_or(Family::ALL.to_vec(), |s| s.families.clone());
    for fam in families {
        let dump = firewall::dump(fam)?;
        if let Some(b) = firewall::render(fam, &dump, t, &TableSpec::default()) {
            println!("# {}-restore --noflush", fam.tool());
            print!("{b}");
        }
    }
    let (v4, v6) = teardown_lines(t, st)?;
    section("ip -4 -force -batch -", &v4);
    section("ip -6 -force -batch -", &v6);
    if let Some(s) = st {
        if let Some(br) = &s.undo.bridge
            && node::master(t).as_deref() == Some(br.as_str())
        {
            println!("# ip link set dev {t} nomaster");
        }
        if let Some(sw) = &s.undo.ovs_bridge {
            println!("# ovs-vsctl --if-exists del-port {sw} {t}");
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
    let mut dumps: BTreeMap<Family, firewall::Dump> = BTreeMap::new();
    for fam in Family::ALL {
        if exec::in_path(&format!("{}-save", fam.tool())) {
            dumps.insert(fam, firewall::dump(fam)?);
        }
    }
    let mut ok = true;
    for tap in &list {
        let t = tap.as_str();
        let st = state::load(&ctx.cfg.state_dir, tap)?;
        match &st {
            Some(s) => {
                let nic = s.nic()?;
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
            None => {
                ok = false;
                println!("{t}: not configured by snf-ifup");
            }
        }
        if !node::link_exists(t) {
            println!("  link: absent");
        } else {
            println!(
                "  link: master {}",
                node::master(t).unwrap_or_else(|| "-".to_owned())
            );
        }
        for (fam, d) in &dumps {
            for c in [firewall::from_chain(t), firewall::to_chain(t)] {
                if d.has_chain(&c) {
                    let jumps = d
                        .rules
                        .iter()
                        .filter(|(_, r)| firewall::target_of(r) == Some(c.as_str()))
                        .count();
                    println!(
                        "  {fam}: chain {c}: {} rules, {jumps} jumps",
                        d.rules_of(&c).count()
                    );
                }
            }
        }
        for r in node::rules_for(t, false)? {
            println!("  ip rule: {}: iif {t} lookup {}", r.priority, r.table);
        }
        for r in node::rules_for(t, true)? {
            println!("  ip -6 rule: {}: iif {t} lookup {}", r.priority, r.table);
        }
        if let Some(s) = &st {
            for (d, tb) in s.undo.routes4.iter().chain(&s.undo.routes6) {
                println!("  route: {d} dev {t} table {tb}");
            }
            for (a, d) in &s.undo.neigh_proxies {
                println!("  neighbour proxy: {a} dev {d}");
            }
        }
        let b = ctx.cfg.nfdhcpd_state_dir.join(t);
        if b.exists() {
            println!("  binding: {}", b.display());
        }
    }
    Ok(ok)
}
