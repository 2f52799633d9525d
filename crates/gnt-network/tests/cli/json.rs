//! `--output-format json` of `list` and `info` (issue 15.3) against the text output of the
//! same commands: the JSON is parsed, rendered back by the rules of the JSON OUTPUT
//! sections of the man pages, and must give the table cell for cell and the `info` text
//! byte for byte. Nothing here is a hard-coded JSON document.

use serde_json::Value as J;

use crate::harness::*;

/// Columns never hold this, so a row splits into exactly its cells.
const SEP: &str = "\u{1f}";

/// Networks (with and without gateway, IPv6, MAC prefix, reserved addresses, tags, several
/// connections, one unconnected), two groups, nodes with and without addresses, and
/// instances with several NICs (pool, openvswitch with a VLAN, routed without network,
/// names with quotes), tags, and one without NICs.
fn fixture() -> Cluster {
    let c = Cluster::new();
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "192.0.2.0/24",
            "--gateway",
            "192.0.2.1",
            "--add-reserved-ips",
            "192.0.2.10,192.0.2.20,192.0.2.30,192.0.2.40,192.0.2.50,192.0.2.60,192.0.2.70,192.0.2.80",
            "--network6",
            "2001:db8:15::/64",
            "--gateway6",
            "2001:db8:15::1",
            "-m",
            "aa:15:00",
            "--tags",
            "nfdhcpd,dns",
            "net1",
        ],
    );
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "198.51.100.0/28",
            "--allocation-range",
            "198.51.100.4-198.51.100.9",
            "net2",
        ],
    );
    c.ok(NET, &["add", "--network", "203.0.113.0/30", "lonely"]);
    c.ok(GROUP, &["add", "g2"]);
    c.ok(NET, &["connect", "net1", "bridged", "br1"]);
    c.ok(
        NET,
        &[
            "connect",
            "-N",
            "mode=openvswitch,link=ovs1,vlan=.42",
            "net2",
            "g2",
        ],
    );
    c.ok(
        NET,
        &["connect", "-N", "mode=routed,link=rt2", "net2", "default"],
    );
    c.ok(
        NODE,
        &[
            "add",
            "--primary-ip",
            "192.0.2.201",
            "-s",
            "198.51.100.201",
            "node1",
        ],
    );
    c.ok(NODE, &["add", "-g", "g2", "node2"]);
    c.ok(
        INST,
        &[
            "add",
            "-n",
            "node1",
            "--net",
            "0:ip=pool,network=net1,name=eth0",
            "--net",
            "1:mode=openvswitch,link=ovs0,vlan=.5,name=it's",
            "--net",
            "2:mode=routed,link=rt1,ip=203.0.113.9",
            "--net",
            "3:ip=pool,network=net2",
            "--tags",
            "web,prod",
            "i1",
        ],
    );
    c.ok(
        INST,
        &[
            "add",
            "-n",
            "node2",
            "--net",
            "0:ip=pool,network=net2",
            "i2",
        ],
    );
    c.ok(INST, &["add", "--no-nics", "i3"]);
    c.ok(NET, &["add-tags", "net2", "blue"]);
    c
}

/// The four tools with a `list`.
const TOOLS: [&str; 4] = [NET, GROUP, NODE, INST];

/// `list-fields` of a tool: (name, type) of every field.
fn fields(c: &Cluster, bin: &str) -> Vec<(String, String)> {
    c.ok(
        bin,
        &["list-fields", "--no-headers", &format!("--separator={SEP}")],
    )
    .lines()
    .map(|l| {
        let cols: Vec<&str> = l.split(SEP).collect();
        (cols[0].to_owned(), cols[1].to_owned())
    })
    .collect()
}

fn json(text: &str) -> J {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Every field of a tool's `list`: from `list-fields` where the tool has it (gnt-network,
/// gnt-instance), else (gnt-group, gnt-node, as in Ganeti's command set here) the
/// library's field table, which `list` uses.
fn all_fields(c: &Cluster, bin: &str) -> Vec<(String, String)> {
    let table: &[gnt_network::table::Field] = match bin {
        GROUP => &gnt_network::group_cli::FIELDS,
        NODE => &gnt_network::node_cli::FIELDS,
        _ => return fields(c, bin),
    };
    table
        .iter()
        .map(|f| (f.name.to_owned(), f.kind.type_name().to_owned()))
        .collect()
}

/// The lists whose table form is Python's `str()` of the list.
const PYTHON_LISTS: [&str; 4] = ["nic.vlans", "nic.networks.names", "nic.names", "nic.uuids"];
/// The lists joined with `, ` (all others: `,`).
const COMMA_SPACE: [&str; 1] = ["external_reservations"];

/// Python's `repr` of a string (the man page's rule for PYTHON_LISTS items).
fn py_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(q);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if ch == q => {
                out.push('\\');
                out.push(ch);
            }
            ch if (ch as u32) < 0x20 || ch as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", ch as u32));
            }
            ch => out.push(ch),
        }
    }
    out.push(q);
    out
}

