//! The running daemon: one thread blocked on the NFQUEUE socket (the `nfq` crate exposes
//! no pollable fd), one on inotify, one for periodic RAs, one refreshing the status file,
//! and the main thread waiting for signals.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use netconf::MacAddr;
use netconf::binding::Binding;
use netconf_sys::link::{self, MacCache, NameCache};
use netconf_sys::packet::{PacketSocket, Wait};
use nix::sys::signal::{SigSet, Signal};

use crate::config::DaemonSettings;
use crate::outcome::Verdict;
use crate::packet;
use crate::runfile::RunFile;
use crate::stats::{self, Stats};
use crate::table::{Entry, Table};
use crate::{debug, error, info, lock, ndp, privs, rules, warn, watch};

/// Room for a burst of a few thousand queued packets (each ~200 bytes plus metadata).
const NFQUEUE_RCVBUF: i32 = 8 << 20;

pub struct Options {
    pub foreground: bool,
    pub install_rules: bool,
}

struct Shared {
    cfg: DaemonSettings,
    table: Arc<RwLock<Table>>,
    stats: Mutex<Stats>,
    sock: PacketSocket,
}

pub fn run(cfg: &DaemonSettings, opts: &Options) -> anyhow::Result<()> {
    // The original's log file, in daemon mode only: in the foreground (systemd) standard
    // error is the journal.
    let logfile = match &cfg.general.logdir {
        Some(dir) if !opts.foreground => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Some(dir.join("nfdhcpd.log"))
        }
        _ => None,
    };
    // Before detaching: a log path that cannot be used (not a regular file, say) is
    // reported to the one who started the daemon, with a failing exit status.
    if let Some(f) = &logfile {
        crate::log::to_file(f.clone())?;
    }
    if !opts.foreground {
        nix::unistd::daemon(false, true).context("daemonizing")?;
    }
    // Threads inherit this mask, so only the main thread's sigwait sees these signals.
    let mut sigs = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        sigs.add(s);
    }
    sigs.thread_block().context("blocking signals")?;

    let datapath = cfg.general.datapath.clone();
    std::fs::create_dir_all(&datapath)
        .with_context(|| format!("creating {}", datapath.display()))?;
    let mut table = Table::new(&datapath);
    let n = table
        .rescan()
        .with_context(|| format!("reading {}", datapath.display()))?;
    info!("{n} bindings loaded from {}", datapath.display());
    runtime_dirs(cfg)?;

    let queues = cfg.queues();
    let mut q = nfq::Queue::open().context("opening the NFQUEUE netlink socket")?;
    for &num in &queues {
        q.bind(num).with_context(|| {
            format!("binding NFQUEUE {num} (is another nfdhcpd running in this namespace?)")
        })?;
        q.set_queue_max_len(num, cfg.rules.queue_maxlen)
            .with_context(|| format!("queue {num}: setting the length"))?;
        q.set_fail_open(num, cfg.rules.fail_open)
            .with_context(|| format!("queue {num}: setting fail-open"))?;
    }
    match netconf_sys::packet::raise_nfqueue_rcvbuf(NFQUEUE_RCVBUF) {
        Ok(n) if n > 0 => {}
        Ok(_) => warn!("NFQUEUE socket not found: receive buffer left at its default"),
        Err(e) => warn!("raising the NFQUEUE receive buffer: {e}"),
    }
    info!(
        "bound NFQUEUE {}",
        queues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );

    // From here on every way out, an error as much as a signal, goes through these drops:
    // the rules first, then the status file (no longer rewritten by then), then the pidfile.
    let _pidfile = RunFile::pid(&cfg.general.pidfile)?;
    let _status = RunFile::removed_at_exit(&cfg.general.status_file);
    let _rules = if opts.install_rules && cfg.rules.install {
        let r = rules::install(cfg).context("installing NFQUEUE rules")?;
        info!("NFQUEUE rules installed in chain {}", cfg.rules.chain);
        Some(r)
    } else {
        None
    };

    let bindings = watch::Bindings::new(table);
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        table: bindings.table.clone(),
        stats: Mutex::new(Stats::default()),
        sock: PacketSocket::open().context("opening the AF_PACKET socket")?,
    });

    if let Some(spec) = &cfg.general.user {
        become_user(cfg, spec, logfile.as_deref())?;
    }

    watch::start(bindings.clone()).context("watching the state directory")?;
    let s = shared.clone();
    std::thread::Builder::new()
        .name("nfqueue".into())
        .spawn(move || queue_loop(q, &s))?;
    if cfg.ipv6.plan.is_some() {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("ra".into())
            .spawn(move || ra_loop(&s))?;
    }
    let s = shared.clone();
    std::thread::Builder::new()
        .name("status".into())
        .spawn(move || status_loop(&s))?;
    write_status(&shared);
    loop {
        match sigs.wait() {
            Ok(Signal::SIGHUP) => {
                if let Err(e) = crate::log::reopen() {
                    warn!("{e:#}; still writing to the old log file");
                }
                info!("SIGHUP: rescanning {}", datapath.display());
                match bindings.rescan() {
                    Ok(n) => info!("{n} bindings loaded from {}", datapath.display()),
                    Err(e) => error!("rescan: {e}"),
                }
            }
            Ok(Signal::SIGUSR1) => dump_table(&shared),
            Ok(sig) => {
                info!("{sig}: exiting");
                return Ok(());
            }
            Err(e) => warn!("sigwait: {e}"),
        }
    }
}

