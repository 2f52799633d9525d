//! Leveled logging to stderr (the journal under systemd); no global logger crate needed.

use std::sync::atomic::{AtomicU8, Ordering};

pub const ERROR: u8 = 1;
pub const WARN: u8 = 2;
pub const INFO: u8 = 3;
pub const DEBUG: u8 = 4;

static LEVEL: AtomicU8 = AtomicU8::new(INFO);

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
    eprintln!("{tag:<8} {args}");
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
