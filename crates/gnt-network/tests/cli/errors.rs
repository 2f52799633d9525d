//! One test per row of §6's validation table (with our deliberate fixes where they apply):
//! exact message, exit code, and config.data byte-identical after a failure.

use crate::harness::*;

/// A cluster holding net1 (192.0.2.0/24, gateway .1) so that config.data exists.
fn base() -> Cluster {
    let c = Cluster::new();
    c.add_net("net1", "192.0.2.0/24", "192.0.2.1");
    c
}

/// Ganeti requires --network; here a network without it is L2-only (tests/cli/l2.rs),
/// and only the options that need a subnet are refused without it.
#[test]
fn network_option_missing() {
    let c = base();
    c.prereq(
        NET,
        &["add", "--gateway", "192.0.2.1", "n2"],
        "wrong_input",
        "The --gateway option needs an IPv4 subnet (--network); a network without one is L2-only",
    );
}

#[test]
fn bad_ipv4_cidr_syntax() {
    let c = base();
    for bad in ["foo", "300.0.0.0/24", "2001:db8::/64", ""] {
        c.prereq(
            NET,
            &["add", "--network", bad, "n2"],
            "wrong_input",
            "Parameter 'OP_NETWORK_ADD.network' fails validation",
        );
    }
}

#[test]
fn cidr_with_host_bits_is_refused_with_a_hint() {
    // Our fix (§10.2): Ganeti 3.0 crashed with a ValueError here.
    let c = base();
    c.prereq(
        NET,
        &["add", "--network", "198.51.100.1/24", "n2"],
        "wrong_input",
        "Invalid network '198.51.100.1/24': host bits are set (did you mean 198.51.100.0/24?)",
    );
}

#[test]
fn invalid_netmask() {
    let c = base();
    c.prereq(
        NET,
        &["add", "--network", "10.0.0.0/33", "n2"],
        "wrong_input",
        "Invalid network '10.0.0.0/33': '33' is not a valid netmask",
    );
}

#[test]
fn no_prefix_is_a_slash_32_and_too_small() {
    let c = base();
    c.fails(
        NET,
        &["add", "--network", "10.0.0.0", "n2"],
        1,
        &exec_err(
            "Cannot create IP address pool for network 'n2': A network with only 1 host(s) is too small, please specify at least a /30 network",
        ),
    );
}

#[test]
fn prefix_outside_16_to_30() {
    let c = base();
    c.fails(
        NET,
        &["add", "--network", "10.0.0.0/15", "n2"],
        1,
        &exec_err(
            "Cannot create IP address pool for network 'n2': A big network with 131072 host(s) is currently not supported. please specify at most a /16 network",
        ),
    );
    c.fails(
        NET,
        &["add", "--network", "10.0.0.0/31", "n2"],
        1,
        &exec_err(
            "Cannot create IP address pool for network 'n2': A network with only 2 host(s) is too small, please specify at least a /30 network",
        ),
    );
    // The limits themselves are fine.
    c.ok(NET, &["add", "--network", "10.0.0.0/16", "big"]);
    c.ok(NET, &["add", "--network", "10.1.0.0/30", "small"]);
    assert_eq!(c.net_field("small", "free_count"), "2");
    assert_eq!(c.net_field("big", "free_count"), "65534");
}

#[test]
fn bad_gateway_syntax() {
    let c = base();
    for bad in ["foo", "2001:db8::1", "198.51.100.256"] {
        c.prereq(
            NET,
            &[
                "add",
                "--network",
                "198.51.100.0/24",
                "--gateway",
                bad,
                "n2",
            ],
            "wrong_input",
            "Parameter 'OP_NETWORK_ADD.gateway' fails validation",
        );
    }
}

#[test]
fn gateway_outside_subnet_at_add() {
    let c = base();
    c.fails(
        NET,
        &["add", "--network", "198.51.100.0/24", "--gateway", "203.0.113.1", "n2"],
        1,
        &exec_err(
            "Cannot create IP address pool for network 'n2': 198.51.100.0/24 does not contain 203.0.113.1",
        ),
    );
}

