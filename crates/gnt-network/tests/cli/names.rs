//! Names are checked where they enter: every command that creates or renames an object
//! refuses a bad name with Ganeti's OpPrereqError (wrong_input, exit 1) and leaves
//! config.data byte-identical; lookups of a bad name fail without echoing it raw; a
//! config.data holding a bad name is refused as a whole (exit 2) with the line named.

use crate::harness::*;

/// The injection of the issue: a name that would add `MACSPOOF` and `IP` lines to an
/// nfdhcpd binding file.
const INJECTION: &str = "vm6\nMACSPOOF=1\nIP=203.0.113.77";

/// A cluster with net1 connected to the default group, node1 and instance inst1.
fn base() -> Cluster {
    let c = Cluster::new();
    c.add_net("net1", "198.51.100.0/24", "198.51.100.1");
    c.ok(NET, &["connect", "-N", "mode=bridged,link=br0", "net1"]);
    c.ok(NODE, &["add", "node1"]);
    c.ok(
        INST,
        &[
            "add",
            "-n",
            "node1",
            "--net",
            "0:ip=pool,network=net1",
            "inst1",
        ],
    );
    c
}

/// Bad names for every kind, with the reason each one gives.
fn bad_names() -> Vec<(String, &'static str)> {
    vec![
        (INJECTION.to_owned(), "contains a control character ('\\n')"),
        ("a".repeat(70_000), "longer than"),
        ("vm 1".to_owned(), "contains white space (' ')"),
        ("vm\t1".to_owned(), "contains a control character ('\\t')"),
        ("vm/1".to_owned(), "contains a '/'"),
        (
            "vm\u{1}".to_owned(),
            "contains a control character ('\\u{1}')",
        ),
        (
            "vm\u{7f}".to_owned(),
            "contains a control character ('\\u{7f}')",
        ),
        ("vm\r".to_owned(), "contains a control character ('\\r')"),
        (
            "vm\u{202e}1".to_owned(),
            "contains an invisible formatting character",
        ),
    ]
}

/// Runs `bin args` and checks the refusal: exit 1, Ganeti's wrong_input layout with
/// `detail` in it, nothing echoed raw, config.data unchanged.
fn refused(c: &Cluster, bin: &str, args: &[&str], detail: &str) {
    let before = c.bytes();
    let r = c.cmd(bin, args);
    let head = "Failure: prerequisites not met for this operation:\nerror type: wrong_input, error details:\n";
    assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
    assert!(r.stderr.starts_with(head), "{args:?}: {}", r.stderr);
    assert!(r.stderr.contains(detail), "{args:?}: {}", r.stderr);
    // The message is one line after the header, and short even for a 70,000-byte name.
    assert_eq!(r.stderr.lines().count(), 3, "{args:?}: {}", r.stderr);
    assert!(r.stderr.len() < 400, "{args:?}: {} bytes", r.stderr.len());
    assert!(c.bytes() == before, "{args:?} changed config.data");
}

#[test]
fn instance_add_and_rename_refuse_bad_names() {
    let c = base();
    for (bad, why) in bad_names() {
        refused(
            &c,
            INST,
            &["add", "--net", "0:ip=pool,network=net1", &bad],
            "Invalid hostname '",
        );
        refused(&c, INST, &["add", &bad], why);
        refused(&c, INST, &["rename", "inst1", &bad], why);
    }
    // Ganeti's host-name rules beyond the characters no name may hold.
    for (bad, why) in [
        (
            "vm_é",
            "'é' is not allowed (only letters, digits, '-', '_' and '.')",
        ),
        ("vm:1", "':' is not allowed"),
        ("vm=1", "'=' is not allowed"),
        ("vm\"1", "'\"' is not allowed"),
        (".vm", "it has an empty label"),
        ("vm..example", "it has an empty label"),
        (&"l".repeat(64), "is longer than 63 bytes"),
        (
            &format!("{}.x", vec!["a".repeat(63); 4].join(".")),
            "longer than 253 bytes",
        ),
    ] {
        refused(&c, INST, &["add", bad], why);
        refused(&c, INST, &["rename", "inst1", bad], why);
    }
    c.prereq(
        INST,
        &["add", ""],
        "wrong_input",
        "Parameter 'OP_INSTANCE_CREATE.instance_name' fails validation",
    );
    c.prereq(
        INST,
        &["rename", "inst1", ""],
        "wrong_input",
        "Parameter 'OP_INSTANCE_RENAME.new_name' fails validation",
    );
}

