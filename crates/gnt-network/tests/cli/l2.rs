//! Networks without an IPv4 subnet (beyond Ganeti: Ganeti issue #1551): `add` without
//! `--network` makes an L2-only network whose missing values `list` and `info` show as
//! Ganeti shows missing values (`-`, `None`, JSON `null`); whatever needs an IPv4 subnet is
//! refused with config.data byte-identical; NICs on it have no IPv4 address.

use serde_json::Value as J;

use crate::harness::*;

/// l2 (IPv6 2001:db8:2::/64, gateway6, MAC prefix, tags) connected to `default` as
/// bridged br0 VLAN 100, next to the IPv4 network net1.
fn base() -> Cluster {
    let c = Cluster::new();
    c.add_net("net1", "198.51.100.0/24", "198.51.100.1");
    c.ok(
        NET,
        &[
            "add",
            "--network6",
            "2001:db8:2::/64",
            "--gateway6",
            "2001:db8:2::1",
            "-m",
            "aa:00:02",
            "--tags",
            "nfdhcpd,trunk",
            "l2",
        ],
    );
    c.ok(NET, &["connect", "-N", "link=br0,vlan=100", "l2"]);
    c.ok(NET, &["connect", "-N", "link=br1", "net1"]);
    c
}

#[test]
fn add_list_info_and_json_of_an_l2_network() {
    let c = base();
    assert_eq!(
        c.ok(NET, &["list"]),
        "Network Subnet          Gateway      MacPrefix GroupList                   Tags\n\
         l2      -               -            aa:00:02  default (bridged, br0, 100) nfdhcpd,trunk\n\
         net1    198.51.100.0/24 198.51.100.1 -         default (bridged, br1, )    \n"
    );
    let pool_fields = "network,free_count,map,reserved_count,external_reservations,alloc_ranges";
    assert_eq!(
        c.ok(
            NET,
            &[
                "list",
                "--no-headers",
                "--separator",
                "|",
                "-o",
                pool_fields,
                "l2"
            ]
        ),
        "-|-|-|-|-|-\n"
    );
    assert_eq!(
        c.ok(
            NET,
            &[
                "list",
                "--no-headers",
                "-v",
                "-o",
                "network,free_count",
                "l2"
            ]
        ),
        "(unavail) (unavail)\n"
    );
    let rows: J = serde_json::from_str(&c.ok(
        NET,
        &[
            "list",
            "--output-format",
            "json",
            "-o",
            &format!("name,{pool_fields},network6"),
            "l2",
        ],
    ))
    .unwrap();
    let row = &rows[0];
    for f in pool_fields.split(',') {
        assert!(row[f].is_null(), "{f}: {row}");
    }
    assert_eq!(row["network6"], "2001:db8:2::/64");

    let uuid = c.net_field("l2", "uuid");
    assert_eq!(
        c.ok(NET, &["info", "l2"]),
        format!(
            "Network name: l2\n\
             UUID: {uuid}\n\
             Serial number: 1\n  \
             Subnet: None\n  \
             Gateway: None\n  \
             IPv6 Subnet: 2001:db8:2::/64\n  \
             IPv6 Gateway: 2001:db8:2::1\n  \
             Mac Prefix: aa:00:02\n  \
             connected to node groups:\n    \
             default (mode:bridged link:br0 vlan:100)\n  \
             not used by any instances\n"
        )
    );
    let info: J =
        serde_json::from_str(&c.ok(NET, &["info", "--output-format", "json", "l2"])).unwrap();
    let info = &info[0];
    for k in [
        "subnet",
        "gateway",
        "allocation_ranges",
        "size",
        "free",
        "usage_map",
        "externally_reserved_ips",
    ] {
        assert!(info[k].is_null(), "{k}: {info}");
    }
    assert_eq!(info["ipv6_subnet"], "2001:db8:2::/64");
    assert_eq!(info["node_groups"][0]["vlan"], "100");
    // The IPv4 network's block is Ganeti's, as before.
    assert!(
        c.ok(NET, &["info", "net1"])
            .contains("  Subnet: 198.51.100.0/24\n  Gateway: 198.51.100.1\n")
    );
    // The stored network has no IPv4 keys; it parses back.
    let text = c.text();
    let l2 = text.split("name = \"l2\"\n").nth(1).unwrap();
    let l2 = l2.split("\n[").next().unwrap();
    assert!(
        !l2.contains("network =") && !l2.contains("reservations"),
        "{l2}"
    );
    let cfg = c.parsed();
    assert!(cfg.networks[&uuid].network.is_none());
    // Its IPv6 side and tags change as on any network.
    c.ok(
        NET,
        &[
            "modify",
            "--gateway6",
            "none",
            "--network6",
            "2001:db8:3::/64",
            "l2",
        ],
    );
    assert_eq!(c.net_field("l2", "network6"), "2001:db8:3::/64");
    c.ok(NET, &["modify", "--gateway", "none", "l2"]);
    c.ok(NET, &["add-tags", "l2", "dns"]);
    c.ok(NET, &["rename", "l2", "l2b"]);
    assert_eq!(c.net_field("l2b", "network"), "-");
}

