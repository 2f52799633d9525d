//! snf-ifup over a VM's life under a real Ganeti 3.0, in throw-away namespaces with real
//! TAPs (`ip tuntap`): the bridge keeps its MAC while TAPs come and go, a NIC that cannot
//! be configured changes nothing and never wedges its TAP, unusable addresses are refused,
//! and `snf-ifup watch` takes down the NICs of TAPs that disappear (Ganeti 3.0 runs no
//! `down`). Needs root; skips otherwise.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::watcher::Watcher;
use common::{Env, Lab, can_run, nic, refs, set};

const MAC1: &str = "aa:00:00:00:00:01";
const MAC2: &str = "aa:00:00:00:00:02";
const MAC3: &str = "aa:00:00:00:00:03";

/// A TAP in the node whose own MAC is `mac` (what QEMU's would be, at random).
fn tuntap(lab: &Lab, name: &str, mac: &str) {
    lab.exec(&["ip", "tuntap", "add", "dev", name, "mode", "tap"]);
    lab.exec(&["ip", "link", "set", "dev", name, "address", mac]);
}

fn mac_of(lab: &Lab, dev: &str) -> String {
    lab.exec(&["cat", &format!("/sys/class/net/{dev}/address")])
        .trim()
        .to_owned()
}

fn master_of(lab: &Lab, dev: &str) -> bool {
    lab.exec(&["ip", "-o", "link", "show", dev])
        .contains(" master ")
}

/// Bridge br0 with an uplink (a veth to another namespace) whose MAC is `uplink_mac`: the
/// bridge takes it, as a node's bridge takes its NIC's.
fn bridge_with_uplink(lab: &mut Lab, uplink_mac: &str) {
    lab.bridge("br0", 1500);
    lab.peer("up0", "far0");
    lab.exec(&["ip", "link", "set", "dev", "up0", "address", uplink_mac]);
    lab.exec(&["ip", "link", "set", "dev", "up0", "master", "br0"]);
    assert_eq!(mac_of(lab, "br0"), uplink_mac);
}

/// Everything of `tap` in the firewall dumps.
fn fw_of(lab: &Lab, tap: &str) -> Vec<String> {
    lab.fw_dump()
        .lines()
        .filter(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .any(|w| w == tap || w.ends_with(&format!("-{tap}")))
        })
        .map(str::to_owned)
        .collect()
}

/// Whether anything of `tap`'s NIC is left: state file, binding, chains and jumps.
fn traces(lab: &Lab, tap: &str) -> (bool, bool, usize) {
    (
        lab.state_dir().join(format!("{tap}.toml")).exists(),
        lab.nfdhcpd_dir().join(tap).exists(),
        fw_of(lab, tap).len(),
    )
}

fn bridged_nic(tap: &str, mac: &str, ip: &str) -> Env {
    nic(
        tap,
        mac,
        ip,
        "bridged",
        "br0",
        "nfdhcpd private-filtered",
        "synnefo:network:0:protected",
    )
}

/// Issue 12.1: a TAP whose random MAC sorts below the uplink's would become the bridge's
/// MAC while the VM runs; with the `fe:` MAC Ganeti gives it, the bridge keeps its own.
#[test]
fn bridge_mac_stays_when_a_lower_tap_joins_and_leaves() {
    if !can_run("bridge_mac_stays_when_a_lower_tap_joins_and_leaves") {
        return;
    }
    let mut lab = Lab::new();
    bridge_with_uplink(&mut lab, "02:00:00:00:00:50");
    tuntap(&lab, "tap1", "02:00:00:00:00:10");
    let env = bridged_nic("tap1", MAC1, "198.51.100.11");
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert!(master_of(&lab, "tap1"));
    assert_eq!(mac_of(&lab, "br0"), "02:00:00:00:00:50");
    assert_eq!(mac_of(&lab, "tap1"), "fe:00:00:00:00:10");
    // A second `up` (Ganeti re-plugging the NIC) changes nothing.
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert_eq!(mac_of(&lab, "tap1"), "fe:00:00:00:00:10");
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert!(!master_of(&lab, "tap1"));
    assert_eq!(mac_of(&lab, "br0"), "02:00:00:00:00:50");
    // The TAP, out of the bridge, has its own MAC back.
    assert_eq!(mac_of(&lab, "tap1"), "02:00:00:00:00:10");
}

