//! Hostile things in the binding directory, with a real DHCP client that must keep getting
//! its lease: a FIFO under a binding name, the directory removed or moved away and made
//! again, an over-long HOSTNAME, a binding behind a symbolic link, and the double event of
//! a writer that renames before it closes.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::*;

fn served(tb: &Testbed, k: usize, ip: &str) -> bool {
    tb.udhcpc_once(k).is_some() && tb.guest_ipv4(k).contains(&format!("{ip}/24"))
}

fn hup(tb: &Testbed) {
    let pid = std::fs::read_to_string(tb.path("nfdhcpd.pid")).unwrap();
    sh(&["kill", "-HUP", pid.trim()]);
}

/// How often the daemon logged loading `tap`'s binding.
fn loads(tb: &Testbed, tap: &str) -> usize {
    tb.daemon_log()
        .matches(&format!("binding {tap}: MAC "))
        .count()
}

#[test]
fn fifo_in_the_binding_directory_does_not_stop_dhcp() {
    if !need_root("fifo_in_the_binding_directory_does_not_stop_dhcp") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 2);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    assert!(served(&tb, 0, "198.51.100.10"));
    // Moved in under a TAP's name: the event makes the daemon look at it. Opening it for
    // reading blocked the inotify thread, and with it the table's lock, for good.
    let fifo = tb.path("fifo");
    sh(&["mkfifo", fifo.to_str().unwrap()]);
    std::fs::rename(&fifo, tb.bindings().join("tap7")).unwrap();
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
    // A binding written now is still picked up, and a rescan does not block either.
    tb.bind(1);
    assert!(served(&tb, 1, "198.51.100.11"), "{}", tb.daemon_log());
    hup(&tb);
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
    assert!(
        tb.daemon_log().contains("tap7: not a regular file"),
        "{}",
        tb.daemon_log()
    );
    std::fs::remove_file(tb.bindings().join("tap7")).unwrap();
    assert!(served(&tb, 1, "198.51.100.11"), "{}", tb.daemon_log());
    // Over 64 KiB is no binding: refused unread, even with a valid one at its start.
    let mut big = tb.binding_text(1, &tb.guests[1].mac, "");
    big.push_str(&"#".repeat(70_000));
    tb.write_binding("tap1", &big);
    std::thread::sleep(Duration::from_millis(300));
    assert!(tb.udhcpc_once(1).is_none(), "served from a 70 KB file");
    assert!(
        tb.daemon_log().contains("tap1: larger than 64 KiB"),
        "{}",
        tb.daemon_log()
    );
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
}

#[test]
fn replaced_binding_directory_is_watched_again() {
    if !need_root("replaced_binding_directory_is_watched_again") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 2);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    assert!(served(&tb, 0, "198.51.100.10"));
    let dir = tb.bindings();

    // rm -rf DIR; mkdir DIR: a binding written into the new directory is served.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    tb.bind(1);
    wait_for(
        "the new directory's binding",
        Duration::from_secs(20),
        || served(&tb, 1, "198.51.100.11"),
    );
    assert!(tb.udhcpc_once(0).is_none(), "served from a removed binding");

    // mv DIR away; mkdir DIR: what went with the old directory is no longer served.
    std::fs::rename(&dir, tb.path("bindings.old")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    wait_for(
        "the moved directory's bindings to go",
        Duration::from_secs(10),
        || tb.daemon_log().contains("removed or moved away"),
    );
    assert!(
        tb.udhcpc_once(1).is_none(),
        "served from a directory moved away"
    );
    tb.bind(0);
    wait_for(
        "a binding in the new directory",
        Duration::from_secs(20),
        || served(&tb, 0, "198.51.100.10"),
    );
    // Written into the old directory: not watched any more.
    let text = tb.binding_text(1, &tb.guests[1].mac, "");
    std::fs::write(tb.path("bindings.old").join("tap1"), text).unwrap();
    assert!(
        tb.udhcpc_once(1).is_none(),
        "the old directory is still watched"
    );
}

