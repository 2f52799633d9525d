//! A real 3-member etcd cluster inside a test's network namespace (on its own loopback),
//! for tests whose tools run in that namespace (`snf-ifup watch` on a "node"): the root
//! namespace's loopback, where [`EtcdCluster`](crate::EtcdCluster) listens, is not
//! reachable from there. Members can be killed (SIGKILL) and started again on their data,
//! as an outage would; all are killed on drop, and dropping the namespace kills them too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::ETCD;

/// The members of one cluster in one namespace. The ports are fixed: the namespace is the
/// test's own, so nothing else listens there.
pub struct EtcdInNetns {
    netns: String,
    dir: PathBuf,
    procs: Vec<Option<Child>>,
}

const MEMBERS: usize = 3;

fn client_port(i: usize) -> u16 {
    2379 + 100 * u16::try_from(i).unwrap_or(0)
}

impl EtcdInNetns {
    /// Starts 3 members in `netns` with their data under `dir`, and waits until each
    /// answers.
    pub fn start(netns: &str, dir: &Path) -> EtcdInNetns {
        std::fs::create_dir_all(dir).expect("etcd data dir");
        let mut c = EtcdInNetns {
            netns: netns.to_owned(),
            dir: dir.to_owned(),
            procs: (0..MEMBERS).map(|_| None).collect(),
        };
        for i in 0..MEMBERS {
            c.launch(i);
        }
        c.wait_healthy(&[0, 1, 2]);
        c
    }

    /// Starts member `i` (again, on its data when it has some).
    pub fn launch(&mut self, i: usize) {
        let initial: Vec<String> = (0..MEMBERS)
            .map(|k| format!("m{k}=http://127.0.0.1:{}", client_port(k) + 1))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("m{i}.log")))
            .expect("etcd log");
        let p = client_port(i);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, ETCD])
            .args([
                format!("--name=m{i}"),
                format!("--data-dir={}", self.dir.join(format!("m{i}")).display()),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
                format!("--listen-client-urls=http://127.0.0.1:{p}"),
                format!("--advertise-client-urls=http://127.0.0.1:{p}"),
                format!("--listen-peer-urls=http://127.0.0.1:{}", p + 1),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", p + 1),
                format!("--initial-cluster={}", initial.join(",")),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=netconf-test".into(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd");
        self.procs[i] = Some(child);
    }

    /// SIGKILL of member `i` (`ip netns exec` runs etcd in place: the child is etcd).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until every member of `which` answers a range.
    pub fn wait_healthy(&self, which: &[usize]) {
        let t0 = Instant::now();
        while !which.iter().all(|&i| self.answers(i)) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "etcd members {which:?} not healthy within 30 s; log of m0:\n{}",
                self.log_tail(0)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether member `i` serves a linearizable read (it has a leader).
    fn answers(&self, i: usize) -> bool {
        self.etcdctl_at(i, &["get", "--limit=1", "x"])
            .status
            .success()
    }

    /// `etcdctl` against member `i`, in the namespace.
    pub fn etcdctl_at(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns, "etcdctl"])
            .arg(format!("--endpoints=127.0.0.1:{}", client_port(i)))
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .expect("etcdctl")
    }

    /// The cluster's current revision, as member `i` sees it.
    pub fn revision(&self, i: usize) -> i64 {
        let o = self.etcdctl_at(i, &["get", "x", "-w", "json"]);
        let s = String::from_utf8_lossy(&o.stdout);
        let at = s
            .find("\"revision\":")
            .expect("a revision in etcdctl's answer")
            + 11;
        s[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a revision")
    }

    /// `etcd://` with every member (in the namespace) and `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        let eps: Vec<String> = (0..MEMBERS)
            .map(|i| format!("127.0.0.1:{}", client_port(i)))
            .collect();
        format!("etcd://{}{prefix}", eps.join(","))
    }

    /// `etcd://` with member `i` only.
    pub fn member_url(&self, i: usize, prefix: &str) -> String {
        format!("etcd://127.0.0.1:{}{prefix}", client_port(i))
    }

    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("m{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for EtcdInNetns {
    fn drop(&mut self) {
        for i in 0..MEMBERS {
            self.kill(i);
        }
        // 3 × 123 MB of preallocated WAL.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