/// A connection object `{"group"|"network": N, "mode", "link", "vlan"}` as the table
/// shows it: `N (MODE, LINK, VLAN)`, a null VLAN empty.
fn connection(v: &J, key: &str) -> String {
    let s = |k: &str| match &v[k] {
        J::Null => String::new(),
        J::String(s) => s.clone(),
        other => panic!("{k} of a connection is {other}"),
    };
    let keys: Vec<&String> = v.as_object().expect("connection object").keys().collect();
    assert_eq!(keys, [key, "mode", "link", "vlan"], "{v}");
    format!("{} ({}, {}, {})", s(key), s("mode"), s("link"), s("vlan"))
}

/// The man pages' rendering rules: JSON value of `field` (of list-fields type `kind`) to
/// the table cell.
fn cell(field: &str, kind: &str, v: &J) -> String {
    match (kind, v) {
        (_, J::Null) => "-".into(),
        ("Timestamp", J::Number(n)) => {
            netconf::timefmt::format_time(n.as_f64().expect("a timestamp is a number"))
        }
        ("Timestamp", other) => panic!("{field}: a timestamp is a number, not {other}"),
        ("Number", J::Number(n)) => {
            assert!(n.is_i64(), "{field}: {n} is not an integer");
            n.to_string()
        }
        ("Number", other) => panic!("{field}: a Number field is a JSON number, not {other}"),
        (_, J::String(s)) => s.clone(),
        (_, J::Array(items)) if field == "group_list" => items
            .iter()
            .map(|i| connection(i, "group"))
            .collect::<Vec<_>>()
            .join(", "),
        (_, J::Array(items)) if field == "networks" => items
            .iter()
            .map(|i| connection(i, "network"))
            .collect::<Vec<_>>()
            .join(", "),
        (_, J::Array(items)) => {
            let item = |i: &J| match i {
                J::Null => None,
                J::String(s) => Some(s.clone()),
                other => panic!("{field}: list item {other} is not a string or null"),
            };
            if PYTHON_LISTS.contains(&field) {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| item(i).map_or_else(|| "None".into(), |s| py_repr(&s)))
                    .collect();
                format!("[{}]", items.join(", "))
            } else {
                let sep = if COMMA_SPACE.contains(&field) {
                    ", "
                } else {
                    ","
                };
                items
                    .iter()
                    .map(|i| item(i).unwrap_or_else(|| "None".into()))
                    .collect::<Vec<_>>()
                    .join(sep)
            }
        }
        (_, other) => panic!("{field}: unexpected JSON {other}"),
    }
}

/// Runs `list` with `fields` (and `extra`) in both forms and checks that they agree value
/// by value; returns the JSON rows.
fn agree(c: &Cluster, bin: &str, fields: &[(String, String)], extra: &[&str]) -> Vec<J> {
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let o = names.join(",");
    let mut args = vec!["list", "--no-headers", "--separator", SEP, "-o", &o];
    args.extend_from_slice(extra);
    let table = c.ok(bin, &args);
    let mut args = vec!["list", "--output-format", "json", "-o", &o];
    args.extend_from_slice(extra);
    let rows = match json(&c.ok(bin, &args)) {
        J::Array(rows) => rows,
        other => panic!("list JSON is an array, not {other}"),
    };
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), lines.len(), "{bin} {extra:?}: row count");
    for (row, line) in rows.iter().zip(&lines) {
        let obj = row.as_object().expect("a row is an object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, names, "exactly the selected fields, in order");
        let cells: Vec<&str> = line.split(SEP).collect();
        assert_eq!(cells.len(), names.len(), "{line}");
        for ((name, kind), want) in fields.iter().zip(cells) {
            assert_eq!(
                cell(name, kind, &obj[name]),
                want,
                "{bin} list: field {name} of row {line:?}: JSON {}",
                obj[name]
            );
        }
    }
    rows
}