#[test]
fn an_l2_network_is_exported_to_hooks_without_a_subnet() {
    let c = Cluster::new();
    let env = c.env_hook("network-add", "post");
    c.ok(NET, &["add", "--network6", "2001:db8:2::/64", "l2"]);
    let env = env_file(&env);
    assert_eq!(env_get(&env, "GANETI_NETWORK_NAME"), Some("l2"));
    assert_eq!(
        env_get(&env, "GANETI_NETWORK_SUBNET6"),
        Some("2001:db8:2::/64")
    );
    assert_eq!(env_get(&env, "GANETI_NETWORK_SUBNET"), None);
    assert_eq!(env_get(&env, "GANETI_NETWORK_GATEWAY"), None);
}

#[test]
fn options_that_need_a_subnet_are_refused_with_config_data_byte_identical() {
    let c = base();
    for (args, option) in [
        (&["--gateway", "198.51.100.1"][..], "--gateway"),
        (
            &["--add-reserved-ips", "198.51.100.9"][..],
            "--add-reserved-ips",
        ),
        (
            &["--allocation-range", "198.51.100.10-198.51.100.20"][..],
            "--allocation-range",
        ),
    ] {
        let mut argv = vec!["add"];
        argv.extend_from_slice(args);
        argv.push("l3");
        c.prereq(
            NET,
            &argv,
            "wrong_input",
            &format!(
                "The {option} option needs an IPv4 subnet (--network); a network without one is L2-only"
            ),
        );
    }
    for (args, what) in [
        (&["--gateway", "198.51.100.1"][..], "a gateway"),
        (
            &["--add-reserved-ips", "198.51.100.9"][..],
            "reserved IP addresses",
        ),
        (
            &["--remove-reserved-ips", "198.51.100.9"][..],
            "reserved IP addresses",
        ),
        (
            &["--allocation-range", "198.51.100.10-198.51.100.20"][..],
            "allocation ranges",
        ),
        (&["--allocation-range", "none"][..], "allocation ranges"),
        (
            &["--add-allocation-ranges", "198.51.100.10-198.51.100.20"][..],
            "allocation ranges",
        ),
    ] {
        let mut argv = vec!["modify"];
        argv.extend_from_slice(args);
        argv.push("l2");
        c.prereq(
            NET,
            &argv,
            "wrong_input",
            &format!("Network 'l2' has no IPv4 subnet: it cannot have {what}"),
        );
    }
}

