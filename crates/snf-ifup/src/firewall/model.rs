//! The rule model both drivers render from: per family, the chains of one TAP
//! (`SNF-FROM-<tap>`, `SNF-TO-<tap>`), the shared profile chains it uses and the jumps from
//! the built-in hooks into them. Rules are data ([`Rule`]); each driver writes them in its
//! own syntax.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::rule::{Hook, JumpMatch, Rule};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ip4,
    Ip6,
    Eb,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Ip4, Family::Ip6, Family::Eb];

    /// The runner's family: the tool names live there.
    pub fn xtables(self) -> netconf_sys::xtables::Family {
        use netconf_sys::xtables::Family as X;
        match self {
            Family::Ip4 => X::Ip4,
            Family::Ip6 => X::Ip6,
            Family::Eb => X::Eb,
        }
    }

    pub fn tool(self) -> &'static str {
        self.xtables().tool()
    }

    pub(super) fn save_cmd(self) -> &'static str {
        self.xtables().save_tool()
    }

    /// A chain declaration; in `--noflush` mode it creates the chain or flushes it.
    pub(super) fn declare(self, chain: &str) -> String {
        match self {
            Family::Eb => format!(":{chain} RETURN"),
            _ => format!(":{chain} - [0:0]"),
        }
    }

    /// Jumps into our chains carry a comment where the tool supports one.
    pub(super) fn jump_tail(self, target: &str) -> String {
        match self {
            Family::Eb => format!("-j {target}"),
            _ => format!("-m comment --comment snf-ifup -j {target}"),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tool())
    }
}

/// A chain and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A rule in a built-in chain that jumps to one of our chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jump {
    pub from: Hook,
    pub matches: JumpMatch,
    pub target: String,
}

/// What one NIC wants in one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSpec {
    /// Per-TAP chains (`SNF-FROM-<tap>`, `SNF-TO-<tap>`).
    pub chains: Vec<Chain>,
    /// Shared chains this NIC jumps to (firewall profiles).
    pub shared: Vec<Chain>,
    pub jumps: Vec<Jump>,
}

impl TableSpec {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.jumps.is_empty() && self.shared.is_empty()
    }

    /// Appends `rule` to chain `name` (created on first use), skipping duplicates so that
    /// features asking for the same rule share it.
    pub fn push_rule(&mut self, name: &str, rule: Rule) {
        let chain = match self.chains.iter_mut().position(|c| c.name == name) {
            Some(i) => &mut self.chains[i],
            None => {
                self.chains.push(Chain {
                    name: name.to_owned(),
                    rules: Vec::new(),
                });
                self.chains.last_mut().expect("just pushed")
            }
        };
        if !chain.rules.contains(&rule) {
            chain.rules.push(rule);
        }
    }

    pub fn push_jump(&mut self, from: Hook, matches: JumpMatch, target: &str) {
        let j = Jump {
            from,
            matches,
            target: target.to_owned(),
        };
        if !self.jumps.contains(&j) {
            self.jumps.push(j);
        }
    }

    pub fn push_shared(&mut self, chain: Chain) {
        if !self.shared.iter().any(|c| c.name == chain.name) {
            self.shared.push(chain);
        }
    }
}

pub fn from_chain(tap: &str) -> String {
    format!("SNF-FROM-{tap}")
}

pub fn to_chain(tap: &str) -> String {
    format!("SNF-TO-{tap}")
}

/// Shared chains snf-ifup creates and garbage-collects.
pub fn is_shared(name: &str) -> bool {
    name.starts_with("snf-")
}

/// The jump/goto target of a rule's text (as `*-save` prints it), if any.
pub fn target_of(rule: &str) -> Option<&str> {
    let mut it = rule.split_whitespace();
    let mut target = None;
    while let Some(tok) = it.next() {
        if tok == "-j" || tok == "-g" || tok == "--jump" || tok == "--goto" {
            target = it.next();
        }
    }
    target
}

/// Each family's wanted chains of one TAP.
pub type FwMap = std::collections::BTreeMap<Family, TableSpec>;
