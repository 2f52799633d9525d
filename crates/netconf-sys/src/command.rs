//! Running a system tool: what it printed, how it ended and how long it took, so the
//! caller can log the time its own way and get an error that names the command and
//! carries the tool's stderr.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A tool that ran to its end (whatever its exit status).
#[derive(Debug)]
pub struct Finished {
    /// The command line, for messages.
    pub command: String,
    pub success: bool,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Empty when the tool read a batch on stdin (its stdout is not kept then).
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Its stdout as text; a non-zero exit or a signal is an error carrying its stderr.
    pub fn check(self) -> anyhow::Result<String> {
        if let Some(sig) = self.signal {
            bail!(
                "`{}` was killed by signal {sig}: {}",
                self.command,
                self.stderr.trim()
            );
        }
        if !self.success {
            bail!("`{}` failed: {}", self.command, self.stderr.trim());
        }
        String::from_utf8(self.stdout).with_context(|| format!("`{}`: output", self.command))
    }
}

/// `cmd` followed by its arguments, space-separated.
pub fn describe(cmd: &str, args: &[&str]) -> String {
    let mut s = cmd.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn spawn_error(cmd: &str, e: &std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!("{cmd} not found in PATH")
    } else {
        anyhow::anyhow!("cannot run {cmd}: {e}")
    }
}

/// Runs `cmd` to its end; with `stdin`, writes it as the tool's input (a batch) and drops
/// its stdout, else gives it no input and keeps its stdout. Only failing to start it or
/// to feed it is an error here: [`Finished::check`] judges how it ended.
pub fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Finished> {
    let start = Instant::now();
    let mut c = Command::new(cmd);
    c.args(args).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped()).stdout(Stdio::null());
    } else {
        c.stdin(Stdio::null()).stdout(Stdio::piped());
    }
    let mut child = c.spawn().map_err(|e| spawn_error(cmd, &e))?;
    if let Some(input) = stdin {
        let mut pipe = child
            .stdin
            .take()
            .with_context(|| format!("no stdin pipe to {cmd}"))?;
        pipe.write_all(input.as_bytes())
            .with_context(|| format!("writing to {cmd}"))?;
        // Closed here, so the tool sees the end of its batch.
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {cmd}"))?;
    Ok(Finished {
        command: describe(cmd, args),
        success: out.status.success(),
        signal: out.status.signal(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_tool_is_an_error_naming_it_with_its_stderr() {
        let f = run("sh", &["-c", "echo oops >&2; exit 3"], None).unwrap();
        assert!(!f.success);
        let e = f.check().unwrap_err().to_string();
        assert_eq!(e, "`sh -c echo oops >&2; exit 3` failed: oops");
    }

    #[test]
    fn stdout_is_returned_and_a_batch_reaches_stdin() {
        let f = run("echo", &["hi"], None).unwrap();
        assert_eq!(f.check().unwrap(), "hi\n");
        let f = run("sh", &["-c", "read l; [ \"$l\" = batch ]"], Some("batch\n")).unwrap();
        assert!(f.success, "{}", f.stderr);
    }

    #[test]
    fn a_killed_tool_says_which_signal() {
        let f = run("sh", &["-c", "kill -TERM $$"], None).unwrap();
        assert_eq!(f.signal, Some(libc::SIGTERM));
        let e = f.check().unwrap_err().to_string();
        assert!(e.contains("was killed by signal 15"), "{e}");
    }

    #[test]
    fn a_missing_tool_says_so() {
        let e = run("netconf-no-such-tool", &[], None).unwrap_err();
        assert_eq!(e.to_string(), "netconf-no-such-tool not found in PATH");
    }
}
