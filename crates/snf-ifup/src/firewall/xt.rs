//! A rule's iptables/ebtables text: what the iptables driver writes after `-A <chain>`,
//! and what the state file records (so that state files stay as they were). Parsing
//! accepts exactly what [`rule_text`] writes; anything else is an error.

use std::net::IpAddr;

use anyhow::bail;
use netconf::MacAddr;

use super::Family;
use super::rule::{EtherType, Icmp6Type, L4, Match, Rule, Verdict};

/// The text of `rule` in `fam`'s tool.
pub fn rule_text(fam: Family, rule: &Rule) -> String {
    let mut out: Vec<String> = Vec::new();
    // ebtables names IP matches after the ether type the rule matched.
    let mut v6 = false;
    let ip = |v6: bool| if v6 { "ip6" } else { "ip" };
    for m in &rule.matches {
        let eb = fam == Family::Eb;
        out.push(match m {
            Match::Src { not, addr, len } if eb => {
                let opt = if addr.is_ipv6() { "ip6" } else { "ip" };
                let full = if addr.is_ipv6() { 128 } else { 32 };
                let addr = if *len == full {
                    addr.to_string()
                } else {
                    format!("{addr}/{len}")
                };
                format!("--{opt}-src {}{addr}", bang(*not))
            }
            Match::Src { not, addr, len } => format!("{}-s {addr}/{len}", bang(*not)),
            Match::SrcMac { not, mac, mask } if eb => match mask {
                Some(k) => format!("-s {}{mac}/{k}", bang(*not)),
                None => format!("-s {}{mac}", bang(*not)),
            },
            // iptables' mac match has no mask; the plan never asks for one there.
            Match::SrcMac { not, mac, .. } => format!("-m mac {}--mac-source {mac}", bang(*not)),
            Match::EtherType(t) => {
                v6 = *t == EtherType::Ip6;
                format!("-p {}", ether_name(*t))
            }
            Match::Proto(p) if eb => format!("--{}-proto {}", ip(v6), p.name()),
            Match::Proto(p) => format!("-p {}", p.name()),
            Match::SrcPort(n) if eb => format!("--{}-sport {n}", ip(v6)),
            Match::DstPort(n) if eb => format!("--{}-dport {n}", ip(v6)),
            Match::SrcPort(n) => format!("--sport {n}"),
            Match::DstPort(n) => format!("--dport {n}"),
            Match::NotSyn => "! --syn".to_owned(),
            Match::ReplyOrRelated => "-m conntrack --ctstate RELATED,ESTABLISHED".to_owned(),
            Match::Icmp6(Icmp6Type::RouterAdvert) if eb => {
                "--ip6-icmp-type router-advertisement".to_owned()
            }
            Match::Icmp6(Icmp6Type::RouterAdvert) => "-m icmp6 --icmpv6-type 134".to_owned(),
            Match::ArpSrcMac { not, mac } => format!("--arp-mac-src {}{mac}", bang(*not)),
            Match::ArpSrcIp { not, ip } => format!("--arp-ip-src {}{ip}", bang(*not)),
        });
    }
    out.push(format!("-j {}", verdict_text(&rule.verdict)));
    out.join(" ")
}

/// iptables writes a negation before the option, ebtables (and the arp matches) after it.
fn bang(not: bool) -> &'static str {
    if not { "! " } else { "" }
}

fn ether_name(t: EtherType) -> &'static str {
    match t {
        EtherType::Vlan => "802_1Q",
        EtherType::Ip4 => "IPv4",
        EtherType::Ip6 => "IPv6",
        EtherType::Arp => "ARP",
    }
}

fn verdict_text(v: &Verdict) -> &str {
    match v {
        Verdict::Accept => "ACCEPT",
        Verdict::Drop => "DROP",
        Verdict::Return => "RETURN",
        Verdict::Jump(t) => t,
    }
}