#[test]
fn list_json_agrees_with_the_table_for_every_field() {
    let c = fixture();
    for bin in TOOLS {
        let all = all_fields(&c, bin);
        assert!(all.len() >= 8, "{bin}: {all:?}");
        let rows = agree(&c, bin, &all, &[]);
        assert!(rows.len() >= 2, "{bin}: the fixture has several objects");
        // Absent values are null, numbers numbers, lists arrays somewhere in the fixture.
        let values: Vec<&J> = rows
            .iter()
            .flat_map(|r| r.as_object().unwrap().values())
            .collect();
        assert!(values.iter().any(|v| v.is_number()), "{bin}");
        assert!(values.iter().any(|v| v.is_array()), "{bin}");
        if bin != GROUP {
            assert!(values.iter().any(|v| v.is_null()), "{bin}");
        }
    }
}

#[test]
fn list_json_honours_field_selection_and_names() {
    let c = fixture();
    // Names given select the rows, in the order Ganeti prints them.
    let sel = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| {
                let kind = if n.ends_with("_cnt") || *n == "free_count" || *n == "nic.count" {
                    "Number"
                } else {
                    "Text"
                };
                ((*n).to_owned(), kind.to_owned())
            })
            .collect()
    };
    let rows = agree(
        &c,
        NET,
        &sel(&["name", "free_count", "tags"]),
        &["net2", "net1"],
    );
    assert_eq!(rows[0]["name"], "net2");
    assert_eq!(rows[0]["tags"], serde_json::json!(["blue"]));
    assert_eq!(rows[1]["tags"], serde_json::json!(["dns", "nfdhcpd"]));
    let rows = agree(&c, INST, &sel(&["nic.count", "nic.ip/3", "name"]), &["i1"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["nic.count"], 4);
    // Without -o: the default fields, `+f` appends.
    for (bin, extra) in [
        (NET, "+uuid"),
        (GROUP, "+networks"),
        (NODE, "+uuid"),
        (INST, "+tags"),
    ] {
        let text = c.ok(bin, &["list", "--separator", SEP, "-o", extra]);
        let header: Vec<&str> = text.lines().next().unwrap().split(SEP).collect();
        let rows = json(&c.ok(bin, &["list", "--output-format", "json", "-o", extra]));
        let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            header.len(),
            "{bin} {extra}: {keys:?} {header:?}"
        );
        assert_eq!(keys.last().unwrap().as_str(), &extra[1..]);
        let plain = json(&c.ok(bin, &["list", "--output-format", "json"]));
        assert_eq!(
            plain[0].as_object().unwrap().len(),
            header.len() - 1,
            "{bin}"
        );
    }
    // Unknown fields and names fail as in text form, and print nothing.
    let r = c.cmd(
        NET,
        &["list", "--output-format", "json", "-o", "name,bogus"],
    );
    assert_eq!((r.code, r.stdout.as_str()), (14, ""));
    let r = c.cmd(NET, &["list", "--output-format", "json", "nosuch"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stdout, "");
    // No objects: an empty array.
    let empty = Cluster::new();
    assert_eq!(
        json(&empty.ok(INST, &["list", "--output-format", "json"])),
        serde_json::json!([])
    );
}

/// A string or null (`None` in the text).
fn none(v: &J) -> String {
    match v {
        J::Null => "None".into(),
        J::String(s) => s.clone(),
        other => panic!("{other} is not a string or null"),
    }
}

fn s(v: &J) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