/// The exact injection of the issue, end to end: refused with Ganeti's text, and no
/// instance, binding line or pool address came of it.
#[test]
fn the_issue_injection_is_refused_by_instance_add() {
    let c = base();
    c.prereq(
        INST,
        &["add", "--net", "0:ip=pool,network=net1", INJECTION],
        "wrong_input",
        "Invalid hostname 'vm6\\nmacspoof=1\\nip=203.0.113.77': contains a control character ('\\n')",
    );
    let cfg = c.parsed();
    assert_eq!(cfg.instances.len(), 1);
    assert!(!c.text().contains("MACSPOOF"));
}

#[test]
fn host_names_are_normalised_as_ganeti_does() {
    let c = base();
    c.ok(INST, &["add", "VM7.Example.ORG."]);
    assert_eq!(c.inst_field("vm7.example.org", "name"), "vm7.example.org");
    let out = c.ok(INST, &["rename", "vm7.example.org", "Web_1"]);
    assert_eq!(out, "Instance 'vm7.example.org' renamed to 'web_1'\n");
    assert_eq!(c.inst_field("web_1", "name"), "web_1");
    c.ok(NODE, &["add", "Node2.Example."]);
    assert!(
        c.ok(NODE, &["list", "--no-headers", "-o", "name"])
            .contains("node2.example\n")
    );
}

#[test]
fn node_add_refuses_bad_names() {
    let c = base();
    for (bad, why) in bad_names() {
        refused(&c, NODE, &["add", &bad], why);
    }
    refused(&c, NODE, &["add", "node_é"], "is not allowed");
    c.prereq(
        NODE,
        &["add", ""],
        "wrong_input",
        "Parameter 'OP_NODE_ADD.node_name' fails validation",
    );
}

#[test]
fn network_add_and_rename_refuse_bad_names() {
    let c = base();
    for (bad, why) in bad_names() {
        refused(
            &c,
            NET,
            &["add", "--network", "203.0.113.0/24", &bad],
            "Invalid network name '",
        );
        refused(&c, NET, &["add", "--network", "203.0.113.0/24", &bad], why);
        refused(&c, NET, &["rename", "net1", &bad], why);
    }
    refused(
        &c,
        NET,
        &["add", "--network", "203.0.113.0/24", &"n".repeat(256)],
        "longer than 255 bytes (256 bytes)",
    );
    refused(
        &c,
        NET,
        &["rename", "net1", "a\u{a0}b"],
        "contains white space",
    );
    c.prereq(
        NET,
        &["add", "--network", "203.0.113.0/24", ""],
        "wrong_input",
        "Parameter 'OP_NETWORK_ADD.network_name' fails validation",
    );
    c.prereq(
        NET,
        &["rename", "net1", ""],
        "wrong_input",
        "Parameter 'OP_NETWORK_RENAME.new_name' fails validation",
    );
    // What Ganeti allowed and is harmless stays allowed.
    c.ok(NET, &["rename", "net1", "réseau:1=a.b_c"]);
    c.ok(
        NET,
        &["add", "--network", "203.0.113.0/24", &"n".repeat(255)],
    );
}

#[test]
fn group_add_and_rename_refuse_bad_names() {
    let c = base();
    for (bad, why) in bad_names() {
        refused(&c, GROUP, &["add", &bad], "Invalid node group name '");
        refused(&c, GROUP, &["add", &bad], why);
        refused(&c, GROUP, &["rename", "default", &bad], why);
    }
    c.prereq(
        GROUP,
        &["add", ""],
        "wrong_input",
        "Parameter 'OP_GROUP_ADD.group_name' fails validation",
    );
    c.prereq(
        GROUP,
        &["rename", "default", ""],
        "wrong_input",
        "Parameter 'OP_GROUP_RENAME.new_name' fails validation",
    );
}

