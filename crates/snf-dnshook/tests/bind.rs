//! snf-dnshook against a real BIND `named` on 127.0.0.1 (in a namespace of the test's own):
//! every opcode, then `dig` must show exactly the expected A, AAAA and PTR records and
//! nothing stale.

mod support;

use support::*;

const FWD: &str = "example.org";
const REV4: &str = "100.51.198.in-addr.arpa";
const REV4B: &str = "113.0.203.in-addr.arpa";
// The /64 zone snf-dnshook derives from 2001:db8:1::/64 when none is configured.
const REV6: &str = "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";

const NIC_V4: Nic = Nic {
    ip: Some("198.51.100.10"),
    mac: "aa:00:00:12:34:56",
    network: "pub4",
    subnet: Some("198.51.100.0/24"),
    subnet6: None,
    tags: "public nfdhcpd",
};
// IPv6-only network, tagged with the gnt-networking spelling of the DNS tag.
const NIC_V6: Nic = Nic {
    ip: None,
    mac: "aa:00:00:ab:cd:ef",
    network: "pub6",
    subnet: None,
    subnet6: Some("2001:db8:1::/64"),
    tags: "dns ip-less-routed",
};
const NIC_V4B: Nic = Nic {
    ip: Some("203.0.113.7"),
    mac: "aa:00:00:00:00:07",
    network: "pub4b",
    subnet: Some("203.0.113.0/24"),
    subnet6: None,
    tags: "public",
};
// A NIC on a network without the DNS tag: never published.
const NIC_PRIVATE: Nic = Nic {
    ip: Some("198.51.100.50"),
    mac: "aa:00:00:00:00:50",
    network: "private",
    subnet: Some("198.51.100.0/24"),
    subnet6: Some("2001:db8:1::/64"),
    tags: "private-filtered",
};

// EUI-64 of aa:00:00:ab:cd:ef in 2001:db8:1::/64, and its nibble name.
const AAAA: &str = "2001:db8:1:0:a800:ff:feab:cdef";
const PTR6: &str = "f.e.d.c.b.a.e.f.f.f.0.0.0.0.8.a.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";

fn env(op: &str, name: &str, new_name: Option<&str>, nics: &[Nic]) -> Vec<(String, String)> {
    ganeti_env(op, "post", name, new_name, NODE, nics)
}

/// Checks all four zones against the expected records.
fn expect(named: &Named, fwd: &[&str], rev4: &[&str], rev4b: &[&str], rev6: &[&str]) {
    assert_eq!(named.zone_records(FWD), strings(fwd), "zone {FWD}");
    assert_eq!(named.zone_records(REV4), strings(rev4), "zone {REV4}");
    assert_eq!(named.zone_records(REV4B), strings(rev4b), "zone {REV4B}");
    assert_eq!(named.zone_records(REV6), strings(rev6), "zone {REV6}");
}

fn serials(named: &Named) -> Vec<String> {
    [FWD, REV4, REV4B, REV6]
        .iter()
        .map(|z| named.serial(z))
        .collect()
}

