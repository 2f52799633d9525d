//! Ports of Ganeti's QA network tests (§12.3: add/remove, connect, tags, list and
//! list-fields) and of the list layout rules of §4.1/§4.2.

use std::io::Write;
use std::process::Stdio;

use crate::harness::*;

/// §4.1's field table: (name, type, title, description).
const FIELDS: [(&str, &str, &str, &str); 19] = [
    ("name", "Text", "Network", "Name"),
    ("network", "Text", "Subnet", "IPv4 subnet"),
    ("gateway", "Custom", "Gateway", "IPv4 gateway"),
    ("network6", "Custom", "IPv6Subnet", "IPv6 subnet"),
    ("gateway6", "Custom", "IPv6Gateway", "IPv6 gateway"),
    ("mac_prefix", "Custom", "MacPrefix", "MAC address prefix"),
    (
        "free_count",
        "Number",
        "FreeCount",
        "Number of available addresses",
    ),
    ("map", "Text", "Map", "Actual mapping"),
    (
        "reserved_count",
        "Number",
        "ReservedCount",
        "Number of reserved addresses",
    ),
    (
        "group_list",
        "Custom",
        "GroupList",
        "List of nodegroups (group name, NIC mode, NIC link)",
    ),
    ("group_cnt", "Number", "NodeGroups", "Number of nodegroups"),
    ("inst_list", "Custom", "InstanceList", "List of instances"),
    ("inst_cnt", "Number", "Instances", "Number of instances"),
    (
        "external_reservations",
        "Text",
        "ExternalReservations",
        "External reservations",
    ),
    ("ctime", "Timestamp", "CTime", "Creation timestamp"),
    ("mtime", "Timestamp", "MTime", "Modification timestamp"),
    ("uuid", "Text", "UUID", "Network UUID"),
    (
        "serial_no",
        "Number",
        "SerialNo",
        "Network object serial number, incremented on each modification",
    ),
    ("tags", "Custom", "Tags", "Tags"),
];

fn all_fields() -> String {
    FIELDS.map(|f| f.0).join(",")
}

#[test]
fn qa_network_add_remove() {
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "192.0.2.0/30", "net_a"]);
    c.ok(NET, &["add", "--network", "198.51.100.0/24", "net_b"]);
    let uuid = c.net_field("net_a", "uuid");
    c.prereq(
        NET,
        &["add", "--network", "203.0.113.0/24", "net_a"],
        "already_exists",
        &format!("Desired network name 'net_a' already exists as a network (UUID: {uuid})"),
    );
    let out = c.ok(NET, &["list", "-o", &all_fields()]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.starts_with("Network Subnet"), "{out}");
    let fields = c.ok(NET, &["list-fields"]);
    assert_eq!(fields.lines().count(), 20);
    c.ok(NET, &["remove", "net_a"]);
    c.ok(NET, &["remove", "--force", "net_b"]);
    assert_eq!(
        c.ok(NET, &["list"]),
        "Network Subnet Gateway MacPrefix GroupList Tags\n"
    );
}

#[test]
fn qa_network_connect() {
    let c = Cluster::new();
    c.ok(GROUP, &["add", "qa-group"]);
    c.ok(NET, &["add", "--network", "198.51.100.0/24", "qa-net"]);
    c.ok(
        NET,
        &[
            "connect",
            "--nic-parameters",
            "mode=bridged,link=xen-br0",
            "qa-net",
            "qa-group",
        ],
    );
    assert_eq!(
        c.net_field("qa-net", "group_list"),
        "qa-group (bridged, xen-br0, )"
    );
    assert_eq!(c.net_field("qa-net", "group_cnt"), "1");
    let groups = c.ok(
        GROUP,
        &[
            "list",
            "--no-headers",
            "--separator",
            "|",
            "-o",
            "name,networks",
        ],
    );
    assert!(
        groups.contains("qa-group|qa-net (bridged, xen-br0, )\n"),
        "{groups}"
    );
    c.ok(NET, &["disconnect", "qa-net", "qa-group"]);
    assert_eq!(c.net_field("qa-net", "group_list"), "");
    c.ok(GROUP, &["remove", "qa-group"]);
    c.ok(NET, &["remove", "qa-net"]);
}

