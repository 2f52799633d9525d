//! When the hook must not act, or must fail before talking to any server. These need no
//! root and no BIND: the configured server is a closed port, so any attempt to contact it
//! would fail the run. Where the machine allows unprivileged namespaces, the hook runs in a
//! network namespace of its own (`unshare -rn`, only `lo` up), so even that attempt stays
//! off the host's loopback.

use std::io::Write as _;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

const NODE: &str = "node1.example.org";

fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("dnshook.toml");
    std::fs::write(
        &path,
        format!(
            "server = \"127.0.0.1\"\nport = {}\nzone = \"example.org\"\ntimeout = 0.2\nattempts = 1\n",
            closed_port()
        ),
    )
    .unwrap();
    path
}

/// Whether `unshare -rn` (a user and network namespace, no root needed) works here.
fn can_unshare() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        let ok = Command::new("unshare")
            .args(["-rn", "ip", "link", "set", "lo", "up"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = writeln!(
                std::io::stderr(),
                "NOTE cli: unshare -rn does not work here; the hook runs in this namespace \
                 (its one datagram goes to a closed port on 127.0.0.1)"
            );
        }
        ok
    })
}

/// The hook, in a throw-away network namespace with `lo` up when possible. `unshare` and
/// `exec` keep the hook's exit status.
fn hook_command() -> Command {
    let hook = env!("CARGO_BIN_EXE_snf-dnshook");
    if !can_unshare() {
        return Command::new(hook);
    }
    let mut c = Command::new("unshare");
    c.args([
        "-rn",
        "sh",
        "-c",
        "ip link set lo up && exec \"$0\" \"$@\"",
        hook,
    ]);
    c
}

fn run(config: &Path, vars: &[(&str, &str)]) -> Output {
    hook_command()
        .env_clear()
        .env("PATH", "/sbin:/bin:/usr/sbin:/usr/bin")
        .env("SNF_DNSHOOK_CONFIG", config)
        .env("SNF_DNSHOOK_NODE", NODE)
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

const PUBLIC_NIC: [(&str, &str); 5] = [
    ("GANETI_INSTANCE_NIC_COUNT", "1"),
    ("GANETI_INSTANCE_NIC0_IP", "198.51.100.10"),
    ("GANETI_INSTANCE_NIC0_MAC", "aa:00:00:12:34:56"),
    ("GANETI_INSTANCE_NIC0_NETWORK_SUBNET", "198.51.100.0/24"),
    ("GANETI_INSTANCE_NIC0_NETWORK_TAGS", "public"),
];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

fn assert_quiet_success(out: &Output) {
    assert!(
        out.status.success(),
        "status {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same environment with the phase set to `post` does contact the (closed) server and
/// fails: so the successes below really come from the checks they name.
#[test]
fn control_the_post_phase_on_the_primary_reaches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let vars = with(
        &PUBLIC_NIC,
        &[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
            ("GANETI_INSTANCE_NAME", "web1"),
            ("GANETI_INSTANCE_PRIMARY", NODE),
        ],
    );
    let out = run(&config, &vars);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no usable answer"), "{err}");
}

#[test]
fn pre_phase_does_nothing_even_with_broken_variables() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = run(
        &config,
        &[
            ("GANETI_HOOKS_PHASE", "pre"),
            ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
            ("GANETI_INSTANCE_NAME", "web1"),
            ("GANETI_INSTANCE_PRIMARY", NODE),
            ("GANETI_INSTANCE_NIC_COUNT", "1"),
            ("GANETI_INSTANCE_NIC0_IP", "not-an-ip"),
            ("GANETI_INSTANCE_NIC0_NETWORK_TAGS", "public"),
        ],
    );
    assert_quiet_success(&out);
    // Not even the configuration is read in the pre phase.
    let out = run(
        Path::new("/nonexistent/dnshook.toml"),
        &[
            ("GANETI_HOOKS_PHASE", "pre"),
            ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
        ],
    );
    assert_quiet_success(&out);
}

#[test]
fn other_nodes_and_other_opcodes_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let base = with(
        &PUBLIC_NIC,
        &[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_INSTANCE_NAME", "web1"),
        ],
    );
    let out = run(
        &config,
        &with(
            &base,
            &[
                ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
                ("GANETI_INSTANCE_PRIMARY", "node2.example.org"),
            ],
        ),
    );
    assert_quiet_success(&out);
    // Case and a trailing dot do not make another node.
    let out = run(
        &config,
        &with(
            &base,
            &[
                ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
                ("GANETI_INSTANCE_PRIMARY", "NODE1.example.org."),
            ],
        ),
    );
    assert_eq!(out.status.code(), Some(1), "the primary should act");
    for op in [
        "OP_INSTANCE_STARTUP",
        "OP_INSTANCE_MIGRATE",
        "OP_NETWORK_ADD",
    ] {
        let out = run(
            &config,
            &with(
                &base,
                &[("GANETI_OP_CODE", op), ("GANETI_INSTANCE_PRIMARY", NODE)],
            ),
        );
        assert_quiet_success(&out);
    }
}