#[test]
fn gateway_is_network_or_broadcast_address_at_add() {
    let c = base();
    for gw in ["198.51.100.0", "198.51.100.255"] {
        c.fails(
            NET,
            &["add", "--network", "198.51.100.0/24", "--gateway", gw, "n2"],
            1,
            &exec_err(&format!(
                "Cannot create IP address pool for network 'n2': IP {gw} is already externally reserved"
            )),
        );
    }
}

#[test]
fn gateway_outside_subnet_at_modify() {
    let c = base();
    c.prereq(
        NET,
        &["modify", "--gateway", "203.0.113.1", "net1"],
        "wrong_input",
        "192.0.2.0/24 does not contain 203.0.113.1",
    );
}

#[test]
fn gateway_used_by_an_instance_at_modify() {
    let c = base();
    c.ok(NET, &["connect", "-N", "link=br0", "net1"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "i1"]);
    c.prereq(
        NET,
        &["modify", "--gateway", "192.0.2.2", "net1"],
        "wrong_state",
        "Gateway IP address '192.0.2.2' is already reserved",
    );
}

#[test]
fn gateway_already_externally_reserved_is_refused_up_front() {
    // Our fix (§10.5): Ganeti reserved it blindly and the job crashed in Exec.
    let c = base();
    c.ok(NET, &["modify", "--add-reserved-ips", "192.0.2.50", "net1"]);
    c.prereq(
        NET,
        &["modify", "--gateway", "192.0.2.50", "net1"],
        "wrong_state",
        "Gateway IP address '192.0.2.50' is already externally reserved; remove it from the reserved IPs first",
    );
}

#[test]
fn gateway_change_moves_the_external_reservation() {
    let c = base();
    c.ok(NET, &["modify", "--gateway", "192.0.2.254", "net1"]);
    assert_eq!(
        c.net_field("net1", "external_reservations"),
        "192.0.2.0, 192.0.2.254, 192.0.2.255"
    );
    // The same gateway again: a warning, nothing else.
    let r = c.cmd(NET, &["modify", "--gateway", "192.0.2.254", "net1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        ["Gateway is already 192.0.2.254"]
    );
}

#[test]
fn gateway_and_reserved_ips_in_one_modify() {
    let c = base();
    for opt in ["--add-reserved-ips", "--remove-reserved-ips"] {
        c.prereq(
            NET,
            &["modify", "--gateway", "192.0.2.3", opt, "192.0.2.4", "net1"],
            "wrong_input",
            "Cannot modify gateway and reserved ips at once",
        );
    }
}

#[test]
fn reserved_ip_outside_subnet_or_duplicate_at_add_is_fatal() {
    let c = base();
    c.fails(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--add-reserved-ips",
            "203.0.113.5",
            "n2",
        ],
        1,
        &exec_err(
            "Cannot reserve IP address '203.0.113.5': 198.51.100.0/24 does not contain 203.0.113.5",
        ),
    );
    c.fails(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--add-reserved-ips",
            "198.51.100.9,198.51.100.1",
            "n2",
        ],
        1,
        &exec_err(
            "Cannot reserve IP address '198.51.100.1': IP 198.51.100.1 is already externally reserved",
        ),
    );
}

#[test]
fn reserved_ip_problems_at_modify_only_warn() {
    let c = base();
    let r = c.cmd(
        NET,
        &[
            "modify",
            "--add-reserved-ips",
            "203.0.113.5,192.0.2.7,192.0.2.7",
            "net1",
        ],
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        [
            "Cannot reserve IP address 203.0.113.5: 192.0.2.0/24 does not contain 203.0.113.5",
            "Cannot reserve IP address 192.0.2.7: IP 192.0.2.7 is already externally reserved",
        ]
    );
    let r = c.cmd(
        NET,
        &[
            "modify",
            "--remove-reserved-ips",
            "192.0.2.8,192.0.2.1,192.0.2.7",
            "net1",
        ],
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        [
            "Cannot release IP address 192.0.2.8: IP 192.0.2.8 is not externally reserved",
            "Cannot unreserve Gateway's IP",
        ]
    );
    assert_eq!(
        c.net_field("net1", "external_reservations"),
        "192.0.2.0, 192.0.2.1, 192.0.2.255"
    );
}

