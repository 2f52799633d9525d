//! One firewall rule as data: what it matches and what it decides. The drivers render it,
//! the iptables driver as iptables/ebtables text (`xt.rs`), the nftables driver as an nft
//! statement (`nft.rs`); neither reads the other's syntax.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use netconf::MacAddr;

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp,
    Udp,
    Icmp,
    Icmp6,
}

impl L4 {
    /// The name iptables, ebtables and nft all use.
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmp => "icmp",
            L4::Icmp6 => "ipv6-icmp",
        }
    }

    pub fn from_name(s: &str) -> Option<L4> {
        [L4::Tcp, L4::Udp, L4::Icmp, L4::Icmp6]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// An Ethernet payload type (bridge rules only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtherType {
    Vlan,
    Ip4,
    Ip6,
    Arp,
}

/// An ICMPv6 message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmp6Type {
    RouterAdvert,
}

/// One condition of a rule; a rule matches when all of its conditions do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The source address is in `addr/len`.
    Src {
        not: bool,
        addr: IpAddr,
        len: u8,
    },
    /// The source MAC, under `mask` when there is one.
    SrcMac {
        not: bool,
        mac: MacAddr,
        mask: Option<MacAddr>,
    },
    /// The frame carries this payload (bridge rules).
    EtherType(EtherType),
    Proto(L4),
    SrcPort(u16),
    DstPort(u16),
    /// TCP other than a connection-opening SYN.
    NotSyn,
    /// Replies and related packets of connections conntrack knows.
    ReplyOrRelated,
    Icmp6(Icmp6Type),
    /// The sender MAC of an ARP packet.
    ArpSrcMac {
        not: bool,
        mac: MacAddr,
    },
    /// The sender address of an ARP packet.
    ArpSrcIp {
        not: bool,
        ip: Ipv4Addr,
    },
}

impl Match {
    /// The source is exactly `addr`.
    pub fn src(addr: impl Into<IpAddr>) -> Match {
        let addr = addr.into();
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Match::Src {
            not: false,
            addr,
            len,
        }
    }

    /// The source is anything but `addr`.
    pub fn not_src(addr: impl Into<IpAddr>) -> Match {
        match Match::src(addr) {
            Match::Src { addr, len, .. } => Match::Src {
                not: true,
                addr,
                len,
            },
            m => m,
        }
    }

    /// The source MAC is anything but `mac`.
    pub fn not_src_mac(mac: MacAddr) -> Match {
        Match::SrcMac {
            not: true,
            mac,
            mask: None,
        }
    }
}

/// What a rule decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    /// Into another of snf-ifup's chains (its model name).
    Jump(String),
}

/// A rule: its conditions, in order, and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub verdict: Verdict,
}

impl Rule {
    pub fn new(matches: impl IntoIterator<Item = Match>, verdict: Verdict) -> Rule {
        Rule {
            matches: matches.into_iter().collect(),
            verdict,
        }
    }

    /// The chain this rule jumps to, if any.
    pub fn target(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Jump(t) => Some(t),
            _ => None,
        }
    }
}

/// A built-in hook a per-TAP chain is reached from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Forward,
    Input,
    Output,
}

impl Hook {
    /// The built-in chain's name in iptables and ebtables.
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Forward => "FORWARD",
            Hook::Input => "INPUT",
            Hook::Output => "OUTPUT",
        }
    }

    pub fn from_chain(s: &str) -> Option<Hook> {
        [Hook::Forward, Hook::Input, Hook::Output]
            .into_iter()
            .find(|h| h.chain() == s)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.chain())
    }
}

/// Which packets of a hook go to a TAP's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JumpMatch {
    /// Those that came in on the interface.
    In(String),
    /// Those that go out on it.
    Out(String),
    /// Those a bridge forwards out of the port (iptables sees them through br_netfilter).
    BridgedOut(String),
}

impl JumpMatch {
    pub fn tap(&self) -> &str {
        match self {
            JumpMatch::In(t) | JumpMatch::Out(t) | JumpMatch::BridgedOut(t) => t,
        }
    }

    /// iptables' and ebtables' text of it (the same in every family).
    pub fn parse(s: &str) -> Option<JumpMatch> {
        let w: Vec<&str> = s.split_whitespace().collect();
        match w.as_slice() {
            ["-i", t] => Some(JumpMatch::In((*t).to_owned())),
            ["-o", t] => Some(JumpMatch::Out((*t).to_owned())),
            ["-m", "physdev", "--physdev-out", t, "--physdev-is-bridged"] => {
                Some(JumpMatch::BridgedOut((*t).to_owned()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for JumpMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JumpMatch::In(t) => write!(f, "-i {t}"),
            JumpMatch::Out(t) => write!(f, "-o {t}"),
            JumpMatch::BridgedOut(t) => {
                write!(f, "-m physdev --physdev-out {t} --physdev-is-bridged")
            }
        }
    }
}

#[cfg(test)]
impl PartialEq<&str> for JumpMatch {
    fn eq(&self, other: &&str) -> bool {
        JumpMatch::parse(other).as_ref() == Some(self)
    }
}

/// Tests state rules in the iptables syntax they know; a bridge rule reads as ebtables.
#[cfg(test)]
impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        use super::Family;
        [Family::Ip4, Family::Eb]
            .into_iter()
            .any(|f| super::xt::rule_text(f, self) == *other)
    }
}

#[cfg(test)]
impl PartialEq<str> for Rule {
    fn eq(&self, other: &str) -> bool {
        *self == other
    }
}

/// Tests write rules in iptables syntax: an iptables rule, else an ebtables one.
#[cfg(test)]
impl From<&str> for Rule {
    fn from(s: &str) -> Rule {
        use super::Family;
        super::xt::parse_rule(Family::Ip4, s)
            .or_else(|_| super::xt::parse_rule(Family::Eb, s))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

#[cfg(test)]
impl From<String> for Rule {
    fn from(s: String) -> Rule {
        Rule::from(s.as_str())
    }
}

#[cfg(test)]
impl From<&str> for JumpMatch {
    fn from(s: &str) -> JumpMatch {
        JumpMatch::parse(s).unwrap_or_else(|| panic!("jump match {s:?}"))
    }
}

#[cfg(test)]
impl From<String> for JumpMatch {
    fn from(s: String) -> JumpMatch {
        JumpMatch::from(s.as_str())
    }
}
