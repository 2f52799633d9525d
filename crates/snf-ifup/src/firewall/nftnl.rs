//! The nftables driver's statements as nf_tables bytecode, for sending them over netlink
//! (`netconf_sys::nftables`) rather than through `nft -f`: each rule is encoded from the
//! typed model ([`Rule`]) into the expressions `nft` itself would generate for its text
//! (the same dependencies: `meta nfproto` in the inet family, `meta iiftype` before an
//! Ethernet address there, `meta protocol` in the bridge family when no EtherType match
//! comes first), so that the kernel holds the same rules either way and `nft list` prints
//! them the same. A form this encoder does not know yields no bytecode, and the
//! transaction then goes through `nft -f` (its text is always built).

use std::net::IpAddr;

use netconf_sys::nftables::{Base, Batch, Expr, Family as NfFamily, Hook, MetaKey, Verdict as V};

use super::{EtherType, Icmp6Type, L4, Match, Rule, Verdict};

/// One statement of a chain: its nft text (what `--dry-run` prints, what records compare)
/// and its bytecode, when this encoder knows the form.
#[derive(Clone, Debug)]
pub(super) struct Stmt {
    pub text: String,
    pub exprs: Option<Vec<Expr>>,
}

impl Stmt {
    pub fn new(text: String, exprs: Option<Vec<Expr>>) -> Stmt {
        Stmt { text, exprs }
    }
}

/// Statements are compared by their text: it says everything the bytecode does.
impl PartialEq for Stmt {
    fn eq(&self, other: &Stmt) -> bool {
        self.text == other.text
    }
}

impl Eq for Stmt {}