#[test]
fn removing_network_or_broadcast_reservation_is_refused() {
    // Our fix (§10.6): Ganeti let them go, and ip=pool then handed them out.
    let c = base();
    for ips in ["192.0.2.0", "192.0.2.255", "192.0.2.0,192.0.2.255"] {
        c.prereq(
            NET,
            &["modify", "--remove-reserved-ips", ips, "net1"],
            "wrong_input",
            &format!(
                "Cannot unreserve the network or broadcast address of 192.0.2.0/24: {}",
                ips.replace(',', ", ")
            ),
        );
    }
    // Also when mixed with a legitimate release: nothing changes.
    c.ok(NET, &["modify", "--add-reserved-ips", "192.0.2.9", "net1"]);
    c.prereq(
        NET,
        &[
            "modify",
            "--remove-reserved-ips",
            "192.0.2.9,192.0.2.255",
            "net1",
        ],
        "wrong_input",
        "Cannot unreserve the network or broadcast address of 192.0.2.0/24: 192.0.2.255",
    );
}

#[test]
fn invalid_ip_in_reserved_list() {
    let c = base();
    c.prereq(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--add-reserved-ips",
            "198.51.100.4,x",
            "n2",
        ],
        "wrong_input",
        "Parameter 'OP_NETWORK_ADD.add_reserved_ips' fails validation",
    );
    c.prereq(
        NET,
        &["modify", "--add-reserved-ips", "x", "net1"],
        "wrong_input",
        "Parameter 'OP_NETWORK_SET_PARAMS.add_reserved_ips' fails validation",
    );
    c.prereq(
        NET,
        &["modify", "--remove-reserved-ips", "1.2.3", "net1"],
        "wrong_input",
        "Parameter 'OP_NETWORK_SET_PARAMS.remove_reserved_ips' fails validation",
    );
}

#[test]
fn network6_with_host_bits() {
    let c = base();
    c.prereq(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--network6",
            "2001:db8::1/64",
            "n2",
        ],
        "wrong_input",
        "Invalid IPv6 network '2001:db8::1/64': host bits are set (did you mean 2001:db8::/64?)",
    );
    c.prereq(
        NET,
        &["modify", "--network6", "2001:db8::1/64", "net1"],
        "wrong_input",
        "Invalid IPv6 network '2001:db8::1/64': host bits are set (did you mean 2001:db8::/64?)",
    );
}

#[test]
fn gateway6_outside_network6_and_not_link_local() {
    let c = base();
    c.prereq(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--network6",
            "2001:db8:1::/64",
            "--gateway6",
            "2001:db8:2::1",
            "n2",
        ],
        "wrong_input",
        "IPv6 gateway 2001:db8:2::1 is neither inside the IPv6 network 2001:db8:1::/64 nor link-local",
    );
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--network6",
            "2001:db8:1::/64",
            "--gateway6",
            "fe80::1",
            "n2",
        ],
    );
    c.prereq(
        NET,
        &["modify", "--gateway6", "2001:db8:2::1", "n2"],
        "wrong_input",
        "IPv6 gateway 2001:db8:2::1 is neither inside the IPv6 network 2001:db8:1::/64 nor link-local",
    );
}

#[test]
fn empty_network_name() {
    let c = base();
    c.prereq(
        NET,
        &["add", "--network", "198.51.100.0/24", ""],
        "wrong_input",
        "Parameter 'OP_NETWORK_ADD.network_name' fails validation",
    );
}

#[test]
fn duplicate_name_at_add() {
    let c = base();
    let uuid = c.net_field("net1", "uuid");
    c.prereq(
        NET,
        &["add", "--network", "198.51.100.0/24", "net1"],
        "already_exists",
        &format!("Desired network name 'net1' already exists as a network (UUID: {uuid})"),
    );
}

#[test]
fn unknown_network_anywhere() {
    let c = base();
    let missing = "Network 'nope' not found";
    c.prereq(
        NET,
        &["modify", "--gateway", "1.2.3.4", "nope"],
        "unknown_entity",
        missing,
    );
    c.prereq(NET, &["remove", "nope"], "unknown_entity", missing);
    c.prereq(NET, &["rename", "nope", "x"], "unknown_entity", missing);
    c.prereq(
        NET,
        &["connect", "-N", "link=br0", "nope"],
        "unknown_entity",
        missing,
    );
    c.prereq(NET, &["disconnect", "nope"], "unknown_entity", missing);
    c.prereq(NET, &["add-tags", "nope", "a"], "unknown_entity", missing);
    c.prereq(NET, &["list-tags", "nope"], "unknown_entity", missing);
    c.prereq(
        INST,
        &["add", "--net", "0:ip=pool,network=nope", "i1"],
        "unknown_entity",
        missing,
    );
    // Queries use Ganeti's query wording.
    c.prereq(
        NET,
        &["list", "nope"],
        "unknown_entity",
        "Network name nope not found",
    );
    c.prereq(
        NET,
        &["info", "nope"],
        "unknown_entity",
        "Network name nope not found",
    );
}

