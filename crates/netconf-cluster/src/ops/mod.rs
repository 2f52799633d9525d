//! The operations behind the commands, as functions on a `ClusterConfig` inside one transaction.
//! Each checks everything before it changes anything (Ganeti's CheckPrereq, then Exec),
//! reports Ganeti's INFO/WARNING feedback, and returns what its hooks are told.

pub mod group;
pub mod instance;
pub mod network;
pub mod node;
mod parse;
#[cfg(test)]
mod tests;

pub use parse::{parse_net4, parse_net6};

/// Job feedback, printed by the CLI as Ganeti does (`<time>  - WARNING: …`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feedback {
    pub messages: Vec<(Severity, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
        }
    }
}

impl Feedback {
    pub fn info(&mut self, msg: impl Into<String>) {
        self.messages.push((Severity::Info, msg.into()));
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        self.messages.push((Severity::Warning, msg.into()));
    }

    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .filter(|(s, _)| *s == Severity::Warning)
            .map(|(_, m)| m.as_str())
    }
}
