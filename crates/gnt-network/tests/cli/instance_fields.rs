//! Ganeti 3.0's NIC fields of `gnt-instance list` and `list-fields`
//! (`Ganeti.Query.Instance`): the aggregate `nic.*` lists, the per-NIC `nic.X/N` fields for
//! every N below MAX_NICS (8), the legacy first-NIC aliases, and how absent values print.

use crate::harness::*;

/// What each `nic.X/N` field holds, in Ganeti's order, with its title stem and description
/// stem.
const INDEXED: [(&str, &str, &str); 10] = [
    ("ip", "NicIP", "IP address"),
    ("uuid", "NicUUID", "UUID address"),
    ("mac", "NicMAC", "MAC address"),
    ("name", "NicName", "Name address"),
    ("network", "NicNetwork", "Network"),
    ("mode", "NicMode", "Mode"),
    ("link", "NicLink", "Link"),
    ("vlan", "NicVLAN", "VLAN"),
    ("network.name", "NicNetworkName", "Network name"),
    ("bridge", "NicBridge", "Bridge"),
];

const ORDINALS: [&str; 8] = ["1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th"];

/// i1: NIC 0 on net1 (bridged, br0, from the connection) named eth0; NIC 1 openvswitch
/// with a VLAN and nothing else; NIC 2 routed with an address and no network.
fn fixture() -> Cluster {
    let c = Cluster::new();
    c.add_net("net1", "192.0.2.0/24", "192.0.2.1");
    c.ok(
        NET,
        &["connect", "-N", "mode=bridged,link=br0", "net1", "default"],
    );
    c.ok(
        INST,
        &[
            "add",
            "--net",
            "0:ip=pool,network=net1,name=eth0",
            "--net",
            "1:mode=openvswitch,link=ovs0,vlan=.5",
            "--net",
            "2:mode=routed,link=rt1,ip=203.0.113.9",
            "i1",
        ],
    );
    c.ok(INST, &["add", "--no-nics", "i2"]);
    c
}

fn row(c: &Cluster, fields: &[String], extra: &[&str]) -> String {
    let f = fields.join(",");
    let mut args = vec!["list", "--no-headers", "--separator", "|", "-o", &f];
    args.extend_from_slice(extra);
    c.ok(INST, &args)
}

#[test]
fn aggregate_nic_fields_print_as_ganeti_does() {
    let c = fixture();
    let net1 = c.net_field("net1", "uuid");
    let per = |what: &str| -> Vec<String> {
        (0..3)
            .map(|i| c.inst_field("i1", &format!("nic.{what}/{i}")))
            .collect()
    };
    let (macs, uuids) = (per("mac"), per("uuid"));
    let fields = [
        "nic.count",
        "nic.macs",
        "nic.ips",
        "nic.modes",
        "nic.links",
        "nic.bridges",
        "nic.vlans",
        "nic.names",
        "nic.uuids",
        "nic.networks",
        "nic.networks.names",
    ]
    .map(str::to_owned);
    // The lists Ganeti's client joins with commas print None for a missing value; the
    // others print as Python lists; `nic.networks` holds UUIDs, `nic.networks.names`
    // names; VLANs are those of openvswitch NICs, bridges the links of bridged ones.
    assert_eq!(
        row(&c, &fields, &["i1", "i2"]),
        format!(
            "3|{m}|192.0.2.2,None,203.0.113.9|bridged,openvswitch,routed|br0,ovs0,rt1|\
             br0,None,None|[None, '.5', None]|['eth0', None, None]|['{u0}', '{u1}', '{u2}']|\
             {net1},None,None|['net1', None, None]\n\
             0||||||[]|[]|[]||[]\n",
            m = macs.join(","),
            u0 = uuids[0],
            u1 = uuids[1],
            u2 = uuids[2],
        )
    );
    // The default columns name networks, not UUIDs.
    assert_eq!(
        c.ok(INST, &["list", "i1"]),
        format!(
            "Instance Primary_node {:<26} NIC_networks_names\n\
             i1       {m:<12} 192.0.2.2,None,203.0.113.9 ['net1', None, None]\n",
            "NIC_IPs",
            m = c.cluster_value("master_node")
        )
    );
}

