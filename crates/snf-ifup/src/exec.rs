//! Running the system tools (ip, bridge, *tables, ovs-vsctl) with errors that say which
//! command failed and what it printed.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::log;

/// Logs (with -v) how long a tool took: the tools are where the time goes.
fn timed(cmd: &str, args: &[&str], start: std::time::Instant) {
    log::info(&format!(
        "ran {} in {:.1} ms",
        describe(cmd, args),
        start.elapsed().as_secs_f64() * 1000.0
    ));
}

fn describe(cmd: &str, args: &[&str]) -> String {
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

/// Runs a read-only query and returns its stdout.
pub fn output(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let start = std::time::Instant::now();
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, &e))?;
    timed(cmd, args, start);
    if let Some(sig) = out.status.signal() {
        // ovs-vsctl's --timeout is an alarm: say what it means.
        let why = if sig == libc::SIGALRM && cmd == "ovs-vsctl" {
            " (its --timeout ran out: is ovs-vswitchd running?)"
        } else {
            ""
        };
        bail!(
            "`{}` was killed by signal {sig}{why}: {}",
            describe(cmd, args),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            describe(cmd, args),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}`: output", describe(cmd, args)))
}

/// Runs a command; a non-zero exit is an error carrying its stderr.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    output(cmd, args).map(drop)
}

/// Runs a command that reads a batch on stdin.
pub fn with_stdin(cmd: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    let (ok, stderr) = with_stdin_status(cmd, args, input)?;
    if !ok {
        bail!("`{}` failed: {}", describe(cmd, args), stderr.trim());
    }
    Ok(())
}

/// Like [`with_stdin`] but returns the exit status and stderr instead of failing.
pub fn with_stdin_status(cmd: &str, args: &[&str], input: &str) -> anyhow::Result<(bool, String)> {
    let start = std::time::Instant::now();
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(cmd, &e))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .with_context(|| format!("writing to {cmd}"))?;
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {cmd}"))?;
    timed(cmd, args, start);
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Whether `cmd` is an executable in PATH.
pub fn in_path(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(cmd);
            f.is_file()
                && std::fs::metadata(&f)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}
