//! A real BIND `named` on 127.0.0.1 for the tests, `dig` to read what it holds, and a way
//! to run the hook with a Ganeti-like (reset) environment. The server and every client of
//! it run in a network namespace the fixture creates, so no packet touches the host.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use netconf_test_support::Netns;
use netconf_test_support::{Daemon, need_root, on_path, skip, unique_name};

pub const NAMED: &str = "/usr/sbin/named";
pub const NODE: &str = "node1.example.org";

/// `None` (after printing why) when the tests cannot run here.
pub fn skip_reason(test: &str) -> Option<()> {
    if !need_root(test, "network namespaces, BIND named") {
        return None;
    }
    if !on_path("ip") {
        skip(test, "ip is not installed (Debian package iproute2)");
        return None;
    }
    if !Path::new(NAMED).exists() {
        skip(
            test,
            &format!("{NAMED} is not installed (Debian package bind9)"),
        );
        return None;
    }
    if !on_path("dig") {
        skip(test, "dig is not installed (Debian package bind9-dnsutils)");
        return None;
    }
    Some(())
}

#[derive(Clone)]
pub struct TestKey {
    pub name: &'static str,
    pub algorithm: &'static str,
    pub secret: &'static str,
}

pub const KEY: TestKey = TestKey {
    name: "dnshook-key",
    algorithm: "hmac-sha256",
    secret: "2M5iN0PBa4uE2b0CG3D8Ykf8RjZaR4DdQ1Gd1q9ZwX8=",
};

pub struct Zone {
    pub name: &'static str,
    /// Keys (or, written as an address, clients) allowed to update it; empty: none.
    pub keys: Vec<&'static str>,
}

impl Zone {
    pub fn new(name: &'static str) -> Zone {
        Zone {
            name,
            keys: vec![KEY.name],
        }
    }
}

/// A throw-away network namespace holding only `lo` (up). Everything the tests send goes
/// to 127.0.0.1 inside one of these, never to the host's loopback. On drop, whatever still
/// runs in it is killed and the namespace is deleted.
pub fn netns() -> Netns {
    Netns::add(&unique_name("ncdns", "-"))
}

