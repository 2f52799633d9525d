//! A long-running process of a test (the daemon under test, a DHCP client, BIND): killed
//! and reaped on drop, also when the test panics, so that no test leaves one behind.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Spawns `cmd` (its stdio as the caller set it up).
    pub fn spawn(cmd: &mut Command) -> Daemon {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Daemon { child }
    }

    /// Spawns `cmd` with no input and its stdout and stderr both written to `log`.
    pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Daemon {
        let f = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let f2 = f
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log.display()));
        Daemon::spawn(cmd.stdin(Stdio::null()).stdout(f).stderr(f2))
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then up to `grace` for it to exit, then SIGKILL; its exit status.
    pub fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Both are no-ops on a child already reaped (std keeps its status; no stray kill).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
