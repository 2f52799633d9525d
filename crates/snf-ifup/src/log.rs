//! Messages to stderr and, when `/dev/log` exists, to syslog (facility daemon).

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};

static SYSLOG: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn init(syslog: bool, verbose: bool) {
    SYSLOG.store(
        syslog && std::path::Path::new("/dev/log").exists(),
        Ordering::Relaxed,
    );
    VERBOSE.store(verbose, Ordering::Relaxed);
}

fn syslog(severity: u8, msg: &str) {
    if !SYSLOG.load(Ordering::Relaxed) {
        return;
    }
    // daemon facility (3).
    let line = format!(
        "<{}>snf-ifup[{}]: {msg}",
        3 * 8 + severity,
        std::process::id()
    );
    if let Ok(s) = UnixDatagram::unbound() {
        let _ = s.send_to(line.as_bytes(), "/dev/log");
    }
}

/// What was done (stderr only with -v; always to syslog).
pub fn info(msg: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("snf-ifup: {msg}");
    }
    syslog(6, msg);
}

/// What a long-running `watch` did (always on stderr, which systemd keeps).
pub fn notice(msg: &str) {
    eprintln!("snf-ifup: {msg}");
    syslog(5, msg);
}

pub fn warn(msg: &str) {
    eprintln!("snf-ifup: warning: {msg}");
    syslog(4, msg);
}

pub fn error(msg: &str) {
    eprintln!("snf-ifup: {msg}");
    syslog(3, msg);
}
