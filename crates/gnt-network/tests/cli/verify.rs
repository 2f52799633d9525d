//! `gnt-cluster verify` and `repair-pools` on hand-edited config.data files: each planted
//! inconsistency is found, reported by the next command, and refused by mutations.

use std::fs;

use crate::harness::*;

/// net1 (198.51.100.0/24, gateway .1) connected to `default`; group g2; node n1 in
/// `default`; instances a (on n1, 198.51.100.2) and b (198.51.100.3) from the pool.
fn base() -> Cluster {
    let c = Cluster::new();
    c.add_net("net1", "198.51.100.0/24", "198.51.100.1");
    c.ok(NET, &["connect", "net1", "bridged", "br0"]);
    c.ok(GROUP, &["add", "g2"]);
    c.ok(NODE, &["add", "n1"]);
    c.ok(
        INST,
        &["add", "-n", "n1", "--net", "0:ip=pool,network=net1", "a"],
    );
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "b"]);
    assert_eq!(c.inst_field("b", "nic.ips"), "198.51.100.3");
    c
}

/// `text` with `f` applied to the body of table `[header]` only.
fn in_table(text: &str, header: &str, f: impl Fn(&str) -> String) -> String {
    let start = text
        .find(&format!("\n[{header}]\n"))
        .unwrap_or_else(|| panic!("no [{header}]"))
        + 1;
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |e| start + 1 + e);
    let body = f(&text[start..end]);
    assert_ne!(
        body,
        text[start..end],
        "the edit of [{header}] changed nothing"
    );
    format!("{}{body}{}", &text[..start], &text[end..])
}

fn replace(a: &str, b: &str) -> impl Fn(&str) -> String {
    let (a, b) = (a.to_owned(), b.to_owned());
    move |s: &str| s.replacen(&a, &b, 1)
}

/// Names of the objects of `base`, for edits.
struct Ids {
    net: String,
    default: String,
    g2: String,
    node: String,
    a: String,
    b: String,
    mac_a: String,
}

fn ids(c: &Cluster) -> Ids {
    let cfg = c.parsed();
    let inst = |n: &str| cfg.instance_uuid(n).unwrap();
    let a = inst("a");
    Ids {
        net: cfg.network_uuid("net1").unwrap(),
        default: cfg.group_uuid("default").unwrap(),
        g2: cfg.group_uuid("g2").unwrap(),
        node: cfg.node_uuid("n1").unwrap(),
        mac_a: cfg.instances.all_decoded()[&a].nics[0].mac.to_string(),
        b: inst("b"),
        a,
    }
}

const BOGUS: &str = "00000000-0000-4000-8000-000000000000";

type Edit = Box<dyn Fn(&str, &Ids) -> String>;

/// One planted inconsistency: a hand edit, and the error code and text verify reports.
struct Case {
    what: &'static str,
    edit: Edit,
    code: &'static str,
    line: String,
}

