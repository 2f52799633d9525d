//! The seed scenario: a /24 with a gateway, connected to `default`, one instance from the pool.

use crate::harness::*;

/// §4.3's layout of `gnt-network info` for net1, built from its rules (not from our output).
fn expected_info(uuid: &str, serial: u64, map_first: &str, free: usize, users: &str) -> String {
    let pct = format!("{:.2}", free as f64 * 100.0 / 256.0);
    let dots = ".".repeat(64);
    let last = format!("{}X", ".".repeat(63));
    format!(
        "Network name: net1\n\
         UUID: {uuid}\n\
         Serial number: {serial}\n\
         \x20 Subnet: 192.168.1.0/24\n\
         \x20 Gateway: 192.168.1.1\n\
         \x20 IPv6 Subnet: None\n\
         \x20 IPv6 Gateway: None\n\
         \x20 Mac Prefix: None\n\
         \x20 Size: 256\n\
         \x20 Free: {free} ({pct}%)\n\
         \x20 Usage map:\n\
         \x20       0 {map_first} 63\n\
         \x20      64 {dots} 127\n\
         \x20     128 {dots} 191\n\
         \x20     192 {last} 255\n\
         \x20        (X) used    (.) free\n\
         \x20 externally reserved IPs:\n\
         \x20   192.168.1.0, 192.168.1.1, 192.168.1.255\n\
         \x20 connected to node groups:\n\
         \x20   default (mode:bridged link:prv0 vlan:)\n\
         {users}"
    )
}

#[test]
fn seed_network_connect_and_pool_instance() {
    let c = seeded();
    let uuid = c.net_field("net1", "uuid");
    assert_eq!(uuid.len(), 36, "a UUID: {uuid}");

    // Explicit --config works as well as NETCONF_CONFIG (on etcd: --store as well as
    // NETCONF_STORE).
    let cfg = c.config();
    let mut info = c.command(NET, &[]);
    match c.store_url() {
        Some(url) => info.args(["--store", url]).env_remove("NETCONF_STORE"),
        None => info
            .args(["--config", cfg.to_str().unwrap()])
            .env_remove("NETCONF_CONFIG"),
    };
    let r = info.args(["info", "net1"]).output().unwrap();
    assert!(r.status.success());
    let info = String::from_utf8(r.stdout).unwrap();
    let first = format!("XX{}", ".".repeat(62));
    assert_eq!(
        info,
        expected_info(&uuid, 1, &first, 253, "  not used by any instances\n")
    );
    assert!(info.contains("  Size: 256\n  Free: 253 (98.83%)\n"));

    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "inst1"]);
    let ip = c.inst_field("inst1", "nic.ips");
    assert_eq!(ip, "192.168.1.2");
    let mac = c.inst_field("inst1", "nic.macs");
    assert!(mac.starts_with("aa:00:00:"), "{mac}");
    assert_eq!(mac.len(), 17);

    let iinfo = c.ok(INST, &["info", "inst1"]);
    assert!(iinfo.contains(&format!("      MAC: {mac}\n")), "{iinfo}");
    assert!(iinfo.contains("      IP: 192.168.1.2\n"), "{iinfo}");
    assert!(
        iinfo.contains("      mode: bridged\n      link: prv0\n"),
        "{iinfo}"
    );
    assert!(iinfo.contains("      network: net1\n"), "{iinfo}");

    let info = c.ok(NET, &["info", "net1"]);
    let first = format!("XXX{}", ".".repeat(61));
    assert_eq!(
        info,
        expected_info(
            &uuid,
            1,
            &first,
            252,
            "  used by 1 instances:\n    inst1: 0:192.168.1.2\n"
        )
    );
    assert_eq!(c.net_field("net1", "free_count"), "252");
    assert_eq!(c.net_field("net1", "inst_list"), "inst1");
}

