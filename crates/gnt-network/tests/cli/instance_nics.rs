//! §7 (7.1–7.4) and the NIC cases of Ganeti's TestLUInstanceCreate / TestLUInstanceSetParams
//! (§12.2), through `gnt-instance add`, `modify` and `remove`.

use crate::harness::*;

/// net1 = 192.0.2.0/24 (gateway .1) connected to `default` as bridged/br0; node1 in
/// `default`; net2 = 198.51.100.0/24 (MAC prefix be:00:00) not connected.
fn fixture() -> Cluster {
    let c = Cluster::new();
    c.add_net("net1", "192.0.2.0/24", "192.0.2.1");
    c.ok(
        NET,
        &["connect", "-N", "mode=bridged,link=br0", "net1", "default"],
    );
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "-m",
            "be:00:00",
            "net2",
        ],
    );
    c.ok(NODE, &["add", "--primary-ip", "203.0.113.10", "node1"]);
    c
}

fn add(c: &Cluster, name: &str, nets: &[&str]) -> Run {
    let mut args = vec!["add"];
    for n in nets {
        args.push("--net");
        args.push(n);
    }
    args.push(name);
    c.cmd(INST, &args)
}

const INVAL: &str = "wrong_input";

// ---- create (§7.2, TestLUInstanceCreate) ----

#[test]
fn create_nic_with_network_and_mode_or_link() {
    let c = fixture();
    for spec in [
        "0:network=net1,mode=bridged",
        "0:network=net1,link=br1",
        "0:network=net1,mode=routed,link=x",
    ] {
        c.prereq(
            INST,
            &["add", "--net", spec, "i1"],
            INVAL,
            "If network is given, no mode or link is allowed to be passed",
        );
    }
}

#[test]
fn create_auto_ip_without_name_check() {
    let c = fixture();
    // This suite never resolves instance names, so `auto` has nothing to take.
    c.prereq(
        INST,
        &["add", "--net", "0:ip=auto", "i1"],
        INVAL,
        "IP address set to auto but name checks have been skipped",
    );
    c.fails(
        INST,
        &["add", "--no-name-check", "--net", "0:ip=auto", "i1"],
        1,
        &format!(
            "Warning: ignoring options that are not about networking: --no-name-check\n{}",
            prereq(
                INVAL,
                "IP address set to auto but name checks have been skipped"
            )
        ),
    );
}

#[test]
fn create_pool_ip_without_network() {
    let c = fixture();
    for spec in ["0:ip=pool", "0:ip=pool,network=none"] {
        c.prereq(
            INST,
            &["add", "--net", spec, "i1"],
            INVAL,
            "if ip=pool, parameter network must be passed too",
        );
    }
}