#[test]
fn instances_without_a_dns_nic_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    for op in [
        "OP_INSTANCE_CREATE",
        "OP_INSTANCE_RENAME",
        "OP_INSTANCE_REMOVE",
    ] {
        let out = run(
            &config,
            &[
                ("GANETI_HOOKS_PHASE", "post"),
                ("GANETI_OP_CODE", op),
                ("GANETI_INSTANCE_NAME", "web1"),
                ("GANETI_INSTANCE_NEW_NAME", "web2"),
                ("GANETI_INSTANCE_PRIMARY", NODE),
                ("GANETI_INSTANCE_NIC_COUNT", "2"),
                ("GANETI_INSTANCE_NIC0_IP", "198.51.100.10"),
                ("GANETI_INSTANCE_NIC0_MAC", "aa:00:00:12:34:56"),
                (
                    "GANETI_INSTANCE_NIC0_NETWORK_TAGS",
                    "nfdhcpd private-filtered",
                ),
                ("GANETI_INSTANCE_NIC1_IP", ""),
                ("GANETI_INSTANCE_NIC1_MAC", "aa:00:00:12:34:57"),
            ],
        );
        assert_quiet_success(&out);
    }
}

#[test]
fn configuration_and_environment_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let post = [
        ("GANETI_HOOKS_PHASE", "post"),
        ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
        ("GANETI_INSTANCE_NAME", "web1"),
        ("GANETI_INSTANCE_PRIMARY", NODE),
    ];
    let fails = |config: &Path, vars: &[(&str, &str)], want: &str| {
        let out = run(config, vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("snf-dnshook: error: "), "{err}");
        assert!(err.contains(want), "wanted '{want}' in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    fails(
        Path::new("/nonexistent/dnshook.toml"),
        &with(&PUBLIC_NIC, &post),
        "cannot read /nonexistent/dnshook.toml",
    );
    fails(
        &config,
        &with(
            &post,
            &[
                ("GANETI_INSTANCE_NIC_COUNT", "1"),
                ("GANETI_INSTANCE_NIC0_IP", "198.51.100.300"),
            ],
        ),
        "GANETI_INSTANCE_NIC0_IP: '198.51.100.300' is not an IPv4 address",
    );
    fails(
        &config,
        &with(
            &post,
            &[
                ("GANETI_INSTANCE_NIC_COUNT", "1"),
                ("GANETI_INSTANCE_NIC0_MAC", "aa:00:00:12:34"),
            ],
        ),
        "Invalid MAC address 'aa:00:00:12:34'",
    );
    fails(
        &config,
        &[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_RENAME"),
            ("GANETI_INSTANCE_NAME", "web1"),
        ],
        "GANETI_INSTANCE_NEW_NAME",
    );
    fails(&config, &[], "GANETI_HOOKS_PHASE is not set");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "server = \"127.0.0.1\"\n[tsig]\nname = \"k\"\nsecret = \"***\"\n",
    )
    .unwrap();
    fails(&bad, &with(&PUBLIC_NIC, &post), "`tsig.secret`");
}