#[test]
fn unknown_group() {
    let c = base();
    let missing = "Node group 'g9' not found";
    c.prereq(
        NET,
        &["connect", "-N", "link=br0", "net1", "g9"],
        "unknown_entity",
        missing,
    );
    c.prereq(
        NET,
        &["disconnect", "net1", "g9"],
        "unknown_entity",
        missing,
    );
}

#[test]
fn malformed_mac_prefix() {
    let c = base();
    for bad in [
        "xxx",
        "zz:00:00",
        "aa:bb",
        "aa:bb:cc:dd:ee:ff",
        "aa:bb:cc:dd:ee:ff:00",
        "00:11:",
    ] {
        c.prereq(
            NET,
            &["add", "--network", "198.51.100.0/24", "-m", bad, "n2"],
            "wrong_input",
            &format!("Invalid MAC address prefix '{bad}'"),
        );
        c.prereq(
            NET,
            &["modify", "--mac-prefix", bad, "net1"],
            "wrong_input",
            &format!("Invalid MAC address prefix '{bad}'"),
        );
    }
    c.prereq(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--mac-prefix",
            "",
            "n2",
        ],
        "wrong_input",
        "Parameter 'OP_NETWORK_ADD.mac_prefix' fails validation",
    );
    c.prereq(
        NET,
        &["modify", "--mac-prefix", "", "net1"],
        "wrong_input",
        "Parameter 'OP_NETWORK_SET_PARAMS.mac_prefix' fails validation",
    );
    // Valid prefixes are lower-cased.
    c.ok(NET, &["modify", "-m", "00:AA:11", "net1"]);
    assert_eq!(c.net_field("net1", "mac_prefix"), "00:aa:11");
}

#[test]
fn overlapping_subnet_refused_unless_no_conflicts_check() {
    // Our fix (§10.1): Ganeti never checked this.
    let c = base();
    for (cidr, net) in [
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.128/25", "192.0.2.128/25"),
        ("192.0.0.0/16", "192.0.0.0/16"),
    ] {
        c.prereq(
            NET,
            &["add", "--network", cidr, "n2"],
            "wrong_state",
            &format!(
                "Network {net} overlaps with network 'net1' (192.0.2.0/24); use --no-conflicts-check to add it anyway"
            ),
        );
    }
    c.ok(
        NET,
        &[
            "add",
            "--no-conflicts-check",
            "--network",
            "192.0.2.128/25",
            "n2",
        ],
    );
    c.ok(NET, &["add", "--network", "192.0.3.0/24", "n3"]);
}

#[test]
fn the_ipv4_subnet_cannot_be_modified() {
    let c = base();
    let before = c.bytes();
    let r = c.cmd(NET, &["modify", "--network", "198.51.100.0/24", "net1"]);
    assert_eq!(r.code, 2, "a usage error");
    assert!(r.stderr.contains("--network"), "{}", r.stderr);
    assert!(c.bytes() == before);
    c.fails(
        NET,
        &["modify", "net1"],
        1,
        "Please give at least one of the parameters.\n",
    );
}

#[test]
fn remove_a_connected_network() {
    let c = base();
    c.ok(GROUP, &["add", "g2"]);
    c.ok(NET, &["connect", "-N", "link=br0", "net1"]);
    let r = c.prereq(
        NET,
        &["remove", "net1"],
        "wrong_state",
        "Network still connected",
    );
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        ["Network 'net1' is connected to the following node groups: default, g2"]
    );
    c.ok(NET, &["disconnect", "net1"]);
    c.ok(NET, &["remove", "net1"]);
    assert_eq!(c.ok(NET, &["list", "--no-headers"]), "");
}

