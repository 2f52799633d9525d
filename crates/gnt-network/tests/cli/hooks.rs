//! §9: hook scripts in `<hooks>/<path>-{pre,post}.d/` record their environment; the
//! variables must be Ganeti's names and values. A failing pre hook aborts with nothing
//! changed; a failing post hook is reported and the command succeeds.

use std::path::{Path, PathBuf};

use crate::harness::*;

type Env = Vec<(String, String)>;

/// Hooks recording both phases of `path`.
fn record(c: &Cluster, path: &str) -> (PathBuf, PathBuf) {
    (c.env_hook(path, "pre"), c.env_hook(path, "post"))
}

/// The `GANETI_*` variables of a recorded environment, minus the base ones.
fn op_vars(env: &Env) -> Vec<(String, String)> {
    const BASE: [&str; 8] = [
        "GANETI_HOOKS_VERSION",
        "GANETI_OP_CODE",
        "GANETI_DATA_DIR",
        "GANETI_HOOKS_PHASE",
        "GANETI_HOOKS_PATH",
        "GANETI_OBJECT_TYPE",
        "GANETI_CLUSTER",
        "GANETI_MASTER",
    ];
    env.iter()
        .filter(|(k, _)| k.starts_with("GANETI_") && !BASE.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

/// Checks the base variables and that the environment was reset, then returns the
/// operation's variables of the pre phase, after checking the post phase repeats them
/// as GANETI_* and GANETI_POST_*.
fn check_phases(c: &Cluster, pre: &Path, post: &Path, op: &str, path: &str, obj: &str) -> Env {
    let master = c.cluster_value("master_node");
    let cluster = c.cluster_value("name");
    let pre_env = env_file(pre);
    let post_env = env_file(post);
    for (env, phase) in [(&pre_env, "pre"), (&post_env, "post")] {
        let get = |k: &str| env_get(env, k).map(str::to_owned);
        assert_eq!(
            get("PATH").as_deref(),
            Some("/sbin:/bin:/usr/sbin:/usr/bin")
        );
        assert_eq!(get("GANETI_HOOKS_VERSION").as_deref(), Some("2"));
        assert_eq!(get("GANETI_OP_CODE").as_deref(), Some(op));
        assert_eq!(get("GANETI_DATA_DIR").as_deref(), Some("/var/lib/ganeti"));
        assert_eq!(get("GANETI_HOOKS_PHASE").as_deref(), Some(phase));
        assert_eq!(get("GANETI_HOOKS_PATH").as_deref(), Some(path));
        assert_eq!(get("GANETI_OBJECT_TYPE").as_deref(), Some(obj));
        assert_eq!(get("GANETI_CLUSTER"), Some(cluster.clone()));
        assert_eq!(get("GANETI_MASTER"), Some(master.clone()));
        // Reset environment: nothing of ours leaks but NETCONF_* (the test sets TZ, HOME
        // is set for any cargo run).
        for leaked in ["TZ", "HOME", "CARGO", "RUST_TEST_THREADS"] {
            assert_eq!(get(leaked), None, "{leaked} leaked into the {phase} hook");
        }
    }
    let pre_vars = op_vars(&pre_env);
    let post_vars = op_vars(&post_env);
    let mut want_post = pre_vars.clone();
    want_post.extend(
        pre_vars
            .iter()
            .map(|(k, v)| (k.replacen("GANETI_", "GANETI_POST_", 1), v.clone())),
    );
    want_post.sort();
    assert_eq!(
        post_vars, want_post,
        "post = pre values, also as GANETI_POST_*"
    );
    pre_vars
}

#[test]
fn network_add_modify_rename_remove_hooks() {
    let c = Cluster::new();
    let (pre, post) = record(&c, "network-add");
    c.ok(
        NET,
        &[
            "add",
            "--network",
            "192.0.2.0/24",
            "--gateway",
            "192.0.2.1",
            "--network6",
            "2001:db8::/64",
            "--gateway6",
            "2001:db8::1",
            "-m",
            "aa:bb:cc",
            "--tags",
            "t2,t1",
            "net1",
        ],
    );
    let vars = check_phases(&c, &pre, &post, "OP_NETWORK_ADD", "network-add", "NETWORK");
    assert_eq!(
        vars,
        pairs(&[
            ("GANETI_NETWORK_NAME", "net1"),
            ("GANETI_NETWORK_SUBNET", "192.0.2.0/24"),
            ("GANETI_NETWORK_GATEWAY", "192.0.2.1"),
            ("GANETI_NETWORK_SUBNET6", "2001:db8::/64"),
            ("GANETI_NETWORK_GATEWAY6", "2001:db8::1"),
            ("GANETI_NETWORK_MAC_PREFIX", "aa:bb:cc"),
            ("GANETI_NETWORK_TAGS", "t1 t2"),
        ])
    );
    // Unset values are absent.
    c.ok(NET, &["add", "--network", "198.51.100.0/24", "net2"]);
    let vars = check_phases(&c, &pre, &post, "OP_NETWORK_ADD", "network-add", "NETWORK");
    assert_eq!(
        vars,
        pairs(&[
            ("GANETI_NETWORK_NAME", "net2"),
            ("GANETI_NETWORK_SUBNET", "198.51.100.0/24")
        ])
    );

    let (pre, post) = record(&c, "network-modify");
    c.ok(
        NET,
        &[
            "modify",
            "--gateway",
            "192.0.2.254",
            "--gateway6",
            "none",
            "-m",
            "none",
            "net1",
        ],
    );
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_NETWORK_SET_PARAMS",
        "network-modify",
        "NETWORK",
    );
    assert_eq!(
        vars,
        pairs(&[
            ("GANETI_NETWORK_NAME", "net1"),
            ("GANETI_NETWORK_SUBNET", "192.0.2.0/24"),
            ("GANETI_NETWORK_GATEWAY", "192.0.2.254"),
            ("GANETI_NETWORK_SUBNET6", "2001:db8::/64"),
            ("GANETI_NETWORK_TAGS", "t1 t2"),
        ])
    );

    let (pre, post) = record(&c, "network-rename");
    c.ok(NET, &["rename", "net2", "net3"]);
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_NETWORK_RENAME",
        "network-rename",
        "NETWORK",
    );
    assert_eq!(
        vars,
        pairs(&[("GANETI_OLD_NAME", "net2"), ("GANETI_NEW_NAME", "net3")])
    );

    let (pre, post) = record(&c, "network-remove");
    c.ok(NET, &["remove", "net3"]);
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_NETWORK_REMOVE",
        "network-remove",
        "NETWORK",
    );
    assert_eq!(vars, pairs(&[("GANETI_NETWORK_NAME", "net3")]));
}