/// Names and counts from the environment are checked before they reach a record or an
/// allocation: a forged instance name is refused before any server is asked, and a forged
/// NIC count fails with a message instead of crashing the hook.
#[test]
fn forged_names_and_counts_are_refused_before_any_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let fails = |vars: &[(&str, &str)], want: &str| {
        let out = run(&config, vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("snf-dnshook: error: "), "{err}");
        assert!(err.contains(want), "wanted '{want}' in: {err}");
        assert!(!err.contains("no usable answer"), "asked the server: {err}");
    };
    fails(
        &with(
            &create_on(NODE),
            &[("GANETI_INSTANCE_NAME", "web1\nevil.example.org")],
        ),
        "GANETI_INSTANCE_NAME: Invalid hostname 'web1\\nevil.example.org'",
    );
    fails(
        &with(
            &create_on(NODE),
            &[
                ("GANETI_OP_CODE", "OP_INSTANCE_RENAME"),
                ("GANETI_INSTANCE_NEW_NAME", "web2 x"),
            ],
        ),
        "GANETI_INSTANCE_NEW_NAME: Invalid hostname 'web2 x'",
    );
    fails(
        &with(
            &create_on(NODE),
            &[("GANETI_INSTANCE_NIC_COUNT", "18446744073709551615")],
        ),
        "GANETI_INSTANCE_NIC_COUNT: 18446744073709551615 NICs, at most 1024 are read",
    );
    // The pre phase still never fails.
    assert_quiet_success(&run(
        &config,
        &with(
            &create_on(NODE),
            &[
                ("GANETI_HOOKS_PHASE", "pre"),
                ("GANETI_INSTANCE_NAME", "web1\nevil.example.org"),
                ("GANETI_INSTANCE_NIC_COUNT", "18446744073709551615"),
            ],
        ),
    ));
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_snf-dnshook"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_default_config_means_not_configured() {
    // As installed by the package: linked into Ganeti's hook directories, no config yet.
    if Path::new("/etc/snf-network/dnshook.toml").exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP missing_default_config_means_not_configured: /etc/snf-network/dnshook.toml exists here"
        );
        return;
    }
    let post = [
        ("GANETI_HOOKS_PHASE", "post"),
        ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
        ("GANETI_INSTANCE_NAME", "web1"),
        ("GANETI_INSTANCE_PRIMARY", NODE),
    ];
    let out = run(
        Path::new("/etc/snf-network/dnshook.toml"),
        &with(&PUBLIC_NIC, &post),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("DNS updates are not configured, nothing to do"),
        "{err}"
    );
}

/// The environment of a create on `primary` with one NIC on a DNS-tagged network.
fn create_on(primary: &str) -> Vec<(&str, &str)> {
    with(
        &PUBLIC_NIC,
        &[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
            ("GANETI_INSTANCE_NAME", "web1"),
            ("GANETI_INSTANCE_PRIMARY", primary),
        ],
    )
}

#[test]
fn an_unresolvable_server_matters_only_with_something_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dnshook.toml");
    // RFC 6761: .invalid never resolves.
    std::fs::write(
        &config,
        "server = \"no-such-host.invalid\"\nzone = \"example.org\"\ntimeout = 0.2\nattempts = 1\n",
    )
    .unwrap();
    // Another node is the primary.
    assert_quiet_success(&run(&config, &create_on("node2.example.org")));
    // No NIC on a DNS-tagged network.
    let untagged = with(
        &create_on(NODE),
        &[("GANETI_INSTANCE_NIC0_NETWORK_TAGS", "private-filtered")],
    );
    assert_quiet_success(&run(&config, &untagged[..]));
    // An opcode the hook does not act on.
    let startup = with(
        &create_on(NODE),
        &[("GANETI_OP_CODE", "OP_INSTANCE_STARTUP")],
    );
    assert_quiet_success(&run(&config, &startup));
    // With work to do, the name must resolve.
    let out = run(&config, &create_on(NODE));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("snf-dnshook: error: `server`: cannot resolve 'no-such-host.invalid'"),
        "{err}"
    );
}