#[test]
fn add_modify_rename_remove_with_ipv4_and_ipv6_networks() {
    if skip_reason("add_modify_rename_remove_with_ipv4_and_ipv6_networks").is_none() {
        return;
    }
    let named = Named::start(
        &[
            Zone::new(FWD),
            Zone::new(REV4),
            Zone::new(REV4B),
            Zone::new(REV6),
        ],
        &[KEY],
    );
    let hook = named.hook(
        "dnshook.toml",
        &config(named.port, &format!("zone = \"{FWD}\"")),
    );

    // Pre phase: nothing, exit 0.
    let before = serials(&named);
    let pre = ganeti_env(
        "OP_INSTANCE_CREATE",
        "pre",
        "web1",
        None,
        NODE,
        &[NIC_V4, NIC_V6],
    );
    hook.ok(&pre);
    // Another node is primary: nothing, exit 0.
    let elsewhere = ganeti_env(
        "OP_INSTANCE_CREATE",
        "post",
        "web1",
        None,
        "node2.example.org",
        &[NIC_V4, NIC_V6],
    );
    hook.ok(&elsewhere);
    assert_eq!(serials(&named), before);
    expect(&named, &[], &[], &[], &[]);

    // instance-add.
    let nics = [NIC_V4, NIC_V6, NIC_PRIVATE];
    hook.ok(&env("OP_INSTANCE_CREATE", "web1", None, &nics));
    assert_eq!(named.dig("web1.example.org", "A"), ["198.51.100.10"]);
    assert_eq!(named.dig("web1.example.org", "AAAA"), [AAAA]);
    assert_eq!(
        named.dig("10.100.51.198.in-addr.arpa", "PTR"),
        ["web1.example.org."]
    );
    assert_eq!(named.dig(PTR6, "PTR"), ["web1.example.org."]);
    expect(
        &named,
        &[
            "web1.example.org. A 198.51.100.10",
            &format!("web1.example.org. AAAA {AAAA}"),
        ],
        &["10.100.51.198.in-addr.arpa. PTR web1.example.org."],
        &[],
        &[&format!("{PTR6} PTR web1.example.org.")],
    );

    // The same hook again changes nothing: no UPDATE, serials stay.
    let before = serials(&named);
    let out = hook.ok(&env("OP_INSTANCE_CREATE", "web1", None, &nics));
    assert_eq!(out, "", "second run printed updates");
    assert_eq!(serials(&named), before);

    // instance-modify: IP change.
    let nic_v4_new = Nic {
        ip: Some("198.51.100.11"),
        ..NIC_V4
    };
    let nics = [nic_v4_new.clone(), NIC_V6, NIC_PRIVATE];
    hook.ok(&env("OP_INSTANCE_SET_PARAMS", "web1", None, &nics));
    expect(
        &named,
        &[
            "web1.example.org. A 198.51.100.11",
            &format!("web1.example.org. AAAA {AAAA}"),
        ],
        &["11.100.51.198.in-addr.arpa. PTR web1.example.org."],
        &[],
        &[&format!("{PTR6} PTR web1.example.org.")],
    );
    let before = serials(&named);
    hook.ok(&env("OP_INSTANCE_SET_PARAMS", "web1", None, &nics));
    assert_eq!(serials(&named), before, "repeated modify changed the zones");

    // instance-modify: NIC added.
    let nics = [nic_v4_new.clone(), NIC_V6, NIC_PRIVATE, NIC_V4B];
    hook.ok(&env("OP_INSTANCE_SET_PARAMS", "web1", None, &nics));
    expect(
        &named,
        &[
            "web1.example.org. A 198.51.100.11",
            "web1.example.org. A 203.0.113.7",
            &format!("web1.example.org. AAAA {AAAA}"),
        ],
        &["11.100.51.198.in-addr.arpa. PTR web1.example.org."],
        &["7.113.0.203.in-addr.arpa. PTR web1.example.org."],
        &[&format!("{PTR6} PTR web1.example.org.")],
    );

    // instance-modify: the IPv6 NIC removed (no NIC of that network is left to derive the
    // reverse zone from, so the hook must find it on the server).
    let nics = [nic_v4_new.clone(), NIC_V4B];
    hook.ok(&env("OP_INSTANCE_SET_PARAMS", "web1", None, &nics));
    expect(
        &named,
        &[
            "web1.example.org. A 198.51.100.11",
            "web1.example.org. A 203.0.113.7",
        ],
        &["11.100.51.198.in-addr.arpa. PTR web1.example.org."],
        &["7.113.0.203.in-addr.arpa. PTR web1.example.org."],
        &[],
    );

    // instance-modify: the IPv6 NIC comes back and the 203.0.113 NIC goes, in one step.
    let nics = [nic_v4_new, NIC_V6];
    hook.ok(&env("OP_INSTANCE_SET_PARAMS", "web1", None, &nics));
    expect(
        &named,
        &[
            "web1.example.org. A 198.51.100.11",
            &format!("web1.example.org. AAAA {AAAA}"),
        ],
        &["11.100.51.198.in-addr.arpa. PTR web1.example.org."],
        &[],
        &[&format!("{PTR6} PTR web1.example.org.")],
    );

    // instance-rename.
    hook.ok(&env("OP_INSTANCE_RENAME", "web1", Some("web2"), &nics));
    expect(
        &named,
        &[
            "web2.example.org. A 198.51.100.11",
            &format!("web2.example.org. AAAA {AAAA}"),
        ],
        &["11.100.51.198.in-addr.arpa. PTR web2.example.org."],
        &[],
        &[&format!("{PTR6} PTR web2.example.org.")],
    );
    assert!(named.dig("web1.example.org", "A").is_empty());
    let before = serials(&named);
    hook.ok(&env("OP_INSTANCE_RENAME", "web1", Some("web2"), &nics));
    assert_eq!(serials(&named), before, "repeated rename changed the zones");

    // instance-remove.
    hook.ok(&env("OP_INSTANCE_REMOVE", "web2", None, &nics));
    expect(&named, &[], &[], &[], &[]);
    let before = serials(&named);
    hook.ok(&env("OP_INSTANCE_REMOVE", "web2", None, &nics));
    assert_eq!(serials(&named), before, "repeated remove changed the zones");
}

