//! `snf-ifup watch` run by a test: its stderr read line by line on a thread, so that a test
//! waits for what the watcher says (bounded) instead of sleeping.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Lab;

/// How long a test waits for one line: long enough for a loaded CI machine, and only a
/// bound on a wait for an event, never a timing assertion.
const LINE_WAIT: Duration = Duration::from_secs(30);

/// `snf-ifup watch` in the node namespace; killed when dropped.
pub struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watcher {
    /// `snf-ifup ARGS` (`watch …`) in `lab`'s node namespace, once it says it watches.
    pub fn start(lab: &Lab, args: &[&str]) -> Watcher {
        Watcher::spawn(lab.ifup_command(&[], args))
    }

    /// `cmd` (a prepared `snf-ifup watch`), once it says it watches.
    pub fn spawn(mut cmd: Command) -> Watcher {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snf-ifup watch");
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("watch: {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let w = Watcher { child, lines };
        w.wait_for("watching for removed interfaces");
        w
    }

    /// The watcher's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line from now on that contains `what`; panics if none comes.
    pub fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the watcher never said '{what}'");
    }
}