/// A rule from the text [`rule_text`] writes for `fam`.
pub fn parse_rule(fam: Family, text: &str) -> anyhow::Result<Rule> {
    let toks: Vec<&str> = text.split_whitespace().collect();
    let mut i = 0;
    let mut matches = Vec::new();
    let mut verdict = None;
    let mut not = false;
    let eb = fam == Family::Eb;
    let bad = |what: &str| anyhow::anyhow!("cannot read {what:?} in the rule {text:?}");
    while i < toks.len() {
        let tok = toks[i];
        i += 1;
        if tok == "!" {
            not = true;
            continue;
        }
        if tok == "--syn" {
            if !std::mem::take(&mut not) {
                return Err(bad(tok));
            }
            matches.push(Match::NotSyn);
            continue;
        }
        // A value, with ebtables' negation after the option.
        let mut val = toks.get(i).copied().ok_or_else(|| bad(tok))?;
        i += 1;
        if val == "!" {
            not = true;
            val = toks.get(i).copied().ok_or_else(|| bad(tok))?;
            i += 1;
        }
        let neg = std::mem::take(&mut not);
        let mac = |v: &str| v.parse::<MacAddr>().map_err(|_| bad(v));
        let m = match tok {
            "-j" => {
                verdict = Some(match val {
                    "ACCEPT" => Verdict::Accept,
                    "DROP" => Verdict::Drop,
                    "RETURN" => Verdict::Return,
                    t => Verdict::Jump(t.to_owned()),
                });
                continue;
            }
            "-m" if matches!(val, "mac" | "conntrack" | "icmp6") && !neg => continue,
            "-s" if eb => {
                let (m, k) = match val.split_once('/') {
                    Some((m, k)) => (mac(m)?, Some(mac(k)?)),
                    None => (mac(val)?, None),
                };
                Match::SrcMac {
                    not: neg,
                    mac: m,
                    mask: k,
                }
            }
            "-s" => {
                let (a, l) = val.split_once('/').ok_or_else(|| bad(val))?;
                Match::Src {
                    not: neg,
                    addr: a.parse().map_err(|_| bad(val))?,
                    len: l.parse().map_err(|_| bad(val))?,
                }
            }
            "--ip-src" | "--ip6-src" if eb => {
                let (a, l) = match val.split_once('/') {
                    Some((a, l)) => (a, Some(l)),
                    None => (val, None),
                };
                let addr: IpAddr = a.parse().map_err(|_| bad(val))?;
                if addr.is_ipv6() != (tok == "--ip6-src") {
                    return Err(bad(val));
                }
                let full = if addr.is_ipv6() { 128 } else { 32 };
                Match::Src {
                    not: neg,
                    addr,
                    len: match l {
                        Some(l) => l.parse().map_err(|_| bad(val))?,
                        None => full,
                    },
                }
            }
            "--mac-source" if !eb => Match::SrcMac {
                not: neg,
                mac: mac(val)?,
                mask: None,
            },
            "-p" if eb && !neg => Match::EtherType(match val {
                "802_1Q" => EtherType::Vlan,
                "IPv4" => EtherType::Ip4,
                "IPv6" => EtherType::Ip6,
                "ARP" => EtherType::Arp,
                _ => return Err(bad(val)),
            }),
            "-p" | "--ip-proto" | "--ip6-proto" if !neg && (eb == (tok != "-p")) => {
                Match::Proto(L4::from_name(val).ok_or_else(|| bad(val))?)
            }
            "--sport" | "--ip-sport" | "--ip6-sport" if !neg && (eb == (tok != "--sport")) => {
                Match::SrcPort(val.parse().map_err(|_| bad(val))?)
            }
            "--dport" | "--ip-dport" | "--ip6-dport" if !neg && (eb == (tok != "--dport")) => {
                Match::DstPort(val.parse().map_err(|_| bad(val))?)
            }
            "--ctstate" if !neg && val == "RELATED,ESTABLISHED" => Match::ReplyOrRelated,
            "--icmpv6-type" if !eb && !neg && val == "134" => Match::Icmp6(Icmp6Type::RouterAdvert),
            "--ip6-icmp-type" if eb && !neg && val == "router-advertisement" => {
                Match::Icmp6(Icmp6Type::RouterAdvert)
            }
            "--arp-mac-src" if eb => Match::ArpSrcMac {
                not: neg,
                mac: mac(val)?,
            },
            "--arp-ip-src" if eb => Match::ArpSrcIp {
                not: neg,
                ip: val.parse().map_err(|_| bad(val))?,
            },
            _ => return Err(bad(tok)),
        };
        matches.push(m);
    }
    match verdict {
        Some(verdict) if !not => Ok(Rule { matches, verdict }),
        _ => bail!("the rule {text:?} has no verdict"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_as_written() {
        for (fam, text) in [
            (Family::Ip4, "! -s 198.51.100.5/32 -j DROP"),
            (
                Family::Ip4,
                "-m mac ! --mac-source aa:00:00:00:00:01 -j DROP",
            ),
            (Family::Ip4, "-s 0.0.0.0/32 -p udp --dport 67 -j RETURN"),
            (
                Family::Ip4,
                "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ),
            (Family::Ip4, "-p tcp ! --syn -j ACCEPT"),
            (Family::Ip4, "-j snf-limited"),
            (
                Family::Ip6,
                "-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
            ),
            (Family::Ip6, "-s ::/128 -p ipv6-icmp -j RETURN"),
            (
                Family::Eb,
                "-s ! aa:00:00:00:00:01/ff:ff:f0:00:00:00 -j DROP",
            ),
            (Family::Eb, "-p 802_1Q -j DROP"),
            (
                Family::Eb,
                "-p IPv4 --ip-src 0.0.0.0 --ip-proto udp --ip-dport 67 -j RETURN",
            ),
            (
                Family::Eb,
                "-p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type router-advertisement -j DROP",
            ),
            (
                Family::Eb,
                "-p IPv6 --ip6-proto udp --ip6-sport 547 -j DROP",
            ),
            (Family::Eb, "-p ARP --arp-ip-src ! 198.51.100.3 -j DROP"),
            (
                Family::Eb,
                "-p ARP --arp-mac-src ! aa:00:00:00:00:01 -j DROP",
            ),
            (Family::Eb, "-p IPv6 --ip6-src fe80::1 -j RETURN"),
        ] {
            let r = parse_rule(fam, text).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(rule_text(fam, &r), text);
        }
        for (fam, text) in [
            (Family::Ip4, "-m owner --uid-owner 0 -j DROP"),
            (Family::Ip4, "-p tcp --syn -j ACCEPT"),
            (Family::Ip4, "-p tcp"),
            (Family::Ip4, "-s 198.51.100.5 -j DROP"),
            (Family::Eb, "-p IPv4 --ip-src 2001:db8::1 -j RETURN"),
            (Family::Eb, "--mac-source aa:00:00:00:00:01 -j DROP"),
            (Family::Ip4, "-j"),
        ] {
            assert!(parse_rule(fam, text).is_err(), "{text}");
        }
    }
}