impl PartialEq<&str> for Stmt {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl std::fmt::Display for Stmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The network protocol a rule has established so far (so that a dependency is not
/// repeated, as nft does not repeat it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum L3 {
    Ip4,
    Ip6,
    Arp,
    Vlan,
}

fn cmp(neq: bool, data: impl Into<Vec<u8>>) -> Expr {
    Expr::Cmp {
        neq,
        data: data.into(),
    }
}

fn ether_type(t: L3) -> [u8; 2] {
    match t {
        L3::Ip4 => [0x08, 0x00],
        L3::Ip6 => [0x86, 0xdd],
        L3::Arp => [0x08, 0x06],
        L3::Vlan => [0x81, 0x00],
    }
}

fn nfproto(t: L3) -> u8 {
    if t == L3::Ip6 { 10 } else { 2 }
}

/// Encodes `rule` for a chain of a table of `family`; `chain` maps a jump target to its
/// nft chain name. `None`: a form this encoder does not know.
pub(super) fn encode(
    family: NfFamily,
    rule: &Rule,
    chain: &dyn Fn(&str) -> anyhow::Result<String>,
) -> Option<Vec<Expr>> {
    let mut out = Vec::new();
    let mut l3: Option<L3> = None;
    let mut l4: Option<L4> = None;
    // The dependency nft puts before a network header match.
    let need_l3 = |out: &mut Vec<Expr>, l3: &mut Option<L3>, want: L3| {
        if *l3 == Some(want) {
            return;
        }
        match family {
            NfFamily::Bridge => {
                out.push(Expr::Meta(MetaKey::Protocol));
                out.push(cmp(false, ether_type(want)));
            }
            NfFamily::Inet => {
                out.push(Expr::Meta(MetaKey::NfProto));
                out.push(cmp(false, [nfproto(want)]));
            }
            NfFamily::Arp => {}
        }
        *l3 = Some(want);
    };
    for m in &rule.matches {
        match m {
            Match::Src { not, addr, len } => {
                let (want, bytes, offset) = match addr {
                    IpAddr::V4(a) => (L3::Ip4, a.octets().to_vec(), 12),
                    IpAddr::V6(a) => (L3::Ip6, a.octets().to_vec(), 8),
                };
                // A prefix on a byte boundary loads only its bytes; others are not needed.
                if len % 8 != 0 || usize::from(*len / 8) > bytes.len() || *len == 0 {
                    return None;
                }
                let n = usize::from(*len / 8);
                need_l3(&mut out, &mut l3, want);
                out.push(Expr::Payload {
                    base: Base::Network,
                    offset,
                    len: n as u32,
                });
                out.push(cmp(*not, &bytes[..n]));
            }
            Match::SrcMac { not, mac, mask } => {
                if family == NfFamily::Inet {
                    out.push(Expr::Meta(MetaKey::IifType));
                    // ARPHRD_ETHER, a host-order u16.
                    out.push(cmp(false, 1u16.to_ne_bytes()));
                }
                out.push(Expr::Payload {
                    base: Base::Link,
                    offset: 6,
                    len: 6,
                });
                match mask {
                    None => out.push(cmp(*not, mac.0)),
                    Some(mask) => {
                        let mut net = mac.0;
                        for (b, m) in net.iter_mut().zip(mask.0) {
                            *b &= m;
                        }
                        out.push(Expr::Bitwise {
                            mask: mask.0.to_vec(),
                            xor: vec![0; 6],
                        });
                        out.push(cmp(*not, net));
                    }
                }
            }
            Match::EtherType(t) => {
                if family != NfFamily::Bridge {
                    return None;
                }
                let t = match t {
                    EtherType::Vlan => L3::Vlan,
                    EtherType::Ip4 => L3::Ip4,
                    EtherType::Ip6 => L3::Ip6,
                    EtherType::Arp => L3::Arp,
                };
                out.push(Expr::Payload {
                    base: Base::Link,
                    offset: 12,
                    len: 2,
                });
                out.push(cmp(false, ether_type(t)));
                l3 = Some(t);
            }
            Match::Proto(p) => {
                let n = match p {
                    L4::Tcp => 6,
                    L4::Udp => 17,
                    L4::Icmp => 1,
                    L4::Icmp6 => 58,
                };
                out.push(Expr::Meta(MetaKey::L4Proto));
                out.push(cmp(false, [n]));
                l4 = Some(*p);
            }
            Match::SrcPort(n) | Match::DstPort(n) => {
                if !matches!(l4, Some(L4::Tcp | L4::Udp)) {
                    return None;
                }
                let offset = if matches!(m, Match::SrcPort(_)) { 0 } else { 2 };
                out.push(Expr::Payload {
                    base: Base::Transport,
                    offset,
                    len: 2,
                });
                out.push(cmp(false, n.to_be_bytes()));
            }
            Match::NotSyn => {
                if l4 != Some(L4::Tcp) {
                    return None;
                }
                out.push(Expr::Payload {
                    base: Base::Transport,
                    offset: 13,
                    len: 1,
                });
                // fin|syn|rst|ack, then anything but a bare syn.
                out.push(Expr::Bitwise {
                    mask: vec![0x17],
                    xor: vec![0],
                });
                out.push(cmp(true, [0x02]));
            }
            Match::ReplyOrRelated => {
                if family != NfFamily::Inet {
                    return None;
                }
                out.push(Expr::CtState);
                // established (2) | related (4), a host-order u32.
                out.push(Expr::Bitwise {
                    mask: 6u32.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                });
                out.push(cmp(true, [0; 4]));
            }
            Match::Icmp6(Icmp6Type::RouterAdvert) => {
                if l4 != Some(L4::Icmp6) {
                    return None;
                }
                out.push(Expr::Payload {
                    base: Base::Transport,
                    offset: 0,
                    len: 1,
                });
                out.push(cmp(false, [134]));
            }
            Match::ArpSrcMac { not, mac } => {
                if l3 != Some(L3::Arp) && family != NfFamily::Arp {
                    return None;
                }
                out.push(Expr::Payload {
                    base: Base::Network,
                    offset: 8,
                    len: 6,
                });
                out.push(cmp(*not, mac.0));
            }
            Match::ArpSrcIp { not, ip } => {
                if l3 != Some(L3::Arp) && family != NfFamily::Arp {
                    return None;
                }
                out.push(Expr::Payload {
                    base: Base::Network,
                    offset: 14,
                    len: 4,
                });
                out.push(cmp(*not, ip.octets()));
            }
        }
    }
    out.push(Expr::Verdict(match &rule.verdict {
        Verdict::Accept => V::Accept,
        Verdict::Drop => V::Drop,
        Verdict::Return => V::Return,
        Verdict::Jump(t) => V::Jump(chain(t).ok()?),
    }));
    Some(out)
}

/// `meta nfproto != ipv4|ipv6 return`
pub(super) fn nfproto_not_return(v6: bool) -> Vec<Expr> {
    vec![
        Expr::Meta(MetaKey::NfProto),
        cmp(true, [if v6 { 10 } else { 2 }]),
        Expr::Verdict(V::Return),
    ]
}

/// `meta mark & MASK != VALUE return`
pub(super) fn mark_not_return(mask: u32, value: u32) -> Vec<Expr> {
    vec![
        Expr::Meta(MetaKey::Mark),
        Expr::Bitwise {
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        cmp(true, value.to_ne_bytes()),
        Expr::Verdict(V::Return),
    ]
}

/// `meta mark set meta mark & KEEP | SET`
pub(super) fn mark_set(keep: u32, set: u32) -> Vec<Expr> {
    vec![
        Expr::Meta(MetaKey::Mark),
        Expr::Bitwise {
            mask: keep.to_ne_bytes().to_vec(),
            xor: set.to_ne_bytes().to_vec(),
        },
        Expr::MetaSet(MetaKey::Mark),
    ]
}

/// `arp operation request arp saddr ip set GW`
pub(super) fn arp_mangle(gw: std::net::Ipv4Addr) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: Base::Network,
            offset: 6,
            len: 2,
        },
        cmp(false, 1u16.to_be_bytes()),
        Expr::Load(gw.octets().to_vec()),
        Expr::PayloadSet {
            base: Base::Network,
            offset: 14,
            len: 4,
        },
    ]
}

