//! Leveled logging to stderr (the journal under systemd), or in daemon mode to
//! `<logdir>/nfdhcpd.log` with the original's line format; no logger crate needed.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use anyhow::Context;

use crate::lock;

pub const ERROR: u8 = 1;
pub const WARN: u8 = 2;
pub const INFO: u8 = 3;
pub const DEBUG: u8 = 4;

static LEVEL: AtomicU8 = AtomicU8::new(INFO);
/// Lines carry their time (the journal adds its own; a file does not).
static STAMPED: AtomicBool = AtomicBool::new(false);
/// The log file standard error points to, if any, for reopening after a rotation.
static FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= LEVEL.load(Ordering::Relaxed)
}

pub fn emit(level: u8, args: std::fmt::Arguments<'_>) {
    let tag = match level {
        ERROR => "ERROR",
        WARN => "WARNING",
        INFO => "INFO",
        _ => "DEBUG",
    };
    if STAMPED.load(Ordering::Relaxed) {
        let t = netconf::timefmt::asctime(std::time::SystemTime::now());
        eprintln!("{t} {tag:<8} {args}");
    } else {
        eprintln!("{tag:<8} {args}");
    }
}

/// Points standard output and error at `path` (appending, created 0644) and stamps lines
/// with their time, as the original's log file.
pub fn to_file(path: PathBuf) -> anyhow::Result<()> {
    redirect(&path)?;
    STAMPED.store(true, Ordering::Relaxed);
    *lock::lock(&FILE) = Some(path);
    Ok(())
}

/// After logrotate moved the file away (SIGHUP): write to a new file at the same path.
/// Without a log file this does nothing; on an error standard error still points to the
/// old file.
pub fn reopen() -> anyhow::Result<()> {
    match lock::lock(&FILE).as_ref() {
        Some(path) => redirect(path),
        None => Ok(()),
    }
}

fn redirect(path: &std::path::Path) -> anyhow::Result<()> {
    let f = open_append(path).with_context(|| format!("opening log file {}", path.display()))?;
    nix::unistd::dup2_stdout(&f)
        .and_then(|()| nix::unistd::dup2_stderr(&f))
        .with_context(|| format!("redirecting to {}", path.display()))
}

/// Opens the log file for appending without ever waiting on it, and only if it is a
/// regular file. A FIFO or device at the path is refused, not tolerated: the name is fixed
/// (`<logdir>/nfdhcpd.log`), so something else there is a mistake or a trap, and a FIFO
/// would block the daemon's start, its SIGHUP, or every log line once its reader stalls.
fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::unix::fs::OpenOptionsExt;

    let refused = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file: refused",
        )
    };
    // O_NONBLOCK: opening a FIFO for writing without a reader fails at once (ENXIO) instead
    // of waiting for one; on a regular file the flag changes nothing.
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ENXIO as i32) {
                refused()
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(refused());
    }
    // Back to ordinary writes; the descriptor is shared with standard output and error.
    let flags = OFlag::from_bits_truncate(fcntl(&f, FcntlArg::F_GETFL)?);
    fcntl(&f, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(f)
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::emit($lvl, format_args!($($arg)*));
        }
    };
}
#[macro_export]
macro_rules! error { ($($a:tt)*) => { $crate::log_at!($crate::log::ERROR, $($a)*) }; }
#[macro_export]
macro_rules! warn { ($($a:tt)*) => { $crate::log_at!($crate::log::WARN, $($a)*) }; }
#[macro_export]
macro_rules! info { ($($a:tt)*) => { $crate::log_at!($crate::log::INFO, $($a)*) }; }
#[macro_export]
macro_rules! debug { ($($a:tt)*) => { $crate::log_at!($crate::log::DEBUG, $($a)*) }; }
