//! Allocation ranges (beyond Ganeti: Ganeti issue #744): `ip=pool` hands out only the
//! addresses inside them, explicit addresses outside them still work, other changes keep
//! them, bad ranges are refused with config.data untouched, and a network without ranges
//! shows and stores exactly what Ganeti 3.0 would.

use std::fs;

use crate::harness::*;

const R: &str = "198.51.100.100-198.51.100.150";

/// net1 (198.51.100.0/24, gateway .1, range .100–.150) connected to `default`.
fn base() -> Cluster {
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/24",
            "--gateway",
            "198.51.100.1",
            "--allocation-range",
            R,
            "net1",
        ],
    );
    c.ok(NET, &["connect", "-N", "link=br0", "net1"]);
    c
}

#[test]
fn a_24_with_a_range_hands_out_exactly_its_51_addresses_in_order_then_is_full() {
    let c = base();
    assert_eq!(c.net_field("net1", "free_count"), "51");
    for k in 0..51 {
        let name = format!("i{k}");
        let out = c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", &name]);
        let want = format!("198.51.100.{}", 100 + k);
        assert!(
            out.ends_with(&format!("  - INFO: Chose IP {want} from network net1\n")),
            "{out}"
        );
        assert_eq!(c.inst_field(&name, "nic.ip/0"), want);
    }
    assert_eq!(c.net_field("net1", "free_count"), "0");
    // Ganeti's pool-full error, exit 1, nothing written.
    c.prereq(
        INST,
        &["add", "--net", "0:ip=pool,network=net1", "full"],
        "wrong_state",
        "Unable to get a free IP for NIC 0 from the address pool",
    );
    // Inside the subnet but outside the range: the operator's to give.
    c.ok(
        INST,
        &["add", "--net", "0:ip=198.51.100.20,network=net1", "out"],
    );
    assert_eq!(c.inst_field("out", "nic.ip/0"), "198.51.100.20");
    // The gateway is externally reserved: refused with the conflicts check, as today.
    c.prereq(
        INST,
        &["add", "--net", "0:ip=198.51.100.1,network=net1", "gw"],
        "resource_not_unique",
        "IP address 198.51.100.1 already in use or does not belong to network net1",
    );
    // Outside the subnet: refused, as today.
    c.prereq(
        INST,
        &["add", "--net", "0:ip=203.0.113.5,network=net1", "far"],
        "resource_not_unique",
        "IP address 203.0.113.5 already in use or does not belong to network net1",
    );
    // A NIC moved to ip=pool while the range is full fails the same way.
    c.prereq(
        INST,
        &["modify", "--net", "0:modify,ip=pool", "out"],
        "wrong_state",
        "Unable to get a free IP from the address pool",
    );
    // Removing an instance gives its address back to the range.
    c.ok(INST, &["remove", "i7"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "again"]);
    assert_eq!(c.inst_field("again", "nic.ip/0"), "198.51.100.107");
    assert_eq!(c.net_field("net1", "reserved_count"), "55");
    let r = c.cmd(CLUSTER, &["verify"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn ranges_survive_modify_of_the_gateway_and_the_reserved_ips() {
    let c = base();
    let changes: [&[&str]; 6] = [
        &["--gateway", "198.51.100.254"],
        &["--add-reserved-ips", "198.51.100.100,198.51.100.30"],
        &["--remove-reserved-ips", "198.51.100.30"],
        &["--gateway", "none"],
        &[
            "--network6",
            "2001:db8:1::/64",
            "--gateway6",
            "2001:db8:1::1",
        ],
        &["-m", "aa:00:01"],
    ];
    for args in changes {
        let mut argv = vec!["modify"];
        argv.extend_from_slice(args);
        argv.push("net1");
        c.ok(NET, &argv);
        assert_eq!(c.net_field("net1", "alloc_ranges"), R, "after {args:?}");
    }
    c.ok(NET, &["rename", "net1", "net9"]);
    assert_eq!(c.net_field("net9", "alloc_ranges"), R);
    assert!(
        c.ok(NET, &["info", "net9"])
            .contains(&format!("  Allocation ranges: {R}\n"))
    );
    // .100 is reserved now, so the range starts at .101.
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net9", "a"]);
    assert_eq!(c.inst_field("a", "nic.ip/0"), "198.51.100.101");
}

#[test]
fn modify_replaces_adds_removes_and_clears_ranges() {
    let c = base();
    c.ok(
        NET,
        &[
            "modify",
            "--add-allocation-ranges",
            "198.51.100.200-198.51.100.210,198.51.100.10-198.51.100.19",
            "net1",
        ],
    );
    assert_eq!(
        c.net_field("net1", "alloc_ranges"),
        format!("198.51.100.10-198.51.100.19, {R}, 198.51.100.200-198.51.100.210")
    );
    assert_eq!(c.net_field("net1", "free_count"), "72");
    c.ok(
        NET,
        &[
            "modify",
            "--remove-allocation-ranges",
            &format!("{R},198.51.100.10-198.51.100.19"),
            "--add-allocation-ranges",
            "198.51.100.100-198.51.100.199",
            "net1",
        ],
    );
    assert_eq!(
        c.net_field("net1", "alloc_ranges"),
        "198.51.100.100-198.51.100.199, 198.51.100.200-198.51.100.210"
    );
    c.ok(
        NET,
        &[
            "modify",
            "--allocation-range",
            "198.51.100.2-198.51.100.3",
            "--allocation-range",
            "198.51.100.5-198.51.100.5",
            "net1",
        ],
    );
    assert_eq!(
        c.net_field("net1", "alloc_ranges"),
        "198.51.100.2-198.51.100.3, 198.51.100.5-198.51.100.5"
    );
    assert_eq!(c.net_field("net1", "free_count"), "3");
    // A dry run checks and changes nothing.
    let before = c.bytes();
    c.ok(
        NET,
        &["modify", "--dry-run", "--allocation-range", "none", "net1"],
    );
    assert!(c.bytes() == before);
    c.ok(NET, &["modify", "--allocation-range", "none", "net1"]);
    assert_eq!(c.net_field("net1", "alloc_ranges"), "");
    assert_eq!(c.net_field("net1", "free_count"), "253");
    assert!(!c.text().contains("allocation_ranges"), "{}", c.text());
}

#[test]
fn bad_ranges_are_refused_and_config_data_stays_byte_identical() {
    let c = base();
    let syntax = "expected START-END, two IPv4 addresses";
    let cases: [(&str, String); 7] = [
        (
            "198.51.100.7",
            format!("Invalid allocation range '198.51.100.7': {syntax}"),
        ),
        (
            "198.51.100.0/24",
            format!("Invalid allocation range '198.51.100.0/24': {syntax}"),
        ),
        (
            "198.51.100.9-198.51.100.5",
            "Invalid allocation range '198.51.100.9-198.51.100.5': 198.51.100.9 comes after 198.51.100.5".into(),
        ),
        (
            "198.51.100.200-198.51.101.10",
            "Allocation range 198.51.100.200-198.51.101.10 is not inside 198.51.100.0/24".into(),
        ),
        (
            "198.51.100.0-198.51.100.9",
            "Allocation range 198.51.100.0-198.51.100.9 holds the network address 198.51.100.0 of 198.51.100.0/24".into(),
        ),
        (
            "198.51.100.250-198.51.100.255",
            "Allocation range 198.51.100.250-198.51.100.255 holds the broadcast address 198.51.100.255 of 198.51.100.0/24".into(),
        ),
        (
            "198.51.100.140-198.51.100.160",
            format!("Allocation ranges {R} and 198.51.100.140-198.51.100.160 overlap"),
        ),
    ];
    for (range, msg) in &cases {
        c.prereq(
            NET,
            &["modify", "--add-allocation-ranges", range, "net1"],
            "wrong_input",
            msg,
        );
        c.prereq(
            NET,
            &[
                "modify",
                "--allocation-range",
                R,
                "--allocation-range",
                range,
                "net1",
            ],
            "wrong_input",
            msg,
        );
    }
    // The same rules for add, where the overlap is between two given ranges.
    for (range, msg) in &cases {
        c.prereq(
            NET,
            &[
                "add",
                "--network",
                "198.51.100.0/24",
                "--no-conflicts-check",
                "--allocation-range",
                R,
                "--allocation-range",
                range,
                "net2",
            ],
            "wrong_input",
            msg,
        );
    }
    c.prereq(
        NET,
        &["modify", "--add-allocation-ranges", R, "net1"],
        "wrong_input",
        &format!("Allocation range {R} is given twice"),
    );
    c.prereq(
        NET,
        &[
            "modify",
            "--remove-allocation-ranges",
            "198.51.100.100-198.51.100.149",
            "net1",
        ],
        "wrong_input",
        "Allocation range 198.51.100.100-198.51.100.149 is not set on network 'net1'",
    );
    c.prereq(
        NET,
        &[
            "modify",
            "--allocation-range",
            R,
            "--remove-allocation-ranges",
            R,
            "net1",
        ],
        "wrong_input",
        "Cannot set and add/remove allocation ranges at once",
    );
    c.prereq(
        NET,
        &[
            "modify",
            "--allocation-range",
            "none",
            "--allocation-range",
            R,
            "net1",
        ],
        "wrong_input",
        "--allocation-range none clears the ranges and cannot be given with ranges",
    );
    // A missing value is clap's usage error, exit 2.
    let before = c.bytes();
    let r = c.cmd(NET, &["modify", "net1", "--allocation-range"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(c.bytes() == before);
    assert_eq!(c.net_field("net1", "alloc_ranges"), R);
}

#[test]
fn info_and_list_show_ranges_and_what_is_allocatable() {
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "192.0.2.0/28",
            "--gateway",
            "192.0.2.1",
            "--allocation-range",
            "192.0.2.4-192.0.2.7",
            "--allocation-range",
            "192.0.2.12-192.0.2.13",
            "net1",
        ],
    );
    c.ok(NET, &["connect", "-N", "link=br0", "net1"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "a"]);
    c.ok(INST, &["add", "--net", "0:ip=192.0.2.10,network=net1", "b"]);
    let uuid = c.net_field("net1", "uuid");
    let want = format!(
        "Network name: net1
UUID: {uuid}
Serial number: 1
  Subnet: 192.0.2.0/28
  Gateway: 192.0.2.1
  IPv6 Subnet: None
  IPv6 Gateway: None
  Mac Prefix: None
  Allocation ranges: 192.0.2.4-192.0.2.7, 192.0.2.12-192.0.2.13
  Size: 16
  Free: 5 (83.33%)
  Usage map:
        0 XX--X...--X-..-X                                                 63
         (X) used    (.) free    (-) outside the allocation ranges
  externally reserved IPs:
    192.0.2.0, 192.0.2.1, 192.0.2.15
  connected to node groups:
    default (mode:bridged link:br0 vlan:)
  used by 2 instances:
"
    );
    let info = c.ok(NET, &["info", "net1"]);
    assert!(info.starts_with(&want), "{info}");
    assert_eq!(
        c.ok(
            NET,
            &[
                "list",
                "--separator",
                "|",
                "-o",
                "name,free_count,reserved_count,map,alloc_ranges"
            ]
        ),
        "Network|FreeCount|ReservedCount|Map|AllocRanges\n\
         net1|5|5|XX--X...--X-..-X|192.0.2.4-192.0.2.7, 192.0.2.12-192.0.2.13\n"
    );
    assert_eq!(
        c.ok(
            NET,
            &[
                "list-fields",
                "--no-headers",
                "--separator",
                "|",
                "alloc_ranges"
            ]
        ),
        "alloc_ranges|Text|AllocRanges|Allocation ranges of ip=pool (none: the whole subnet)\n"
    );
    let stored = c.text();
    assert!(
        stored.contains(
            "\nallocation_ranges = [\"192.0.2.4-192.0.2.7\", \"192.0.2.12-192.0.2.13\"]\n"
        ),
        "{stored}"
    );
}

/// Without the new options nothing changes: no `allocation_ranges` key in config.data,
/// Ganeti's info layout and legend, Ganeti's `list-fields`.
#[test]
fn a_network_without_ranges_is_shown_and_stored_as_in_ganeti() {
    let c = Cluster::new();
    c.add_net("net1", "192.0.2.0/28", "192.0.2.1");
    assert!(!c.text().contains("allocation_ranges"));
    let info = c.ok(NET, &["info", "net1"]);
    assert!(
        info.contains(
            "  Mac Prefix: None\n  Size: 16\n  Free: 13 (81.25%)\n  Usage map:\n        0 XX.............X                                                 63\n         (X) used    (.) free\n"
        ),
        "{info}"
    );
    assert!(!c.ok(NET, &["list-fields"]).contains("alloc_ranges"));
    assert_eq!(c.net_field("net1", "alloc_ranges"), "");
}

/// A hand edit with a bad range still parses, so that `gnt-cluster verify` can name it;
/// changing commands refuse to build on it and `repair-pools` leaves it to the operator.
#[test]
fn verify_names_a_hand_edited_bad_range_and_commands_refuse_it() {
    if !file_only("verify_names_a_hand_edited_bad_range_and_commands_refuse_it") {
        return;
    }
    let c = base();
    c.skip_final_verify();
    let edited = c.text().replace(
        &format!("allocation_ranges = [\"{R}\"]"),
        &format!("allocation_ranges = [\"{R}\", \"198.51.100.140-198.51.101.9\"]"),
    );
    assert_ne!(edited, c.text());
    fs::write(c.config(), &edited).unwrap();
    let r = c.cmd(CLUSTER, &["verify", "--error-codes"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    for line in [
        "  - ERROR:ENETWORKCFG:network:net1:allocation range 198.51.100.140-198.51.101.9 is not inside 198.51.100.0/24\n",
        &format!(
            "  - ERROR:ENETWORKCFG:network:net1:allocation ranges {R} and 198.51.100.140-198.51.101.9 overlap\n"
        ),
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.stdout);
    }
    let r = c.cmd(INST, &["add", "--net", "0:ip=pool,network=net1", "a"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(c.text(), edited);
    let r = c.cmd(CLUSTER, &["repair-pools"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("  - WARNING: not repaired, fix by hand: network net1: allocation range 198.51.100.140-198.51.101.9 is not inside 198.51.100.0/24\n"),
        "{}",
        r.stdout
    );
    assert_eq!(c.text(), edited);
    // The fix is a modify that leaves consistent ranges.
    c.ok(NET, &["modify", "--allocation-range", R, "net1"]);
    assert_eq!(c.cmd(CLUSTER, &["verify"]).code, 0);
}