/// Commands that look an object up by name cannot create one; a bad name is simply not
/// found, and the message shows it escaped, on one line.
#[test]
fn lookups_of_bad_names_are_not_found_and_not_echoed_raw() {
    let c = base();
    let shown = "vm6\\nMACSPOOF=1\\nIP=203.0.113.77";
    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            INST,
            vec!["remove", INJECTION],
            format!("Instance '{shown}' not known"),
        ),
        (
            INST,
            vec!["rename", INJECTION, "vm9"],
            format!("Instance '{shown}' not known"),
        ),
        (
            INST,
            vec!["modify", "--net", "0:ip=none", INJECTION],
            format!("Instance '{shown}' not known"),
        ),
        (
            INST,
            vec!["add", "-n", INJECTION, "vm9"],
            format!("Node '{shown}' not found"),
        ),
        (
            INST,
            vec!["add", "-g", INJECTION, "vm9"],
            format!("Node group '{shown}' not found"),
        ),
        (
            NET,
            vec!["remove", INJECTION],
            format!("Network '{shown}' not found"),
        ),
        (
            NET,
            vec!["rename", INJECTION, "x"],
            format!("Network '{shown}' not found"),
        ),
        (
            NET,
            vec!["modify", "--gateway", "198.51.100.2", INJECTION],
            format!("Network '{shown}' not found"),
        ),
        (
            NET,
            vec!["connect", "-N", "mode=bridged,link=br0", INJECTION],
            format!("Network '{shown}' not found"),
        ),
        (
            NET,
            vec!["connect", "-N", "mode=bridged,link=br0", "net1", INJECTION],
            format!("Node group '{shown}' not found"),
        ),
        (
            GROUP,
            vec!["remove", INJECTION],
            format!("Node group '{shown}' not found"),
        ),
        (
            GROUP,
            vec!["rename", INJECTION, "g"],
            format!("Node group '{shown}' not found"),
        ),
        (
            NODE,
            vec!["remove", INJECTION],
            format!("Node '{shown}' not found"),
        ),
    ];
    for (bin, args, msg) in cases {
        c.prereq(bin, &args, "unknown_entity", &msg);
    }
}

/// A config.data whose names break the rules (a hand edit, or a file from before they
/// were checked) is refused as a whole, naming the line, rather than half-loaded: its
/// names would reach hooks and binding files.
#[test]
fn a_stored_bad_name_is_refused_at_load_with_its_line() {
    // Edits config.data by hand.
    if !file_only("a_stored_bad_name_is_refused_at_load_with_its_line") {
        return;
    }
    for (from, to, kind) in [
        (
            "name = \"inst1\"",
            "name = \"inst1\\nMACSPOOF=1\"",
            "instance",
        ),
        ("name = \"node1\"", "name = \"node 1\"", "node"),
        ("name = \"net1\"", "name = \"net/1\"", "network"),
        ("name = \"default\"", "name = \"\"", "node group"),
    ] {
        let c = base();
        // Load once so that a cache exists: it must not stand in for the edited file.
        c.ok(INST, &["list"]);
        let text = c.text().replacen(from, to, 1);
        assert_ne!(text, c.text(), "{from}");
        std::fs::write(c.config(), &text).unwrap();
        let line = text.lines().position(|l| l == to).unwrap() + 1;
        let before = c.bytes();
        for (bin, args) in [
            (INST, vec!["list"]),
            (NET, vec!["list"]),
            (INST, vec!["add", "vm9"]),
        ] {
            let r = c.cmd(bin, &args);
            assert_eq!(r.code, 2, "{kind} {args:?}: {}", r.stderr);
            let want = format!(
                "Corrupt configuration file: {}:{line}: {kind} name refused: ",
                c.config().display()
            );
            assert!(r.stderr.starts_with(&want), "{kind}: {}", r.stderr);
            assert!(c.bytes() == before);
        }
    }
}
