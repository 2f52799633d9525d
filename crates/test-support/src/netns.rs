//! Throw-away network namespaces and veth pairs whose ends are created directly inside
//! them: the root namespace never holds, even for a moment, an interface a test made.

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd::{ok, try_ok};

/// `{prefix}{pid}{tag}{n}`: unique on this machine while the test process lives, so that
/// test runs side by side (other crates, other work trees) never meet.
pub fn unique_name(prefix: &str, tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}{tag}{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A network namespace this test created, with `lo` up. On drop, every process still in
/// it is killed (daemonized clients are found only this way) and it is deleted.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (see [`unique_name`]).
    pub fn add(name: &str) -> Netns {
        ok(&["ip", "netns", "add", name]);
        // From here on Drop removes it, even if bringing `lo` up fails.
        let ns = Netns {
            name: name.to_owned(),
        };
        ok(&["ip", "-n", name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` to be run inside the namespace (`ip netns exec NS program`, which execs
    /// it in place: the child is the program and its exit status is the program's).
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `args` inside the namespace; it must succeed; its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        ok(&v)
    }

    /// Runs `f` on a thread of its own that joined the namespace (setns affects only the
    /// calling thread). Sockets `f` opens belong to the namespace for good, also when
    /// handed back to other threads. A panic in `f` is re-raised here.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// SIGKILLs every process in the namespace. Twice: a process that was forking (a
    /// client daemonizing) may have left a child the first pass did not list.
    pub fn kill_all(&self) {
        for _ in 0..2 {
            let Some(pids) = try_ok(&["ip", "netns", "pids", &self.name]) else {
                return;
            };
            for pid in pids.split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair created with each end directly in its namespace
/// (`ip link add A netns NA type veth peer name B netns NB`); deleted on drop when it
/// still exists (deleting a namespace deletes its ends too).
pub struct Veth {
    end: String,
    netns: String,
}

impl Veth {
    pub fn new(a: &str, a_netns: &str, b: &str, b_netns: &str) -> Veth {
        ok(&[
            "ip", "link", "add", a, "netns", a_netns, "type", "veth", "peer", "name", b, "netns",
            b_netns,
        ]);
        Veth {
            end: a.to_owned(),
            netns: a_netns.to_owned(),
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Quietly: the test may have deleted it already (a TAP that goes away on shutdown).
        let _ = Command::new("ip")
            .args(["-n", &self.netns, "link", "del", &self.end])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