#[test]
fn zero_port_and_ttl_are_refused_with_numbers_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dnshook.toml");
    for (line, want) in [
        ("port = 0", "`port` must be 1 to 65535, not 0"),
        ("port = 0x0", "`port` must be 1 to 65535, not 0x0"),
        ("port = 70000", "`port` must be 1 to 65535, not 70000"),
        ("port = 0x1_0000", "`port` must be 1 to 65535, not 0x1_0000"),
        ("attempts = 0", "`attempts` must be 1 to 10, not 0"),
        ("ttl = 0", "`ttl` must be 1 to 2147483647 seconds, not 0"),
        ("ttl = -1", "`ttl` must be 1 to 2147483647 seconds, not -1"),
        (
            "ttl = 2_147_483_648",
            "`ttl` must be 1 to 2147483647 seconds, not 2_147_483_648",
        ),
        (
            "[networks.pub]\nttl = 0o0",
            "`networks.pub.ttl` must be 1 to 2147483647 seconds, not 0o0",
        ),
        (
            "timeout = 1e-10",
            "`timeout` must be a positive number of seconds, not 1e-10",
        ),
        (
            "timeout = 0.0",
            "`timeout` must be a positive number of seconds, not 0.0",
        ),
        (
            "backoff = -5E-1",
            "`backoff` must be a number of seconds, 0 or more, not -5E-1",
        ),
    ] {
        std::fs::write(
            &config,
            format!("server = \"127.0.0.1\"\nzone = \"example.org\"\n{line}\n"),
        )
        .unwrap();
        // Refused even where there is nothing to do: the file itself is wrong.
        let out = run(&config, &create_on("node2.example.org"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{line}: {err}");
        assert_eq!(
            err,
            format!("snf-dnshook: error: {}: {want}\n", config.display()),
            "{line}"
        );
    }
}

#[test]
fn files_others_may_read_or_change_get_one_warning_each() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dnshook.toml");
    let key = dir.path().join("dnshook.key");
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let stderr_of = |env: &[(&str, &str)]| {
        let out = run(&config, env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let elsewhere = create_on("node2.example.org");
    let c = config.display();
    let k = key.display();

    // The secret in the configuration file.
    std::fs::write(
        &config,
        "server = \"127.0.0.1\"\nzone = \"example.org\"\n\
         [tsig]\nname = \"k\"\nsecret = \"c2VjcmV0\"\n",
    )
    .unwrap();
    chmod(&config, 0o600);
    assert_eq!(stderr_of(&elsewhere), "");
    chmod(&config, 0o640);
    assert_eq!(stderr_of(&elsewhere), "");
    chmod(&config, 0o644);
    assert_eq!(
        stderr_of(&elsewhere),
        format!(
            "snf-dnshook: warning: {c} is readable by others (mode 0644) and holds the TSIG \
             secret: chmod o-rw {c}\n"
        )
    );

    // The secret in a key file: the configuration may be world-readable, not writable.
    std::fs::write(
        &key,
        "key \"k\" {\n  algorithm hmac-sha256;\n  secret \"c2VjcmV0\";\n};\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        "server = \"127.0.0.1\"\nzone = \"example.org\"\n\
         [tsig]\nkey_file = \"dnshook.key\"\n",
    )
    .unwrap();
    chmod(&key, 0o640);
    chmod(&config, 0o644);
    assert_eq!(stderr_of(&elsewhere), "");
    chmod(&key, 0o604);
    chmod(&config, 0o646);
    // Once per file, also where the hook has work to do (then it fails on the server).
    assert_eq!(
        stderr_of(&elsewhere),
        format!(
            "snf-dnshook: warning: {c} is writable by others (mode 0646): chmod o-rw {c}\n\
             snf-dnshook: warning: TSIG key file {k} is readable by others (mode 0604): \
             chmod o-rw {k}\n"
        )
    );
    chmod(&key, 0o666);
    chmod(&config, 0o644);
    let out = run(&config, &create_on(NODE));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "snf-dnshook: warning: TSIG key file {k} is readable and writable by others \
             (mode 0666): chmod o-rw {k}\n"
        )),
        "{err}"
    );
}

/// The settings file as a FIFO (directly or behind a link; no writer, so a plain read
/// would wait for ever), and a TSIG key file as one: the hook fails at once, naming the
/// file and why, before any server is contacted. A run still going after 30 s is killed
/// and fails the test.
#[test]
fn fifos_for_settings_or_key_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let link = d.join("link.toml");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let keyed = d.join("keyed.toml");
    let plain = std::fs::read_to_string(write_config(d)).unwrap();
    std::fs::write(
        &keyed,
        format!("{plain}[tsig]\nkey_file = \"{}\"\n", fifo.display()),
    )
    .unwrap();
    let vars = with(
        &PUBLIC_NIC,
        &[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
            ("GANETI_INSTANCE_NAME", "web1"),
            ("GANETI_INSTANCE_PRIMARY", NODE),
        ],
    );
    for config in [&fifo, &link, &keyed] {
        let err_path = d.join("err");
        let mut child = hook_command()
            .env_clear()
            .env("PATH", "/sbin:/bin:/usr/sbin:/usr/bin")
            .env("SNF_DNSHOOK_CONFIG", config)
            .env("SNF_DNSHOOK_NODE", NODE)
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let code = netconf_test_support::wait_within(
            &mut child,
            std::time::Duration::from_secs(30),
            &format!("snf-dnshook with {}", config.display()),
        )
        .code();
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert_eq!(code, Some(1), "{err}");
        let shown = if config == &keyed { &fifo } else { config };
        let want = format!("cannot read {}: not a regular file", shown.display());
        assert!(err.contains(&want), "{want:?} not in {err}");
        assert!(!err.contains("no usable answer"), "{err}");
    }
}
