//! Real etcd clusters for tests: one or three members of Debian's `/usr/bin/etcd` on free
//! loopback ports, data in a temporary directory, killed (SIGKILL) and removed on drop.
//! `start_tls` serves the client URLs over TLS with client certificates (`--client-cert-auth`),
//! from a CA and certificates `openssl` makes in the cluster's directory.
//!
//! Each cluster runs under a small shell watchdog that kills it and removes its data once
//! the test process is gone, so that one shared by a whole test process (held in a static,
//! which is never dropped) does not outlive it either.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const ETCD: &str = "/usr/bin/etcd";

/// Whether etcd is installed; otherwise prints `SKIP <test>: needs etcd`.
pub fn need_etcd(test: &str) -> bool {
    if Path::new(ETCD).is_file() {
        return true;
    }
    crate::skip(test, "needs etcd (/usr/bin/etcd, Debian's etcd-server)");
    false
}

/// A running etcd cluster on 127.0.0.1.
pub struct EtcdCluster {
    dir: PathBuf,
    /// Client ports, one per member.
    ports: Vec<u16>,
    /// Where each member answers `GET /health` over plain HTTP: the client port, or for a
    /// TLS cluster its metrics port.
    health: Vec<u16>,
    tls: Option<EtcdTls>,
    watchdogs: Vec<Child>,
}

