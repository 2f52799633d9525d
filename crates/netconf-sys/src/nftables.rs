//! nf_tables over netlink, in-process: one batch (NFNL_MSG_BATCH_BEGIN … END) is one
//! transaction, as `nft -f` sends it, without the `nft` process (1-3 ms to start) and
//! without its cache (it lists every table, chain and set it may touch before sending).
//!
//! The caller says exactly what to change: tables, chains, verdict maps keyed by interface
//! name, their elements and rules as [`Expr`] lists (the bytecode `nft --debug=netlink`
//! shows). Integers in nf_tables attributes are big-endian; register contents are in the
//! byte order of what they hold (packet bytes, or host order for meta and ct values).
//!
//! An nf_tables socket that is closed after a commit that deleted something waits in
//! `close()` for the kernel's deferred destroy work (an RCU grace period): see
//! [`Socket`].

use std::fmt;
use std::os::fd::OwnedFd;

use anyhow::Context;

use crate::netlink::{self, push_attr};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;

const NFT_SET_MAP: u32 = 0x8;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's datatype number of `ifname` (what `nft list` prints the key type from).
const TYPE_IFNAME: u32 = 41;
/// A map key: an interface name, NUL-padded.
const IFNAMSIZ: usize = 16;

/// The register a rule's verdict goes to, and the first data register (nft's `reg 1`).
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

/// An nf_tables address family (NFPROTO_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Inet,
    Arp,
    Bridge,
}

impl Family {
    fn nfproto(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Arp => 3,
            Family::Bridge => 7,
        }
    }

    fn from_nfproto(n: u8) -> Option<Family> {
        [Family::Inet, Family::Arp, Family::Bridge]
            .into_iter()
            .find(|f| f.nfproto() == n)
    }

    /// The hook number of `hook` in this family (ARP numbers its hooks differently).
    fn hooknum(self, hook: Hook) -> u32 {
        match (self, hook) {
            (Family::Arp, Hook::Input) => 0,
            (Family::Arp, Hook::Output) => 1,
            (Family::Arp, Hook::Forward) => 2,
            (_, Hook::Input) => 1,
            (_, Hook::Forward) => 2,
            (_, Hook::Output) => 3,
        }
    }

    /// The priority nft calls `filter` in this family.
    fn filter_priority(self) -> i32 {
        match self {
            Family::Bridge => -200,
            _ => 0,
        }
    }
}

/// A base chain's hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Input,
    Forward,
    Output,
}

/// A packet header an expression reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Link,
    Network,
    Transport,
}

/// A meta key (NFT_META_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The link layer's protocol (an EtherType, big-endian).
    Protocol,
    Mark,
    IifName,
    OifName,
    IifType,
    NfProto,
    L4Proto,
}

impl MetaKey {
    fn number(self) -> u32 {
        match self {
            MetaKey::Protocol => 1,
            MetaKey::Mark => 3,
            MetaKey::IifName => 6,
            MetaKey::OifName => 7,
            MetaKey::IifType => 8,
            MetaKey::NfProto => 15,
            MetaKey::L4Proto => 16,
        }
    }
}

/// A rule's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Jump(_) => -3,
            Verdict::Return => -5,
        }
    }
}

/// One expression of a rule, as `nft --debug=netlink` prints it; all work on `reg 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `[ meta load KEY => reg 1 ]`
    Meta(MetaKey),
    /// `[ meta set KEY with reg 1 ]`
    MetaSet(MetaKey),
    /// `[ payload load LENb @ BASE header + OFFSET => reg 1 ]`
    Payload { base: Base, offset: u32, len: u32 },
    /// `[ payload write reg 1 => LENb @ BASE header + OFFSET ]` (no checksum to fix).
    PayloadSet { base: Base, offset: u32, len: u32 },
    /// `[ ct load state => reg 1 ]`
    CtState,
    /// `[ cmp eq|neq reg 1 DATA ]`
    Cmp { neq: bool, data: Vec<u8> },
    /// `[ bitwise reg 1 = ( reg 1 & MASK ) ^ XOR ]`
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `[ lookup reg 1 set MAP dreg 0 ]`: a verdict map lookup.
    Vmap(String),
    /// `[ immediate reg 1 DATA ]`
    Load(Vec<u8>),
    /// `[ immediate reg 0 VERDICT ]`
    Verdict(Verdict),
    /// `[ queue num NUM ]`, `[ queue num NUM bypass ]`: to NFQUEUE queue `num` (one queue);
    /// with `bypass` the packet passes when no program listens there.
    Queue { num: u16, bypass: bool },
}

