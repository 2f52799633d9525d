//! Running the system tools (ip, bridge, *tables, ovs-vsctl) with errors that say which
//! command failed and what it printed.

use anyhow::bail;
use netconf_sys::command::{self, Finished};
use netconf_sys::xtables;

use crate::log;

/// Logs (with -v) how long a tool took: the tools are where the time goes.
fn timed(f: &Finished) {
    log::info(&format!(
        "ran {} in {:.1} ms",
        f.command,
        f.elapsed.as_secs_f64() * 1000.0
    ));
}

/// Judges how a tool ended, after logging its time.
fn checked(cmd: &str, f: Finished) -> anyhow::Result<String> {
    timed(&f);
    if let Some(sig) = f.signal
        && sig == libc::SIGALRM
        && cmd == "ovs-vsctl"
    {
        // ovs-vsctl's --timeout is an alarm: say what it means.
        bail!(
            "`{}` was killed by signal {sig} (its --timeout ran out: is ovs-vswitchd running?): {}",
            f.command,
            f.stderr.trim()
        );
    }
    f.check()
}

/// Runs a read-only query and returns its stdout.
pub fn output(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    checked(cmd, command::run(cmd, args, None)?)
}

/// Runs a command; a non-zero exit is an error carrying its stderr.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    output(cmd, args).map(drop)
}

/// Runs a command that reads a batch on stdin.
pub fn with_stdin(cmd: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    let (ok, stderr) = with_stdin_status(cmd, args, input)?;
    if !ok {
        bail!(
            "`{}` failed: {}",
            command::describe(cmd, args),
            stderr.trim()
        );
    }
    Ok(())
}

/// Like [`with_stdin`] but returns the exit status and stderr instead of failing.
pub fn with_stdin_status(cmd: &str, args: &[&str], input: &str) -> anyhow::Result<(bool, String)> {
    let f = command::run(cmd, args, Some(input))?;
    timed(&f);
    Ok((f.success, f.stderr))
}

/// Runs one iptables-family command (the tool's own lock behaviour, as always).
pub fn xtables(family: xtables::Family, args: &[&str]) -> anyhow::Result<()> {
    let f = xtables::command(family, xtables::Wait::Default, args)?;
    checked(family.tool(), f).map(drop)
}

/// Dumps with `<family>-save args`.
pub fn xtables_save(family: xtables::Family, args: &[&str]) -> anyhow::Result<String> {
    checked(family.save_tool(), xtables::save(family, args)?)
}

/// Applies a batch with `<family>-restore args`.
pub fn xtables_restore(family: xtables::Family, args: &[&str], batch: &str) -> anyhow::Result<()> {
    let f = xtables::restore(family, xtables::Wait::Default, args, batch)?;
    timed(&f);
    if !f.success {
        bail!("`{}` failed: {}", f.command, f.stderr.trim());
    }
    Ok(())
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