/// FQDN instance names stay as they are; a PTR of a reused address that another instance
/// owns is not touched when the address goes stale.
#[test]
fn fqdn_names_and_foreign_ptrs() {
    if skip_reason("fqdn_names_and_foreign_ptrs").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4)], &[KEY]);
    let hook = named.hook(
        "dnshook.toml",
        &config(
            named.port,
            &format!("zone = \"{FWD}\"\nreverse_zones = [\"{REV4}\"]"),
        ),
    );
    hook.ok(&env(
        "OP_INSTANCE_CREATE",
        "db1.example.org",
        None,
        &[NIC_V4],
    ));
    // Another instance takes over 198.51.100.10's PTR (e.g. added by hand).
    hook.ok(&env(
        "OP_INSTANCE_CREATE",
        "db2.example.org",
        None,
        &[NIC_V4],
    ));
    assert_eq!(
        named.dig("10.100.51.198.in-addr.arpa", "PTR"),
        ["db2.example.org."]
    );
    // db1 moves to .12: its old PTR is db2's now and stays.
    let moved = Nic {
        ip: Some("198.51.100.12"),
        ..NIC_V4
    };
    hook.ok(&env(
        "OP_INSTANCE_SET_PARAMS",
        "db1.example.org",
        None,
        &[moved],
    ));
    assert_eq!(
        named.zone_records(FWD),
        strings(&[
            "db1.example.org. A 198.51.100.12",
            "db2.example.org. A 198.51.100.10",
        ])
    );
    assert_eq!(
        named.zone_records(REV4),
        strings(&[
            "10.100.51.198.in-addr.arpa. PTR db2.example.org.",
            "12.100.51.198.in-addr.arpa. PTR db1.example.org.",
        ])
    );
}

/// Two networks mapped to two forward zones: both are updated, and moving a NIC from one
/// network to the other empties the first zone. Reverse zones come from `reverse_zones`.
#[test]
fn two_networks_two_forward_zones() {
    if skip_reason("two_networks_two_forward_zones").is_none() {
        return;
    }
    let (za, zb, r4, r6) = (
        "a.example",
        "b.example",
        "51.198.in-addr.arpa",
        "8.b.d.0.1.0.0.2.ip6.arpa",
    );
    let named = Named::start(
        &[Zone::new(za), Zone::new(zb), Zone::new(r4), Zone::new(r6)],
        &[KEY],
    );
    let hook = named.hook(
        "dnshook.toml",
        &config(
            named.port,
            &format!(
                "zone = \"{za}\"\nreverse_zones = [\"{r4}\", \"{r6}\"]\n\
                 [networks.netb]\nzone = \"{zb}\"\nttl = 60\n"
            ),
        ),
    );
    let nic_a = Nic {
        ip: Some("198.51.100.20"),
        mac: "aa:00:00:00:00:20",
        network: "neta",
        subnet: Some("198.51.100.0/24"),
        subnet6: Some("2001:db8:a::/64"),
        tags: "public",
    };
    let nic_b = Nic {
        ip: Some("198.51.101.30"),
        mac: "aa:00:00:00:00:30",
        network: "netb",
        subnet: Some("198.51.101.0/24"),
        subnet6: None,
        tags: "public",
    };
    let out = hook.ok(&env(
        "OP_INSTANCE_CREATE",
        "vm",
        None,
        &[nic_a.clone(), nic_b],
    ));
    assert!(
        out.contains("zone a.example.") && out.contains("zone b.example."),
        "{out}"
    );
    let aaaa = "2001:db8:a:0:a800:ff:fe00:20";
    let ptr6 = "0.2.0.0.0.0.e.f.f.f.0.0.0.0.8.a.0.0.0.0.a.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
    assert_eq!(
        named.zone_records(za),
        strings(&[
            "vm.a.example. A 198.51.100.20",
            &format!("vm.a.example. AAAA {aaaa}")
        ])
    );
    assert_eq!(
        named.zone_records(zb),
        strings(&["vm.b.example. A 198.51.101.30"])
    );
    assert_eq!(
        named.zone_records(r4),
        strings(&[
            "20.100.51.198.in-addr.arpa. PTR vm.a.example.",
            "30.101.51.198.in-addr.arpa. PTR vm.b.example.",
        ])
    );
    assert_eq!(
        named.zone_records(r6),
        strings(&[&format!("{ptr6} PTR vm.a.example.")])
    );
    // The per-network TTL is used.
    let ttl_line = named
        .dig_cmd()
        .args(["+noall", "+answer", "vm.b.example", "A"])
        .output()
        .unwrap();
    let ttl_line = String::from_utf8_lossy(&ttl_line.stdout);
    assert_eq!(ttl_line.split_whitespace().nth(1), Some("60"), "{ttl_line}");

    // The netb NIC moves to neta with a new address.
    let moved = Nic {
        ip: Some("198.51.100.31"),
        mac: "aa:00:00:00:00:31",
        network: "neta",
        subnet: Some("198.51.100.0/24"),
        subnet6: None,
        tags: "public",
    };
    hook.ok(&env(
        "OP_INSTANCE_SET_PARAMS",
        "vm",
        None,
        &[nic_a.clone(), moved.clone()],
    ));
    assert_eq!(
        named.zone_records(za),
        strings(&[
            "vm.a.example. A 198.51.100.20",
            "vm.a.example. A 198.51.100.31",
            &format!("vm.a.example. AAAA {aaaa}"),
        ])
    );
    assert_eq!(named.zone_records(zb), strings(&[]));
    assert_eq!(
        named.zone_records(r4),
        strings(&[
            "20.100.51.198.in-addr.arpa. PTR vm.a.example.",
            "31.100.51.198.in-addr.arpa. PTR vm.a.example.",
        ])
    );
    hook.ok(&env("OP_INSTANCE_REMOVE", "vm", None, &[nic_a, moved]));
    for z in [za, zb, r4, r6] {
        assert_eq!(named.zone_records(z), strings(&[]), "zone {z}");
    }
}

