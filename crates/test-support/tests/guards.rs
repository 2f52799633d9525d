//! The harness's promises: guards clean up on drop and on panic, helpers fail loudly with
//! what the command said. The namespace tests need root and skip otherwise.

use std::os::unix::process::ExitStatusExt as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netconf_test_support::{
    Daemon, Netns, Veth, need_root, ok, run, try_ok, unique_name, wait_for,
};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let e = catch_unwind(AssertUnwindSafe(f)).expect_err("it should have panicked");
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn daemon_is_killed_and_reaped_on_drop() {
    let d = Daemon::spawn(Command::new("sleep").arg("30"));
    let pid = d.id();
    assert!(!gone(pid));
    drop(d);
    // Reaped, not a zombie: its /proc entry is gone at once.
    assert!(gone(pid), "sleep {pid} outlived its guard");
}

#[test]
fn daemon_is_killed_when_the_test_panics() {
    let mut pid = 0;
    panic_message(|| {
        let d = Daemon::spawn(Command::new("sleep").arg("30"));
        pid = d.id();
        panic!("a failing test");
    });
    assert!(pid != 0 && gone(pid), "sleep {pid} outlived the panic");
}

#[test]
fn daemon_stop_terminates_and_returns_the_status() {
    let mut d = Daemon::spawn(Command::new("sleep").arg("30"));
    assert_eq!(d.exited(), None);
    let st = d.stop(Duration::from_secs(5)).expect("an exit status");
    assert_eq!(st.signal(), Some(15), "{st}");
}

#[test]
fn wait_for_returns_once_true_and_panics_naming_what_it_waited_for() {
    let mut n = 0;
    wait_for("the third poll", Duration::from_secs(5), || {
        n += 1;
        n == 3
    });
    assert_eq!(n, 3);
    let msg = panic_message(|| wait_for("Godot", Duration::from_millis(120), || false));
    assert!(msg.contains("waiting for Godot"), "{msg}");
}

#[test]
fn failed_commands_show_what_they_said() {
    let msg = panic_message(|| {
        ok(&["sh", "-c", "echo on-stderr >&2; exit 3"]);
    });
    assert!(msg.contains("on-stderr"), "{msg}");
    let msg = panic_message(|| {
        netconf_test_support::run_ok(Command::new("sh").args(["-c", "echo said-this; exit 1"]));
    });
    assert!(msg.contains("said-this"), "{msg}");
    assert_eq!(try_ok(&["sh", "-c", "exit 1"]), None);
    assert_eq!(try_ok(&["sh", "-c", "echo yes"]).as_deref(), Some("yes\n"));
    assert!(run(&mut Command::new("true")).status.success());
}

#[test]
fn unique_names_differ() {
    assert_ne!(unique_name("nts", "a"), unique_name("nts", "a"));
}

fn netns_listed(name: &str) -> bool {
    ok(&["ip", "netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn netns_is_deleted_with_its_processes_on_drop() {
    if !need_root(
        "netns_is_deleted_with_its_processes_on_drop",
        "network namespaces",
    ) {
        return;
    }
    let name = unique_name("nts", "n");
    let ns = Netns::add(&name);
    assert!(netns_listed(&name));
    assert!(ns.exec(&["ip", "link", "show", "lo"]).contains("UP"));
    // A process the guard does not own, as a daemonizing client would leave.
    let mut stray = ns.cmd("sleep").arg("30").spawn().unwrap();
    // Dropped only once it is in the namespace: `ip netns exec` enters it after the spawn
    // returns, and a process not in it yet is not one the guard can find (on a loaded
    // machine the drop could come first, and the sleep ran its 30 s).
    let pid = stray.id().to_string();
    wait_for(
        "the stray process inside the namespace",
        Duration::from_secs(10),
        || {
            try_ok(&["ip", "netns", "pids", &name])
                .is_some_and(|p| p.split_whitespace().any(|x| x == pid))
        },
    );
    drop(ns);
    assert_eq!(stray.wait().unwrap().signal(), Some(9));
    assert!(!netns_listed(&name), "{name} left behind");
}

#[test]
fn veth_ends_are_made_inside_namespaces_and_removed_on_drop() {
    let test = "veth_ends_are_made_inside_namespaces_and_removed_on_drop";
    if !need_root(test, "network namespaces") {
        return;
    }
    let (a, b) = (
        Netns::add(&unique_name("nts", "a")),
        Netns::add(&unique_name("nts", "b")),
    );
    let v = Veth::new("ntsveth0", a.name(), "ntsveth1", b.name());
    a.exec(&["ip", "link", "show", "ntsveth0"]);
    b.exec(&["ip", "link", "show", "ntsveth1"]);
    drop(v);
    assert!(try_ok(&["ip", "-n", b.name(), "link", "show", "ntsveth1"]).is_none());
}