/// The PEM files of a TLS cluster (all in its directory, removed with it).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The CA that signed the members' and the client's certificates.
    pub ca: PathBuf,
    /// The client certificate (extended key usage clientAuth) and its key (mode 0600).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Another CA, which signed nothing the cluster uses.
    pub other_ca: PathBuf,
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (scripts/install-test-deps installs it)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA, a server certificate for IP 127.0.0.1 and a client certificate, in `dir` (EC
/// P-256 keys, valid two days), and a second CA.
fn make_pki(dir: &Path) -> (EtcdTls, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("pki dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, cn) in [("ca", "netconf-test-ca"), ("other-ca", "netconf-other-ca")] {
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        a.extend([
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &a);
    }
    for (name, ext) in [
        // etcd's JSON gateway dials its own gRPC with the server certificate: clientAuth.
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, subj, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("/CN=netconf-test-{name}"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&extfile), ext).expect("ext file");
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &a);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ],
        );
    }
    let key = dir.join("client.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod client.key");
    (
        EtcdTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key,
            other_ca: dir.join("other-ca.pem"),
        },
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// Ports free now (the kernel's choice), all distinct.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// `GET /health` answered `"health":"true"`.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl EtcdCluster {
    /// Starts `members` members and waits until each reports healthy.
    pub fn start(members: usize) -> EtcdCluster {
        Self::start_with(members, false)
    }

    /// Starts `members` members whose client URLs are `https://` and ask every client for
    /// a certificate signed by the cluster's CA (`tls()`); the peers talk plain HTTP.
    pub fn start_tls(members: usize) -> EtcdCluster {
        Self::start_with(members, true)
    }

    fn start_with(members: usize, tls: bool) -> EtcdCluster {
        let dir = std::env::temp_dir().join(crate::unique_name("netconf-etcd-", "-"));
        std::fs::create_dir_all(&dir).expect("etcd test dir");
        let pki = tls.then(|| make_pki(&dir.join("pki")));
        let ports = free_ports(members * 3);
        let (client, peer, metrics): (Vec<u16>, Vec<u16>, Vec<u16>) = (
            ports.iter().step_by(3).copied().collect(),
            ports.iter().skip(1).step_by(3).copied().collect(),
            ports.iter().skip(2).step_by(3).copied().collect(),
        );
        let scheme = if tls { "https" } else { "http" };
        let initial: Vec<String> = (0..members)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", peer[i]))
            .collect();
        let token = crate::unique_name("netconf-test-", "-");
        let mut cluster = EtcdCluster {
            dir: dir.clone(),
            ports: client.clone(),
            health: if tls { metrics.clone() } else { client.clone() },
            tls: pki.as_ref().map(|p| p.0.clone()),
            watchdogs: Vec::new(),
        };
        for i in 0..members {
            let data = dir.join(format!("m{i}"));
            let mut args = vec![
                format!("--name=m{i}"),
                format!("--data-dir={}", data.display()),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
                format!("--listen-client-urls={scheme}://127.0.0.1:{}", client[i]),
                format!("--advertise-client-urls={scheme}://127.0.0.1:{}", client[i]),
                format!("--listen-peer-urls=http://127.0.0.1:{}", peer[i]),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", peer[i]),
                format!("--initial-cluster={}", initial.join(",")),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token={token}"),
            ];
            if let Some((files, cert, key)) = &pki {
                args.extend([
                    format!("--cert-file={}", cert.display()),
                    format!("--key-file={}", key.display()),
                    "--client-cert-auth".into(),
                    format!("--trusted-ca-file={}", files.ca.display()),
                    format!("--listen-metrics-urls=http://127.0.0.1:{}", metrics[i]),
                ]);
            }
            // The watchdog: etcd in the background, killed with its data when this test
            // process (or etcd itself) is gone.
            let script = format!(
                r#"{ETCD} "$@" >"$LOG" 2>&1 & e=$!; echo $e >"$PIDFILE"
while kill -0 {me} 2>/dev/null && kill -0 $e 2>/dev/null; do sleep 0.5; done
kill -9 $e 2>/dev/null; wait $e 2>/dev/null; rm -rf "$DATA"
kill -0 {me} 2>/dev/null || rm -rf "$DIR""#,
                me = std::process::id()
            );
            let child = Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("etcd-watchdog")
                .args(&args)
                .env("LOG", dir.join(format!("m{i}.log")))
                .env("PIDFILE", dir.join(format!("m{i}.pid")))
                .env("DATA", &data)
                .env("DIR", &dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh");
            cluster.watchdogs.push(child);
        }
        let t0 = Instant::now();
        while !cluster.health.iter().all(|p| healthy(*p)) {
            if t0.elapsed() > Duration::from_secs(20) {
                panic!(
                    "etcd did not become healthy within 20 s; log of m0:\n{}",
                    cluster.log_tail(0)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// One single-member cluster for the whole test process (tests give themselves a prefix
    /// each, `unique_prefix`); its watchdog removes it when the process ends.
    pub fn shared() -> &'static EtcdCluster {
        static SHARED: std::sync::OnceLock<EtcdCluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| EtcdCluster::start(1))
    }

    /// `host:port` of each member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// `etcd://` (`etcds://` for a TLS cluster) with every member and `prefix` (which
    /// starts with `/`).
    pub fn url(&self, prefix: &str) -> String {
        format!("{}{}{prefix}", self.scheme(), self.endpoints().join(","))
    }

    /// `etcd://` (`etcds://`) with member `i` only.
    pub fn member_url(&self, i: usize, prefix: &str) -> String {
        format!("{}{}{prefix}", self.scheme(), self.endpoints()[i])
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "etcds://"
        } else {
            "etcd://"
        }
    }

    /// The certificates of a cluster from `start_tls`.
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("m{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn pid(&self, i: usize) -> Option<Pid> {
        let s = std::fs::read_to_string(self.dir.join(format!("m{i}.pid"))).ok()?;
        s.trim().parse().ok().map(Pid::from_raw)
    }
}

/// A prefix no other test of this run uses: `/t<pid>-<n>`.
pub fn unique_prefix() -> String {
    format!("/{}", crate::unique_name("t", "-"))
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.watchdogs.len() {
            if let Some(p) = self.pid(i) {
                let _ = kill(p, Signal::SIGKILL);
            }
        }
        for w in &mut self.watchdogs {
            // The watchdog sees etcd gone, removes the data and exits.
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