/// A netlink message (or nested attribute) under construction.
#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn attr(&mut self, t: u16, data: &[u8]) {
        push_attr(&mut self.0, t, data);
    }

    fn be32(&mut self, t: u16, v: u32) {
        self.attr(t, &v.to_be_bytes());
    }

    fn str(&mut self, t: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(t, &v);
    }

    fn nest(&mut self, t: u16, inner: impl FnOnce(&mut Buf)) {
        let mut b = Buf::default();
        inner(&mut b);
        self.attr(t | NLA_F_NESTED, &b.0);
    }
}

fn base_number(b: Base) -> u32 {
    match b {
        Base::Link => 0,
        Base::Network => 1,
        Base::Transport => 2,
    }
}

fn verdict_attr(b: &mut Buf, v: &Verdict) {
    b.nest(NFTA_DATA_VERDICT, |b| {
        b.attr(NFTA_VERDICT_CODE, &v.code().to_be_bytes());
        if let Verdict::Jump(c) = v {
            b.str(NFTA_VERDICT_CHAIN, c);
        }
    });
}

impl Expr {
    fn encode(&self, b: &mut Buf) {
        b.nest(NFTA_LIST_ELEM, |b| {
            let name = match self {
                Expr::Meta(_) | Expr::MetaSet(_) => "meta",
                Expr::Payload { .. } | Expr::PayloadSet { .. } => "payload",
                Expr::CtState => "ct",
                Expr::Cmp { .. } => "cmp",
                Expr::Bitwise { .. } => "bitwise",
                Expr::Vmap(_) => "lookup",
                Expr::Load(_) | Expr::Verdict(_) => "immediate",
                Expr::Queue { .. } => "queue",
            };
            b.str(NFTA_EXPR_NAME, name);
            b.nest(NFTA_EXPR_DATA, |b| match self {
                Expr::Meta(k) => {
                    b.be32(1, REG_1); // NFTA_META_DREG
                    b.be32(2, k.number()); // NFTA_META_KEY
                }
                Expr::MetaSet(k) => {
                    b.be32(2, k.number()); // NFTA_META_KEY
                    b.be32(3, REG_1); // NFTA_META_SREG
                }
                Expr::Payload { base, offset, len } => {
                    b.be32(1, REG_1); // NFTA_PAYLOAD_DREG
                    b.be32(2, base_number(*base));
                    b.be32(3, *offset);
                    b.be32(4, *len);
                }
                Expr::PayloadSet { base, offset, len } => {
                    b.be32(5, REG_1); // NFTA_PAYLOAD_SREG
                    b.be32(2, base_number(*base));
                    b.be32(3, *offset);
                    b.be32(4, *len);
                    b.be32(6, 0); // NFTA_PAYLOAD_CSUM_TYPE: none
                    b.be32(7, 0); // NFTA_PAYLOAD_CSUM_OFFSET
                }
                Expr::CtState => {
                    b.be32(1, REG_1); // NFTA_CT_DREG
                    b.be32(2, 0); // NFTA_CT_KEY: NFT_CT_STATE
                }
                Expr::Cmp { neq, data } => {
                    b.be32(1, REG_1); // NFTA_CMP_SREG
                    b.be32(2, u32::from(*neq)); // NFTA_CMP_OP: NFT_CMP_EQ / NEQ
                    b.nest(3, |b| b.attr(NFTA_DATA_VALUE, data));
                }
                Expr::Bitwise { mask, xor } => {
                    b.be32(1, REG_1); // NFTA_BITWISE_SREG
                    b.be32(2, REG_1); // NFTA_BITWISE_DREG
                    b.be32(3, u32::try_from(mask.len()).unwrap_or(0)); // NFTA_BITWISE_LEN
                    b.nest(4, |b| b.attr(NFTA_DATA_VALUE, mask));
                    b.nest(5, |b| b.attr(NFTA_DATA_VALUE, xor));
                }
                Expr::Vmap(set) => {
                    b.str(1, set); // NFTA_LOOKUP_SET
                    b.be32(2, REG_1); // NFTA_LOOKUP_SREG
                    b.be32(3, REG_VERDICT); // NFTA_LOOKUP_DREG
                }
                Expr::Load(data) => {
                    b.be32(1, REG_1); // NFTA_IMMEDIATE_DREG
                    b.nest(2, |b| b.attr(NFTA_DATA_VALUE, data));
                }
                Expr::Verdict(v) => {
                    b.be32(1, REG_VERDICT);
                    b.nest(2, |b| verdict_attr(b, v));
                }
                Expr::Queue { num, bypass } => {
                    // All three as nft sends them, though the kernel defaults the total.
                    b.attr(1, &num.to_be_bytes()); // NFTA_QUEUE_NUM
                    b.attr(2, &1u16.to_be_bytes()); // NFTA_QUEUE_TOTAL
                    // NFTA_QUEUE_FLAGS: NFT_QUEUE_FLAG_BYPASS
                    b.attr(3, &u16::from(*bypass).to_be_bytes());
                }
            });
        });
    }
}