#[test]
fn overlong_hostname_is_dropped_and_the_lease_still_given() {
    if !need_root("overlong_hostname_is_dropped_and_the_lease_still_given") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 2);
    tb.bind(1);
    // 65,000 bytes panicked every request of that TAP ("frame fits"); 3,000 gave
    // "Message too long". The binding is served without the name.
    for len in [65_000usize, 3_000, 254] {
        let name = format!("vm0.{}", "a".repeat(len - 4));
        let text = tb
            .binding_text(0, &tb.guests[0].mac, "")
            .replace(&format!("vm0.{DOMAIN}"), &name);
        tb.write_binding("tap0", &text);
        if tb.daemon_log().is_empty() {
            tb.start_daemon(&tb.config_text(""));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            served(&tb, 0, "198.51.100.10"),
            "{len}: {}",
            tb.daemon_log()
        );
        assert!(
            served(&tb, 1, "198.51.100.11"),
            "{len}: {}",
            tb.daemon_log()
        );
        assert!(
            tb.daemon_log()
                .contains(&format!("HOSTNAME of {len} bytes dropped")),
            "{}",
            tb.daemon_log()
        );
    }
    let log = tb.daemon_log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("Message too long"), "{log}");
}

#[test]
fn symlinked_binding_is_refused_on_event_and_on_rescan() {
    if !need_root("symlinked_binding_is_refused_on_event_and_on_rescan") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.start_daemon(&tb.config_text(""));
    // A valid binding behind the link: following it would serve it.
    let target = tb.path("elsewhere");
    std::fs::write(&target, tb.binding_text(0, &tb.guests[0].mac, "")).unwrap();
    let link = tb.path("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::rename(&link, tb.bindings().join("tap0")).unwrap(); // IN_MOVED_TO
    std::thread::sleep(Duration::from_millis(300));
    assert!(tb.udhcpc_once(0).is_none(), "served through a link (event)");
    assert!(
        tb.daemon_log().contains("symbolic link"),
        "{}",
        tb.daemon_log()
    );
    hup(&tb);
    wait_for("the rescan", Duration::from_secs(10), || {
        tb.daemon_log().contains("SIGHUP")
    });
    assert!(
        tb.udhcpc_once(0).is_none(),
        "served through a link (rescan)"
    );
    match std::fs::read_to_string(tb.path("status")) {
        Ok(s) => assert!(s.contains("broken 1"), "{s}"),
        Err(e) => panic!("status: {e}"),
    }
    // A link to a file that is no binding: its text never reaches the log.
    std::fs::write(&target, "root-secret-first-line:x:0:0\n").unwrap();
    std::fs::remove_file(tb.bindings().join("tap0")).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::rename(&link, tb.bindings().join("tap0")).unwrap();
    hup(&tb);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !tb.daemon_log().contains("root-secret"),
        "{}",
        tb.daemon_log()
    );
}

#[test]
fn each_write_loads_the_binding_once() {
    if !need_root("each_write_loads_the_binding_once") {
        return;
    }
    let mut tb = Testbed::new(Mode::Bridged, 1);
    tb.start_daemon(&tb.config_text(""));
    let mut b =
        netconf::binding::Binding::parse(&tb.binding_text(0, &tb.guests[0].mac, "")).unwrap();
    let tap: netconf::IfName = "tap0".parse().unwrap();
    // snf-ifup's writer: one load (it was two, IN_MOVED_TO then IN_CLOSE_WRITE).
    b.write_atomic(&tb.bindings(), &tap).unwrap();
    assert!(served(&tb, 0, "198.51.100.10"), "{}", tb.daemon_log());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(loads(&tb, "tap0"), 1, "{}", tb.daemon_log());

    // A writer that renames while the file is still open (as write_atomic did): the
    // close-write on a name just loaded unchanged is ignored.
    b.ip = Some("198.51.100.20".parse().unwrap());
    let tmp = tb.bindings().join(".tap0.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(b.render().as_bytes()).unwrap();
    std::fs::rename(&tmp, tb.bindings().join("tap0")).unwrap();
    wait_for("the new address", Duration::from_secs(10), || {
        loads(&tb, "tap0") == 2
    });
    drop(f);
    std::thread::sleep(Duration::from_millis(300));
    // The same text written in place: nothing changed, nothing loaded.
    std::fs::write(tb.bindings().join("tap0"), b.render()).unwrap();
    assert!(served(&tb, 0, "198.51.100.20"), "{}", tb.daemon_log());
    assert_eq!(loads(&tb, "tap0"), 2, "{}", tb.daemon_log());
}
