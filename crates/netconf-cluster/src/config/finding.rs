//! A problem that `verify` finds in a configuration, as Ganeti reports it. Kept apart from
//! the checks so that a configuration can carry what was found when it was loaded.

use std::fmt;

/// Ganeti's `CV_ERROR` and `CV_WARNING`: only errors fail a verify or refuse a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
        }
    }
}

/// One problem, as Ganeti's `_VerifyErrors._Error` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// Ganeti's error code text (`--error-codes`, `--ignore-errors`).
    pub code: &'static str,
    /// Ganeti's item type: `cluster`, `group`, `node`, `network` or `instance`.
    pub kind: &'static str,
    /// The object's name (empty for the cluster).
    pub item: String,
    pub msg: String,
}

impl Finding {
    /// The `--error-codes` form: `ERROR:ENETPOOL:network:net1:text`.
    pub fn coded(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.level.as_str(),
            self.code,
            self.kind,
            self.item,
            self.msg
        )
    }
}

/// `ERROR: network net1: text` (Ganeti prints it after `  - `).
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.item.is_empty() { "" } else { " " };
        write!(
            f,
            "{}: {}{sep}{}: {}",
            self.level.as_str(),
            self.kind,
            self.item,
            self.msg
        )
    }
}
