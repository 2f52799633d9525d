//! `snf-ifup watch` following the cluster store (issue 14 point 4, file mode): a NIC brought
//! up with `up --instance` is re-applied when `gnt-instance modify` changes it in
//! config.data, keeps what is applied while config.data is half written, and loses its
//! rules (not its TAP) when its instance is removed. Real gnt-* binaries, real firewall, in
//! a node namespace. Needs root and the workspace's gnt-* binaries; skips otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::follow::{add_net1, assert_ran, binding, fw_of, gnt_bins, until};
use common::watcher::Watcher;
use common::{Lab, can_run, nic, refs, set};

const MAC1: &str = "aa:00:00:00:00:01";
/// How long a change may take to be followed: config.data is watched, no network between.
const WAIT: Duration = Duration::from_secs(10);

fn gnt(bin: &Path, config: &Path, tool: &str, args: &[&str]) {
    let o = Command::new(bin.join(tool))
        .args(args)
        .env("NETCONF_CONFIG", config)
        .output()
        .unwrap();
    assert_ran(tool, args, &o);
}

fn bins(test: &str) -> Option<PathBuf> {
    if !can_run(test) {
        return None;
    }
    gnt_bins(test)
}

#[test]
fn watch_reapplies_a_nic_changed_in_the_store_and_unrules_a_removed_instance() {
    let test = "watch_reapplies_a_nic_changed_in_the_store_and_unrules_a_removed_instance";
    let Some(bin) = bins(test) else {
        return;
    };
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    lab.guest("tap2", "aa:00:00:00:00:02");
    let config = lab.dir.path().join("config.data");
    let g = |tool: &str, args: &[&str]| gnt(&bin, &config, tool, args);
    add_net1(g);
    let nic0 = format!("0:ip=198.51.100.11,network=net1,mac={MAC1}");
    g("gnt-instance", &["add", "--net", &nic0, "vm1"]);
    g(
        "gnt-instance",
        &["add", "--net", "0:ip=198.51.100.12,network=net1", "vm2"],
    );
    let cfg_env = [("NETCONF_CONFIG", config.to_str().unwrap())];
    lab.ifup_ok(&cfg_env, &["up", "tap1", "--instance", "vm1", "--nic", "0"]);
    assert!(
        binding(&lab, "tap1").contains("IP=198.51.100.11\n"),
        "{}",
        binding(&lab, "tap1")
    );
    let fw = fw_of(&lab, "tap1");
    assert!(fw.contains("198.51.100.11"), "{fw}");

    // A NIC Ganeti described (its environment, not the store) is not followed, even when
    // its INSTANCE names an instance of the store.
    let mut ganeti = nic(
        "tap2",
        "aa:00:00:00:00:02",
        "198.51.100.12",
        "bridged",
        "br0",
        "nfdhcpd",
        "",
    );
    set(&mut ganeti, "INSTANCE", "vm1");
    lab.ifup_ok(&refs(&ganeti), &["ganeti", "up"]);
    let tap2_state = lab.state_dir().join("tap2.toml");
    let tap2 = std::fs::read_to_string(&tap2_state).unwrap();

    let w = Watcher::start(&lab, &["watch", "--config", config.to_str().unwrap()]);
    // An unchanged store changes nothing.
    let before = (binding(&lab, "tap1"), fw_of(&lab, "tap1"));

    // The address changes in the store: binding and rules follow, no `up` needed.
    let t0 = Instant::now();
    g(
        "gnt-instance",
        &["modify", "--net", "0:ip=198.51.100.21", "vm1"],
    );
    let after_cmd = t0.elapsed();
    until("the new address in the binding and the rules", WAIT, || {
        let fw = fw_of(&lab, "tap1");
        binding(&lab, "tap1").contains("IP=198.51.100.21\n")
            && fw.contains("198.51.100.21")
            && !fw.contains("198.51.100.11")
    });
    let took = t0.elapsed();
    eprintln!(
        "re-applied {} ms after gnt-instance modify returned ({} ms including the command)",
        (took - after_cmd).as_millis(),
        took.as_millis()
    );
    let l = w.wait_for("changed in the cluster store");
    assert!(l.contains("IP"), "{l}");
    assert_ne!(before, (binding(&lab, "tap1"), fw_of(&lab, "tap1")));

    // A half-written config.data (cut in place) is not "every instance gone": what is
    // applied stays, and the good file is followed again.
    let good = std::fs::read_to_string(&config).unwrap();
    let applied = (binding(&lab, "tap1"), fw_of(&lab, "tap1"));
    std::fs::write(&config, &good[..good.len() / 2]).unwrap();
    w.wait_for("cannot read the cluster store");
    assert_eq!((binding(&lab, "tap1"), fw_of(&lab, "tap1")), applied);
    std::fs::write(&config, &good).unwrap();

    // The instance leaves the store while its TAP exists: its rules and binding go, with a
    // warning; the TAP stays.
    g("gnt-instance", &["remove", "vm1"]);
    let took = until("tap1's rules removed", WAIT, || {
        fw_of(&lab, "tap1").is_empty()
            && !lab.nfdhcpd_dir().join("tap1").exists()
            && !lab.state_dir().join("tap1.toml").exists()
    });
    eprintln!(
        "rules removed {} ms after gnt-instance remove",
        took.as_millis()
    );
    let l = w.wait_for("no longer in the cluster store");
    assert!(l.contains("tap1") && l.contains("vm1"), "{l}");
    assert!(
        lab.exec(&["ip", "-o", "link", "show", "tap1"])
            .contains("tap1")
    );
    assert_eq!(std::fs::read_to_string(&tap2_state).unwrap(), tap2);
}