#[test]
fn connect_defaults_and_all_groups() {
    // -N keys left out come from the cluster's NIC parameters (issue #953); no group named
    // means every group, in name order.
    let c = Cluster::new();
    c.ok(GROUP, &["add", "g2"]);
    c.ok(NET, &["add", "--network", "198.51.100.0/24", "n"]);
    c.ok(NET, &["connect", "n"]);
    let groups = c.ok(
        GROUP,
        &[
            "list",
            "--no-headers",
            "--separator",
            "|",
            "-o",
            "name,networks",
        ],
    );
    assert_eq!(
        groups,
        "default|n (bridged, xen-br0, )\ng2|n (bridged, xen-br0, )\n"
    );
    c.ok(NET, &["disconnect", "n"]);
    c.ok(NET, &["connect", "-N", "vlan=100", "n", "g2"]);
    assert_eq!(c.net_field("n", "group_list"), "g2 (bridged, xen-br0, 100)");
}

#[test]
fn connect_legacy_positional_form_never_guesses() {
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "198.51.100.0/24", "n"]);
    c.ok(GROUP, &["add", "routed"]);
    c.prereq(
        NET,
        &["connect", "n", "routed", "rt1"],
        "wrong_input",
        "Ambiguous arguments: 'routed' is both a NIC mode and a node group; use -N mode=M,link=L n GROUP...",
    );
    c.ok(NET, &["connect", "n", "bridged", "br5", "routed"]);
    assert_eq!(c.net_field("n", "group_list"), "routed (bridged, br5, )");
}

