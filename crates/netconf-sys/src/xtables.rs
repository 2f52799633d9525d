//! The iptables family of tools (iptables, ip6tables, ebtables, arptables) and running
//! them: one command, a `-save` dump or a `-restore` batch, with the xtables lock wait
//! bounded when the caller asks for it.

use crate::command::{self, Finished};

/// Which table family a rule or a command belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ip4,
    Ip6,
    Eb,
    Arp,
}

impl Family {
    /// The command that changes one rule or chain.
    pub const fn tool(self) -> &'static str {
        match self {
            Family::Ip4 => "iptables",
            Family::Ip6 => "ip6tables",
            Family::Eb => "ebtables",
            Family::Arp => "arptables",
        }
    }

    /// The command that prints the tables.
    pub const fn save_tool(self) -> &'static str {
        match self {
            Family::Ip4 => "iptables-save",
            Family::Ip6 => "ip6tables-save",
            Family::Eb => "ebtables-save",
            Family::Arp => "arptables-save",
        }
    }

    /// The command that applies a batch read on stdin.
    pub const fn restore_tool(self) -> &'static str {
        match self {
            Family::Ip4 => "iptables-restore",
            Family::Ip6 => "ip6tables-restore",
            Family::Eb => "ebtables-restore",
            Family::Arp => "arptables-restore",
        }
    }
}

/// How long a command waits for the xtables lock another process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// No `-w`: the tool's own behaviour.
    Default,
    /// `-w <seconds>`: waits that long at most, then fails (rather than hanging).
    Seconds(u16),
}

impl Wait {
    fn prepend<'a>(self, secs: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut a = Vec::with_capacity(args.len() + 2);
        if let Wait::Seconds(_) = self {
            a.extend(["-w", secs]);
        }
        a.extend_from_slice(args);
        a
    }

    fn secs(self) -> String {
        match self {
            Wait::Default => String::new(),
            Wait::Seconds(s) => s.to_string(),
        }
    }
}

/// Runs `<tool> [-w N] args`; [`Finished::check`] turns a failure into an error.
pub fn command(family: Family, wait: Wait, args: &[&str]) -> anyhow::Result<Finished> {
    let secs = wait.secs();
    command::run(family.tool(), &wait.prepend(&secs, args), None)
}

/// Runs `<tool>-save args`; [`Finished::check`] returns the tables as text.
pub fn save(family: Family, args: &[&str]) -> anyhow::Result<Finished> {
    command::run(family.save_tool(), args, None)
}

/// Feeds `batch` to `<tool>-restore [-w N] args`; [`Finished::check`] judges the result.
pub fn restore(family: Family, wait: Wait, args: &[&str], batch: &str) -> anyhow::Result<Finished> {
    let secs = wait.secs();
    command::run(
        family.restore_tool(),
        &wait.prepend(&secs, args),
        Some(batch),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_of_every_family() {
        let all = [Family::Ip4, Family::Ip6, Family::Eb, Family::Arp];
        let names: Vec<_> = all
            .iter()
            .map(|f| (f.tool(), f.save_tool(), f.restore_tool()))
            .collect();
        assert_eq!(
            names,
            [
                ("iptables", "iptables-save", "iptables-restore"),
                ("ip6tables", "ip6tables-save", "ip6tables-restore"),
                ("ebtables", "ebtables-save", "ebtables-restore"),
                ("arptables", "arptables-save", "arptables-restore"),
            ]
        );
    }

    #[test]
    fn a_bounded_wait_comes_first() {
        let s = Wait::Seconds(5).secs();
        assert_eq!(Wait::Seconds(5).prepend(&s, &["-L"]), ["-w", "5", "-L"]);
        let s = Wait::Default.secs();
        assert_eq!(Wait::Default.prepend(&s, &["-L"]), ["-L"]);
    }
}