#[test]
fn every_indexed_nic_field_up_to_max_nics() {
    let c = fixture();
    let net1 = c.net_field("net1", "uuid");
    let uuid = |i: usize| c.inst_field("i1", &format!("nic.uuid/{i}"));
    let mac = |i: usize| c.inst_field("i1", &format!("nic.mac/{i}"));
    // Per NIC, in INDEXED order; "-" is Ganeti's "unavailable".
    let want: [Vec<String>; 3] = [
        [
            "192.0.2.2",
            &uuid(0),
            &mac(0),
            "eth0",
            &net1,
            "bridged",
            "br0",
            "-",
            "net1",
            "br0",
        ]
        .map(str::to_owned)
        .to_vec(),
        [
            "-",
            &uuid(1),
            &mac(1),
            "-",
            "-",
            "openvswitch",
            "ovs0",
            ".5",
            "-",
            "-",
        ]
        .map(str::to_owned)
        .to_vec(),
        [
            "203.0.113.9",
            &uuid(2),
            &mac(2),
            "-",
            "-",
            "routed",
            "rt1",
            "-",
            "-",
            "-",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    assert!(mac(0).starts_with("aa:00:00:") && uuid(0).len() == 36);
    for n in 0..8 {
        let fields: Vec<String> = INDEXED
            .iter()
            .map(|(x, _, _)| format!("nic.{x}/{n}"))
            .collect();
        // Beyond the instance's NICs every field is unavailable, as in Ganeti.
        let expect = want
            .get(n)
            .cloned()
            .unwrap_or_else(|| vec!["-".to_owned(); INDEXED.len()]);
        assert_eq!(
            row(&c, &fields, &["i1"]),
            expect.join("|") + "\n",
            "NIC {n}"
        );
        // An instance without NICs has none of them.
        assert_eq!(
            row(&c, &fields, &["i2"]),
            vec!["-"; INDEXED.len()].join("|") + "\n"
        );
    }
    // -v spells "unavailable" out.
    assert_eq!(
        row(&c, &["nic.ip/1".into(), "nic.name/7".into()], &["-v", "i1"]),
        "(unavail)|(unavail)\n"
    );
    // Titles.
    assert_eq!(
        c.ok(
            INST,
            &["list", "-o", "name,nic.ip/0,nic.network.name/0", "i1"]
        ),
        "Instance NicIP/0   NicNetworkName/0\ni1       192.0.2.2 net1\n"
    );
    // Ganeti's legacy first-NIC names.
    let aliases = ["ip", "mac", "bridge", "nic_mode", "nic_link", "nic_network"].map(str::to_owned);
    assert_eq!(
        row(&c, &aliases, &["i1"]),
        format!("192.0.2.2|{}|br0|bridged|br0|{net1}\n", mac(0))
    );
    // MAX_NICS is 8: index 8 is no field.
    c.fails(
        INST,
        &["list", "-o", "name,nic.ip/8,nic.mac/0", "i1"],
        14,
        "Warning: Queried for unknown fields nic.ip/8\n",
    );
}

#[test]
fn list_fields_shows_the_nic_fields() {
    let c = fixture();
    let all = c.ok(INST, &["list-fields", "--no-headers", "--separator", "|"]);
    let names: Vec<&str> = all.lines().map(|l| l.split('|').next().unwrap()).collect();
    // Natural order of the names, as Ganeti lists them.
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| gnt_network::sort::nice_cmp(a, b));
    assert_eq!(names, sorted);
    for (n, nth) in ORDINALS.iter().enumerate() {
        for (x, title, doc) in INDEXED {
            let line = format!("nic.{x}/{n}|Text|{title}/{n}|{doc} of {nth} network interface");
            assert!(all.lines().any(|l| l == line), "{line} missing in:\n{all}");
        }
    }
    assert!(!all.contains("nic.ip/8"));
    for line in [
        "nic.count|Number|NICs|Number of network interfaces",
        "nic.bridges|Custom|NIC_bridges|List containing each network interface's bridge",
        "nic.vlans|Custom|NIC_VLANs|List containing each network interface's VLAN",
        "nic.networks|Custom|NIC_networks|List containing each interface's network",
        "nic.networks.names|Custom|NIC_networks_names|List containing the name of each \
         interface's network",
        "ip|Text|NicIP/0|IP address of 1st network interface",
        "nic_network|Text|NicNetwork/0|Network of 1st network interface",
    ] {
        assert!(all.lines().any(|l| l == line), "{line} missing in:\n{all}");
    }
    assert_eq!(all.lines().count(), 26 + 80);
    assert_eq!(
        c.ok(
            INST,
            &[
                "list-fields",
                "--separator",
                "|",
                "nic.vlan/7",
                "nic.network.name/2"
            ]
        ),
        "Name|Type|Title|Description\n\
         nic.vlan/7|Text|NicVLAN/7|VLAN of 8th network interface\n\
         nic.network.name/2|Text|NicNetworkName/2|Network name of 3rd network interface\n"
    );
}