/// `--dry-run` reads the server, prints the UPDATE in nsupdate syntax and sends nothing.
#[test]
fn dry_run_prints_and_sends_nothing() {
    if skip_reason("dry_run_prints_and_sends_nothing").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4)], &[KEY]);
    let hook = named.hook(
        "dnshook.toml",
        &config(named.port, &format!("zone = \"{FWD}\"")),
    );
    let before = serials_of(&named, &[FWD, REV4]);
    let out = hook.run(
        &env("OP_INSTANCE_CREATE", "web1", None, &[NIC_V4]),
        &["--dry-run"],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "zone 100.51.198.in-addr.arpa.\n\
         prereq nxrrset 10.100.51.198.in-addr.arpa. IN PTR\n\
         update add 10.100.51.198.in-addr.arpa. 300 IN PTR web1.example.org.\n\
         send\n\
         zone example.org.\n\
         prereq nxrrset web1.example.org. IN A\n\
         update add web1.example.org. 300 IN A 198.51.100.10\n\
         send\n"
    );
    assert_eq!(serials_of(&named, &[FWD, REV4]), before);
    assert!(named.zone_records(FWD).is_empty());

    // The printed script is nsupdate input: replayed, it makes the records.
    let nsupdate = named
        .cmd("nsupdate")
        .args([
            "-y",
            &format!("{}:{}:{}", KEY.algorithm, KEY.name, KEY.secret),
        ])
        .output_with_stdin(&format!("server 127.0.0.1 {}\n{text}", named.port));
    assert!(nsupdate.status.success(), "{}", nsupdate.stderr_text());
    assert_eq!(
        named.zone_records(FWD),
        strings(&["web1.example.org. A 198.51.100.10"])
    );
    assert_eq!(
        named.zone_records(REV4),
        strings(&["10.100.51.198.in-addr.arpa. PTR web1.example.org."])
    );
    // And the hook now finds nothing to do.
    assert_eq!(
        hook.ok(&env("OP_INSTANCE_CREATE", "web1", None, &[NIC_V4])),
        ""
    );
}

fn serials_of(named: &Named, zones: &[&str]) -> Vec<String> {
    zones.iter().map(|z| named.serial(z)).collect()
}

/// A changed `ttl` reaches the records on the next run, once.
#[test]
fn ttl_change_is_applied_once() {
    if skip_reason("ttl_change_is_applied_once").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4)], &[KEY]);
    let h300 = named.hook(
        "300.toml",
        &config(named.port, &format!("zone = \"{FWD}\"")),
    );
    let h60 = named.hook(
        "60.toml",
        &config(named.port, &format!("zone = \"{FWD}\"")).replace("ttl = 300", "ttl = 60"),
    );
    let ttl_of = |name: &str, rtype: &str| -> Vec<String> {
        let out = named
            .dig_cmd()
            .args(["+noall", "+answer", name, rtype])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    };
    let add = env("OP_INSTANCE_CREATE", "web1", None, &[NIC_V4]);
    h300.ok(&add);
    assert_eq!(ttl_of("web1.example.org", "A"), ["300"]);
    h60.ok(&env("OP_INSTANCE_SET_PARAMS", "web1", None, &[NIC_V4]));
    assert_eq!(ttl_of("web1.example.org", "A"), ["60"]);
    assert_eq!(ttl_of("10.100.51.198.in-addr.arpa", "PTR"), ["60"]);
    assert_eq!(
        named.zone_records(FWD),
        strings(&["web1.example.org. A 198.51.100.10"])
    );
    let before = serials_of(&named, &[FWD, REV4]);
    assert_eq!(h60.ok(&add), "");
    assert_eq!(serials_of(&named, &[FWD, REV4]), before);
}