#[test]
fn network_connect_disconnect_hooks_carry_the_network_name() {
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "192.0.2.0/24", "net1"]);
    c.ok(GROUP, &["add", "g2"]);
    c.ok(
        NODE,
        &["add", "-g", "g2", "--primary-ip", "203.0.113.5", "node2"],
    );
    let uuid = c.net_field("net1", "uuid");
    let (pre, post) = record(&c, "network-connect");
    c.ok(
        NET,
        &[
            "connect",
            "-N",
            "mode=routed,link=rt7,vlan=.5",
            "net1",
            "g2",
        ],
    );
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_NETWORK_CONNECT",
        "network-connect",
        "NETWORK",
    );
    assert_eq!(
        vars,
        pairs(&[
            ("GANETI_GROUP_NAME", "g2"),
            ("GANETI_GROUP_NETWORK_MODE", "routed"),
            ("GANETI_GROUP_NETWORK_LINK", "rt7"),
            ("GANETI_GROUP_NETWORK_VLAN", ".5"),
            ("GANETI_NETWORK_NAME", "net1"),
            ("GANETI_NETWORK_UUID", &uuid),
        ])
    );
    let (pre, post) = record(&c, "network-disconnect");
    c.ok(NET, &["disconnect", "net1", "g2"]);
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_NETWORK_DISCONNECT",
        "network-disconnect",
        "NETWORK",
    );
    assert_eq!(
        vars,
        pairs(&[
            ("GANETI_GROUP_NAME", "g2"),
            ("GANETI_GROUP_NETWORK_MODE", "routed"),
            ("GANETI_GROUP_NETWORK_LINK", "rt7"),
            ("GANETI_GROUP_NETWORK_VLAN", ".5"),
            ("GANETI_NETWORK_NAME", "net1"),
            ("GANETI_NETWORK_UUID", &uuid),
        ])
    );
}

