//! Running a command that must end on its own, with a bound: a child that blocks (on a
//! FIFO, a silent server) fails the test instead of hanging it.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// What a bounded run gave.
#[derive(Debug)]
pub struct Bounded {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for `child` at most `limit`: its exit status, or `None` once it has been killed
/// for outliving the bound.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("waiting for a child") {
            return Some(st);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_bounded`], failing the test with `what` if the child outlived `limit`.
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    wait_bounded(child, limit)
        .unwrap_or_else(|| panic!("{what}: still running after {limit:?} (killed)"))
}

/// Runs `cmd` with its standard output and error going to files in `dir` (not pipes: a
/// child that fills a pipe nobody reads yet blocks too, and one that detached keeps a pipe
/// open), at most `limit`: what it gave, or `None` once it has been killed.
pub fn run_bounded(cmd: &mut Command, dir: &Path, limit: Duration) -> Option<Bounded> {
    let (out, err) = (dir.join("bounded.out"), dir.join("bounded.err"));
    let mut child = cmd
        .stdout(File::create(&out).expect("creating bounded.out"))
        .stderr(File::create(&err).expect("creating bounded.err"))
        .spawn()
        .expect("starting the command");
    let status = wait_bounded(&mut child, limit)?;
    Some(Bounded {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    })
}

/// [`run_bounded`], failing the test with `what` if the command outlived `limit`.
pub fn run_within(cmd: &mut Command, dir: &Path, limit: Duration, what: &str) -> Bounded {
    run_bounded(cmd, dir, limit)
        .unwrap_or_else(|| panic!("{what}: {cmd:?} still running after {limit:?} (killed)"))
}