#[test]
fn remove_a_network_used_by_instances_needs_disconnect_first() {
    let c = base();
    c.ok(NET, &["connect", "-N", "link=br0", "net1"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "i1"]);
    c.prereq(
        NET,
        &["remove", "net1"],
        "wrong_state",
        "Network still connected",
    );
    let r = c.prereq(
        NET,
        &["disconnect", "net1"],
        "wrong_state",
        "Conflicting IP addresses found;  remove/modify the corresponding network interfaces",
    );
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        [
            "IP addresses from network 'net1', which is about to disconnect from node group 'default', are in use: i1: nic0/192.0.2.2"
        ]
    );
}

#[test]
fn connect_with_instance_ips_in_the_subnet() {
    let c = base();
    c.ok(INST, &["add", "--net", "0:ip=192.0.2.77,link=br9", "i1"]);
    let r = c.prereq(
        NET,
        &["connect", "-N", "link=br0", "net1", "default"],
        "wrong_state",
        "Conflicting IP addresses found;  remove/modify the corresponding network interfaces",
    );
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        [
            "IP addresses from network 'net1', which is about to connect to node group 'default', are in use: i1: nic0/192.0.2.77"
        ]
    );
    c.ok(
        NET,
        &[
            "connect",
            "--no-conflicts-check",
            "-N",
            "link=br0",
            "net1",
            "default",
        ],
    );
    assert_eq!(
        c.net_field("net1", "group_list"),
        "default (bridged, br0, )"
    );
}

#[test]
fn disconnect_conflict_cannot_be_skipped() {
    let c = base();
    c.ok(NET, &["connect", "-N", "link=br0", "net1"]);
    c.ok(INST, &["add", "--net", "0:network=net1", "i1"]);
    // A NIC on the network without an IP also blocks (and prints None).
    let r = c.prereq(
        NET,
        &["disconnect", "net1", "default"],
        "wrong_state",
        "Conflicting IP addresses found;  remove/modify the corresponding network interfaces",
    );
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        [
            "IP addresses from network 'net1', which is about to disconnect from node group 'default', are in use: i1: nic0/None"
        ]
    );
    let before = c.bytes();
    let r = c.cmd(NET, &["disconnect", "--no-conflicts-check", "net1"]);
    assert_eq!(r.code, 2, "no such option: {}", r.stderr);
    assert!(c.bytes() == before);
}

#[test]
fn invalid_connect_mode_including_pool() {
    // mode=pool is our fix (§10.4): Ganeti's NIC mode list let it through.
    let c = base();
    for m in ["pool", "000invalid", "Bridged"] {
        c.prereq(
            NET,
            &["connect", "-N", &format!("mode={m},link=br0"), "net1"],
            "wrong_input",
            "Parameter 'OP_NETWORK_CONNECT.network_mode' fails validation",
        );
    }
    // The old positional form does not take `pool` as a mode either: it is then a group.
    c.prereq(
        NET,
        &["connect", "net1", "pool", "br0"],
        "unknown_entity",
        "Node group 'pool' not found",
    );
}

#[test]
fn bridged_connect_with_empty_link() {
    let c = base();
    c.prereq(
        NET,
        &["connect", "-N", "mode=bridged,link=", "net1"],
        "wrong_input",
        "Parameter 'OP_NETWORK_CONNECT.network_link' fails validation",
    );
}