/// The §9 NIC variables of NIC `i` as stored in config.data.
fn nic_vars(c: &Cluster, inst: &str, net_uuid: &str) -> Vec<(String, String)> {
    let cfg = c.parsed();
    let i = cfg
        .instances
        .all_decoded()
        .values()
        .find(|i| i.name == inst)
        .expect("instance");
    let nic = &i.nics[0];
    let n = &cfg.networks[net_uuid];
    let mut v = pairs(&[
        ("GANETI_INSTANCE_NIC0_UUID", &nic.uuid),
        (
            "GANETI_INSTANCE_NIC0_IP",
            &nic.ip.map(|x| x.to_string()).unwrap_or_default(),
        ),
        ("GANETI_INSTANCE_NIC0_MAC", &nic.mac.to_string()),
        ("GANETI_INSTANCE_NIC0_MODE", "bridged"),
        ("GANETI_INSTANCE_NIC0_LINK", "prv0"),
        ("GANETI_INSTANCE_NIC0_VLAN", ""),
        ("GANETI_INSTANCE_NIC0_BRIDGE", "prv0"),
        ("GANETI_INSTANCE_NIC0_NAME", "eth0"),
        ("GANETI_INSTANCE_NIC0_NETWORK_NAME", &n.name),
        ("GANETI_INSTANCE_NIC0_NETWORK_UUID", net_uuid),
        ("GANETI_INSTANCE_NIC0_NETWORK_TAGS", "nfdhcpd"),
        ("GANETI_INSTANCE_NIC0_NETWORK_SUBNET", "192.168.1.0/24"),
        ("GANETI_INSTANCE_NIC0_NETWORK_GATEWAY", "192.168.1.1"),
        ("GANETI_INSTANCE_NIC0_NETWORK_SUBNET6", "2001:db8:1::/64"),
        ("GANETI_INSTANCE_NIC0_NETWORK_MAC_PREFIX", "aa:00:01"),
    ]);
    v.sort();
    v
}

fn only(vars: &Env, prefix: &str) -> Env {
    vars.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .cloned()
        .collect()
}

#[test]
fn instance_add_modify_rename_remove_hooks() {
    let c = seeded();
    c.ok(
        NET,
        &[
            "modify",
            "--network6",
            "2001:db8:1::/64",
            "-m",
            "aa:00:01",
            "net1",
        ],
    );
    let net = c.net_field("net1", "uuid");
    let master = c.cluster_value("master_node");

    let (pre, post) = record(&c, "instance-add");
    c.ok(
        INST,
        &[
            "add",
            "--tags",
            "b,a",
            "--net",
            "0:ip=pool,network=net1,name=eth0",
            "inst1",
        ],
    );
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_INSTANCE_CREATE",
        "instance-add",
        "INSTANCE",
    );
    // The pre hook saw exactly what was committed (address, MAC, NIC UUID).
    assert_eq!(
        only(&vars, "GANETI_INSTANCE_NIC0_"),
        nic_vars(&c, "inst1", &net)
    );
    assert_eq!(
        env_get(&vars, "GANETI_INSTANCE_NIC0_IP"),
        Some("192.168.1.2")
    );
    assert!(
        env_get(&vars, "GANETI_INSTANCE_NIC0_MAC")
            .unwrap()
            .starts_with("aa:00:01:")
    );
    for (k, v) in [
        ("GANETI_INSTANCE_NAME", "inst1"),
        ("GANETI_INSTANCE_PRIMARY", master.as_str()),
        ("GANETI_INSTANCE_SECONDARIES", ""),
        ("GANETI_INSTANCE_TAGS", "a b"),
        ("GANETI_INSTANCE_NIC_COUNT", "1"),
    ] {
        assert_eq!(env_get(&vars, k), Some(v), "{k}");
    }

    let (pre, post) = record(&c, "instance-modify");
    c.ok(INST, &["modify", "--net", "add:link=br9", "inst1"]);
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_INSTANCE_SET_PARAMS",
        "instance-modify",
        "INSTANCE",
    );
    assert_eq!(
        env_get(&vars, "GANETI_INSTANCE_NIC_COUNT"),
        Some("2"),
        "the new NIC list"
    );
    assert_eq!(
        only(&vars, "GANETI_INSTANCE_NIC0_"),
        nic_vars(&c, "inst1", &net)
    );
    let cfg = c.parsed();
    let nic1 = &cfg.instances.all_decoded().values().next().unwrap().nics[1];
    assert_eq!(
        only(&vars, "GANETI_INSTANCE_NIC1_"),
        pairs(&[
            ("GANETI_INSTANCE_NIC1_UUID", &nic1.uuid),
            ("GANETI_INSTANCE_NIC1_IP", ""),
            ("GANETI_INSTANCE_NIC1_MAC", &nic1.mac.to_string()),
            ("GANETI_INSTANCE_NIC1_MODE", "bridged"),
            ("GANETI_INSTANCE_NIC1_LINK", "br9"),
            ("GANETI_INSTANCE_NIC1_VLAN", ""),
            ("GANETI_INSTANCE_NIC1_BRIDGE", "br9"),
        ])
    );

    let (pre, post) = record(&c, "instance-rename");
    c.ok(INST, &["rename", "inst1", "inst9"]);
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_INSTANCE_RENAME",
        "instance-rename",
        "INSTANCE",
    );
    assert_eq!(env_get(&vars, "GANETI_INSTANCE_NAME"), Some("inst1"));
    assert_eq!(env_get(&vars, "GANETI_INSTANCE_NEW_NAME"), Some("inst9"));
    assert_eq!(
        only(&vars, "GANETI_INSTANCE_NIC0_"),
        nic_vars(&c, "inst9", &net)
    );

    let expect_nic0 = nic_vars(&c, "inst9", &net);
    let (pre, post) = record(&c, "instance-remove");
    c.ok(INST, &["remove", "inst9"]);
    let vars = check_phases(
        &c,
        &pre,
        &post,
        "OP_INSTANCE_REMOVE",
        "instance-remove",
        "INSTANCE",
    );
    assert_eq!(env_get(&vars, "GANETI_INSTANCE_NAME"), Some("inst9"));
    assert_eq!(only(&vars, "GANETI_INSTANCE_NIC0_"), expect_nic0);
}