/// An interface name as a map key: NUL-padded to IFNAMSIZ (longer names are refused by
/// the caller; here they are cut, which the kernel then finds no element for).
fn ifname_key(name: &str) -> [u8; IFNAMSIZ] {
    let mut k = [0u8; IFNAMSIZ];
    for (d, s) in k.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
        *d = s;
    }
    k
}

/// One nf_tables transaction: messages between a batch begin and end.
pub struct Batch {
    buf: Vec<u8>,
    /// The message count (sequence numbers 1..=count; the begin is 0).
    count: u32,
    set_id: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        let mut b = Batch {
            buf: Vec::with_capacity(4096),
            count: 0,
            set_id: 0,
        };
        b.header(NFNL_MSG_BATCH_BEGIN, 0, 0, &Buf::default(), true);
        b
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The number of messages (for an error's index).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    fn header(&mut self, kind: u16, flags: u16, family: u8, body: &Buf, batch: bool) {
        let len = 16 + 4 + body.0.len();
        let seq = if kind == NFNL_MSG_BATCH_BEGIN {
            0
        } else {
            self.count
        };
        self.buf
            .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version, resource id (the subsystem, for batch markers).
        self.buf.push(family);
        self.buf.push(0);
        let res = if batch { NFNL_SUBSYS_NFTABLES } else { 0 };
        self.buf.extend_from_slice(&res.to_be_bytes());
        self.buf.extend_from_slice(&body.0);
    }

    fn msg(&mut self, msg: u16, flags: u16, family: Family, body: &Buf) {
        self.count += 1;
        self.header(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            flags,
            family.nfproto(),
            body,
            false,
        );
    }

    /// `add table` (`create`: `exclusive`, an existing one is an error).
    pub fn add_table(&mut self, family: Family, name: &str, exclusive: bool) {
        let mut b = Buf::default();
        b.str(NFTA_TABLE_NAME, name);
        let excl = if exclusive { NLM_F_EXCL } else { 0 };
        self.msg(NFT_MSG_NEWTABLE, NLM_F_CREATE | excl, family, &b);
    }

    pub fn del_table(&mut self, family: Family, name: &str) {
        let mut b = Buf::default();
        b.str(NFTA_TABLE_NAME, name);
        self.msg(NFT_MSG_DELTABLE, 0, family, &b);
    }