/// Issue 12.3, exactly as reported: a routed `up` with a routing table that does not exist
/// used to fail half-way ("rollback incomplete") and block every later `up` and `down` of
/// the TAP. Now it fails before changing anything, and the TAP is free for the next NIC.
#[test]
fn routed_up_with_a_missing_table_changes_nothing_and_wedges_nothing() {
    if !can_run("routed_up_with_a_missing_table_changes_nothing_and_wedges_nothing") {
        return;
    }
    let mut lab = Lab::new();
    bridge_with_uplink(&mut lab, "02:00:00:00:00:50");
    tuntap(&lab, "tap1", "02:00:00:00:00:10");
    let (fw0, net0) = (lab.fw_dump(), lab.net_dump());
    let env = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "routed",
        "rt_missing",
        "nfdhcpd ip-less-routed",
        "",
    );
    let o = lab.ifup(&refs(&env), &["ganeti", "up"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("routing table 'rt_missing' (LINK) does not exist"),
        "{err}"
    );
    assert!(!err.contains("rollback incomplete"), "{err}");
    assert_eq!(lab.fw_dump(), fw0);
    assert_eq!(lab.net_dump(), net0);
    assert_eq!(mac_of(&lab, "tap1"), "02:00:00:00:00:10");
    assert_eq!(traces(&lab, "tap1"), (false, false, 0));

    // The next VM gets the TAP name, in bridged mode: up and down work.
    let env = bridged_nic("tap1", MAC1, "198.51.100.11");
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    assert!(master_of(&lab, "tap1"));
    lab.ifup_ok(&refs(&env), &["ganeti", "down"]);
    assert_eq!(traces(&lab, "tap1"), (false, false, 0));
    assert_eq!(lab.fw_dump(), fw0);
}