#[test]
fn qa_network_tags() {
    let c = Cluster::new();
    c.ok(
        NET,
        &["add", "--network", "192.0.2.0/30", "--tags", "t0", "qa-net"],
    );
    c.ok(NET, &["add-tags", "qa-net", "b-tag", "a.tag", "x:y@z"]);
    let from = c.dir.path().join("tags.txt");
    std::fs::write(&from, "from-file\n\n  spaced  \n").unwrap();
    c.ok(
        NET,
        &["add-tags", "--from", from.to_str().unwrap(), "qa-net"],
    );
    let mut child = c
        .command(NET, &["add-tags", "--from", "-", "qa-net"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"stdin1\nstdin2\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        c.ok(NET, &["list-tags", "qa-net"]),
        "a.tag\nb-tag\nfrom-file\nspaced\nstdin1\nstdin2\nt0\nx:y@z\n"
    );
    assert_eq!(
        c.net_field("qa-net", "tags"),
        "a.tag,b-tag,from-file,spaced,stdin1,stdin2,t0,x:y@z"
    );
    c.ok(
        NET,
        &[
            "remove-tags",
            "qa-net",
            "stdin1",
            "stdin2",
            "spaced",
            "from-file",
        ],
    );
    c.prereq(
        NET,
        &["remove-tags", "qa-net", "t0", "nope", "gone"],
        "unknown_entity",
        "Tag(s) 'gone', 'nope' not found",
    );
    assert_eq!(
        c.ok(NET, &["list-tags", "qa-net"]),
        "a.tag\nb-tag\nt0\nx:y@z\n"
    );
    // Instances follow the same rules.
    c.ok(INST, &["add", "--tags", "web,db", "i1"]);
    c.ok(INST, &["add-tags", "i1", "z"]);
    assert_eq!(c.ok(INST, &["list-tags", "i1"]), "db\nweb\nz\n");
    c.fails(
        INST,
        &["add-tags", "i1", "bad tag"],
        1,
        "Failure: invalid tag(s) given:\nTag contains invalid characters\n",
    );
    c.ok(NET, &["remove", "qa-net"]);
}

#[test]
fn qa_network_list_every_field_and_unknown_fields() {
    let c = Cluster::new();
    c.add_net("n1", "192.0.2.0/28", "192.0.2.1");
    let out = c.ok(
        NET,
        &[
            "list",
            "--no-headers",
            "--separator",
            "|",
            "-o",
            &all_fields(),
            "n1",
        ],
    );
    let cols: Vec<&str> = out.trim_end().split('|').collect();
    assert_eq!(cols.len(), 19, "{out}");
    assert_eq!(cols[0], "n1");
    assert_eq!(cols[6], "13");
    assert_eq!(cols[7], "XX.............X");
    assert_eq!(cols[8], "3");
    assert_eq!(cols[13], "192.0.2.0, 192.0.2.1, 192.0.2.15");
    assert_eq!(cols[17], "1");

    let before = c.bytes();
    for args in [
        vec!["list", "-o", "name,foo"],
        vec!["list", "-o", "+foo"],
        vec!["list", "-o", "foo,bar"],
        vec!["list-fields", "foo"],
    ] {
        let r = c.cmd(NET, &args);
        let unknown = if args[2..].contains(&"foo,bar") {
            "foo, bar"
        } else {
            "foo"
        };
        assert_eq!(
            (r.code, r.stderr.as_str(), r.stdout.as_str()),
            (
                14,
                format!("Warning: Queried for unknown fields {unknown}\n").as_str(),
                ""
            ),
            "{args:?}"
        );
    }
    assert!(c.bytes() == before);
    // The other binaries use the same exit code.
    for bin in [INST, GROUP, NODE] {
        let r = c.cmd(bin, &["list", "-o", "nosuchfield"]);
        assert_eq!(r.code, 14, "{bin}: {}", r.stderr);
        assert_eq!(
            r.stderr,
            "Warning: Queried for unknown fields nosuchfield\n"
        );
    }
}

#[test]
fn qa_network_list_fields_matches_the_known_set() {
    let c = Cluster::new();
    let w = |i: usize| {
        FIELDS
            .iter()
            .map(|f| [f.0, f.1, f.2, f.3][i].len())
            .max()
            .unwrap()
    };
    let (w0, w1, w2) = (w(0).max(4), w(1).max(4), w(2).max(5));
    let mut want = format!(
        "{:<w0$} {:<w1$} {:<w2$} Description\n",
        "Name", "Type", "Title"
    );
    // Ganeti lists them in natural order of their names.
    let mut sorted = FIELDS;
    sorted.sort_by(|a, b| gnt_network::sort::nice_cmp(a.0, b.0));
    for (n, t, ti, d) in sorted {
        want.push_str(&format!("{n:<w0$} {t:<w1$} {ti:<w2$} {d}\n"));
    }
    assert_eq!(c.ok(NET, &["list-fields"]), want);
    assert_eq!(
        c.ok(
            NET,
            &[
                "list-fields",
                "--no-headers",
                "--separator",
                "|",
                "name",
                "free_count"
            ]
        ),
        "name|Text|Network|Name\nfree_count|Number|FreeCount|Number of available addresses\n"
    );
}

/// §4.1's example, built from the layout rules: one space between columns, left-aligned
/// text, the last column unpadded, `-` for unavailable values.
#[test]
fn list_layout_separator_and_no_headers() {
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "192.0.2.0/28",
            "--gateway",
            "192.0.2.1",
            "--tags",
            "b,a",
            "net100",
        ],
    );
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "-m",
            "aa:00:02",
            "net101",
        ],
    );
    c.ok(NET, &["connect", "-N", "link=br100", "net100", "default"]);
    let rows = [
        [
            "Network",
            "Subnet",
            "Gateway",
            "MacPrefix",
            "GroupList",
            "Tags",
        ],
        [
            "net100",
            "192.0.2.0/28",
            "192.0.2.1",
            "-",
            "default (bridged, br100, )",
            "a,b",
        ],
        ["net101", "198.51.100.0/24", "-", "aa:00:02", "", ""],
    ];
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap();
    let mut want = String::new();
    for r in &rows {
        for (i, v) in r.iter().enumerate().take(5) {
            want.push_str(&format!("{v:<w$} ", w = width(i)));
        }
        want.push_str(r[5]);
        want.push('\n');
    }
    assert_eq!(c.ok(NET, &["list"]), want);
    assert!(want.starts_with(
        "Network Subnet          Gateway   MacPrefix GroupList                  Tags\n"
    ));
    assert_eq!(
        c.ok(NET, &["list", "--separator=|", "--no-headers"]),
        "net100|192.0.2.0/28|192.0.2.1|-|default (bridged, br100, )|a,b\nnet101|198.51.100.0/24|-|aa:00:02||\n"
    );
    assert_eq!(
        c.ok(NET, &["list", "--no-headers", "net101"]),
        "net101 198.51.100.0/24 - aa:00:02  \n"
    );
    // -v spells unavailable values out.
    assert_eq!(
        c.ok(
            NET,
            &[
                "list",
                "-v",
                "--no-headers",
                "--separator",
                "|",
                "-o",
                "name,gateway",
                "net101"
            ]
        ),
        "net101|(unavail)\n"
    );
}