#[test]
fn already_connected_or_not_connected_only_warn() {
    let c = base();
    c.ok(
        NET,
        &["connect", "-N", "mode=routed,link=rt1", "net1", "default"],
    );
    let before = c.serial();
    let r = c.cmd(
        NET,
        &["connect", "-N", "mode=routed,link=rt1", "net1", "default"],
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        ["Network 'net1' is already mapped to group 'default'"]
    );
    c.ok(GROUP, &["add", "g2"]);
    let r = c.cmd(NET, &["disconnect", "net1", "g2"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        ["Network 'net1' is not mapped to group 'g2'"]
    );
    assert_eq!(c.net_field("net1", "group_list"), "default (routed, rt1, )");
    assert!(c.serial() > before);
}

#[test]
fn reconnect_with_other_params_updates_group_and_nics() {
    // Our fix (issue #1552, §10.12): Ganeti silently kept the old parameters.
    let c = base();
    c.ok(NET, &["connect", "-N", "mode=bridged,link=br0", "net1"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "i1"]);
    c.ok(
        INST,
        &["add", "--net", "0:ip=198.51.100.5,link=other", "i2"],
    );
    let r = c.cmd(
        NET,
        &["connect", "-N", "mode=routed,link=rt5,vlan=.7", "net1"],
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    assert_eq!(
        c.net_field("net1", "group_list"),
        "default (routed, rt5, .7)"
    );
    assert_eq!(c.inst_field("i1", "nic.modes"), "routed");
    assert_eq!(c.inst_field("i1", "nic.links"), "rt5");
    // Ganeti shows a VLAN only for openvswitch NICs; the NIC holds it all the same.
    assert_eq!(c.inst_field("i1", "nic.vlans"), "[None]");
    assert_eq!(nic_vlans(&c, "i1"), [".7"]);
    // A NIC on no network keeps its own parameters.
    assert_eq!(c.inst_field("i2", "nic.links"), "other");
}

#[test]
fn reconnect_changes_only_the_given_parameters() {
    let c = base();
    c.ok(
        NET,
        &["connect", "-N", "mode=routed,link=rt5,vlan=.7", "net1"],
    );
    // No -N: nothing to change, Ganeti's warning, the connection stays.
    let r = c.cmd(NET, &["connect", "net1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("WARNING: Network 'net1' is already mapped to group 'default'"),
        "{}",
        r.stdout
    );
    assert_eq!(
        c.net_field("net1", "group_list"),
        "default (routed, rt5, .7)"
    );
    // Only the link given: mode stays, vlan too.
    c.ok(NET, &["connect", "-N", "link=rt6", "net1"]);
    assert_eq!(
        c.net_field("net1", "group_list"),
        "default (routed, rt6, .7)"
    );
}

#[test]
fn invalid_tags() {
    let c = base();
    let tag_err = |m: &str| format!("Failure: invalid tag(s) given:\n{m}\n");
    c.fails(
        NET,
        &["add-tags", "net1", "a b"],
        1,
        &tag_err("Tag contains invalid characters"),
    );
    c.fails(
        NET,
        &["add-tags", "net1", &"x".repeat(129)],
        1,
        &tag_err("Tag too long (>128 characters)"),
    );
    c.fails(
        NET,
        &["add-tags", "net1", ""],
        1,
        &tag_err("Tags cannot be empty"),
    );
    // One invalid tag aborts the whole operation.
    c.fails(
        NET,
        &["add-tags", "net1", "good", "b@d!"],
        1,
        &tag_err("Tag contains invalid characters"),
    );
    c.fails(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--tags",
            "ok,no way",
            "n2",
        ],
        1,
        &tag_err("Tag contains invalid characters"),
    );
    assert_eq!(c.ok(NET, &["list-tags", "net1"]), "");
    let many: Vec<String> = (0..4097).map(|i| format!("t{i}")).collect();
    let mut args = vec!["add-tags", "net1"];
    args.extend(many.iter().map(String::as_str));
    c.fails(NET, &args, 1, &tag_err("Too many tags"));
}

#[test]
fn none_clears_gateway_network6_gateway6_and_mac_prefix() {
    // Our fix (§10.3): Ganeti 3.0 refused `none` for all but the MAC prefix.
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--network6",
            "2001:db8::/64",
            "--gateway6",
            "2001:db8::1",
            "-m",
            "aa:bb:cc",
            "n",
        ],
    );
    c.ok(
        NET,
        &[
            "modify",
            "--gateway",
            "none",
            "--network6",
            "none",
            "--gateway6",
            "none",
            "-m",
            "none",
            "n",
        ],
    );
    assert_eq!(
        c.ok(
            NET,
            &[
                "list",
                "--no-headers",
                "--separator",
                "|",
                "-o",
                "gateway,network6,gateway6,mac_prefix",
                "n"
            ]
        ),
        "-|-|-|-\n"
    );
    // The old gateway's address went back to the pool.
    assert_eq!(
        c.net_field("n", "external_reservations"),
        "198.51.100.0, 198.51.100.255"
    );
    assert_eq!(c.net_field("n", "free_count"), "254");
    let info = c.ok(NET, &["info", "n"]);
    assert!(
        info.contains(
            "  Gateway: None\n  IPv6 Subnet: None\n  IPv6 Gateway: None\n  Mac Prefix: None\n"
        ),
        "{info}"
    );
}