fn cases(i: &Ids) -> Vec<Case> {
    let net = format!("networks.{}", i.net);
    let inst_a = format!("instances.{}", i.a);
    let inst_b = format!("instances.{}", i.b);
    let mut v: Vec<Case> = Vec::new();
    let mut case = |what, code, line: String, edit: Edit| {
        v.push(Case {
            what,
            edit,
            code,
            line,
        })
    };
    let (n1, ia, ib) = (net.clone(), inst_a, inst_b);
    case(
        "an owner without its pool bit (issue 11 point 8)",
        "ENETWORKPOOL",
        "ERROR: network net1: addresses not marked as used in the pool, which can hand them out again: 198.51.100.3 (instance b NIC 0)".into(),
        Box::new(move |t, _| in_table(t, &n1, replace("reservations = \"2-3\"", "reservations = \"2\""))),
    );
    let n1 = net.clone();
    case(
        "a pool bit without an owner",
        "ENETWORKPOOL",
        "ERROR: network net1: addresses marked as used by an instance, but no NIC has them: 198.51.100.9".into(),
        Box::new(move |t, _| in_table(t, &n1, replace("reservations = \"2-3\"", "reservations = \"2-3,9\""))),
    );
    let ib2 = ib.clone();
    case(
        "an address used twice in a network",
        "ENETWORKDUPIP",
        "ERROR: network net1: IP 198.51.100.2 is used by instance a NIC 0, instance b NIC 0".into(),
        Box::new(move |t, _| {
            in_table(
                t,
                &ib2,
                replace("ip = \"198.51.100.3\"", "ip = \"198.51.100.2\""),
            )
        }),
    );
    let ib2 = ib.clone();
    case(
        "a MAC used twice in the cluster",
        "ECLUSTERDUPMAC",
        format!("NIC 0 has MAC {} of instance ", i.mac_a),
        Box::new(move |t, ids| {
            let cfg_b = t[t.find(&format!("[{ib2}]")).unwrap()..].to_owned();
            let mac_b = cfg_b.split("mac = \"").nth(1).unwrap()[..17].to_owned();
            in_table(
                t,
                &ib2,
                replace(
                    &format!("mac = \"{mac_b}\""),
                    &format!("mac = \"{}\"", ids.mac_a),
                ),
            )
        }),
    );
    let n1 = net.clone();
    case(
        "the gateway not externally reserved",
        "ENETWORKCFG",
        "ERROR: network net1: gateway 198.51.100.1 is not externally reserved".into(),
        Box::new(move |t, _| {
            in_table(
                t,
                &n1,
                replace(
                    "ext_reservations = \"0-1,255\"",
                    "ext_reservations = \"0,255\"",
                ),
            )
        }),
    );
    let n1 = net;
    case(
        "the broadcast address not externally reserved",
        "ENETWORKCFG",
        "ERROR: network net1: broadcast address 198.51.100.255 is not externally reserved".into(),
        Box::new(move |t, _| {
            in_table(
                t,
                &n1,
                replace(
                    "ext_reservations = \"0-1,255\"",
                    "ext_reservations = \"0-1\"",
                ),
            )
        }),
    );
    let ib2 = ib.clone();
    case(
        "a NIC on a network that does not exist",
        "EINSTANCENIC",
        format!("ERROR: instance b: NIC 0 is on network {BOGUS}, which does not exist"),
        Box::new(move |t, ids| {
            in_table(
                t,
                &ib2,
                replace(
                    &format!("network = \"{}\"", ids.net),
                    &format!("network = \"{BOGUS}\""),
                ),
            )
        }),
    );
    let ib2 = ib.clone();
    case(
        "a NIC on a network not connected to the instance's group",
        "EINSTANCENIC",
        "ERROR: instance b: NIC 0 is on network net1, which is not connected to node group g2"
            .into(),
        Box::new(move |t, ids| {
            in_table(
                t,
                &ib2,
                replace(
                    &format!("group = \"{}\"", ids.default),
                    &format!("group = \"{}\"", ids.g2),
                ),
            )
        }),
    );
    let ib2 = ib.clone();
    case(
        "an instance in a group that does not exist",
        "ECLUSTERDANGLINGINST",
        format!("ERROR: instance b: belongs to node group {BOGUS}, which does not exist"),
        Box::new(move |t, ids| {
            in_table(
                t,
                &ib2,
                replace(
                    &format!("group = \"{}\"", ids.default),
                    &format!("group = \"{BOGUS}\""),
                ),
            )
        }),
    );
    let ia2 = ia.clone();
    case(
        "an instance on a node that does not exist",
        "ECLUSTERDANGLINGINST",
        format!("ERROR: instance a: primary node {BOGUS} does not exist"),
        Box::new(move |t, ids| {
            in_table(
                t,
                &ia2,
                replace(
                    &format!("primary_node = \"{}\"", ids.node),
                    &format!("primary_node = \"{BOGUS}\""),
                ),
            )
        }),
    );
    case(
        "a node in a group that does not exist",
        "ECLUSTERDANGLINGNODES",
        format!("ERROR: node n1: belongs to node group {BOGUS}, which does not exist"),
        Box::new(|t, ids| {
            in_table(
                t,
                &format!("nodes.{}", ids.node),
                replace(
                    &format!("group = \"{}\"", ids.default),
                    &format!("group = \"{BOGUS}\""),
                ),
            )
        }),
    );
    case(
        "an instance in another group than its node",
        "EINSTANCECFG",
        "ERROR: instance a: primary node n1 is in node group default, the instance in g2".into(),
        Box::new(move |t, ids| {
            in_table(
                t,
                &ia,
                replace(
                    &format!("group = \"{}\"", ids.default),
                    &format!("group = \"{}\"", ids.g2),
                ),
            )
        }),
    );
    let ib2 = ib.clone();
    case(
        "an address outside its network",
        "EINSTANCENIC",
        "ERROR: instance b: NIC 0 has IP 203.0.113.5, outside network net1 (198.51.100.0/24)"
            .into(),
        Box::new(move |t, _| {
            in_table(
                t,
                &ib2,
                replace("ip = \"198.51.100.3\"", "ip = \"203.0.113.5\""),
            )
        }),
    );
    case(
        "a group connected to a network that does not exist",
        "EGROUPCFG",
        format!("ERROR: group default: connected to network {BOGUS}, which does not exist"),
        Box::new(|t, ids| {
            in_table(
                t,
                &format!("nodegroups.{}", ids.default),
                replace(
                    &format!("networks = {{ \"{}\"", ids.net),
                    &format!("networks = {{ \"{BOGUS}\""),
                ),
            )
        }),
    );
    case(
        "a cluster serial number of 0",
        "ECLUSTERCFG",
        "ERROR: cluster: serial number is 0 (every commit adds 1, starting at 1)".into(),
        Box::new(|t, _| {
            let serial = t
                .split("\n[cluster]\n")
                .nth(1)
                .unwrap()
                .lines()
                .find(|l| l.starts_with("serial_no = "))
                .unwrap()
                .to_owned();
            in_table(t, "cluster", replace(&serial, "serial_no = 0"))
        }),
    );
    case(
        "two instances with one name",
        "EINSTANCECFG",
        "ERROR: instance a: name used by more than one instance".into(),
        Box::new(move |t, _| in_table(t, &ib, replace("name = \"b\"", "name = \"a\""))),
    );
    v
}