    /// `add chain`; with a hook, a base chain of type filter, priority `filter`, policy
    /// accept.
    pub fn add_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        hook: Option<Hook>,
        exclusive: bool,
    ) {
        let mut b = Buf::default();
        b.str(NFTA_CHAIN_TABLE, table);
        b.str(NFTA_CHAIN_NAME, name);
        if let Some(h) = hook {
            b.nest(NFTA_CHAIN_HOOK, |b| {
                b.be32(NFTA_HOOK_HOOKNUM, family.hooknum(h));
                b.attr(NFTA_HOOK_PRIORITY, &family.filter_priority().to_be_bytes());
            });
            b.be32(NFTA_CHAIN_POLICY, 1); // NF_ACCEPT
            b.str(NFTA_CHAIN_TYPE, "filter");
        }
        let excl = if exclusive { NLM_F_EXCL } else { 0 };
        self.msg(NFT_MSG_NEWCHAIN, NLM_F_CREATE | excl, family, &b);
    }

    pub fn del_chain(&mut self, family: Family, table: &str, name: &str) {
        let mut b = Buf::default();
        b.str(NFTA_CHAIN_TABLE, table);
        b.str(NFTA_CHAIN_NAME, name);
        self.msg(NFT_MSG_DELCHAIN, 0, family, &b);
    }

    /// `flush chain`: removes its rules.
    pub fn flush_chain(&mut self, family: Family, table: &str, name: &str) {
        let mut b = Buf::default();
        b.str(NFTA_RULE_TABLE, table);
        b.str(NFTA_RULE_CHAIN, name);
        self.msg(NFT_MSG_DELRULE, 0, family, &b);
    }

    /// `add map … { type ifname : verdict; }`
    pub fn add_vmap(&mut self, family: Family, table: &str, name: &str) {
        self.set_id += 1;
        let mut b = Buf::default();
        b.str(NFTA_SET_TABLE, table);
        b.str(NFTA_SET_NAME, name);
        b.be32(NFTA_SET_FLAGS, NFT_SET_MAP);
        b.be32(NFTA_SET_KEY_TYPE, TYPE_IFNAME);
        b.be32(NFTA_SET_KEY_LEN, IFNAMSIZ as u32);
        b.be32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
        b.be32(NFTA_SET_DATA_LEN, 0);
        b.be32(NFTA_SET_ID, self.set_id);
        // nft's own notes on the set (type, length, value): the key in host byte order
        // (else `nft list` cannot print an interface name), the data in none, no
        // interval data. Without them the kernel holds the same map, printed wrongly.
        let mut udata = Vec::with_capacity(18);
        for (t, v) in [(0u8, 1u32), (1, 0), (6, 0)] {
            udata.extend_from_slice(&[t, 4]);
            udata.extend_from_slice(&v.to_ne_bytes());
        }
        b.attr(NFTA_SET_USERDATA, &udata);
        self.msg(NFT_MSG_NEWSET, NLM_F_CREATE, family, &b);
    }

    /// `add element … { "if" : jump chain, … }`
    pub fn add_elements(&mut self, family: Family, table: &str, map: &str, elems: &[(&str, &str)]) {
        self.elements(NFT_MSG_NEWSETELEM, NLM_F_CREATE, family, table, map, elems);
    }

    /// `delete element … { "if", … }` (the chains are not needed).
    pub fn del_elements(&mut self, family: Family, table: &str, map: &str, keys: &[&str]) {
        let elems: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "")).collect();
        self.elements(NFT_MSG_DELSETELEM, 0, family, table, map, &elems);
    }

    fn elements(
        &mut self,
        msg: u16,
        flags: u16,
        family: Family,
        table: &str,
        map: &str,
        elems: &[(&str, &str)],
    ) {
        let mut b = Buf::default();
        b.str(NFTA_SET_ELEM_LIST_TABLE, table);
        b.str(NFTA_SET_ELEM_LIST_SET, map);
        b.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
            for (key, chain) in elems {
                b.nest(NFTA_LIST_ELEM, |b| {
                    b.nest(NFTA_SET_ELEM_KEY, |b| {
                        b.attr(NFTA_DATA_VALUE, &ifname_key(key));
                    });
                    if !chain.is_empty() {
                        b.nest(NFTA_SET_ELEM_DATA, |b| {
                            verdict_attr(b, &Verdict::Jump((*chain).to_owned()));
                        });
                    }
                });
            }
        });
        self.msg(msg, flags, family, &b);
    }

    /// `add rule` (appended).
    pub fn add_rule(&mut self, family: Family, table: &str, chain: &str, exprs: &[Expr]) {
        let mut b = Buf::default();
        b.str(NFTA_RULE_TABLE, table);
        b.str(NFTA_RULE_CHAIN, chain);
        b.nest(NFTA_RULE_EXPRESSIONS, |b| {
            for e in exprs {
                e.encode(b);
            }
        });
        self.msg(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, &b);
    }

    /// The batch without its end, every message asking for an acknowledgement (for
    /// [`Socket::check`]).
    fn unterminated_with_acks(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        let mut at = 0;
        while let Some(head) = out.get(at..at + 16) {
            let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len < 16 {
                break;
            }
            let kind = u16::from_ne_bytes([head[4], head[5]]);
            if kind != NFNL_MSG_BATCH_BEGIN {
                let flags = u16::from_ne_bytes([head[6], head[7]]) | NLM_F_ACK;
                out[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
            }
            at += (len + 3) & !3;
        }
        out
    }

    fn finish(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        let mut end = Batch {
            buf: Vec::new(),
            count: self.count + 1,
            set_id: 0,
        };
        end.header(NFNL_MSG_BATCH_END, 0, 0, &Buf::default(), true);
        out.extend_from_slice(&end.buf);
        out
    }
}