/// A state file recording an undo step that can never succeed (a route in a table that no
/// longer exists, as older versions recorded) neither blocks `down` nor the next `up`.
#[test]
fn undo_entries_that_cannot_succeed_block_neither_down_nor_up() {
    if !can_run("undo_entries_that_cannot_succeed_block_neither_down_nor_up") {
        return;
    }
    let lab = Lab::new();
    lab.bridge("br0", 1500);
    tuntap(&lab, "tap1", "02:00:00:00:00:10");
    let fw0 = lab.fw_dump();
    let env = bridged_nic("tap1", MAC1, "198.51.100.11");
    let poison = |lab: &Lab| {
        let p = lab.state_dir().join("tap1.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("routes4 = []"), "{text}");
        let bad = text.replace(
            "routes4 = []",
            "routes4 = [[\"198.51.100.11/32\", \"rt_missing\"]]",
        );
        std::fs::write(&p, bad).unwrap();
    };
    lab.ifup_ok(&refs(&env), &["ganeti", "up"]);
    poison(&lab);
    // A new `up` over it: the stale entry is forgotten with a warning.
    let o = lab.ifup(&refs(&env), &["ganeti", "up"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("forgetting route 198.51.100.11/32 in table 'rt_missing'"),
        "{err}"
    );
    poison(&lab);
    // A NIC recorded with a value refused today (the gateway as its IP): `status` says
    // so instead of failing for every NIC, and `down` does not need it.
    let p = lab.state_dir().join("tap1.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let bad = text.replace("\"IP\", \"198.51.100.11\"", "\"IP\", \"198.51.100.1\"");
    assert_ne!(bad, text);
    std::fs::write(&p, bad).unwrap();
    let o = lab.ifup(&[], &["status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("198.51.100.1 is the gateway"), "{out}");
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert_eq!(traces(&lab, "tap1"), (false, false, 0));
    assert_eq!(lab.fw_dump(), fw0);
}

/// Issue 12.4: addresses no guest can use are refused with a clear error before anything
/// is applied.
#[test]
fn unusable_ip_or_mac_is_refused_and_nothing_applied() {
    if !can_run("unusable_ip_or_mac_is_refused_and_nothing_applied") {
        return;
    }
    let mut lab = Lab::new();
    bridge_with_uplink(&mut lab, "02:00:00:00:00:50");
    tuntap(&lab, "tap1", "02:00:00:00:00:10");
    let (fw0, net0) = (lab.fw_dump(), lab.net_dump());
    for (var, value, msg) in [
        (
            "IP",
            "198.51.100.1",
            "IP: 198.51.100.1 is the gateway of network net1",
        ),
        (
            "IP",
            "198.51.100.0",
            "IP: 198.51.100.0 is the network address of 198.51.100.0/24",
        ),
        (
            "IP",
            "198.51.100.255",
            "IP: 198.51.100.255 is the broadcast address of 198.51.100.0/24",
        ),
        (
            "IP",
            "203.0.113.9",
            "IP: 203.0.113.9 is outside NETWORK_SUBNET 198.51.100.0/24",
        ),
        (
            "MAC",
            "ff:ff:ff:ff:ff:ff",
            "MAC: ff:ff:ff:ff:ff:ff is the broadcast address",
        ),
        (
            "MAC",
            "01:00:5e:00:00:01",
            "MAC: 01:00:5e:00:00:01 is a multicast address",
        ),
        (
            "MAC",
            "00:00:00:00:00:00",
            "MAC: 00:00:00:00:00:00 is all zeros",
        ),
    ] {
        let mut env = bridged_nic("tap1", MAC1, "198.51.100.11");
        set(&mut env, var, value);
        let o = lab.ifup(&refs(&env), &["ganeti", "up"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{var}={value}: {err}");
        assert!(err.contains(msg), "{var}={value}: {err}");
        assert_eq!(lab.fw_dump(), fw0, "{var}={value}");
        assert_eq!(lab.net_dump(), net0, "{var}={value}");
        assert_eq!(traces(&lab, "tap1"), (false, false, 0), "{var}={value}");
    }
}

/// Polls until `tap`'s NIC is gone; returns how long that took.
fn wait_gone(lab: &Lab, tap: &str) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if traces(lab, tap) == (false, false, 0) {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{tap}: still {:?} after 20 s", traces(lab, tap));
}

/// Issue 12.2: a TAP deleted with `ip link del` (what happens when QEMU exits) loses its
/// binding, state and chains; its sibling keeps everything.
#[test]
fn watch_takes_down_a_deleted_tap_and_leaves_its_sibling() {
    if !can_run("watch_takes_down_a_deleted_tap_and_leaves_its_sibling") {
        return;
    }
    let mut lab = Lab::new();
    bridge_with_uplink(&mut lab, "02:00:00:00:00:50");
    tuntap(&lab, "tap1", "02:00:00:00:00:11");
    tuntap(&lab, "tap2", "02:00:00:00:00:12");
    let fw0 = lab.fw_dump();
    lab.ifup_ok(
        &refs(&bridged_nic("tap1", MAC1, "198.51.100.11")),
        &["ganeti", "up"],
    );
    lab.ifup_ok(
        &refs(&bridged_nic("tap2", MAC2, "198.51.100.12")),
        &["ganeti", "up"],
    );
    let sibling = (fw_of(&lab, "tap2"), traces(&lab, "tap2"));
    assert_eq!(sibling.1, (true, true, sibling.0.len()));
    assert!(!sibling.0.is_empty());
    let _w = Watcher::start(&lab, &["watch"]);
    // Nothing happens to NICs whose TAPs exist.
    assert!(traces(&lab, "tap1").0);
    lab.exec(&["ip", "link", "del", "tap1"]);
    let took = wait_gone(&lab, "tap1");
    eprintln!("tap1 taken down {} ms after ip link del", took.as_millis());
    assert_eq!((fw_of(&lab, "tap2"), traces(&lab, "tap2")), sibling);
    // Only tap2's chains and jumps are left.
    let left: Vec<String> = fw0
        .lines()
        .map(str::to_owned)
        .chain(fw_of(&lab, "tap2"))
        .collect();
    for l in lab.fw_dump().lines() {
        assert!(
            left.iter().any(|x| x == l) || l.starts_with(":snf-") || l.contains("snf-protected"),
            "unexpected {l}"
        );
    }
}

/// A TAP deleted and created again under the same name before the watcher gets to it (the
/// next VM) is left alone; so is the NIC its own `up` configured.
#[test]
fn watch_leaves_a_tap_that_came_back_under_the_same_name() {
    if !can_run("watch_leaves_a_tap_that_came_back_under_the_same_name") {
        return;
    }
    let lab = Lab::new();
    lab.bridge("br0", 1500);
    tuntap(&lab, "tap1", "02:00:00:00:00:11");
    tuntap(&lab, "tap2", "02:00:00:00:00:12");
    let env1 = bridged_nic("tap1", MAC1, "198.51.100.11");
    lab.ifup_ok(&refs(&env1), &["ganeti", "up"]);
    lab.ifup_ok(
        &refs(&bridged_nic("tap2", MAC2, "198.51.100.12")),
        &["ganeti", "up"],
    );
    let w = Watcher::start(&lab, &["watch"]);
    // Holding snf-ifup's lock keeps the watcher from acting until the TAP is back.
    let lock = lab.state_dir().join(".lock").display().to_string();
    lab.exec(&[
        "flock",
        &lock,
        "sh",
        "-c",
        "ip link del tap1 && ip tuntap add dev tap1 mode tap",
    ]);
    // Events are handled in order: once tap2 (deleted now) is down, tap1's removal has
    // been looked at.
    lab.exec(&["ip", "link", "del", "tap2"]);
    wait_gone(&lab, "tap2");
    let t1 = traces(&lab, "tap1");
    assert_eq!((t1.0, t1.1), (true, true));
    assert!(t1.2 > 0);
    // The new VM's `up` on the new TAP, then the new TAP goes too: that one is taken down.
    lab.ifup_ok(&refs(&env1), &["ganeti", "up"]);
    lab.exec(&["ip", "link", "del", "tap1"]);
    wait_gone(&lab, "tap1");
    drop(w);
}

/// The kernel announces a link's removal (RTM_DELLINK) before it removes the link's sysfs
/// entry, so a watcher that wakes at once can still find `/sys/class/net/<tap>`. Here sysfs
/// keeps listing the TAP for good (a tmpfs over /sys/class/net, in the watcher's own mount
/// namespace): the removal is still seen, because the watcher asks the kernel's name table.
#[test]
fn watch_takes_down_a_tap_that_sysfs_still_lists() {
    if !can_run("watch_takes_down_a_tap_that_sysfs_still_lists") {
        return;
    }
    let lab = Lab::new();
    lab.bridge("br0", 1500);
    tuntap(&lab, "tap1", "02:00:00:00:00:11");
    lab.ifup_ok(
        &refs(&bridged_nic("tap1", MAC1, "198.51.100.11")),
        &["ganeti", "up"],
    );
    // The same command, environment and namespace as `Watcher::start`, behind `unshare`.
    let plain = lab.ifup_command(&[], &["watch"]);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.node, "unshare", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs lingering /sys/class/net && mkdir /sys/class/net/tap1 && exec "$0" watch"#)
        .arg(env!("CARGO_BIN_EXE_snf-ifup"))
        .env_clear();
    for (k, v) in plain.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let w = Watcher::spawn(cmd);
    assert!(traces(&lab, "tap1").0);
    lab.exec(&["ip", "link", "del", "tap1"]);
    wait_gone(&lab, "tap1");
    drop(w);
}

/// A TAP deleted while no watcher ran is taken down by the rescan at start-up.
#[test]
fn watch_rescan_at_start_takes_down_taps_that_went_meanwhile() {
    if !can_run("watch_rescan_at_start_takes_down_taps_that_went_meanwhile") {
        return;
    }
    let lab = Lab::new();
    lab.bridge("br0", 1500);
    tuntap(&lab, "tap3", "02:00:00:00:00:13");
    tuntap(&lab, "tap4", "02:00:00:00:00:14");
    let fw0 = lab.fw_dump();
    lab.ifup_ok(
        &refs(&bridged_nic("tap3", MAC3, "198.51.100.13")),
        &["ganeti", "up"],
    );
    lab.ifup_ok(
        &refs(&bridged_nic("tap4", MAC1, "198.51.100.14")),
        &["ganeti", "up"],
    );
    lab.exec(&["ip", "link", "del", "tap3"]);
    assert!(traces(&lab, "tap3").0);
    // The start-up scan runs before the watcher reports that it is watching.
    let _w = Watcher::start(&lab, &["watch"]);
    assert_eq!(traces(&lab, "tap3"), (false, false, 0));
    assert!(traces(&lab, "tap4").0);
    lab.exec(&["ip", "link", "del", "tap4"]);
    wait_gone(&lab, "tap4");
    assert_eq!(lab.fw_dump(), fw0);
}

/// Lost notifications: with the watcher stopped, thousands of link notifications overflow its
/// socket, so the kernel drops the one for the TAP removed last. The ENOBUFS the watcher
/// then reads makes it rescan, which finds the TAP gone.
#[test]
fn watch_rescans_after_lost_notifications() {
    if !can_run("watch_rescans_after_lost_notifications") {
        return;
    }
    let lab = Lab::new();
    lab.bridge("br0", 1500);
    tuntap(&lab, "tap1", "02:00:00:00:00:11");
    lab.ifup_ok(
        &refs(&bridged_nic("tap1", MAC1, "198.51.100.11")),
        &["ganeti", "up"],
    );
    let w = Watcher::start(&lab, &["watch"]);
    let pid = w.pid().to_string();
    common::ok(&["kill", "-STOP", &pid]);
    // Every alias change is one RTM_NEWLINK: cheap churn, far more than the socket holds.
    let mut batch = String::new();
    for i in 0..8000 {
        batch.push_str(&format!("link set dev br0 alias churn{i}\n"));
    }
    let path = lab.dir.path().join("churn.batch");
    std::fs::write(&path, batch).unwrap();
    lab.exec(&["ip", "-batch", &path.display().to_string()]);
    lab.exec(&["ip", "link", "del", "tap1"]);
    common::ok(&["kill", "-CONT", &pid]);
    w.wait_for("rescanning");
    wait_gone(&lab, "tap1");
}