#[test]
fn list_numbers_right_aligned_and_plus_fields_appended() {
    let c = Cluster::new();
    c.add_net("n1", "192.0.2.0/28", "192.0.2.1");
    c.ok(NET, &["add", "--network", "10.0.0.0/16", "n10"]);
    c.ok(NET, &["add", "--network", "10.1.0.0/24", "n2"]);
    // Nice sort: n1, n2, n10; numbers right-aligned to the widest cell.
    assert_eq!(
        c.ok(NET, &["list", "-o", "name,free_count,serial_no"]),
        "Network FreeCount SerialNo\n\
         n1             13        1\n\
         n2            254        1\n\
         n10         65534        1\n"
    );
    let plus = c.ok(
        NET,
        &[
            "list",
            "--no-headers",
            "--separator",
            "|",
            "-o",
            "+free_count,inst_cnt",
            "n1",
        ],
    );
    assert_eq!(
        plus,
        "n1|192.0.2.0/28|192.0.2.1|-||||13|0\n".replace("||||", "|||")
    );
    // Names are looked up by UUID too.
    let uuid = c.net_field("n2", "uuid");
    assert_eq!(c.net_field(&uuid, "name"), "n2");
}

#[test]
fn instance_list_fields_and_options() {
    let c = seeded();
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:ip=pool,network=net1",
            "--net",
            "1:link=br9,name=mgmt",
            "inst1",
        ],
    );
    c.ok(INST, &["add", "--no-nics", "inst2"]);
    let out = c.ok(INST, &["list"]);
    assert_eq!(
        out,
        format!(
            "Instance Primary_node NIC_IPs          NIC_networks_names\n\
             inst1    {m:<12} 192.168.1.2,None ['net1', None]\n\
             inst2    {m:<12}                  []\n",
            m = c.cluster_value("master_node")
        )
    );
    assert_eq!(
        c.ok(
            INST,
            &[
                "list",
                "--no-headers",
                "--separator",
                ";",
                "-o",
                "name,nic.count,nic.names,nic.links",
                "inst1"
            ]
        ),
        "inst1;2;[None, 'mgmt'];prv0,br9\n"
    );
    let plus = c.ok(
        INST,
        &[
            "list",
            "--no-headers",
            "--separator",
            ";",
            "-o",
            "+nic.count",
            "inst2",
        ],
    );
    assert!(plus.ends_with(";;[];0\n"), "{plus}");
    c.prereq(
        INST,
        &["info", "nope"],
        "unknown_entity",
        "Instance 'nope' not known",
    );
}

