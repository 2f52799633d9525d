//! Binding files take effect without a restart: written, changed, renamed, deleted,
//! written before their TAP exists, malformed, only visible after SIGHUP, or changed while
//! the kernel dropped inotify events (queue overflow).

mod common;

use std::time::Duration;

use common::*;

fn served(tb: &Testbed, k: usize, ip: &str) -> bool {
    tb.udhcpc_once(k).is_some() && tb.guest_ipv4(k).contains(&format!("{ip}/24"))
}

#[test]
fn binding_written_after_start_is_served() {
    if !need_root("binding_written_after_start_is_served") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.start_daemon(&tb.config_text(""));
    assert!(tb.udhcpc_once(0).is_none());
    tb.bind(0); // temporary file + rename, as snf-ifup writes
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
}

#[test]
fn binding_changed_in_place_takes_effect() {
    if !need_root("binding_changed_in_place_takes_effect") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    assert!(served(&tb, 0, "198.51.100.10"));
    // Rewritten in place (close-write), as the original snf-network does.
    let text = tb
        .binding_text(0, &tb.guests[0].mac, "")
        .replace("IP=198.51.100.10", "IP=198.51.100.20");
    std::fs::write(tb.bindings().join("tap0"), text).unwrap();
    wait_for("the new address", Duration::from_secs(15), || {
        served(&tb, 0, "198.51.100.20")
    });
}

#[test]
fn binding_renamed_with_mv_takes_effect() {
    if !need_root("binding_renamed_with_mv_takes_effect") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    let text = tb.binding_text(0, &tb.guests[0].mac, "");
    tb.write_binding("tapother", &text);
    tb.start_daemon(&tb.config_text(""));
    assert!(
        tb.udhcpc_once(0).is_none(),
        "served from another TAP's binding"
    );
    let b = tb.bindings();
    tb.node_sh(&[
        "mv",
        b.join("tapother").to_str().unwrap(),
        b.join("tap0").to_str().unwrap(),
    ]);
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
    // Moved out of the directory: no longer served.
    let out = tb.path("tap0.away");
    tb.node_sh(&[
        "mv",
        b.join("tap0").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(
        tb.udhcpc_once(0).is_none(),
        "served after the binding was moved away"
    );
}

#[test]
fn binding_deleted_stops_service() {
    if !need_root("binding_deleted_stops_service") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    assert!(served(&tb, 0, "198.51.100.10"));
    std::fs::remove_file(tb.bindings().join("tap0")).unwrap();
    assert!(
        tb.udhcpc_once(0).is_none(),
        "served after the binding was deleted"
    );
    assert!(tb.daemon_log().contains("binding tap0 removed"));
}

#[test]
fn binding_for_missing_tap_is_served_once_it_appears() {
    if !need_root("binding_for_missing_tap_is_served_once_it_appears") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    // tap1 does not exist yet.
    let text = tb
        .binding_text(0, "02:00:00:00:01:02", "")
        .replace("IP=198.51.100.10", "IP=198.51.100.11")
        .replace("vm0.", "vm1.");
    tb.write_binding("tap1", &text);
    tb.start_daemon(&tb.config_text(""));
    tb.add_guest(1);
    assert!(served(&tb, 1, "198.51.100.11"), "{}", tb.daemon_log());
}

#[test]
fn malformed_binding_is_refused_until_fixed() {
    if !need_root("malformed_binding_is_refused_until_fixed") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    assert!(served(&tb, 0, "198.51.100.10"));
    let good = tb.binding_text(0, &tb.guests[0].mac, "");
    let bad = good.replace("SUBNET=198.51.100.0/24", "SUBNET=198.51.100.0/99");
    let line = bad.lines().position(|l| l.starts_with("SUBNET=")).unwrap() + 1;
    tb.write_binding("tap0", &bad);
    // Never served from the stale good version.
    assert!(tb.udhcpc_once(0).is_none(), "served from a stale binding");
    let path = tb.bindings().join("tap0");
    assert!(
        tb.daemon_log()
            .contains(&format!("{}:{line}: SUBNET", path.display())),
        "{}",
        tb.daemon_log()
    );
    wait_for("broken count", Duration::from_secs(3), || {
        tb.status().contains("broken 1")
    });
    tb.write_binding("tap0", &good);
    assert!(served(&tb, 0, "198.51.100.10"));
}

#[test]
fn sighup_rescans_the_directory() {
    if !need_root("sighup_rescans_the_directory") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.start_daemon(&tb.config_text(""));
    // A hard link creates the name without close-write/moved-to: inotify ignores it.
    let outside = tb.path("tap0.prepared");
    std::fs::write(&outside, tb.binding_text(0, &tb.guests[0].mac, "")).unwrap();
    std::fs::hard_link(&outside, tb.bindings().join("tap0")).unwrap();
    assert!(tb.udhcpc_once(0).is_none());
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    sh(&["kill", "-HUP", pid.trim()]);
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
}

#[test]
fn inotify_queue_overflow_triggers_a_rescan() {
    if !need_root("inotify_queue_overflow_triggers_a_rescan") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 2);
    tb.bind(1);
    tb.start_daemon(&tb.config_text(""));
    assert!(served(&tb, 1, "198.51.100.11"));
    assert!(tb.udhcpc_once(0).is_none());

    // Freeze the daemon so that it reads no event, then queue more events than the kernel
    // keeps (fs.inotify.max_queued_events): the events after the limit, including the two
    // that matter, are dropped and only IN_Q_OVERFLOW tells the daemon.
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    let pid = pid.trim();
    sh(&["kill", "-STOP", pid]);
    // Only once every thread is stopped: a thread still running could read a batch of
    // events and keep the queue below the limit.
    wait_for("every thread to stop", Duration::from_secs(10), || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .all(|t| {
                std::fs::read_to_string(t.unwrap().path().join("stat"))
                    .is_ok_and(|st| st.rsplit(") ").next().is_some_and(|r| r.starts_with('T')))
            })
    });
    let filler = tb.binding_text(0, "02:00:00:ff:ff:ff", "");
    for i in 0..limit + 64 {
        std::fs::write(tb.bindings().join(format!("tapf{i}")), &filler).unwrap();
    }
    tb.bind(0); // its MOVED_TO is lost
    std::fs::remove_file(tb.bindings().join(&tb.guests[1].tap)).unwrap(); // its DELETE too
    sh(&["kill", "-CONT", pid]);

    wait_for("the overflow rescan", Duration::from_secs(60), || {
        tb.daemon_log().contains("inotify queue overflow")
    });
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
    assert!(
        tb.udhcpc_once(1).is_none(),
        "still served from a binding deleted while events were lost"
    );
}