/// A `named` process in its own temporary directory and network namespace, listening on
/// 127.0.0.1 (a high port) there; killed, and the namespace deleted, on drop.
pub struct Named {
    // Fields drop in this order: named is killed before its namespace and directory go.
    child: Daemon,
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// A port free on 127.0.0.1 for both UDP and TCP a moment ago (in the caller's namespace).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if port >= 20000 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Named {
    pub fn start(zones: &[Zone], keys: &[TestKey]) -> Named {
        let ns = netns();
        let dir = tempfile::Builder::new()
            .prefix("dnshook-named-")
            .tempdir()
            .expect("tempdir");
        // The namespace is new and holds nothing else: the port stays free.
        let port = ns.run(free_port);
        let d = dir.path().display();
        let mut conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  \
             session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  \
             listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
             recursion no;\n  dnssec-validation no;\n  notify no;\n  \
             allow-transfer {{ 127.0.0.1; }};\n}};\ncontrols {{ }};\n"
        );
        for k in keys {
            writeln!(
                conf,
                "key \"{}\" {{ algorithm {}; secret \"{}\"; }};",
                k.name, k.algorithm, k.secret
            )
            .unwrap();
        }
        for z in zones {
            let allow = if z.keys.is_empty() {
                "none;".to_string()
            } else {
                z.keys
                    .iter()
                    .map(|k| match k.parse::<std::net::IpAddr>() {
                        Ok(ip) => format!("{ip}; "),
                        Err(_) => format!("key \"{k}\"; "),
                    })
                    .collect()
            };
            writeln!(
                conf,
                "zone \"{0}\" {{ type primary; file \"{0}.db\"; allow-update {{ {allow} }}; }};",
                z.name
            )
            .unwrap();
            std::fs::write(
                dir.path().join(format!("{}.db", z.name)),
                "$TTL 300\n@ IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 300\n\
                 @ IN NS localhost.\n",
            )
            .unwrap();
        }
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // `ip netns exec` execs named in place: the child is named itself.
        let child = Daemon::spawn_logged(
            ns.cmd(NAMED)
                .args(["-g", "-4", "-n", "1", "-c"])
                .arg(&conf_path),
            &dir.path().join("named.log"),
        );
        let mut named = Named {
            child,
            ns,
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if named.child.exited().is_some() {
                break;
            }
            if !named.dig(zones[0].name, "SOA").is_empty() {
                return named;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("named did not start; its log:\n{}", named.log());
    }

    /// `program` to be run in the server's namespace, where it can reach the server.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns.cmd(program)
    }

    /// Runs `f` on a thread in the server's namespace (see [`Netns::run`]).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.ns.run(f)
    }

    /// A hook whose configuration `config` is written next to the server's files, and
    /// that runs in the server's namespace.
    pub fn hook(&self, file: &str, config: &str) -> Hook {
        Hook::new(&self.ns, self.dir.path(), file, config)
    }

    /// `dig @127.0.0.1 -p PORT` in the server's namespace.
    pub fn dig_cmd(&self) -> Command {
        let mut c = self.cmd("dig");
        c.args([
            "@127.0.0.1",
            "-p",
            &self.port.to_string(),
            "+norec",
            "+time=2",
            "+tries=2",
        ]);
        c
    }

    /// `dig +short NAME TYPE`, sorted.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = self
            .dig_cmd()
            .args(["+short", name, rtype])
            .output()
            .expect("run dig");
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .collect();
        v.sort();
        v
    }

    /// Every record of the zone except its SOA and NS, as "name TYPE data", sorted.
    pub fn zone_records(&self, zone: &str) -> Vec<String> {
        let out = self
            .dig_cmd()
            .args(["+noall", "+answer", "AXFR", zone])
            .output()
            .expect("run dig");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("SOA"),
            "AXFR of {zone} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // name ttl class type data...
                (f.len() >= 5 && f[3] != "SOA" && f[3] != "NS")
                    .then(|| format!("{} {} {}", f[0], f[3], f[4..].join(" ")))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn serial(&self, zone: &str) -> String {
        let soa = self.dig(zone, "SOA");
        soa.first()
            .and_then(|s| s.split_whitespace().nth(2))
            .unwrap_or_default()
            .to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }
}

/// One NIC as Ganeti exports it to hooks.
#[derive(Clone)]
pub struct Nic {
    pub ip: Option<&'static str>,
    pub mac: &'static str,
    pub network: &'static str,
    pub subnet: Option<&'static str>,
    pub subnet6: Option<&'static str>,
    pub tags: &'static str,
}