#[test]
fn verify_finds_each_planted_inconsistency_and_mutations_refuse_it() {
    // Edits config.data by hand.
    if !file_only("verify_finds_each_planted_inconsistency_and_mutations_refuse_it") {
        return;
    }
    let clean = base();
    let r = clean.cmd(CLUSTER, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let steps: Vec<&str> = r.stdout.lines().map(|l| &l[25..]).collect();
    assert_eq!(
        steps,
        [
            "* Verifying cluster config",
            "* Verifying network address pools",
            "* Verifying all nodes belong to an existing group",
        ]
    );
    let good = clean.text();
    let ids = ids(&clean);
    let table = cases(&ids);
    assert!(table.len() >= 8);
    for case in table {
        let c = Cluster::new();
        c.skip_final_verify();
        let edited = (case.edit)(&good, &ids);
        fs::write(c.config(), &edited).unwrap();

        let r = c.cmd(CLUSTER, &["verify"]);
        assert_eq!(
            r.code, 1,
            "{}: verify exit code\n{}{}",
            case.what, r.stdout, r.stderr
        );
        // Ganeti's shape: `<ctime>   - ERROR: <type> <item>: <text>`.
        let found = r
            .stdout
            .lines()
            .any(|l| l.len() > 27 && l[24..].starts_with("   - ") && l[29..].contains(&case.line));
        assert!(
            found,
            "{}: no line with {:?}:\n{}",
            case.what, case.line, r.stdout
        );
        let coded = c.cmd(CLUSTER, &["verify", "--error-codes"]);
        assert!(
            coded.stdout.contains(&format!("  - ERROR:{}:", case.code)),
            "{}: no {} line:\n{}",
            case.what,
            case.code,
            coded.stdout
        );
        // Demoted to warnings, the same problems no longer fail the run.
        let codes: Vec<&str> = coded
            .stdout
            .lines()
            .filter_map(|l| l.split("  - ERROR:").nth(1))
            .filter_map(|l| l.split(':').next())
            .collect();
        let ignored = c.cmd(CLUSTER, &["verify", "--ignore-errors", &codes.join(",")]);
        assert_eq!(ignored.code, 0, "{}: {}", case.what, ignored.stdout);

        // The next command reports it: a read warns and names gnt-cluster verify ...
        let r = c.cmd(NET, &["list", "-o", "name"]);
        assert_eq!(r.code, 0, "{}: {}", case.what, r.stderr);
        assert!(
            r.stderr.starts_with("WARNING: ") && r.stderr.contains("Run 'gnt-cluster verify'"),
            "{}: {}",
            case.what,
            r.stderr
        );
        // ... and a mutation elsewhere refuses to build on it, leaving the file alone.
        let r = c.cmd(GROUP, &["add", "g3"]);
        assert_eq!(r.code, 2, "{}: {}{}", case.what, r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("refusing to commit an inconsistent configuration")
                && r.stderr.contains("gnt-cluster verify"),
            "{}: {}",
            case.what,
            r.stderr
        );
        // A dry run runs the same check.
        let r = c.cmd(GROUP, &["add", "--dry-run", "g3"]);
        assert_eq!(
            r.code, 2,
            "{}: --dry-run {}{}",
            case.what, r.stdout, r.stderr
        );
        assert_eq!(
            c.text(),
            edited,
            "{}: a refused command changed config.data",
            case.what
        );
    }
}

/// Issue 11 point 8: a hand edit of the reservations let the pool hand 198.51.100.3 out
/// a second time, silently. Now the add is refused, also after a read in between (a
/// configuration that breaks an invariant gets no cache, so it is checked again).
#[test]
fn a_hand_edited_reservation_no_longer_hands_an_address_out_twice() {
    // Edits config.data by hand.
    if !file_only("a_hand_edited_reservation_no_longer_hands_an_address_out_twice") {
        return;
    }
    let c = base();
    let text = c
        .text()
        .replace("reservations = \"2-3\"", "reservations = \"2\"");
    fs::write(c.config(), &text).unwrap();
    let r = c.cmd(INST, &["list", "-o", "name,nic.ips"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr.contains("198.51.100.3 (instance b NIC 0)"),
        "{}",
        r.stderr
    );
    assert!(
        !netconf_cluster::config::FileStore::new(c.config()).cache_is_fresh(),
        "the read left a cache for the inconsistent file"
    );
    let r = c.cmd(INST, &["add", "--net", "0:ip=pool,network=net1", "d"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "\n  - ERROR: network net1: IP 198.51.100.3 is used by instance b NIC 0, instance d NIC 0\n"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(c.text(), text);
    assert_eq!(c.cmd(INST, &["list", "d"]).code, 1, "d was not added");

    c.ok(CLUSTER, &["repair-pools"]);
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "d"]);
    assert_eq!(c.inst_field("d", "nic.ips"), "198.51.100.4");
}

#[test]
fn repair_pools_dry_run_changes_nothing_and_the_repair_leaves_a_clean_cluster() {
    // Edits config.data by hand.
    if !file_only("repair_pools_dry_run_changes_nothing_and_the_repair_leaves_a_clean_cluster") {
        return;
    }
    let c = base();
    let good = c.text();
    // b's bit gone, a stray bit at .9, the gateway unreserved.
    let broken = good
        .replace("reservations = \"2-3\"", "reservations = \"2,9\"")
        .replace(
            "ext_reservations = \"0-1,255\"",
            "ext_reservations = \"0,255\"",
        );
    fs::write(c.config(), &broken).unwrap();
    assert_eq!(c.cmd(CLUSTER, &["verify"]).code, 1);

    let r = c.cmd(CLUSTER, &["repair-pools", "--dry-run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        c.bytes(),
        broken.as_bytes(),
        "the dry run wrote config.data"
    );
    let lines: Vec<&str> = r.stdout.lines().map(|l| &l[25..]).collect();
    assert_eq!(
        lines,
        [
            "* Repairing network address pools (dry run: nothing is changed)",
            "  - would have network net1: released 198.51.100.9, which no NIC has",
            "  - would have network net1: marked 198.51.100.3 as used by instance b NIC 0",
            "  - would have network net1: reserved the gateway 198.51.100.1 externally",
        ]
    );

    let serial = c.serial();
    let r = c.cmd(CLUSTER, &["repair-pools"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    assert_eq!(c.serial(), serial + 1, "one commit");
    c.ok(CLUSTER, &["verify"]);
    let cfg = c.parsed();
    let pool = cfg.networks[&cfg.network_uuid("net1").unwrap()]
        .pool
        .as_ref()
        .unwrap();
    assert_eq!(pool.to_stored(), ("2-3".to_owned(), "0-1,255".to_owned()));

    // Nothing left to repair: nothing is written.
    let before = c.bytes();
    let r = c.ok(CLUSTER, &["repair-pools"]);
    assert!(r.ends_with("  - nothing to repair\n"), "{r}");
    assert_eq!(c.bytes(), before);
}

#[test]
fn repair_pools_fixes_the_pools_and_names_what_it_cannot_fix() {
    // Edits config.data by hand.
    if !file_only("repair_pools_fixes_the_pools_and_names_what_it_cannot_fix") {
        return;
    }
    let c = base();
    // b takes a's address by hand: the pool's bit for .3 is now without owner, and two
    // NICs share .2, which no pool repair can decide.
    let text = c
        .text()
        .replace("ip = \"198.51.100.3\"", "ip = \"198.51.100.2\"");
    fs::write(c.config(), &text).unwrap();
    let r = c.cmd(CLUSTER, &["repair-pools"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("  - network net1: released 198.51.100.3, which no NIC has\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("  - WARNING: not repaired, fix by hand: network net1: IP 198.51.100.2 is used by instance"),
        "{}",
        r.stdout
    );
    c.skip_final_verify();
}