/// A base chain's dispatch rule: its text prefix (`iifname`, `ether type ip oifname`,
/// `meta nfproto ipv6 iifname`, …) then `vmap @map`.
pub(super) fn dispatch(prefix: &str, map: &str) -> Option<Vec<Expr>> {
    let mut out = Vec::new();
    let words: Vec<&str> = prefix.split_whitespace().collect();
    let mut w = words.as_slice();
    loop {
        match w {
            ["ether", "type", t, rest @ ..] => {
                let t = match *t {
                    "ip" => L3::Ip4,
                    "ip6" => L3::Ip6,
                    _ => return None,
                };
                out.push(Expr::Payload {
                    base: Base::Link,
                    offset: 12,
                    len: 2,
                });
                out.push(cmp(false, ether_type(t)));
                w = rest;
            }
            ["meta", "nfproto", p, rest @ ..] => {
                let p = match *p {
                    "ipv4" => 2,
                    "ipv6" => 10,
                    _ => return None,
                };
                out.push(Expr::Meta(MetaKey::NfProto));
                out.push(cmp(false, [p]));
                w = rest;
            }
            ["iifname"] => {
                out.push(Expr::Meta(MetaKey::IifName));
                break;
            }
            ["oifname"] => {
                out.push(Expr::Meta(MetaKey::OifName));
                break;
            }
            _ => return None,
        }
    }
    out.push(Expr::Vmap(map.to_owned()));
    Some(out)
}

/// A transaction as `nft -f` text and, while every statement has bytecode, as a netlink
/// batch with the same operations in the same order.
pub(super) struct Tx {
    lines: Vec<String>,
    batch: Option<Batch>,
}