#[test]
fn nics_on_an_l2_network_have_no_ipv4_address() {
    let c = base();
    let env = c.env_hook("instance-add", "post");
    c.ok(INST, &["add", "--net", "0:network=l2", "vm1"]);
    assert_eq!(c.inst_field("vm1", "nic.ip/0"), "-");
    assert_eq!(c.inst_field("vm1", "nic.link/0"), "br0");
    assert!(c.inst_field("vm1", "nic.mac/0").starts_with("aa:00:02:"));
    let env = env_file(&env);
    assert_eq!(env_get(&env, "GANETI_INSTANCE_NIC0_IP"), Some(""));
    assert_eq!(
        env_get(&env, "GANETI_INSTANCE_NIC0_NETWORK_NAME"),
        Some("l2")
    );
    // Empty, as the IP of a NIC without one: what every reader of the hook
    // environment (netconf::hookenv) takes for absent.
    assert_eq!(
        env_get(&env, "GANETI_INSTANCE_NIC0_NETWORK_SUBNET"),
        Some("")
    );
    assert_eq!(
        env_get(&env, "GANETI_INSTANCE_NIC0_NETWORK_SUBNET6"),
        Some("2001:db8:2::/64")
    );
    assert!(
        c.ok(NET, &["info", "l2"])
            .ends_with("  used by 1 instances:\n    vm1: 0:None\n")
    );

    // ip=pool: refused as a pool that cannot give an address (exit 1, wrong_state).
    c.prereq(
        INST,
        &["add", "--net", "0:network=l2,ip=pool", "vm2"],
        "wrong_state",
        "Network l2 has no IPv4 subnet and no address pool: NIC 0 cannot use ip=pool",
    );
    c.prereq(
        INST,
        &[
            "add",
            "--net",
            "0:network=net1,ip=pool",
            "--net",
            "1:network=l2,ip=pool",
            "vm2",
        ],
        "wrong_state",
        "Network l2 has no IPv4 subnet and no address pool: NIC 1 cannot use ip=pool",
    );
    c.prereq(
        INST,
        &["add", "--net", "0:network=l2,ip=198.51.100.5", "vm2"],
        "wrong_input",
        "Network l2 has no IPv4 subnet: NIC 0 cannot have the IP address 198.51.100.5",
    );
    c.prereq(
        INST,
        &["modify", "--net", "0:modify,ip=pool", "vm1"],
        "wrong_state",
        "Network l2 has no IPv4 subnet and no address pool: NIC 0 cannot use ip=pool",
    );
    c.prereq(
        INST,
        &["modify", "--net", "0:modify,ip=198.51.100.5", "vm1"],
        "wrong_input",
        "Network l2 has no IPv4 subnet: NIC 0 cannot have the IP address 198.51.100.5",
    );
    // A NIC keeping its address cannot move onto the L2 network; without it, it can.
    c.ok(INST, &["add", "--net", "0:network=net1,ip=pool", "vm3"]);
    c.prereq(
        INST,
        &["modify", "--net", "0:modify,network=l2", "vm3"],
        "wrong_input",
        "Network l2 has no IPv4 subnet: NIC 0 cannot have the IP address 198.51.100.2",
    );
    c.ok(
        INST,
        &["modify", "--net", "0:modify,network=l2,ip=none", "vm3"],
    );
    assert_eq!(c.inst_field("vm3", "nic.ip/0"), "-");
    assert_eq!(c.net_field("net1", "free_count"), "253");
    let r = c.cmd(CLUSTER, &["verify"]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // A NIC on an L2 network given an address by hand is named by verify (a hand edit
    // of config.data: file store only).
    if file_only("nics_on_an_l2_network_have_no_ipv4_address (hand edit)") {
        let text = c.text();
        let vm1 = text.find("name = \"vm1\"").unwrap();
        let nic = vm1 + text[vm1..].find("nics = [").unwrap();
        let mut edited = text.clone();
        edited.insert_str(nic + "nics = [\n  { ".len(), "ip = \"198.51.100.7\", ");
        std::fs::write(c.config(), &edited).unwrap();
        let r = c.cmd(CLUSTER, &["verify"]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("NIC 0 has IP 198.51.100.7, but network l2 has no IPv4 subnet"),
            "{}",
            r.stdout
        );
        std::fs::write(c.config(), &text).unwrap();
    }

    c.ok(INST, &["remove", "vm1"]);
    c.ok(INST, &["remove", "vm3"]);
    c.ok(NET, &["disconnect", "l2"]);
    c.ok(NET, &["remove", "l2"]);
}