/// The directories of the pid and status files, created (0755) when absent, so that a
/// daemon started by hand on a fresh machine runs without systemd's RuntimeDirectory.
fn runtime_dirs(cfg: &DaemonSettings) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for f in [&cfg.general.pidfile, &cfg.general.status_file] {
        if f.as_os_str().is_empty() {
            continue;
        }
        if let Some(d) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
            if d.exists() {
                continue;
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(d)
                .and_then(|()| {
                    // Not left to the umask: `nfdhcpd --status` reads it as any user.
                    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                })
                .with_context(|| format!("creating {}", d.display()))?;
        }
    }
    Ok(())
}

/// `general.user`: still single-threaded here, so the whole process switches.
fn become_user(
    cfg: &DaemonSettings,
    spec: &str,
    logfile: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let t = privs::resolve(spec)?;
    if nix::unistd::Uid::current() == t.uid {
        // Already that user (root by hand, or systemd's User=): nothing to switch.
        info!("running as user {} (uid {}) already", t.name, t.uid);
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        // Started unprivileged by a service manager (the packaged unit's DynamicUser=):
        // already confined to its capabilities, and without the right to switch.
        warn!(
            "general.user '{spec}' ignored: already running as uid {} without root",
            nix::unistd::Uid::current()
        );
        return Ok(());
    }
    let g = &cfg.general;
    let mut files = vec![g.pidfile.as_path(), g.status_file.as_path()];
    if let Some(f) = logfile {
        files.push(f);
    }
    // Checked before anything is given away.
    privs::refuse_binding_dirs(&g.datapath, &files)?;
    if let Some(f) = logfile {
        // Reopened after a rotation by the user, who must be able to append to it.
        nix::unistd::chown(f, Some(t.uid), Some(t.gid))
            .with_context(|| format!("giving {} to user {}", f.display(), t.name))?;
    }
    privs::own_dirs(&t, &files)?;
    privs::switch(&t).with_context(|| format!("switching to user {}", t.name))?;
    info!(
        "running as user {} (uid {}) with CAP_NET_ADMIN and CAP_NET_RAW only",
        t.name, t.uid
    );
    Ok(())
}

fn hw_src(msg: &nfq::Message) -> Option<MacAddr> {
    let h = msg.get_hw_addr()?;
    (h.len() >= 6).then(|| MacAddr([h[0], h[1], h[2], h[3], h[4], h[5]]))
}

/// The device whose MAC replies carry: the binding's INDEV, else the device the packet
/// came in on (the bridge when bridged, the TAP when routed).
fn indev_name(b: &Binding, packet_indev: u32) -> Option<String> {
    match &b.indev {
        Some(i) => Some(i.as_str().to_owned()),
        None => link::name_of(packet_indev),
    }
}

fn queue_loop(mut q: nfq::Queue, s: &Shared) {
    let mut macs = MacCache::default();
    let mut names = NameCache::default();
    loop {
        let mut msg = match q.recv() {
            Ok(m) => m,
            Err(e) => {
                error!("NFQUEUE receive: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // A bug in a handler must cost one packet, never the queue thread (which would
        // leave every later packet without a verdict).
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            process(&msg, s, &mut macs, &mut names)
        }))
        .unwrap_or_else(|_| {
            error!("handler panicked; packet dropped");
            Verdict::Drop
        });
        msg.set_verdict(match verdict {
            Verdict::Accept => nfq::Verdict::Accept,
            Verdict::Drop => nfq::Verdict::Drop,
        });
        if let Err(e) = q.verdict(msg) {
            error!("NFQUEUE verdict: {e}");
            lock::lock(&s.stats).verdict_errors += 1;
        }
    }
}