#[test]
fn info_of_a_small_network_with_everything_set() {
    // §4.3's own example: a /28 with gateway .1, .10 reserved, instances on .2/.4 and .3.
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "192.0.2.0/28",
            "--gateway",
            "192.0.2.1",
            "--add-reserved-ips",
            "192.0.2.10",
            "--network6",
            "2001:db8:2ffc::/64",
            "--gateway6",
            "2001:db8:2ffc::1",
            "-m",
            "AA:00:01",
            "net100",
        ],
    );
    c.ok(GROUP, &["add", "group2"]);
    c.ok(
        NET,
        &[
            "connect",
            "-N",
            "mode=bridged,link=br100",
            "net100",
            "default",
        ],
    );
    c.ok(
        NET,
        &[
            "connect",
            "-N",
            "mode=routed,link=rt_tab",
            "net100",
            "group2",
        ],
    );
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:ip=192.0.2.2,network=net100",
            "--net",
            "1:ip=192.0.2.4,network=net100",
            "inst1",
        ],
    );
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net100", "inst2"]);
    let uuid = c.net_field("net100", "uuid");
    let info = c.ok(NET, &["info", "net100"]);
    // Connections and instances come in map (UUID) order, as in Ganeti 3.0.
    let parsed = c.parsed();
    let mut groups = Vec::new();
    for g in parsed.nodegroups.values() {
        let p = &g.networks[&uuid];
        groups.push(format!(
            "    {} (mode:{} link:{} vlan:{})\n",
            g.name, p.mode, p.link, p.vlan
        ));
    }
    let mut users = Vec::new();
    for i in parsed.instances.all_decoded().values() {
        users.push(match i.name.as_str() {
            "inst1" => "    inst1: 0:192.0.2.2, 1:192.0.2.4\n",
            _ => "    inst2: 0:192.0.2.3\n",
        });
    }
    let want = format!(
        "Network name: net100\n\
         UUID: {uuid}\n\
         Serial number: 1\n\
         \x20 Subnet: 192.0.2.0/28\n\
         \x20 Gateway: 192.0.2.1\n\
         \x20 IPv6 Subnet: 2001:db8:2ffc::/64\n\
         \x20 IPv6 Gateway: 2001:db8:2ffc::1\n\
         \x20 Mac Prefix: aa:00:01\n\
         \x20 Size: 16\n\
         \x20 Free: 9 (56.25%)\n\
         \x20 Usage map:\n\
         \x20       0 XXXXX.....X....X                                                 63\n\
         \x20        (X) used    (.) free\n\
         \x20 externally reserved IPs:\n\
         \x20   192.0.2.0, 192.0.2.1, 192.0.2.10, 192.0.2.15\n\
         \x20 connected to node groups:\n\
         {}\
         \x20 used by 2 instances:\n\
         {}",
        groups.concat(),
        users.concat()
    );
    assert_eq!(info, want);
    // The network's MAC prefix is used for its NICs.
    for m in c.inst_field("inst1", "nic.macs").split(',') {
        assert!(m.starts_with("aa:00:01:"), "{m}");
    }
}

#[test]
fn info_wraps_external_reservations_at_64_columns() {
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "10.20.30.0/24",
            "--add-reserved-ips",
            "10.20.30.100,10.20.30.101,10.20.30.102,10.20.30.103,10.20.30.104",
            "n",
        ],
    );
    let info = c.ok(NET, &["info", "n"]);
    // "10.20.30.0, 10.20.30.100, 10.20.30.101, 10.20.30.102, 10.20.30.103," is 69 chars:
    // textwrap breaks before the word that would pass 64.
    assert!(
        info.contains(
            "  externally reserved IPs:\n    10.20.30.0, 10.20.30.100, 10.20.30.101, 10.20.30.102,\n    10.20.30.103, 10.20.30.104, 10.20.30.255\n  not connected to any node group\n  not used by any instances\n"
        ),
        "{info}"
    );
}