#[test]
fn keywords_are_case_insensitive_as_in_ganeti() {
    let c = fixture();
    c.ok(
        INST,
        &["add", "--net", "0:ip=POOL,network=net1,name=NONE", "i1"],
    );
    assert_eq!(c.inst_field("i1", "nic.ips"), "192.0.2.2");
    assert_eq!(c.inst_field("i1", "nic.names"), "[None]");
    c.ok(
        INST,
        &["add", "--net", "0:ip=None,network=None,link=brx", "i2"],
    );
    assert_eq!(c.inst_field("i2", "nic.networks"), "None");
    c.ok(INST, &["modify", "--net", "0:ip=Pool", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.ips"), "192.0.2.3");
    c.prereq(
        INST,
        &["modify", "--net", "add:ip=Pool,network=NONE", "i1"],
        INVAL,
        "If ip=pool, parameter network cannot be none",
    );
}

#[test]
fn create_valid_and_invalid_ips_without_network() {
    let c = fixture();
    c.ok(INST, &["add", "--net", "0:ip=203.0.113.7", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.ips"), "203.0.113.7");
    assert_eq!(c.inst_field("i1", "nic.networks"), "None");
    // IPv6 literals are accepted syntactically.
    c.ok(INST, &["add", "--net", "0:ip=2001:db8::7", "i2"]);
    for bad in ["foo", "192.0.2.256", "1.2.3"] {
        c.prereq(
            INST,
            &["add", "--net", &format!("0:ip={bad}"), "i3"],
            INVAL,
            &format!("Invalid IP address '{bad}'"),
        );
    }
}

#[test]
fn create_routed_nic_needs_an_ip_without_network() {
    let c = fixture();
    for spec in ["0:mode=routed,link=rt", "0:mode=routed,network=none"] {
        c.prereq(
            INST,
            &["add", "--net", spec, "i1"],
            INVAL,
            "Routed nic mode requires an ip address if not attached to a network",
        );
    }
    c.ok(
        INST,
        &["add", "--net", "0:mode=routed,link=rt,ip=203.0.113.9", "i1"],
    );
    assert_eq!(c.inst_field("i1", "nic.modes"), "routed");
}

#[test]
fn create_macs_explicit_generated_invalid_and_in_use() {
    let c = fixture();
    c.ok(INST, &["add", "--net", "0:mac=AA:00:00:12:34:56", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.macs"), "aa:00:00:12:34:56");
    c.ok(INST, &["add", "--net", "0:mac=generate", "i2"]);
    let m = c.inst_field("i2", "nic.macs");
    assert!(
        m.starts_with("aa:00:00:") && m != "aa:00:00:12:34:56",
        "{m}"
    );
    for bad in [
        "zz:00:00:00:00:00",
        "aa:00:00:00:00",
        "aa:00:00:00:00:00:00",
        "xxx",
    ] {
        c.prereq(
            INST,
            &["add", "--net", &format!("0:mac={bad}"), "i3"],
            INVAL,
            &format!("Invalid MAC address '{bad}'"),
        );
    }
    c.prereq(
        INST,
        &["add", "--net", "0:mac=aa:00:00:12:34:56", "i3"],
        "resource_not_unique",
        "MAC address aa:00:00:12:34:56 already in use in cluster",
    );
    // Within one instance as well.
    c.prereq(
        INST,
        &[
            "add",
            "--net",
            "0:mac=02:00:00:00:00:01",
            "--net",
            "1:mac=02:00:00:00:00:01",
            "i3",
        ],
        "resource_not_unique",
        "MAC address 02:00:00:00:00:01 already in use in cluster",
    );
}

#[test]
fn create_mac_prefix_of_network_else_cluster() {
    let c = fixture();
    c.ok(NET, &["connect", "-N", "link=br2", "net2"]);
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:ip=pool,network=net2",
            "--net",
            "1:network=net1",
            "--net",
            "2:link=x",
            "i1",
        ],
    );
    let macs = c.inst_field("i1", "nic.macs");
    let m: Vec<&str> = macs.split(',').collect();
    assert!(m[0].starts_with("be:00:00:"), "{macs}");
    assert!(m[1].starts_with("aa:00:00:"), "{macs}");
    assert!(m[2].starts_with("aa:00:00:"), "{macs}");
}

#[test]
fn create_valid_nic_params_and_vlans() {
    let c = fixture();
    c.ok(INST, &["add", "--net", "0:mode=bridged,link=br1", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.links"), "br1");
    c.ok(
        INST,
        &["add", "--net", "0:mode=openvswitch,link=ovs0,vlan=1", "i2"],
    );
    assert_eq!(
        c.ok(
            INST,
            &[
                "list",
                "--no-headers",
                "--separator",
                "|",
                "-o",
                "nic.modes,nic.links,nic.vlans",
                "i2"
            ]
        ),
        "openvswitch|ovs0|['.1']\n"
    );
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:mode=openvswitch,link=ovs0,vlan=.5:6:7",
            "i3",
        ],
    );
    assert_eq!(c.inst_field("i3", "nic.vlans"), "['.5:6:7']");
    for bad in [".pinky", ":bunny", ":1:pinky", "bunny"] {
        c.prereq(
            INST,
            &[
                "add",
                "--net",
                &format!("0:mode=openvswitch,link=ovs0,vlan={bad}"),
                "i4",
            ],
            INVAL,
            &format!("Specified VLAN parameter is invalid : {bad}"),
        );
    }
    // Defaults: the cluster's NIC parameters.
    c.ok(INST, &["add", "i5"]);
    assert_eq!(c.inst_field("i5", "nic.links"), "xen-br0");
    assert_eq!(c.inst_field("i5", "nic.modes"), "bridged");
    // An invalid mode (and `pool`, which Ganeti's mode list let through) fails Ganeti's
    // CheckParameterSyntax (testNICParameterSyntaxCheck) with its text; Ganeti raised a
    // ConfigurationError ("Corrupt configuration file", exit 2), which blamed config.data
    // for a command-line mistake, so here it is wrong_input.
    for m in ["pool", "000invalid"] {
        c.prereq(
            INST,
            &["add", "--net", &format!("0:mode={m},ip=203.0.113.5"), "i6"],
            INVAL,
            &format!("Invalid NIC mode '{m}'"),
        );
    }
    c.ok(INST, &["add", "--net", "0:link=brm", "i6"]);
    c.prereq(
        INST,
        &["modify", "--net", "0:mode=pool", "i6"],
        INVAL,
        "Invalid NIC mode 'pool'",
    );
}

#[test]
fn create_bridged_with_empty_link_is_refused_as_wrong_input() {
    let c = fixture();
    c.prereq(
        INST,
        &["add", "--net", "0:mode=bridged,link=", "i1"],
        INVAL,
        "Missing bridged NIC link",
    );
}

#[test]
fn create_nic_names() {
    let c = fixture();
    c.ok(
        INST,
        &["add", "--net", "0:name=none", "--net", "1:name=eth-a", "i1"],
    );
    assert_eq!(c.inst_field("i1", "nic.names"), "[None, 'eth-a']");
    c.prereq(
        INST,
        &["add", "--net", "0:name=a", "--net", "1:name=a", "i2"],
        "resource_not_unique",
        "NIC name 'a' already used",
    );
    c.prereq(
        INST,
        &["add", "--net", "0:name=42", "i2"],
        INVAL,
        "Invalid name '42'. Purely numeric NIC names are not allowed",
    );
}

#[test]
fn create_ip_inside_a_connected_network_but_nic_without_it() {
    let c = fixture();
    c.prereq(
        INST,
        &["add", "--net", "0:ip=192.0.2.9", "i1"],
        "wrong_state",
        "The requested IP address (192.0.2.9) belongs to network net1, but the target NIC does not.",
    );
    // Networks not connected to the group do not count; --no-conflicts-check skips it.
    c.ok(INST, &["add", "--net", "0:ip=198.51.100.9", "i1"]);
    c.ok(
        INST,
        &[
            "add",
            "--no-conflicts-check",
            "--net",
            "0:ip=192.0.2.9",
            "i2",
        ],
    );
    assert_eq!(
        c.net_field("net1", "free_count"),
        "253",
        "a NIC without network takes nothing"
    );
}

#[test]
fn create_pool_ip_on_connected_and_unconnected_network() {
    let c = fixture();
    let r = add(&c, "i1", &["0:ip=pool,network=net1"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "INFO"),
        [
            "NIC/0 inherits netparams ['bridged', 'br0', '']",
            "Chose IP 192.0.2.2 from network net1"
        ]
    );
    c.prereq(
        INST,
        &["add", "--net", "0:ip=pool,network=net2", "i2"],
        INVAL,
        "No netparams found for network net2. Probably not connected to node group 'default'",
    );
    c.prereq(
        INST,
        &[
            "add",
            "-n",
            "node1",
            "--net",
            "0:ip=pool,network=net2",
            "i2",
        ],
        INVAL,
        "No netparams found for network net2. Probably not connected to node's node1 nodegroup",
    );
    // The group's connection decides, not another group's.
    c.ok(GROUP, &["add", "g2"]);
    c.ok(NET, &["connect", "-N", "link=br2", "net2", "g2"]);
    c.prereq(
        INST,
        &["add", "--net", "0:ip=pool,network=net2", "i2"],
        INVAL,
        "No netparams found for network net2. Probably not connected to node group 'default'",
    );
    c.ok(
        INST,
        &["add", "-g", "g2", "--net", "0:ip=pool,network=net2", "i2"],
    );
    assert_eq!(c.inst_field("i2", "nic.ips"), "198.51.100.1");
    assert_eq!(c.inst_field("i2", "nic.links"), "br2");
}

#[test]
fn create_explicit_ip_in_network() {
    let c = fixture();
    c.ok(
        INST,
        &["add", "--net", "0:ip=192.0.2.50,network=net1", "i1"],
    );
    assert_eq!(c.net_field("net1", "free_count"), "252");
    let taken =
        |ip: &str| format!("IP address {ip} already in use or does not belong to network net1");
    // Outside the network (testIpNotInNetwork), used by an instance, externally reserved.
    for ip in [
        "203.0.113.1",
        "192.0.2.50",
        "192.0.2.1",
        "192.0.2.0",
        "192.0.2.255",
    ] {
        c.prereq(
            INST,
            &["add", "--net", &format!("0:ip={ip},network=net1"), "i2"],
            "resource_not_unique",
            &taken(ip),
        );
    }
    // --no-conflicts-check allows an externally reserved address, never a used one.
    c.prereq(
        INST,
        &[
            "add",
            "--no-conflicts-check",
            "--net",
            "0:ip=192.0.2.50,network=net1",
            "i2",
        ],
        "resource_not_unique",
        &taken("192.0.2.50"),
    );
    c.ok(
        INST,
        &[
            "add",
            "--no-conflicts-check",
            "--net",
            "0:ip=192.0.2.1,network=net1",
            "i2",
        ],
    );
    assert_eq!(
        c.net_field("net1", "reserved_count"),
        "4",
        "the gateway counts once"
    );
}

#[test]
fn create_nic_on_network_without_ip() {
    let c = fixture();
    c.ok(INST, &["add", "--net", "0:network=net1", "i1"]);
    assert_eq!(
        c.ok(
            INST,
            &[
                "list",
                "--no-headers",
                "--separator",
                "|",
                "-o",
                "nic.ips,nic.networks.names,nic.links",
                "i1"
            ]
        ),
        "None|['net1']|br0\n"
    );
    assert_eq!(c.net_field("net1", "free_count"), "253");
    assert!(c.ok(NET, &["info", "net1"]).contains("    i1: 0:None\n"));
}

#[test]
fn create_pool_exhausted() {
    let c = fixture();
    c.add_net("tiny", "10.9.9.0/30", "10.9.9.1");
    c.ok(NET, &["connect", "-N", "link=brt", "tiny"]);
    c.prereq(
        INST,
        &[
            "add",
            "--net",
            "0:ip=pool,network=tiny",
            "--net",
            "1:ip=pool,network=tiny",
            "i1",
        ],
        "wrong_state",
        "Unable to get a free IP for NIC 1 from the address pool",
    );
    c.ok(INST, &["add", "--net", "0:ip=pool,network=tiny", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.ips"), "10.9.9.2");
    c.prereq(
        INST,
        &["add", "--net", "0:ip=pool,network=tiny", "i2"],
        "wrong_state",
        "Unable to get a free IP for NIC 0 from the address pool",
    );
}

#[test]
fn create_at_most_eight_nics() {
    let c = fixture();
    let eight: Vec<String> = (0..8).map(|i| format!("{i}:link=br{i}")).collect();
    let refs: Vec<&str> = eight.iter().map(String::as_str).collect();
    let r = add(&c, "i1", &refs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(c.inst_field("i1", "nic.count"), "8");
    c.prereq(
        INST,
        &["add", "--net", "8:link=br8", "i2"],
        INVAL,
        "Instance has too many network interfaces (9), cannot add more",
    );
}

#[test]
fn create_duplicate_instance_name() {
    let c = fixture();
    c.ok(INST, &["add", "i1"]);
    c.prereq(
        INST,
        &["add", "i1"],
        "already_exists",
        "Instance 'i1' is already in the cluster",
    );
}

// ---- modify (§7.3, TestLUInstanceSetParams) ----

/// i1 with nic0 = pool address on net1 (192.0.2.2) and nic1 = plain bridged br9.
fn with_instance() -> Cluster {
    let c = fixture();
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:ip=pool,network=net1",
            "--net",
            "1:link=br9",
            "i1",
        ],
    );
    c
}

#[test]
fn modify_add_nic_cases() {
    let c = with_instance();
    for spec in ["add:ip=pool", "add:ip=pool,network=none"] {
        c.prereq(
            INST,
            &["modify", "--net", spec, "i1"],
            INVAL,
            "If ip=pool, parameter network cannot be none",
        );
    }
    c.prereq(
        INST,
        &["modify", "--net", "add:ip=foo", "i1"],
        INVAL,
        "Invalid IP address 'foo'",
    );
    c.ok(INST, &["modify", "--net", "add:ip=pool,network=net1", "i1"]);
    c.ok(INST, &["modify", "--net", "add", "i1"]);
    c.ok(INST, &["modify", "--net", "add:ip=203.0.113.40", "i1"]);
    assert_eq!(
        c.inst_field("i1", "nic.ips"),
        "192.0.2.2,None,192.0.2.3,None,203.0.113.40"
    );
    assert_eq!(c.inst_field("i1", "nic.count"), "5");
    c.ok(
        INST,
        &[
            "modify", "--net", "add", "--net", "add", "--net", "add", "i1",
        ],
    );
    c.prereq(
        INST,
        &["modify", "--net", "add", "i1"],
        INVAL,
        "Instance has too many network interfaces (9), cannot add more",
    );
}

#[test]
fn modify_attach_and_detach_are_not_supported() {
    let c = with_instance();
    c.prereq(
        INST,
        &["modify", "--net", "0:attach", "i1"],
        INVAL,
        "Attach operation is not supported for NICs",
    );
    c.prereq(
        INST,
        &["modify", "--net", "0:detach", "i1"],
        INVAL,
        "Detach operation is not supported for NICs",
    );
}

#[test]
fn modify_routed_without_ip() {
    let c = with_instance();
    c.prereq(
        INST,
        &["modify", "--net", "1:modify,mode=routed", "i1"],
        INVAL,
        "Cannot set the NIC IP address to None on a routed NIC if not attached to a network",
    );
    c.ok(
        INST,
        &[
            "modify",
            "--net",
            "1:modify,mode=routed,ip=203.0.113.3",
            "i1",
        ],
    );
    c.prereq(
        INST,
        &["modify", "--net", "1:ip=none", "i1"],
        INVAL,
        "Cannot set the NIC IP address to None on a routed NIC if not attached to a network",
    );
}

#[test]
fn modify_mac() {
    let c = with_instance();
    c.ok(INST, &["modify", "--net", "1:mac=02:11:22:33:44:55", "i1"]);
    assert!(
        c.inst_field("i1", "nic.macs")
            .ends_with(",02:11:22:33:44:55")
    );
    c.prereq(
        INST,
        &["modify", "--net", "0:mac=auto", "i1"],
        INVAL,
        "'auto' is not a valid MAC address when modifying an existing NIC",
    );
    c.ok(INST, &["add", "--net", "0:mac=02:00:00:00:00:99", "i2"]);
    c.prereq(
        INST,
        &["modify", "--net", "1:mac=02:00:00:00:00:99", "i1"],
        "resource_not_unique",
        "MAC address '02:00:00:00:00:99' already in use in cluster",
    );
    c.prereq(
        INST,
        &["modify", "--net", "1:mac=nope", "i1"],
        INVAL,
        "Invalid MAC address 'nope'",
    );
    let before = c.inst_field("i1", "nic.macs");
    c.ok(INST, &["modify", "--net", "0:mac=generate", "i1"]);
    let after = c.inst_field("i1", "nic.macs");
    assert_ne!(before.split(',').next(), after.split(',').next());
    assert!(after.starts_with("aa:00:00:"));
}

#[test]
fn modify_pool_ip_without_network() {
    let c = with_instance();
    c.prereq(
        INST,
        &["modify", "--net", "1:ip=pool", "i1"],
        INVAL,
        "ip=pool, but no network found",
    );
}

#[test]
fn modify_new_pool_ip_releases_the_old_one() {
    // Ganeti generates the new address before releasing the old one, so `ip=pool` gives
    // the NIC a different address.
    let c = with_instance();
    c.ok(NET, &["modify", "--add-reserved-ips", "192.0.2.3", "net1"]);
    let r = c.cmd(INST, &["modify", "--net", "0:ip=pool", "i1"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "INFO"),
        ["Chose IP 192.0.2.4 from network net1"]
    );
    assert_eq!(c.inst_field("i1", "nic.ips"), "192.0.2.4,None");
    assert_eq!(c.net_field("net1", "free_count"), "251");
    // The old one is free again: the next allocation takes it.
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "i2"]);
    assert_eq!(c.inst_field("i2", "nic.ips"), "192.0.2.2");
}

#[test]
fn modify_repeating_the_current_ip_is_no_change() {
    let c = with_instance();
    let map = c.net_field("net1", "map");
    c.ok(INST, &["modify", "--net", "0:ip=192.0.2.2", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.ips"), "192.0.2.2,None");
    assert_eq!(c.net_field("net1", "free_count"), "252");
    assert_eq!(c.net_field("net1", "map"), map);
    // ...so mode or link may not come with it.
    c.prereq(
        INST,
        &["modify", "--net", "0:ip=192.0.2.2,link=br7", "i1"],
        INVAL,
        "Not allowed to change link or mode of a NIC that is connected to a network",
    );
}

#[test]
fn modify_set_network_moves_ip_and_mac_prefix() {
    // testModifyNicSetNet: the NIC with 198.51.100.2 moves to another network on the same
    // subnet whose MAC prefix differs.
    let c = fixture();
    c.ok(
        NET,
        &[
            "add",
            "--no-conflicts-check",
            "--network",
            "198.51.100.0/24",
            "netA",
        ],
    );
    c.ok(NET, &["connect", "-N", "link=brA", "netA"]);
    c.ok(NET, &["connect", "-N", "mode=routed,link=rtB", "net2"]);
    c.ok(
        INST,
        &["add", "--net", "0:ip=198.51.100.2,network=netA", "i1"],
    );
    let mac_before = c.inst_field("i1", "nic.macs");
    assert!(mac_before.starts_with("aa:00:00:"));
    let r = c.cmd(INST, &["modify", "--net", "0:network=net2", "i1"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    assert_eq!(
        feedback(&r.stdout, "INFO"),
        [
            "NIC/0 inherits netparams ['routed', 'rtB', '']",
            "Reserving IP 198.51.100.2 in network net2"
        ]
    );
    assert_eq!(c.inst_field("i1", "nic.networks.names"), "['net2']");
    assert_eq!(
        c.inst_field("i1", "nic.networks"),
        c.net_field("net2", "uuid")
    );
    assert_eq!(c.inst_field("i1", "nic.links"), "rtB");
    assert!(c.inst_field("i1", "nic.macs").starts_with("be:00:00:"));
    assert_eq!(
        c.net_field("netA", "free_count"),
        "254",
        "released from netA"
    );
    assert_eq!(c.net_field("net2", "free_count"), "253", "taken in net2");
    // Same prefix: the MAC stays.
    c.ok(INST, &["add", "--net", "0:network=net1", "i2"]);
    let m = c.inst_field("i2", "nic.macs");
    c.ok(INST, &["modify", "--net", "0:network=netA", "i2"]);
    assert_eq!(c.inst_field("i2", "nic.macs"), m);
}

#[test]
fn modify_set_network_with_old_ip_outside_it() {
    let c = with_instance();
    c.ok(NET, &["connect", "-N", "link=br2", "net2"]);
    c.prereq(
        INST,
        &["modify", "--net", "0:network=net2", "i1"],
        "resource_not_unique",
        "IP 192.0.2.2 not available in network net2",
    );
    // testModifyNicSetNetAndIp: both together.
    c.ok(
        INST,
        &["modify", "--net", "0:network=net2,ip=198.51.100.1", "i1"],
    );
    assert_eq!(c.inst_field("i1", "nic.ips"), "198.51.100.1,None");
    assert_eq!(c.net_field("net1", "free_count"), "253");
}

#[test]
fn modify_link_of_a_connected_nic() {
    let c = with_instance();
    for spec in ["0:link=br7", "0:mode=routed", "0:modify,link=br7"] {
        c.prereq(
            INST,
            &["modify", "--net", spec, "i1"],
            INVAL,
            "Not allowed to change link or mode of a NIC that is connected to a network",
        );
    }
    c.prereq(
        INST,
        &[
            "modify",
            "--net",
            "0:network=net1,link=br7,ip=192.0.2.9",
            "i1",
        ],
        INVAL,
        "If network is given mode or link should not",
    );
    // Not connected: the link changes.
    c.ok(INST, &["modify", "--net", "1:link=br7", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.links"), "br0,br7");
}

#[test]
fn modify_network_not_connected() {
    let c = with_instance();
    c.prereq(
        INST,
        &["modify", "--net", "1:network=net2", "i1"],
        INVAL,
        "No netparams found for the network net2, probably not connected",
    );
}

#[test]
fn modify_explicit_ip_in_network() {
    let c = with_instance();
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "i2"]);
    c.prereq(
        INST,
        &["modify", "--net", "0:ip=192.0.2.3", "i1"],
        "resource_not_unique",
        "IP 192.0.2.3 not available in network net1",
    );
    c.prereq(
        INST,
        &["modify", "--net", "0:ip=192.0.2.1", "i1"],
        "resource_not_unique",
        "IP 192.0.2.1 not available in network net1",
    );
    c.ok(
        INST,
        &[
            "modify",
            "--no-conflicts-check",
            "--net",
            "0:ip=192.0.2.1",
            "i1",
        ],
    );
    let r = c.cmd(INST, &["modify", "--net", "0:ip=192.0.2.77", "i1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        feedback(&r.stdout, "INFO"),
        ["Reserving IP 192.0.2.77 in network net1"]
    );
    assert!(r.stdout.ends_with("Modified instance i1\n"), "{}", r.stdout);
    // .1 went back to external only, .2 was already released.
    assert_eq!(c.net_field("net1", "free_count"), "251");
}

#[test]
fn modify_ip_of_nic_without_network_into_a_connected_one() {
    let c = with_instance();
    c.prereq(
        INST,
        &["modify", "--net", "1:ip=192.0.2.200", "i1"],
        "wrong_state",
        "The requested IP address (192.0.2.200) belongs to network net1, but the target NIC does not.",
    );
    c.ok(
        INST,
        &[
            "modify",
            "--no-conflicts-check",
            "--net",
            "1:ip=192.0.2.200",
            "i1",
        ],
    );
}

#[test]
fn modify_network_none_detaches_and_releases() {
    let c = with_instance();
    // Keeping the address on a network-less NIC collides with the connected network.
    c.prereq(
        INST,
        &["modify", "--net", "0:network=none", "i1"],
        "wrong_state",
        "The requested IP address (192.0.2.2) belongs to network net1, but the target NIC does not.",
    );
    c.ok(INST, &["modify", "--net", "0:network=none,ip=none", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.networks"), "None,None");
    assert_eq!(c.net_field("net1", "free_count"), "253");
}

#[test]
fn modify_nic_names_stay_unique() {
    let c = with_instance();
    c.ok(INST, &["modify", "--net", "0:name=a", "i1"]);
    c.prereq(
        INST,
        &["modify", "--net", "1:name=a", "i1"],
        "resource_not_unique",
        "NIC name 'a' already used",
    );
    c.prereq(
        INST,
        &["modify", "--net", "add:name=a", "i1"],
        "resource_not_unique",
        "NIC name 'a' already used",
    );
}

#[test]
fn modify_remove_nic_releases_its_ip() {
    let c = with_instance();
    c.ok(INST, &["modify", "--net", "0:remove", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.count"), "1");
    assert_eq!(c.net_field("net1", "free_count"), "253");
    assert_eq!(c.net_field("net1", "inst_list"), "");
    c.prereq(
        INST,
        &["modify", "--net", "5:remove", "i1"],
        INVAL,
        "Invalid NIC index 5, valid range is 0-0",
    );
    c.prereq(
        INST,
        &["modify", "--net", "x:remove", "i1"],
        "unknown_entity",
        "Cannot find NIC with identifier x",
    );
    c.prereq(
        INST,
        &["modify", "--net", "-2:remove", "i1"],
        INVAL,
        "Not accepting negative indices other than -1",
    );
}

/// Ganeti 3.0 identifies a NIC to change or remove by index, `-1`, name or UUID.
#[test]
fn modify_and_remove_nics_by_name_uuid_or_last() {
    let c = with_instance();
    c.ok(INST, &["modify", "--net", "1:modify,name=back", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.names"), "[None, 'back']");
    c.ok(INST, &["modify", "--net", "back:link=br7", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.links"), "br0,br7");
    c.ok(INST, &["modify", "--net", "-1:vlan=5", "i1"]);
    assert_eq!(nic_vlans(&c, "i1"), ["", ".5"]);
    let first = c.inst_field("i1", "nic.uuid/0");
    c.ok(INST, &["modify", "--net", &format!("{first}:remove"), "i1"]);
    assert_eq!(c.inst_field("i1", "nic.names"), "['back']");
    assert_eq!(
        c.net_field("net1", "inst_list"),
        "",
        "its address was released"
    );
    c.prereq(
        INST,
        &["modify", "--net", "front:remove", "i1"],
        "unknown_entity",
        "Cannot find NIC with identifier front",
    );
    c.ok(INST, &["modify", "--net", "back:remove", "i1"]);
    c.prereq(
        INST,
        &["modify", "--net", "-1:link=br1", "i1"],
        INVAL,
        "Instance has no NICs to modify",
    );
}

#[test]
fn modify_unknown_instance_and_no_changes() {
    let c = with_instance();
    c.prereq(
        INST,
        &["modify", "--net", "add", "nope"],
        "unknown_entity",
        "Instance 'nope' not known",
    );
    c.fails(
        INST,
        &["modify", "i1"],
        1,
        "Please give at least one of the parameters.\n",
    );
}

// ---- removal (§7.4) ----

#[test]
fn remove_releases_every_address() {
    let c = with_instance();
    c.ok(
        INST,
        &[
            "modify",
            "--net",
            "add:ip=pool,network=net1",
            "--net",
            "add:ip=192.0.2.99,network=net1",
            "i1",
        ],
    );
    assert_eq!(c.net_field("net1", "free_count"), "250");
    c.ok(INST, &["remove", "i1"]);
    assert_eq!(c.net_field("net1", "free_count"), "253");
    assert_eq!(c.ok(INST, &["list", "--no-headers"]), "");
    c.prereq(
        INST,
        &["remove", "i1"],
        "unknown_entity",
        "Instance 'i1' not known",
    );
    // The released addresses are handed out again, lowest first.
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "i2"]);
    assert_eq!(c.inst_field("i2", "nic.ips"), "192.0.2.2");
}