fn os_error(e: &std::io::Error) -> Error {
    Error {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        index: None,
        message: None,
    }
}

/// What the kernel refused in a batch.
#[derive(Debug)]
pub struct Error {
    /// The positive errno.
    pub errno: i32,
    /// The refused message (0-based, in the order added), if the error names one.
    pub index: Option<usize>,
    /// The kernel's explanation (extended ack), when it gave one.
    pub message: Option<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        netlink::fmt_error(f, self.errno, self.message.as_deref())
    }
}

impl std::error::Error for Error {}

/// A NETLINK_NETFILTER socket. Closing it (dropping) after a commit that deleted
/// something waits for the kernel's pending destroy work (an RCU grace period, the
/// `NETLINK_URELEASE` notifier of nf_tables): keep it until the rest of the work is done.
pub struct Socket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Socket {
    pub fn open() -> anyhow::Result<Socket> {
        let fd = netlink::socket(NETLINK_NETFILTER, "netfilter netlink socket")?;
        netlink::ask_for_explanations(&fd);
        Ok(Socket {
            fd,
            buf: vec![0; 256 * 1024],
        })
    }

    /// A batch is one datagram: one larger than the send buffer (about 200 KiB) is
    /// refused with EMSGSIZE, so the buffer grows to fit it, as `nft` does
    /// (SO_SNDBUFFORCE with CAP_NET_ADMIN, else up to the unprivileged limit).
    fn grow_send_buffer(&self, len: usize) {
        const DEFAULT: usize = 128 * 1024;
        if len <= DEFAULT {
            return;
        }
        netlink::set_buffer(&self.fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, len + 4096);
    }