#[test]
fn rename_network() {
    // §3.6 (Ganeti HEAD's rename).
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "192.0.2.0/24", "a"]);
    c.ok(NET, &["add", "--network", "198.51.100.0/24", "b"]);
    let b = c.net_field("b", "uuid");
    c.prereq(
        NET,
        &["rename", "a", "b"],
        "already_exists",
        &format!("Desired new name 'b' clashes with existing network (UUID: {b})"),
    );
    c.prereq(
        NET,
        &["rename", "a", ""],
        "wrong_input",
        "Parameter 'OP_NETWORK_RENAME.new_name' fails validation",
    );
    let a = c.net_field("a", "uuid");
    c.ok(NET, &["connect", "-N", "link=br0", "a"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=a", "i1"]);
    c.ok(NET, &["rename", "a", "c"]);
    // NICs reference the UUID: nothing else changes.
    assert_eq!(c.net_field("c", "uuid"), a);
    assert_eq!(c.inst_field("i1", "nic.networks.names"), "['c']");
    assert_eq!(c.inst_field("i1", "nic.networks"), a);
    assert_eq!(c.net_field("c", "serial_no"), "2");
}

#[test]
fn dry_run_checks_and_changes_nothing() {
    let c = seeded();
    let before = c.bytes();
    for (bin, args) in [
        (
            NET,
            vec!["add", "--dry-run", "--network", "198.51.100.0/24", "n2"],
        ),
        (
            NET,
            vec![
                "modify",
                "--dry-run",
                "--add-reserved-ips",
                "192.168.1.9",
                "net1",
            ],
        ),
        (NET, vec!["disconnect", "--dry-run", "net1"]),
        (
            INST,
            vec!["add", "--dry-run", "--net", "0:ip=pool,network=net1", "i1"],
        ),
    ] {
        let r = c.cmd(bin, &args);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{args:?}");
        assert!(c.bytes() == before, "{args:?} changed config.data");
    }
    // The checks still run.
    c.prereq(
        NET,
        &["add", "--dry-run", "--network", "192.168.1.0/24", "net1"],
        "already_exists",
        &format!(
            "Desired network name 'net1' already exists as a network (UUID: {})",
            c.net_field("net1", "uuid")
        ),
    );
}

#[test]
fn modify_remove_last_nic_forms() {
    let c = seeded();
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:ip=pool,network=net1",
            "--net",
            "1:ip=pool,network=net1",
            "--net",
            "2:link=b",
            "i1",
        ],
    );
    c.ok(INST, &["modify", "--net", "-1:remove", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.count"), "2");
    c.ok(INST, &["modify", "--net", "remove", "i1"]);
    assert_eq!(c.inst_field("i1", "nic.ips"), "192.168.1.2");
    assert_eq!(c.net_field("net1", "free_count"), "252");
}

#[test]
fn add_reserves_node_addresses_unless_no_conflicts_check() {
    // §3.1 step 3, with Ganeti's quirk: primary == secondary warns "already reserved".
    let c = Cluster::new();
    c.ok(NODE, &["add", "--primary-ip", "192.0.2.10", "node1"]);
    c.ok(
        NODE,
        &[
            "add",
            "--primary-ip",
            "192.0.2.11",
            "-s",
            "198.51.100.11",
            "node2",
        ],
    );
    let r = c.cmd(NET, &["add", "--network", "192.0.2.0/24", "n1"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // Nodes come in config (UUID) order.
    assert_eq!(feedback(&r.stdout, "INFO").len(), 2);
    assert!(
        r.stdout
            .contains("  - INFO: Reserved IP address of node 'node1' (192.0.2.10)\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("  - INFO: Reserved IP address of node 'node2' (192.0.2.11)\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "  - WARNING: Cannot reserve IP address '192.0.2.10' of node 'node1': IP 192.0.2.10 is already externally reserved\n"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(
        c.net_field("n1", "external_reservations"),
        "192.0.2.0, 192.0.2.10, 192.0.2.11, 192.0.2.255"
    );
    c.ok(
        NET,
        &[
            "add",
            "--no-conflicts-check",
            "--network",
            "198.51.100.0/24",
            "n2",
        ],
    );
    assert_eq!(
        c.net_field("n2", "external_reservations"),
        "198.51.100.0, 198.51.100.255"
    );
}