/// The variables Ganeti's hooks runner sets for an instance opcode.
pub fn ganeti_env(
    op_code: &str,
    phase: &str,
    instance: &str,
    new_name: Option<&str>,
    primary: &str,
    nics: &[Nic],
) -> Vec<(String, String)> {
    let hpath = match op_code {
        "OP_INSTANCE_CREATE" => "instance-add",
        "OP_INSTANCE_SET_PARAMS" => "instance-modify",
        "OP_INSTANCE_RENAME" => "instance-rename",
        "OP_INSTANCE_REMOVE" => "instance-remove",
        _ => "instance-other",
    };
    let mut v: Vec<(String, String)> = vec![
        ("GANETI_HOOKS_VERSION".into(), "2".into()),
        ("GANETI_OP_CODE".into(), op_code.into()),
        ("GANETI_HOOKS_PHASE".into(), phase.into()),
        ("GANETI_HOOKS_PATH".into(), hpath.into()),
        ("GANETI_DATA_DIR".into(), "/var/lib/ganeti".into()),
        ("GANETI_OBJECT_TYPE".into(), "INSTANCE".into()),
        ("GANETI_CLUSTER".into(), "cluster.example.org".into()),
        ("GANETI_MASTER".into(), NODE.into()),
        ("GANETI_INSTANCE_NAME".into(), instance.into()),
        ("GANETI_INSTANCE_PRIMARY".into(), primary.into()),
        ("GANETI_INSTANCE_SECONDARIES".into(), String::new()),
        ("GANETI_INSTANCE_NIC_COUNT".into(), nics.len().to_string()),
    ];
    if let Some(n) = new_name {
        v.push(("GANETI_INSTANCE_NEW_NAME".into(), n.into()));
    }
    for (i, n) in nics.iter().enumerate() {
        let p = format!("GANETI_INSTANCE_NIC{i}_");
        v.push((format!("{p}IP"), n.ip.unwrap_or("").into()));
        v.push((format!("{p}MAC"), n.mac.into()));
        v.push((format!("{p}MODE"), "routed".into()));
        v.push((format!("{p}LINK"), "rt1".into()));
        v.push((format!("{p}NETWORK_NAME"), n.network.into()));
        v.push((format!("{p}NETWORK_TAGS"), n.tags.into()));
        if let Some(s) = n.subnet {
            v.push((format!("{p}NETWORK_SUBNET"), s.into()));
        }
        if let Some(s) = n.subnet6 {
            v.push((format!("{p}NETWORK_SUBNET6"), s.into()));
        }
    }
    v
}

/// snf-dnshook with a configuration file, run inside a test namespace.
pub struct Hook {
    pub config: PathBuf,
    netns: String,
}

impl Hook {
    /// Writes `config` to `dir/file`; the hook will run in `ns`.
    pub fn new(ns: &Netns, dir: &Path, file: &str, config: &str) -> Hook {
        let path = dir.join(file);
        std::fs::write(&path, config).unwrap();
        // It holds the TSIG secret: as an operator keeps it (else the hook warns).
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Hook {
            config: path,
            netns: ns.name().to_owned(),
        }
    }

    /// Runs the hook the way Ganeti does: environment reset, then only the hook variables
    /// (plus the two the tests need). `ip netns exec` passes the environment on and execs
    /// the hook in place, so the exit status is the hook's.
    pub fn run(&self, env: &[(String, String)], args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(env!("CARGO_BIN_EXE_snf-dnshook"))
            .args(args)
            .env_clear()
            .env("PATH", "/sbin:/bin:/usr/sbin:/usr/bin")
            .env("SNF_DNSHOOK_CONFIG", &self.config)
            .env("SNF_DNSHOOK_NODE", NODE)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run snf-dnshook")
    }

    /// Runs and insists on success.
    pub fn ok(&self, env: &[(String, String)]) -> String {
        let out = self.run(env, &[]);
        assert!(
            out.status.success(),
            "snf-dnshook failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs, insists on failure and returns stderr.
    pub fn fails(&self, env: &[(String, String)]) -> String {
        let out = self.run(env, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "snf-dnshook succeeded but should have failed:\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
        // Shown with --nocapture, to read the messages operators get.
        eprint!("snf-dnshook said: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}

pub fn config(port: u16, extra: &str) -> String {
    format!(
        "server = \"127.0.0.1\"\nport = {port}\nttl = 300\ntimeout = 2\n{extra}\n\
         [tsig]\nname = \"{}\"\nalgorithm = \"{}\"\nsecret = \"{}\"\n",
        KEY.name, KEY.algorithm, KEY.secret
    )
}

pub fn strings(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub trait StdinExt {
    /// Spawns with `input` on standard input and waits.
    fn output_with_stdin(&mut self, input: &str) -> Output;
}

impl StdinExt for Command {
    fn output_with_stdin(&mut self, input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

pub trait OutputExt {
    fn stderr_text(&self) -> String;
}

impl OutputExt for Output {
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