fn process(msg: &nfq::Message, s: &Shared, macs: &mut MacCache, names: &mut NameCache) -> Verdict {
    let kind = packet::classify(msg.get_payload());
    if !packet::wanted(&kind, &s.cfg) {
        return Verdict::Accept;
    }
    let physindev = msg.get_physindev();
    let ifindex = if physindev != 0 {
        physindev
    } else {
        msg.get_indev()
    };
    let Some(tap) = names.get(ifindex) else {
        return Verdict::Accept;
    };
    let hw = hw_src(msg);
    let outcome = {
        let table = lock::read(&s.table);
        match table.get(&tap) {
            None => {
                drop(table);
                let mut st = lock::lock(&s.stats);
                st.unknown_interface += 1;
                debug!("{tap}: no binding, packet accepted");
                return Verdict::Accept;
            }
            // Never answer from a broken binding; the packet goes on as if unbound.
            Some(Entry::Broken(_)) => crate::outcome::Outcome::accept("broken-binding"),
            Some(Entry::Bound(b)) => {
                match indev_name(b, msg.get_indev()).and_then(|n| macs.get(&n)) {
                    Some(indev_mac) => packet::handle(&kind, hw, b, &s.cfg, indev_mac),
                    None => crate::outcome::Outcome::drop("no-indev"),
                }
            }
        }
    };
    let mut sent = false;
    if let Some(frame) = &outcome.reply {
        match s.sock.send(ifindex, frame, Wait::No) {
            Ok(()) => sent = true,
            Err(e) => {
                warn!("{tap}: sending reply: {e}");
                lock::lock(&s.stats).send_errors += 1;
            }
        }
    }
    // Per packet only at debug level: at thousands of requests per second a log line
    // each would cost more than answering them. Refusals are counted in the status.
    debug!(
        "{tap}: {} -> {:?}{}",
        outcome.what,
        outcome.verdict,
        if sent { ", replied" } else { "" }
    );
    lock::lock(&s.stats).count(&tap, outcome.what, sent, outcome.verdict == Verdict::Drop);
    outcome.verdict
}

/// Unsolicited RAs to every bound TAP that exists, every `ra_period`; one failing TAP
/// never stops the round (it did in the original).
fn ra_loop(s: &Shared) {
    let managed_other = s.cfg.answers_dhcpv6();
    loop {
        let jobs: Vec<(String, Binding)> = {
            let t = lock::read(&s.table);
            t.bound()
                .filter(|(_, b)| b.subnet6.is_some())
                .map(|(k, b)| (k.clone(), b.clone()))
                .collect()
        };
        let mut sent = 0usize;
        for (tap, b) in &jobs {
            let Some(idx) = link::index_of(tap) else {
                continue;
            };
            let indev = b
                .indev
                .as_ref()
                .map(|i| i.as_str().to_owned())
                .or_else(|| master_of(tap))
                .unwrap_or_else(|| tap.clone());
            let Some(mac) = link::mac_of(&indev) else {
                continue;
            };
            if let Some(f) = ndp::router_advert(b, &s.cfg, mac, managed_other) {
                let ok = s.sock.send(idx, &f, Wait::No);
                if let Err(e) = &ok {
                    debug!("{tap}: periodic RA: {e}");
                }
                sent += usize::from(ok.is_ok());
                let mut st = lock::lock(&s.stats);
                *st.per_message.entry("RA-periodic").or_default() += u64::from(ok.is_ok());
                st.send_errors += u64::from(ok.is_err());
            }
        }
        debug!("periodic RA round: {sent} sent");
        std::thread::sleep(Duration::from_secs(u64::from(s.cfg.ipv6.ra_period.get())));
    }
}

/// The bridge a TAP is enslaved to, if any.
fn master_of(tap: &str) -> Option<String> {
    let p: PathBuf = std::fs::read_link(format!("/sys/class/net/{tap}/master")).ok()?;
    p.file_name()?.to_str().map(str::to_owned)
}

fn write_status(s: &Shared) {
    let (bound, broken) = {
        let t = lock::read(&s.table);
        let b = t.bound().count();
        (b, t.entries.len() - b)
    };
    let text = lock::lock(&s.stats).render(bound, broken);
    if let Err(e) = stats::write_status(&s.cfg.general.status_file, &text) {
        debug!("status file: {e}");
    }
}

fn status_loop(s: &Shared) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        write_status(s);
    }
}

fn dump_table(s: &Shared) {
    let t = lock::read(&s.table);
    let mut names: Vec<&String> = t.entries.keys().collect();
    names.sort();
    for n in names {
        match &t.entries[n] {
            Entry::Bound(b) => info!(
                "{n}: {} {} {} {}",
                b.hostname,
                b.mac,
                b.ip.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                b.subnet6
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into())
            ),
            Entry::Broken(e) => info!("{n}: BROKEN {e}"),
        }
    }
}