    fn send(&self, data: &[u8]) -> std::io::Result<()> {
        if netlink::send(&self.fd, data)? != data.len() {
            return Err(std::io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        Ok(())
    }

    /// Reads one datagram; `None` when nothing is queued and `block` is false.
    fn recv(&mut self, block: bool) -> std::io::Result<Option<usize>> {
        let flags = if block { 0 } else { libc::MSG_DONTWAIT };
        match netlink::recv(&self.fd, &mut self.buf, flags) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && !block => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `batch` as one transaction: all of it applies, or none. The kernel handles a
    /// batch within the send, so that every error is queued when it returns; the messages
    /// ask for no acknowledgement (a large batch would overflow the receive buffer), so
    /// an empty queue is success.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let data = batch.finish();
        self.grow_send_buffer(data.len());
        self.send(&data).map_err(|e| os_error(&e))?;
        self.answers(batch).map(|_| ())
    }

    /// Whether the kernel takes `batch`, without applying it (what `nft -c` does): the
    /// batch is sent without its NFNL_MSG_BATCH_END. The kernel then handles every message
    /// as for a commit (each is validated, a missing expression's module is loaded and the
    /// batch replayed) but, finding no end, aborts the transaction after a final
    /// validation (nfnetlink_rcv_batch's abort with NFNL_ABORT_VALIDATE), so nothing is
    /// applied. Every message asks for an acknowledgement, and success is one zero answer
    /// per message: a batch the kernel never handled cannot pass for a taken one. (The
    /// acknowledgements wait in the receive buffer: this is for probes of a few messages,
    /// not for a rebuild's thousands.)
    pub fn check(&mut self, batch: &Batch) -> Result<(), Error> {
        let data = batch.unterminated_with_acks();
        self.grow_send_buffer(data.len());
        self.send(&data).map_err(|e| os_error(&e))?;
        let acks = self.answers(batch)?;
        if acks != batch.len() {
            return Err(Error {
                errno: libc::EPROTO,
                index: None,
                message: Some(format!(
                    "nf_tables acknowledged {acks} of {} messages",
                    batch.len()
                )),
            });
        }
        Ok(())
    }

    /// Reads the answers queued for `batch`: the first error, or the number of
    /// acknowledgements.
    fn answers(&mut self, batch: &Batch) -> Result<usize, Error> {
        let mut first: Option<Error> = None;
        let mut acks = 0;
        while let Some(n) = self.recv(false).map_err(|e| os_error(&e))? {
            for (kind, flags, seq, body) in messages(&self.buf[..n]) {
                if kind != NLMSG_ERROR {
                    continue;
                }
                let Some(code) = body
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    continue;
                };
                if code == 0 {
                    acks += 1;
                    continue;
                }
                if first.is_some() {
                    continue;
                }
                first = Some(Error {
                    errno: code.checked_neg().unwrap_or(libc::EIO),
                    index: (seq >= 1 && seq <= batch.count).then(|| (seq - 1) as usize),
                    message: (flags & NLM_F_ACK_TLVS != 0)
                        .then(|| ext_ack_message(body))
                        .flatten(),
                });
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(acks),
        }
    }

    /// Sends a dump request of `msg` and calls `each` with every answer's family and
    /// attributes.
    fn dump(
        &mut self,
        msg: u16,
        family: u8,
        attrs: &Buf,
        mut each: impl FnMut(u8, &[u8]),
    ) -> anyhow::Result<()> {
        let mut b = Batch {
            buf: Vec::new(),
            count: 1,
            set_id: 0,
        };
        b.header(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_DUMP,
            family,
            attrs,
            false,
        );
        self.send(&b.buf).context("nf_tables dump request")?;
        loop {
            let Some(n) = self.recv(true).context("nf_tables dump")? else {
                continue;
            };
            let mut done = n == 0;
            for (kind, _, _, body) in messages(&self.buf[..n]) {
                match kind {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let code = body
                            .get(0..4)
                            .map_or(-libc::EIO, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if code != 0 {
                            let e = std::io::Error::from_raw_os_error(
                                code.checked_neg().unwrap_or(libc::EIO),
                            );
                            return Err(e).context("nf_tables dump");
                        }
                        done = true;
                    }
                    _ if body.len() >= 4 => each(body[0], &body[4..]),
                    _ => {}
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    /// The families that have a table named `table`.
    pub fn tables(&mut self, table: &str) -> anyhow::Result<Vec<Family>> {
        let mut out = Vec::new();
        self.dump(NFT_MSG_GETTABLE, 0, &Buf::default(), |fam, attrs| {
            let name = attributes(attrs)
                .find(|(k, _)| *k == NFTA_TABLE_NAME)
                .and_then(|(_, v)| c_str(v));
            if let (Some(f), Some(n)) = (Family::from_nfproto(fam), name)
                && n == table
            {
                out.push(f);
            }
        })?;
        Ok(out)
    }

    /// Every chain of table `table` in the families that have one: (family, chain).
    pub fn chains(&mut self, table: &str) -> anyhow::Result<Vec<(Family, String)>> {
        let mut out = Vec::new();
        self.dump(NFT_MSG_GETCHAIN, 0, &Buf::default(), |fam, attrs| {
            let (mut t, mut c) = (None, None);
            for (k, v) in attributes(attrs) {
                match k {
                    NFTA_CHAIN_TABLE => t = c_str(v),
                    NFTA_CHAIN_NAME => c = c_str(v),
                    _ => {}
                }
            }
            if let (Some(f), Some(t), Some(c)) = (Family::from_nfproto(fam), t, c)
                && t == table
            {
                out.push((f, c.to_owned()));
            }
        })?;
        Ok(out)
    }

    /// The number of rules in chain `chain`.
    pub fn rule_count(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
    ) -> anyhow::Result<usize> {
        let mut req = Buf::default();
        req.str(NFTA_RULE_TABLE, table);
        req.str(NFTA_RULE_CHAIN, chain);
        let mut n = 0;
        self.dump(NFT_MSG_GETRULE, family.nfproto(), &req, |_, _| n += 1)?;
        Ok(n)
    }

    /// The elements of verdict map `map`: (interface name, chain it jumps to).
    pub fn vmap_elements(
        &mut self,
        family: Family,
        table: &str,
        map: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut req = Buf::default();
        req.str(NFTA_SET_ELEM_LIST_TABLE, table);
        req.str(NFTA_SET_ELEM_LIST_SET, map);
        let mut out = Vec::new();
        self.dump(NFT_MSG_GETSETELEM, family.nfproto(), &req, |_, attrs| {
            for (k, v) in attributes(attrs) {
                if k != NFTA_SET_ELEM_LIST_ELEMENTS {
                    continue;
                }
                for (_, elem) in attributes(v) {
                    let (mut key, mut chain) = (None, None);
                    for (k, v) in attributes(elem) {
                        match k {
                            NFTA_SET_ELEM_KEY => {
                                key = attributes(v)
                                    .find(|(k, _)| *k == NFTA_DATA_VALUE)
                                    .and_then(|(_, v)| c_str(v));
                            }
                            NFTA_SET_ELEM_DATA => {
                                chain = attributes(v)
                                    .filter(|(k, _)| *k == NFTA_DATA_VERDICT)
                                    .flat_map(|(_, v)| attributes(v))
                                    .find(|(k, _)| *k == NFTA_VERDICT_CHAIN)
                                    .and_then(|(_, v)| c_str(v));
                            }
                            _ => {}
                        }
                    }
                    if let (Some(k), Some(c)) = (key, chain) {
                        out.push((k.to_owned(), c.to_owned()));
                    }
                }
            }
        })?;
        Ok(out)
    }
}

/// The text of a NUL-terminated (or NUL-padded) attribute, if it is UTF-8.
fn c_str(v: &[u8]) -> Option<&str> {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    std::str::from_utf8(&v[..end]).ok()
}

/// The netlink messages of a datagram: (type, flags, seq, payload); stops at anything
/// malformed.
fn messages(mut data: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let flags = u16::from_ne_bytes([data[6], data[7]]);
        let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        let body = &data[16..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some((kind, flags, seq, body))
    })
}

/// The attributes of `data`: (type without flags, payload); stops at anything malformed.
fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let t = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            return None;
        }
        let v = &data[4..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some((t, v))
    })
}

/// The extended-ack text of an error body (errno, then the capped request header, then
/// attributes).
fn ext_ack_message(body: &[u8]) -> Option<String> {
    let attrs = body.get(4 + 16..)?;
    attributes(attrs)
        .find(|(t, _)| *t == NLMSGERR_ATTR_MSG)
        .and_then(|(_, v)| c_str(v).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_by_begin_and_end_with_sequence_numbers() {
        let mut b = Batch::new();
        assert!(b.is_empty());
        b.add_table(Family::Inet, "t", false);
        b.del_table(Family::Inet, "t");
        assert_eq!(b.len(), 2);
        let data = b.finish();
        let msgs: Vec<_> = messages(&data).collect();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0].0, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs[0].3[2..4], NFNL_SUBSYS_NFTABLES.to_be_bytes());
        assert_eq!((msgs[1].0, msgs[1].2), ((10 << 8) | NFT_MSG_NEWTABLE, 1));
        assert_eq!(msgs[1].1, NLM_F_REQUEST | NLM_F_CREATE);
        assert_eq!((msgs[2].0, msgs[2].2), ((10 << 8) | NFT_MSG_DELTABLE, 2));
        assert_eq!((msgs[3].0, msgs[3].2), (NFNL_MSG_BATCH_END, 3));
        let attrs: Vec<_> = attributes(&msgs[1].3[4..]).collect();
        assert_eq!(attrs, [(NFTA_TABLE_NAME, &b"t\0"[..])]);
    }

    #[test]
    fn a_check_is_the_batch_without_its_end_every_message_asking_for_an_ack() {
        let mut b = Batch::new();
        b.add_table(Family::Inet, "t", false);
        b.add_chain(Family::Inet, "t", "c", Some(Hook::Forward), false);
        let data = b.unterminated_with_acks();
        let msgs: Vec<_> = messages(&data).collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            (msgs[0].0, msgs[0].1),
            (NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST)
        );
        assert_eq!(msgs[1].1, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        assert_eq!(msgs[2].1, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        assert_eq!(msgs[2].2, 2);
        // Only the flags differ from what a commit sends.
        let committed = b.finish();
        assert_eq!(data.len(), committed.len() - 20);
        let differ = data.iter().zip(&committed).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 2);
    }

    /// The bytes `nft --debug=mnl` shows for `queue num 42 bypass` (nftables 1.0.6; its
    /// `--debug=netlink` prints `[ queue num 42 bypass ]`).
    #[test]
    fn queue_is_encoded_as_nft_encodes_it() {
        let mut b = Buf::default();
        Expr::Queue {
            num: 42,
            bypass: true,
        }
        .encode(&mut b);
        // Little-endian lengths and types (NLA_F_NESTED is 0x8000), big-endian values.
        let want: Vec<u8> = [
            &[44, 0, 1, 0x80][..],
            &[10, 0, 1, 0, b'q', b'u', b'e', b'u', b'e', 0, 0, 0],
            &[28, 0, 2, 0x80],
            &[6, 0, 1, 0, 0, 42, 0, 0],
            &[6, 0, 2, 0, 0, 1, 0, 0],
            &[6, 0, 3, 0, 0, 1, 0, 0],
        ]
        .concat();
        assert_eq!(b.0, want);
    }

    #[test]
    fn replies_are_parsed_without_reading_past_their_end() {
        assert_eq!(messages(&[0xff; 40]).count(), 0);
        assert_eq!(attributes(&[8, 0, 1, 0, b'a', 0, 0]).count(), 0);
        assert_eq!(c_str(b"tap0\0\0\0"), Some("tap0"));
        assert_eq!(ifname_key("tap0")[..5], *b"tap0\0");
        assert!(ext_ack_message(&[0; 8]).is_none());
    }
}