impl Default for Tx {
    fn default() -> Self {
        Tx {
            lines: Vec::new(),
            batch: Some(Batch::new()),
        }
    }
}

pub(super) const TABLE: &str = "snf_ifup";

impl Tx {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// The batch, when every statement had bytecode.
    pub fn batch(&self) -> Option<&Batch> {
        self.batch.as_ref()
    }

    /// The text of the `i`th operation (for errors).
    pub fn line(&self, i: usize) -> Option<&str> {
        self.lines.get(i).map(String::as_str)
    }

    fn push(&mut self, line: String, op: impl FnOnce(&mut Batch)) {
        self.lines.push(line);
        if let Some(b) = &mut self.batch {
            op(b);
        }
    }

    pub fn add_table(&mut self, f: NfFamily, fam: &str, exclusive: bool) {
        let verb = if exclusive { "create" } else { "add" };
        self.push(format!("{verb} table {fam} {TABLE}"), |b| {
            b.add_table(f, TABLE, exclusive)
        });
    }

    pub fn del_table(&mut self, f: NfFamily, fam: &str) {
        self.push(format!("delete table {fam} {TABLE}"), |b| {
            b.del_table(f, TABLE)
        });
    }

    /// `add`/`create chain`; `hook` makes it a base chain (`spec` is its text).
    pub fn add_chain(
        &mut self,
        f: NfFamily,
        fam: &str,
        name: &str,
        hook: Option<Hook>,
        spec: &str,
        exclusive: bool,
    ) {
        let verb = if exclusive { "create" } else { "add" };
        self.push(format!("{verb} chain {fam} {TABLE} {name}{spec}"), |b| {
            b.add_chain(f, TABLE, name, hook, exclusive)
        });
    }

    pub fn del_chain(&mut self, f: NfFamily, fam: &str, name: &str) {
        self.push(format!("delete chain {fam} {TABLE} {name}"), |b| {
            b.del_chain(f, TABLE, name)
        });
    }

    pub fn flush_chain(&mut self, f: NfFamily, fam: &str, name: &str) {
        self.push(format!("flush chain {fam} {TABLE} {name}"), |b| {
            b.flush_chain(f, TABLE, name)
        });
    }

    pub fn add_vmap(&mut self, f: NfFamily, fam: &str, name: &str) {
        self.push(
            format!("add map {fam} {TABLE} {name} {{ type ifname : verdict; }}"),
            |b| b.add_vmap(f, TABLE, name),
        );
    }

    pub fn add_rule(
        &mut self,
        f: NfFamily,
        fam: &str,
        chain: &str,
        text: &str,
        exprs: Option<&[Expr]>,
    ) {
        self.lines
            .push(format!("add rule {fam} {TABLE} {chain} {text}"));
        match (exprs, &mut self.batch) {
            (Some(e), Some(b)) => b.add_rule(f, TABLE, chain, e),
            _ => self.batch = None,
        }
    }

    /// `add element` of (interface, chain) pairs.
    pub fn add_elements(&mut self, f: NfFamily, fam: &str, map: &str, elems: &[(&str, &str)]) {
        let list: Vec<String> = elems
            .iter()
            .map(|(i, c)| format!("\"{i}\" : jump {c}"))
            .collect();
        self.push(
            format!("add element {fam} {TABLE} {map} {{ {} }}", list.join(", ")),
            |b| b.add_elements(f, TABLE, map, elems),
        );
    }

    pub fn del_elements(&mut self, f: NfFamily, fam: &str, map: &str, keys: &[&str]) {
        let list: Vec<String> = keys.iter().map(|i| format!("\"{i}\"")).collect();
        self.push(
            format!(
                "delete element {fam} {TABLE} {map} {{ {} }}",
                list.join(", ")
            ),
            |b| b.del_elements(f, TABLE, map, keys),
        );
    }
}
