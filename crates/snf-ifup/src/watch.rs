//! `snf-ifup watch`: upstream Ganeti never runs a NIC script when a VM stops, so nothing
//! would ever undo an `up`. The watcher follows link removals (RTM_DELLINK) and takes down
//! every recorded NIC whose TAP is gone, as `down` would. It looks at every recorded NIC at
//! start-up and whenever the kernel dropped notifications, so a removal it did not see is
//! still handled.

use netconf::IfName;
use netconf_sys::netlink::{LinkEvents, LinkMonitor};

use crate::apply::{self, Ctx};
use crate::log;
use crate::state;

/// Runs until an error on the netlink socket (which systemd then restarts).
pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    // Subscribe before the first scan: a TAP removed in between is then seen twice
    // (harmless: the second look finds no state), never missed.
    let mut mon = LinkMonitor::open()?;
    rescan(ctx);
    log::notice(&format!(
        "watching for removed interfaces (state in {})",
        ctx.cfg.state_dir.display()
    ));
    loop {
        match mon.recv()? {
            LinkEvents::Overflow => {
                log::warn("link notifications were dropped (ENOBUFS); rescanning");
                rescan(ctx);
            }
            LinkEvents::Deleted(links) => {
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
