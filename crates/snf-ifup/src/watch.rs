//! `snf-ifup watch`: upstream Ganeti never runs a NIC script when a VM stops, so nothing
//! would ever undo an `up`. The watcher follows link removals (RTM_DELLINK) and takes down
//! every recorded NIC whose TAP is gone, as `down` would. It looks at every recorded NIC at
//! start-up and whenever the kernel dropped notifications, so a removal it did not see is
//! still handled.
//!
//! It also follows the cluster store (see `follow`): NICs brought up from it are re-applied
//! when they change there. Two threads wait, one on netlink and one on the store's
//! [`StoreWatch`], and feed one channel; all the work is done here, one event at a time,
//! so NICs are never configured from two places of this process at once.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use netconf::IfName;
use netconf_cluster::config::{Store, StoreWatch};
use netconf_sys::netlink::{LinkEvents, LinkMonitor};

use crate::apply::{self, Ctx};
use crate::follow;
use crate::log;
use crate::state;

/// How long a failed re-apply waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

enum Event {
    Link(LinkEvents),
    /// The netlink socket failed: the watcher exits (and systemd restarts it).
    LinkFailed(anyhow::Error),
    Store,
}

/// Runs until an error on the netlink socket (which systemd then restarts).
pub fn run(
    ctx: &Ctx,
    store: &dyn Store,
    what: &str,
    mut keeper: Option<follow::SnapshotKeeper>,
) -> anyhow::Result<()> {
    // Subscribe before the first scans: a TAP removed (or a NIC changed) in between is
    // then seen twice (harmless), never missed.
    let mut mon = LinkMonitor::open()?;
    let changes = store
        .changes()
        .map_err(|e| anyhow::anyhow!("cannot follow {what}: {e}"))?;
    rescan(ctx);
    let mut retry_at = retry_time(follow::sync(ctx, store, keeper.as_mut()));
    let (tx, rx) = mpsc::channel();
    let link_tx = tx.clone();
    std::thread::Builder::new()
        .name("netlink".into())
        .spawn(move || {
            loop {
                let ev = match mon.recv() {
                    Ok(ev) => Event::Link(ev),
                    Err(e) => {
                        let _ = link_tx.send(Event::LinkFailed(e));
                        return;
                    }
                };
                if link_tx.send(ev).is_err() {
                    return;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || store_thread(changes, &tx))?;
    log::notice(&format!(
        "watching for removed interfaces and for changes of {what} (state in {})",
        ctx.cfg.state_dir.display()
    ));
    loop {
        let ev = match retry_at {
            Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => Event::Store,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(ev) => ev,
                Err(_) => break,
            },
        };
        // A retry that is due is not put off by a stream of link events.
        let due = retry_at.is_some_and(|t| t <= Instant::now());
        match ev {
            Event::LinkFailed(e) => return Err(e),
            Event::Link(LinkEvents::Overflow) => {
                log::warn("link notifications were dropped (ENOBUFS); rescanning");
                rescan(ctx);
            }
            Event::Link(LinkEvents::Deleted(links)) => {
                for (index, name) in links {
                    // Names of links we never configured have no state file; a name that
                    // is not an interface name is not ours either.
                    let Ok(tap) = name.parse::<IfName>() else {
                        continue;
                    };
                    if !state::path(&ctx.cfg.state_dir, &tap).exists() {
                        continue;
                    }
                    check(ctx, &tap, Some(index));
                }
            }
            Event::Store => {
                retry_at = retry_time(follow::sync(ctx, store, keeper.as_mut()));
                continue;
            }
        }
        if due {
            retry_at = retry_time(follow::sync(ctx, store, keeper.as_mut()));
        }
    }
    anyhow::bail!("internal error: the watching threads stopped")
}

/// When to follow the store again after a pass that left something to retry.
fn retry_time(failed: bool) -> Option<Instant> {
    failed.then(|| Instant::now() + RETRY)
}

/// Waits on the store for ever; a failure to wait is logged and retried, never fatal: the
/// NICs stay as applied meanwhile.
fn store_thread(mut changes: Box<dyn StoreWatch>, tx: &mpsc::Sender<Event>) {
    loop {
        let waited = changes.wait(Duration::from_secs(3600));
        for n in changes.news() {
            log::notice(&n);
        }
        match waited {
            Ok(true) => {
                if tx.send(Event::Store).is_err() {
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => {
                log::error(&format!("waiting for store changes: {e}"));
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// Every recorded NIC whose TAP does not exist.
fn rescan(ctx: &Ctx) {
    match state::all(&ctx.cfg.state_dir) {
        Ok(taps) => {
            for tap in taps {
                check(ctx, &tap, None);
            }
        }
        Err(e) => log::error(&format!("rescan: {e:#}")),
    }
}

fn check(ctx: &Ctx, tap: &IfName, deleted: Option<u32>) {
    match apply::down_if_gone(ctx, tap, deleted) {
        Ok(true) => log::notice(&format!("{tap} taken down")),
        Ok(false) => {}
        // The state file keeps what is left; the next rescan (or `down`) retries it.
        Err(e) => log::error(&format!("{tap}: {e:#}")),
    }
}