fn n(v: &J) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// Keys of an object, for checking that nothing is left out or added.
fn keys(v: &J) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("{v} is not an object"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// gnt-network(8)'s JSON OUTPUT, `info`: the text block of one network from its JSON.
fn network_info_text(v: &J) -> String {
    assert_eq!(
        keys(v),
        [
            "network_name",
            "uuid",
            "serial_number",
            "subnet",
            "gateway",
            "ipv6_subnet",
            "ipv6_gateway",
            "mac_prefix",
            "allocation_ranges",
            "size",
            "free",
            "usage_map",
            "externally_reserved_ips",
            "node_groups",
            "instances",
        ]
    );
    let mut t = format!(
        "Network name: {}\nUUID: {}\nSerial number: {}\n  Subnet: {}\n  Gateway: {}\n  \
         IPv6 Subnet: {}\n  IPv6 Gateway: {}\n  Mac Prefix: {}\n",
        s(&v["network_name"]),
        s(&v["uuid"]),
        n(&v["serial_number"]),
        s(&v["subnet"]),
        none(&v["gateway"]),
        none(&v["ipv6_subnet"]),
        none(&v["ipv6_gateway"]),
        none(&v["mac_prefix"]),
    );
    let ranged = !v["allocation_ranges"].is_null();
    let (size, free) = (n(&v["size"]), n(&v["free"]));
    // The percentage is of what ip=pool may hand out: the ranges, or the whole subnet.
    let mut of = size;
    if ranged {
        let ranges: Vec<&str> = v["allocation_ranges"]
            .as_array()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        t += &format!("  Allocation ranges: {}\n", ranges.join(", "));
        of = ranges
            .iter()
            .map(|r| {
                let (a, b) = r.split_once('-').unwrap();
                let a: std::net::Ipv4Addr = a.parse().unwrap();
                let b: std::net::Ipv4Addr = b.parse().unwrap();
                u64::from(u32::from(b) - u32::from(a)) + 1
            })
            .sum();
    }
    let map = s(&v["usage_map"]);
    assert_eq!(map.len() as u64, size);
    let pct = if of == 0 {
        0.0
    } else {
        free as f64 * 100.0 / of as f64
    };
    t += &format!("  Size: {size}\n  Free: {free} ({pct:.2}%)\n  Usage map:\n");
    for (i, chunk) in map.as_bytes().chunks(64).enumerate() {
        let chunk = std::str::from_utf8(chunk).unwrap();
        t += &format!("     {:>4} {chunk:<64} {}\n", i * 64, i * 64 + 63);
    }
    t += if ranged {
        "         (X) used    (.) free    (-) outside the allocation ranges\n"
    } else {
        "         (X) used    (.) free\n"
    };
    let ext: Vec<&str> = v["externally_reserved_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    if !ext.is_empty() {
        t += "  externally reserved IPs:\n";
        // Wrapped at 64 columns on the spaces after the commas.
        let mut line = String::new();
        for (i, ip) in ext.iter().enumerate() {
            let word = if i + 1 < ext.len() {
                format!("{ip},")
            } else {
                (*ip).to_owned()
            };
            if !line.is_empty() && line.len() + 1 + word.len() > 64 {
                t += &format!("    {line}\n");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line += &word;
        }
        t += &format!("    {line}\n");
    }
    let groups = v["node_groups"].as_array().unwrap();
    if groups.is_empty() {
        t += "  not connected to any node group\n";
    } else {
        t += "  connected to node groups:\n";
        for g in groups {
            // Same object as list's group_list; the text spells the keys out.
            let flat = connection(g, "group");
            let (name, rest) = flat.split_once(" (").unwrap();
            let parts: Vec<&str> = rest.trim_end_matches(')').split(", ").collect();
            t += &format!(
                "    {name} (mode:{} link:{} vlan:{})\n",
                parts[0], parts[1], parts[2]
            );
        }
    }
    let insts = v["instances"].as_array().unwrap();
    if insts.is_empty() {
        t += "  not used by any instances\n";
    } else {
        t += &format!("  used by {} instances:\n", insts.len());
        for i in insts {
            assert_eq!(keys(i), ["name", "nics"]);
            let nics: Vec<String> = i["nics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|nic| {
                    assert_eq!(keys(nic), ["index", "ip"]);
                    format!("{}:{}", n(&nic["index"]), none(&nic["ip"]))
                })
                .collect();
            t += &format!("    {}: {}\n", s(&i["name"]), nics.join(", "));
        }
    }
    t
}

/// gnt-group(8)'s JSON OUTPUT, `info`.
fn group_info_text(v: &J) -> String {
    assert_eq!(
        keys(v),
        [
            "node_group",
            "uuid",
            "serial_number",
            "alloc_policy",
            "nodes",
            "instances",
            "networks"
        ]
    );
    let list = |k: &str| {
        let items: Vec<&str> = v[k].as_array().unwrap().iter().map(s).collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut t = format!(
        "Node group: {}\n  UUID: {}\n  Serial number: {}\n  Alloc policy: {}\n  Nodes: {}\n  Instances: {}\n",
        s(&v["node_group"]),
        s(&v["uuid"]),
        n(&v["serial_number"]),
        s(&v["alloc_policy"]),
        list("nodes"),
        list("instances"),
    );
    let nets = v["networks"].as_array().unwrap();
    if nets.is_empty() {
        t += "  Networks: none\n";
    } else {
        t += "  Networks:\n";
        for net in nets {
            let vlan = &net["vlan"];
            connection(net, "network");
            t += &format!(
                "    {} (mode:{} link:{} vlan:{})\n",
                s(&net["network"]),
                s(&net["mode"]),
                s(&net["link"]),
                if vlan.is_null() { "" } else { s(vlan) }
            );
        }
    }
    t
}

/// gnt-instance(8)'s JSON OUTPUT, `info`.
fn instance_info_text(v: &J) -> String {
    assert_eq!(
        keys(v),
        [
            "instance_name",
            "uuid",
            "serial_number",
            "creation_time",
            "modification_time",
            "nodes",
            "tags",
            "nics"
        ]
    );
    let time = |k: &str| netconf::timefmt::format_time(v[k].as_f64().expect("a time"));
    let nodes = &v["nodes"];
    assert_eq!(
        keys(nodes),
        ["primary", "group", "group_uuid", "secondaries"]
    );
    assert_eq!(nodes["secondaries"], serde_json::json!([]));
    let tags: Vec<&str> = v["tags"].as_array().unwrap().iter().map(s).collect();
    let mut t = format!(
        "- Instance name: {}\n  UUID: {}\n  Serial number: {}\n  Creation time: {}\n  \
         Modification time: {}\n  Nodes: \n    - primary: {}\n      group: {} (UUID {})\n    \
         - secondaries: \n  Tags: {}\n  NICs: \n",
        s(&v["instance_name"]),
        s(&v["uuid"]),
        n(&v["serial_number"]),
        time("creation_time"),
        time("modification_time"),
        s(&nodes["primary"]),
        s(&nodes["group"]),
        s(&nodes["group_uuid"]),
        tags.join(", "),
    );
    for (i, nic) in v["nics"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            keys(nic),
            [
                "mac",
                "ip",
                "mode",
                "link",
                "vlan",
                "network",
                "uuid",
                "name",
                "ipv6_eui64"
            ]
        );
        t += &format!(
            "    - nic/{i}: \n      MAC: {}\n      IP: {}\n      mode: {}\n      link: {}\n      \
             vlan: {}\n      network: {}\n      UUID: {}\n      name: {}\n",
            s(&nic["mac"]),
            none(&nic["ip"]),
            s(&nic["mode"]),
            s(&nic["link"]),
            if nic["vlan"].is_null() {
                ""
            } else {
                s(&nic["vlan"])
            },
            none(&nic["network"]),
            s(&nic["uuid"]),
            none(&nic["name"]),
        );
        if !nic["ipv6_eui64"].is_null() {
            t += &format!("      IPv6 (EUI-64): {}\n", s(&nic["ipv6_eui64"]));
        }
    }
    t
}

/// `info` of `bin` with `args`, both forms: the JSON array rendered by `render` must be
/// the text, byte for byte. Returns the JSON array.
fn info_agrees(c: &Cluster, bin: &str, args: &[&str], render: fn(&J) -> String) -> Vec<J> {
    let mut a = vec!["info"];
    a.extend_from_slice(args);
    let text = c.ok(bin, &a);
    a.insert(1, "--output-format=json");
    let all = match json(&c.ok(bin, &a)) {
        J::Array(v) => v,
        other => panic!("info JSON is an array, not {other}"),
    };
    let rendered: String = all.iter().map(render).collect();
    assert_eq!(rendered, text, "{bin} {args:?}");
    all
}

#[test]
fn info_json_agrees_with_the_text() {
    let c = fixture();
    let nets = info_agrees(&c, NET, &[], network_info_text);
    assert_eq!(nets.len(), 3);
    // Typed: counts are numbers, the absent gateway null, connections objects.
    let net2 = nets.iter().find(|n| n["network_name"] == "net2").unwrap();
    assert!(net2["gateway"].is_null() && net2["size"] == 16);
    assert_eq!(net2["node_groups"].as_array().unwrap().len(), 2);
    info_agrees(&c, NET, &["lonely", "net1"], network_info_text);
    let groups = info_agrees(&c, GROUP, &[], group_info_text);
    assert_eq!(groups.len(), 2);
    info_agrees(&c, GROUP, &["g2"], group_info_text);
    let insts = info_agrees(&c, INST, &["--all"], instance_info_text);
    assert_eq!(insts.len(), 3);
    assert_eq!(insts[0]["nics"].as_array().unwrap().len(), 4);
    assert!(insts[0]["creation_time"].is_f64());
    info_agrees(&c, INST, &["i2", "i1"], instance_info_text);
    // Errors stay errors, with nothing on stdout.
    let r = c.cmd(NET, &["info", "--output-format", "json", "nosuch"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stdout, "");
    let r = c.cmd(INST, &["info", "--output-format", "json"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
}

#[test]
fn output_format_text_is_the_default_and_only_json_changes_it() {
    let c = fixture();
    for (bin, args) in [
        (NET, &["list", "-o", "name,tags,ctime"][..]),
        (NET, &["info"][..]),
        (GROUP, &["list"][..]),
        (GROUP, &["info"][..]),
        (NODE, &["list"][..]),
        (INST, &["list", "-o", "+nic.vlans"][..]),
        (INST, &["info", "--all"][..]),
    ] {
        let plain = c.ok(bin, args);
        let mut with = args.to_vec();
        with.extend(["--output-format", "text"]);
        assert_eq!(c.ok(bin, &with), plain, "{args:?}");
    }
    let r = c.cmd(NET, &["list", "--output-format", "yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // `-o json` keeps Ganeti's meaning: a field list, here of an unknown field.
    let r = c.cmd(NET, &["list", "-o", "json"]);
    assert_eq!(r.code, 14);
}

/// gnt-cluster(8)'s JSON OUTPUT of `verify`, rendered as the text lines (without their
/// time stamps), in the default or the `--error-codes` form.
fn verify_lines(v: &J, coded: bool) -> Vec<String> {
    assert_eq!(keys(v), ["steps"]);
    let mut lines = Vec::new();
    for step in v["steps"].as_array().unwrap() {
        assert_eq!(keys(step), ["step", "findings"]);
        lines.push(format!("* {}", s(&step["step"])));
        for f in step["findings"].as_array().unwrap() {
            assert_eq!(keys(f), ["level", "code", "type", "item", "message"]);
            let item = f["item"].as_str();
            lines.push(if coded {
                format!(
                    "  - {}:{}:{}:{}:{}",
                    s(&f["level"]),
                    s(&f["code"]),
                    s(&f["type"]),
                    item.unwrap_or(""),
                    s(&f["message"])
                )
            } else {
                format!(
                    "  - {}: {}{}: {}",
                    s(&f["level"]),
                    s(&f["type"]),
                    item.map_or(String::new(), |i| format!(" {i}")),
                    s(&f["message"])
                )
            });
        }
    }
    lines
}

/// `gnt-cluster verify` in both forms on a configuration with an error (a pool bit
/// without an owner, planted by hand) and a warning (overlapping networks).
#[test]
fn verify_json_agrees_with_the_text() {
    if !file_only("verify_json_agrees_with_the_text") {
        return;
    }
    let c = Cluster::new();
    c.skip_final_verify();
    c.add_net("net1", "198.51.100.0/24", "198.51.100.1");
    c.ok(
        NET,
        &[
            "add",
            "--no-conflicts-check",
            "--network",
            "198.51.100.0/25",
            "net2",
        ],
    );
    c.ok(NET, &["connect", "net1", "bridged", "br0"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "b"]);
    let text = c.text();
    let edited = text.replacen("\nreservations = \"2\"\n", "\nreservations = \"2,9\"\n", 1);
    assert_ne!(edited, text);
    std::fs::write(c.config(), edited).unwrap();
    let check = |extra: &[&str], coded: bool, code: i32| {
        let mut a = vec!["verify"];
        a.extend_from_slice(extra);
        let r = c.cmd(CLUSTER, &a);
        assert_eq!(r.code, code, "{}{}", r.stdout, r.stderr);
        // `<ctime> ` is 25 characters.
        let text: Vec<String> = r.stdout.lines().map(|l| l[25..].to_owned()).collect();
        a.push("--output-format=json");
        let r = c.cmd(CLUSTER, &a);
        assert_eq!(r.code, code, "{}", r.stderr);
        let v = json(&r.stdout);
        assert_eq!(verify_lines(&v, coded), text);
        v
    };
    let v = check(&[], false, 1);
    let all: Vec<&J> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap())
        .collect();
    assert!(
        all.iter()
            .any(|f| f["level"] == "ERROR" && f["code"] == "ENETWORKPOOL")
    );
    assert!(all.iter().any(|f| f["level"] == "WARNING"));
    check(&["--error-codes"], true, 1);
    // Demoted errors are warnings in both forms, and the run passes.
    let v = check(&["--ignore-errors", "ENETWORKPOOL"], false, 0);
    assert!(!v.to_string().contains("\"ERROR\""));
}