#[test]
fn failing_pre_hook_aborts_with_nothing_changed() {
    let c = seeded();
    let master = c.cluster_value("master_node");
    let ran = c.dir.path().join("post-ran");
    for path in [
        "network-add",
        "network-modify",
        "network-connect",
        "instance-add",
        "network-remove",
    ] {
        c.hook(path, "pre", "50-deny", "echo denied by policy; exit 1");
        c.hook(
            path,
            "post",
            "10-mark",
            &format!("touch '{}'", ran.display()),
        );
    }
    let abort = format!(
        "Failure: hooks execution failed:\n  node: {master}, script: 50-deny, output: denied by policy\n"
    );
    c.fails(
        NET,
        &["add", "--network", "198.51.100.0/24", "n2"],
        1,
        &abort,
    );
    c.fails(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
        1,
        &abort,
    );
    c.fails(NET, &["connect", "-N", "link=x", "net1"], 1, &abort);
    c.fails(
        INST,
        &["add", "--net", "0:ip=pool,network=net1", "i1"],
        1,
        &abort,
    );
    assert!(!ran.exists(), "no post hook after an aborted command");
    // A script without output.
    c.hook("network-add", "pre", "50-deny", "exit 3");
    c.fails(
        NET,
        &["add", "--network", "198.51.100.0/24", "n2"],
        1,
        &format!(
            "Failure: hooks execution failed:\n  node: {master}, script: 50-deny (no output)\n"
        ),
    );
    // A command that fails its own checks fails before any hook runs.
    let marker = c.dir.path().join("pre-ran");
    c.hook(
        "network-add",
        "pre",
        "50-deny",
        &format!("touch '{}'", marker.display()),
    );
    c.prereq(
        NET,
        &["add", "--network", "foo", "n2"],
        "wrong_input",
        "Parameter 'OP_NETWORK_ADD.network' fails validation",
    );
    assert!(!marker.exists());
    // Scripts with other names do not run at all.
    c.hook("network-modify", "pre", "50-deny", "exit 0");
    c.hook("network-modify", "pre", "60.deny", "exit 1");
    c.ok(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
    );
}

#[test]
fn failing_post_hook_is_reported_and_the_command_succeeds() {
    let c = seeded();
    let master = c.cluster_value("master_node");
    c.hook(
        "network-modify",
        "post",
        "20-broken",
        "echo boom >&2; exit 1",
    );
    c.hook("network-modify", "post", "30-silent", "exit 2");
    let before = c.serial();
    let r = c.cmd(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        feedback(&r.stdout, "WARNING"),
        [
            format!("On {master} script 20-broken failed, output: boom"),
            format!("On {master} script 30-silent failed, output: (no output)"),
        ]
    );
    assert_eq!(c.serial(), before + 1, "the change was committed");
    assert!(
        c.net_field("net1", "external_reservations")
            .contains("192.168.1.9")
    );
}
