//! The rtnetlink requests against real links, in a network namespace of the test's own:
//! the netlink socket is opened by a thread that entered it, and `ip netns exec` reads the
//! result back (sysfs would show the root namespace to this process).

use std::net::IpAddr;
use std::process::Command;

use netconf_sys::rtnl::{LinkChange, Op, Rtnl};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn ip(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "ip"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn bridge(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "bridge"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "bridge {args:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `f` on a thread inside namespace `ns` (index lookups and sockets act there).
fn inside<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn index(name: &str) -> u32 {
    netconf_sys::link::index_of(name).unwrap()
}

#[test]
fn requests_change_links_rules_routes_neighbours_and_vlans() {
    if !is_root() {
        println!("SKIP requests_change_links_rules_routes_neighbours_and_vlans: needs root");
        return;
    }
    let name = format!("ncsys-rtnl-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip netns add {name}");
    let ns = Netns(name);
    let n = ns.0.as_str();
    // Every link is created inside the namespace.
    // VLAN filtering only where the kernel has it.
    let vlans = Command::new("ip")
        .args([
            "netns", "exec", n, "ip", "link", "add", "br0", "type", "bridge",
        ])
        .args(["vlan_filtering", "1"])
        .status()
        .is_ok_and(|s| s.success());
    if !vlans {
        println!("(no bridge VLAN filtering in this kernel: VLAN requests not tested)");
        ip(n, &["link", "add", "br0", "type", "bridge"]);
    }
    ip(n, &["link", "set", "br0", "up"]);
    ip(
        n,
        &["link", "add", "tap1", "type", "veth", "peer", "name", "g1"],
    );
    ip(
        n,
        &["link", "add", "up0", "type", "veth", "peer", "name", "g0"],
    );
    ip(n, &["link", "set", "g1", "up"]);
    ip(n, &["link", "set", "g0", "up"]);
    ip(n, &["link", "set", "up0", "up"]);

    inside(n, || {
        let mut nl = Rtnl::open().unwrap();
        let tap = index("tap1");
        let change = LinkChange {
            address: Some([0xfe, 0, 0, 0x12, 0x34, 0x56]),
            mtu: Some(1400),
            master: Some(index("br0")),
            up: true,
        };
        nl.link_set(tap, &change).unwrap();
        if vlans {
            nl.bridge_vlan_add(tap, 10, true).unwrap();
            nl.bridge_vlan_add(tap, 20, false).unwrap();
        }
    });
    let link = ip(n, &["-o", "link", "show", "dev", "tap1"]);
    assert!(link.contains("master br0"), "{link}");
    assert!(link.contains(" mtu 1400 "), "{link}");
    assert!(link.contains(",UP"), "{link}");
    assert!(link.contains("link/ether fe:00:00:12:34:56"), "{link}");
    if vlans {
        let v = bridge(n, &["-j", "vlan", "show", "dev", "tap1"]);
        assert!(
            v.contains(r#"{"vlan":10,"flags":["PVID","Egress Untagged"]}"#),
            "{v}"
        );
        assert!(v.contains(r#"{"vlan":20}"#), "{v}");
    }

    let v4: IpAddr = "198.51.100.10".parse().unwrap();
    let v6: IpAddr = "2001:db8::10".parse().unwrap();
    inside(n, || {
        let mut nl = Rtnl::open().unwrap();
        let tap = index("tap1");
        nl.link_set(
            tap,
            &LinkChange {
                master: Some(0),
                ..LinkChange::default()
            },
        )
        .unwrap();
        nl.rule(Op::Add, false, "tap1", None, 100).unwrap();
        nl.rule(Op::Add, true, "tap1", None, 1000).unwrap();
        nl.route(Op::Replace, v4, 32, tap, 100).unwrap();
        // Replace twice: the same route, no error.
        nl.route(Op::Replace, v4, 32, tap, 100).unwrap();
        nl.route(Op::Replace, v6, 128, tap, 1000).unwrap();
        nl.neigh_proxy(Op::Replace, v6, index("up0")).unwrap();
    });
    assert!(!ip(n, &["-o", "link", "show", "dev", "tap1"]).contains("master"));
    assert!(ip(n, &["-4", "rule"]).contains("iif tap1 lookup 100"));
    assert!(ip(n, &["-6", "rule"]).contains("iif tap1 lookup 1000"));
    let r4 = ip(n, &["-4", "route", "show", "table", "100"]);
    assert_eq!(
        r4.trim(),
        "198.51.100.10 dev tap1 proto static scope link",
        "{r4}"
    );
    let r6 = ip(n, &["-6", "route", "show", "table", "1000"]);
    assert!(r6.contains("2001:db8::10 dev tap1 proto static"), "{r6}");
    let proxy = ip(n, &["-6", "neigh", "show", "proxy"]);
    assert!(proxy.contains("2001:db8::10 dev up0 proxy"), "{proxy}");

    // Removal, then the same removal again: the errno says it is gone.
    let prio: u32 = ip(n, &["-4", "rule"])
        .lines()
        .find(|l| l.contains("iif tap1"))
        .and_then(|l| l.split(':').next()?.trim().parse().ok())
        .unwrap();
    inside(n, || {
        let mut nl = Rtnl::open().unwrap();
        let tap = index("tap1");
        nl.rule(Op::Delete, false, "tap1", Some(prio), 100).unwrap();
        nl.rule(Op::Delete, true, "tap1", None, 1000).unwrap();
        nl.route(Op::Delete, v4, 32, tap, 100).unwrap();
        nl.route(Op::Delete, v6, 128, tap, 1000).unwrap();
        nl.neigh_proxy(Op::Delete, v6, index("up0")).unwrap();
        let e = nl.route(Op::Delete, v4, 32, tap, 100).unwrap_err();
        assert_eq!(e.errno, libc::ESRCH, "{e}");
        let e = nl.rule(Op::Delete, false, "tap1", None, 100).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT, "{e}");
        let e = nl.neigh_proxy(Op::Delete, v6, index("up0")).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT, "{e}");
        // A refusal carries the kernel's explanation when it gives one.
        let e = nl
            .link_set(
                tap,
                &LinkChange {
                    master: Some(tap),
                    ..LinkChange::default()
                },
            )
            .unwrap_err();
        assert_ne!(e.errno, 0, "{e}");
    });
    assert!(!ip(n, &["-4", "rule"]).contains("tap1"));
    assert!(!ip(n, &["-6", "rule"]).contains("tap1"));
    assert!(
        ip(n, &["-4", "route", "show", "table", "100"])
            .trim()
            .is_empty()
    );
    assert!(ip(n, &["-6", "neigh", "show", "proxy"]).trim().is_empty());
}
