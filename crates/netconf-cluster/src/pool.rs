//! Ganeti's IPv4 address pool: two bitmaps over a subnet (instance and external
//! reservations), lowest-free-first allocation, and the `X`/`.` usage map. Beyond Ganeti,
//! optional allocation ranges (`range`) limit what `allocate` hands out.
//!
//! The bitmaps live in memory as `u64` words so that "first free" is a word scan (a /16 is
//! 1,024 words) and nothing is re-serialised per operation; they are written to
//! `config.data` once per transaction as compact offset ranges (`0-1,255`).

mod range;

pub use range::{AllocRange, RangeSyntax, problems as range_problems};

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use bitvec::prelude::{BitVec, Lsb0};
use ipnet::Ipv4Net;

/// Smallest and largest prefix lengths Ganeti accepts for a pool.
pub const MIN_PREFIX: u8 = 16;
pub const MAX_PREFIX: u8 = 30;

type Bits = BitVec<u64, Lsb0>;

/// Which of the two bitmaps an operation targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Used by an instance NIC.
    Instance,
    /// Excluded from allocation: network, broadcast, gateway, admin reservations.
    External,
}

/// An `AddressPoolError` with Ganeti's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolError(pub String);

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PoolError {}

#[derive(Clone)]
pub struct AddressPool {
    net: Ipv4Net,
    instance: Bitmap,
    external: Bitmap,
    /// The allocation ranges, sorted; empty: the whole subnet is allocatable.
    ranges: Vec<AllocRange>,
    /// Set for every address outside `ranges`, as a third bitmap so that `first_free`
    /// stays a word scan; `None` without ranges.
    outside: Option<Arc<Bits>>,
}

/// A reservation bitmap, kept as the runs it was stored as (checked when read) until
/// something needs its bits, and then shared until changed (copy on write). A command on
/// etcd reads every network of the cluster (256 /16 pools are 4 MB of bits) and changes
/// at most a few: the others are never expanded, and copying, comparing and writing
/// them costs next to nothing.
#[derive(Clone)]
struct Bitmap {
    size: usize,
    /// The set runs (first, last), sorted and apart, while the bits are as stored.
    runs: Option<Arc<[(usize, usize)]>>,
    bits: OnceLock<Arc<Bits>>,
}

impl Bitmap {
    fn zeros(size: usize) -> Self {
        Bitmap {
            size,
            runs: Some(Arc::new([])),
            bits: OnceLock::new(),
        }
    }

    fn from_bits(bits: Bits) -> Self {
        Bitmap {
            size: bits.len(),
            runs: None,
            bits: OnceLock::from(Arc::new(bits)),
        }
    }

    /// Bit `i` (< size), without expanding the runs.
    fn get(&self, i: usize) -> bool {
        match (&self.runs, self.bits.get()) {
            (_, Some(b)) => b[i],
            (Some(runs), None) => {
                let k = runs.partition_point(|r| r.1 < i);
                runs.get(k).is_some_and(|r| r.0 <= i)
            }
            (None, None) => false,
        }
    }

    /// The bits, to change (no longer as stored).
    fn make_mut(&mut self) -> &mut Bits {
        let _ = &**self;
        self.runs = None;
        match self.bits.get_mut() {
            Some(b) => Arc::make_mut(b),
            None => unreachable!("expanded above"),
        }
    }

    fn encode(&self) -> String {
        match (&self.runs, self.bits.get()) {
            (Some(runs), _) => {
                let mut out = String::new();
                for &(a, b) in runs.iter() {
                    if !out.is_empty() {
                        out.push(',');
                    }
                    if a == b {
                        out.push_str(&a.to_string());
                    } else {
                        out.push_str(&format!("{a}-{b}"));
                    }
                }
                out
            }
            _ => encode_ranges(self),
        }
    }
}

impl std::ops::Deref for Bitmap {
    type Target = Bits;
    fn deref(&self) -> &Bits {
        self.bits.get_or_init(|| {
            let mut bits = Bits::repeat(false, self.size);
            for &(a, b) in self.runs.iter().flat_map(|r| r.iter()) {
                bits[a..=b].fill(true);
            }
            Arc::new(bits)
        })
    }
}

/// Bitmaps as stored compare by their runs; expanded ones as memory, word by word, the
/// last partial word by bits (bitvec's own equality walks them far slower).
fn same(a: &Bitmap, b: &Bitmap) -> bool {
    if let (Some(x), Some(y)) = (&a.runs, &b.runs) {
        return a.size == b.size && x == y;
    }
    if let (Some(x), Some(y)) = (a.bits.get(), b.bits.get())
        && Arc::ptr_eq(x, y)
    {
        return true;
    }
    same_words(a, b)
}

fn same_words(a: &Bits, b: &Bits) -> bool {
    let whole = a.len() / u64::BITS as usize;
    a.len() == b.len()
        && a.as_raw_slice()[..whole] == b.as_raw_slice()[..whole]
        && a[whole * u64::BITS as usize..] == b[whole * u64::BITS as usize..]
}

impl PartialEq for AddressPool {
    fn eq(&self, o: &Self) -> bool {
        self.net == o.net
            && self.ranges == o.ranges
            && same(&self.instance, &o.instance)
            && same(&self.external, &o.external)
            && match (&self.outside, &o.outside) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || same_words(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for AddressPool {}

impl fmt::Debug for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AddressPool({}, instance={}, external={}, ranges={:?})",
            self.net,
            self.instance.encode(),
            self.external.encode(),
            self.ranges
        )
    }
}

impl AddressPool {
    /// An empty pool (no reservations at all) after Ganeti's size check.
    pub fn empty(net: Ipv4Net) -> Result<Self, PoolError> {
        let size = Self::checked_size(net)?;
        Ok(AddressPool {
            net,
            instance: Bitmap::zeros(size),
            external: Bitmap::zeros(size),
            ranges: Vec::new(),
            outside: None,
        })
    }

    /// How many addresses a pool of `net` holds, after Ganeti's size check.
    fn checked_size(net: Ipv4Net) -> Result<usize, PoolError> {
        let size = 1usize << (32 - net.prefix_len());
        if net.prefix_len() > MAX_PREFIX {
            return Err(PoolError(format!(
                "A network with only {size} host(s) is too small, please specify at least a /30 network"
            )));
        }
        if net.prefix_len() < MIN_PREFIX {
            return Err(PoolError(format!(
                "A big network with {size} host(s) is currently not supported. please specify at most a /16 network"
            )));
        }
        Ok(size)
    }

    /// Ganeti's `InitializeNetwork`: network and broadcast, then the gateway, are reserved
    /// externally.
    pub fn initialize(net: Ipv4Net, gateway: Option<Ipv4Addr>) -> Result<Self, PoolError> {
        let mut pool = Self::empty(net)?;
        let last = pool.size() - 1;
        let ext = pool.external.make_mut();
        ext.set(0, true);
        ext.set(last, true);
        if let Some(gw) = gateway {
            pool.reserve(gw, Kind::External)?;
        }
        Ok(pool)
    }

    /// Rebuilds a pool from its stored bitmaps.
    pub fn from_stored(net: Ipv4Net, instance: &str, external: &str) -> Result<Self, PoolError> {
        let size = Self::checked_size(net)?;
        Ok(AddressPool {
            net,
            instance: decode_bits(instance, size)?,
            external: decode_bits(external, size)?,
            ranges: Vec::new(),
            outside: None,
        })
    }

    /// The stored forms of the instance and external bitmaps.
    pub fn to_stored(&self) -> (String, String) {
        (self.instance.encode(), self.external.encode())
    }

    /// Ganeti's `0`/`1` strings, for export to Ganeti-format consumers.
    pub fn to_ganeti_strings(&self) -> (String, String) {
        let s = |b: &Bits| b.iter().map(|x| if *x { '1' } else { '0' }).collect();
        (s(&self.instance), s(&self.external))
    }

    pub fn network(&self) -> Ipv4Net {
        self.net
    }

    /// The allocation ranges, sorted (empty: the whole subnet).
    pub fn ranges(&self) -> &[AllocRange] {
        &self.ranges
    }

    /// Limits allocation to `ranges` (none: the whole subnet). They are not checked here
    /// ([`range_problems`] is, by the commands and `gnt-cluster verify`); parts outside
    /// the subnet are ignored.
    pub fn set_ranges(&mut self, mut ranges: Vec<AllocRange>) {
        ranges.sort();
        ranges.dedup();
        self.outside = (!ranges.is_empty()).then(|| {
            let mut outside = Bits::repeat(true, self.size());
            let base = u32::from(self.net.network());
            let last = self.size() - 1;
            for r in &ranges {
                let lo = u32::from(r.first()).saturating_sub(base) as usize;
                let hi = (u32::from(r.last()).saturating_sub(base) as usize).min(last);
                if u32::from(r.last()) >= base && lo <= hi {
                    outside[lo..=hi].fill(false);
                }
            }
            Arc::new(outside)
        });
        self.ranges = ranges;
    }

    /// Whether `ip=pool` may hand out `ip` when it is free: inside the subnet and inside
    /// the ranges, if there are any.
    pub fn in_ranges(&self, ip: Ipv4Addr) -> bool {
        match self.index(ip) {
            Ok(i) => self.outside.as_ref().is_none_or(|o| !o[i]),
            Err(_) => false,
        }
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(&self) -> usize {
        self.instance.len()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.net.contains(&ip)
    }

    fn index(&self, ip: Ipv4Addr) -> Result<usize, PoolError> {
        if !self.contains(ip) {
            return Err(PoolError(format!("{} does not contain {ip}", self.net)));
        }
        Ok((u32::from(ip) - u32::from(self.net.network())) as usize)
    }

    fn addr(&self, idx: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.network()) + idx as u32)
    }

    fn bits(&self, kind: Kind) -> &Bitmap {
        match kind {
            Kind::Instance => &self.instance,
            Kind::External => &self.external,
        }
    }

    fn bits_mut(&mut self, kind: Kind) -> &mut Bits {
        match kind {
            Kind::Instance => self.instance.make_mut(),
            Kind::External => self.external.make_mut(),
        }
    }

    pub fn is_reserved(&self, ip: Ipv4Addr, kind: Kind) -> Result<bool, PoolError> {
        let i = self.index(ip)?;
        Ok(self.bits(kind).get(i))
    }

    /// Set in either bitmap.
    pub fn is_used(&self, ip: Ipv4Addr) -> Result<bool, PoolError> {
        let i = self.index(ip)?;
        Ok(self.instance.get(i) || self.external.get(i))
    }

    pub fn reserve(&mut self, ip: Ipv4Addr, kind: Kind) -> Result<(), PoolError> {
        let i = self.index(ip)?;
        if self.bits(kind).get(i) {
            return Err(PoolError(match kind {
                Kind::Instance => format!("IP {ip} is already used by an instance"),
                Kind::External => format!("IP {ip} is already externally reserved"),
            }));
        }
        self.bits_mut(kind).set(i, true);
        Ok(())
    }

    pub fn release(&mut self, ip: Ipv4Addr, kind: Kind) -> Result<(), PoolError> {
        let i = self.index(ip)?;
        if !self.bits(kind).get(i) {
            return Err(PoolError(match kind {
                Kind::Instance => format!("IP {ip} is not used by an instance"),
                Kind::External => format!("IP {ip} is not externally reserved"),
            }));
        }
        self.bits_mut(kind).set(i, false);
        Ok(())
    }

    /// The lowest address free in both bitmaps (Ganeti's `GenerateFree`) and inside the
    /// allocation ranges, not reserved.
    pub fn first_free(&self) -> Option<Ipv4Addr> {
        let a = self.instance.as_raw_slice();
        let b = self.external.as_raw_slice();
        let found = match &self.outside {
            None => first_zero(a.iter().zip(b).map(|(a, b)| a | b)),
            Some(o) => first_zero(
                a.iter()
                    .zip(b)
                    .zip(o.as_raw_slice())
                    .map(|((a, b), o)| a | b | o),
            ),
        };
        // Bits past the end of a short (/27../30) pool are free in the raw word.
        found.filter(|&i| i < self.size()).map(|i| self.addr(i))
    }

    /// Ganeti's `GetFreeAddress`: the lowest free address, reserved for an instance.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, PoolError> {
        let ip = self
            .first_free()
            .ok_or_else(|| PoolError(format!("{} is full", self.net)))?;
        self.reserve(ip, Kind::Instance)?;
        Ok(ip)
    }

    /// Addresses set in either bitmap (each counted once), inside the ranges or not.
    pub fn reserved_count(&self) -> usize {
        let a = self.instance.as_raw_slice();
        let b = self.external.as_raw_slice();
        self.count_ones(a.iter().zip(b).map(|(a, b)| a | b))
    }

    /// Addresses `allocate` can still hand out: free, and inside the ranges if any.
    pub fn free_count(&self) -> usize {
        let Some(o) = &self.outside else {
            return self.size() - self.reserved_count();
        };
        let a = self.instance.as_raw_slice();
        let b = self.external.as_raw_slice();
        let unavailable = a
            .iter()
            .zip(b)
            .zip(o.as_raw_slice())
            .map(|((a, b), o)| a | b | o);
        self.size() - self.count_ones(unavailable)
    }

    /// Addresses inside the ranges (the whole subnet, network and broadcast included,
    /// without ranges): what `free_count` is a part of.
    pub fn allocatable_size(&self) -> usize {
        match &self.outside {
            None => self.size(),
            Some(o) => self.size() - o.count_ones(),
        }
    }

    /// Set bits among the pool's `size` of the words `words`.
    fn count_ones(&self, words: impl Iterator<Item = u64>) -> usize {
        let size = self.size();
        words
            .enumerate()
            .map(|(w, word)| {
                let valid = size - w * 64;
                let word = if valid < 64 {
                    word & ((1u64 << valid) - 1)
                } else {
                    word
                };
                word.count_ones() as usize
            })
            .sum()
    }

    pub fn is_full(&self) -> bool {
        self.free_count() == 0
    }

    /// One character per address: `X` used (either bitmap), `.` free, and with allocation
    /// ranges `-` for a free address outside them.
    pub fn map(&self) -> String {
        self.instance
            .iter()
            .zip(self.external.iter())
            .enumerate()
            .map(|(i, (a, b))| {
                if *a || *b {
                    'X'
                } else if self.outside.as_ref().is_some_and(|o| o[i]) {
                    '-'
                } else {
                    '.'
                }
            })
            .collect()
    }

    /// Whether `other` has exactly the same `kind` bits (over the same subnet).
    pub fn same_bits(&self, other: &AddressPool, kind: Kind) -> bool {
        self.net == other.net && same(self.bits(kind), other.bits(kind))
    }

    /// Externally reserved addresses in ascending order.
    pub fn external_reservations(&self) -> Vec<Ipv4Addr> {
        self.external.iter_ones().map(|i| self.addr(i)).collect()
    }

    /// Addresses used by instances in ascending order.
    pub fn instance_reservations(&self) -> Vec<Ipv4Addr> {
        self.instance.iter_ones().map(|i| self.addr(i)).collect()
    }
}

/// The index of the first zero bit of `words` (which may lie past a short pool's end).
fn first_zero(words: impl Iterator<Item = u64>) -> Option<usize> {
    for (w, word) in words.enumerate() {
        let free = !word;
        if free != 0 {
            return Some(w * 64 + free.trailing_zeros() as usize);
        }
    }
    None
}

/// `0-1,17,255`: the set bits as ascending offset ranges, found a word at a time.
fn encode_ranges(bits: &Bits) -> String {
    let words = bits.as_raw_slice();
    let len = bits.len();
    let mut out = String::new();
    let mut from = 0;
    while let Some(start) = next_bit(words, from, len, true) {
        let end = next_bit(words, start, len, false).unwrap_or(len) - 1;
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        from = end + 1;
    }
    out
}

/// The first index ≥ `from` (and < `len`) whose bit equals `value`.
fn next_bit(words: &[u64], from: usize, len: usize, value: bool) -> Option<usize> {
    if from >= len {
        return None;
    }
    let word = |w: usize| if value { words[w] } else { !words[w] };
    let mut w = from / 64;
    let mut cur = word(w) & (!0u64 << (from % 64));
    loop {
        if cur != 0 {
            let idx = w * 64 + cur.trailing_zeros() as usize;
            return (idx < len).then_some(idx);
        }
        w += 1;
        if w >= words.len() {
            return None;
        }
        cur = word(w);
    }
}

/// Reads either the range form or Ganeti's `0`/`1` string of exactly `size` characters
/// (so a Ganeti export can be pasted in). The forms cannot be confused: a single offset
/// written with `size` digits would exceed `size`.
fn decode_bits(s: &str, size: usize) -> Result<Bitmap, PoolError> {
    let bad = |why: &str| PoolError(format!("invalid reservation bitmap '{}': {why}", short(s)));
    if s.len() == size && s.bytes().all(|c| c == b'0' || c == b'1') {
        return Ok(Bitmap::from_bits(s.bytes().map(|c| c == b'1').collect()));
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.trim().parse().map_err(|_| bad("not a number"))?;
        let b: usize = b.trim().parse().map_err(|_| bad("not a number"))?;
        if a > b || b >= size {
            return Err(bad("offset out of range"));
        }
        runs.push((a, b));
    }
    // Sorted, overlapping and touching runs merged: the form `encode_ranges` writes.
    runs.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for (a, b) in runs {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(Bitmap {
        size,
        runs: Some(merged.into()),
        bits: OnceLock::new(),
    })
}

fn short(s: &str) -> String {
    if s.len() > 40 {
        format!("{}…", &s[..40])
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// A pool read from its stored form answers from the runs without expanding them,
    /// exactly as the expanded bits would, writes them back in the canonical form, and
    /// equals an expanded pool with the same bits.
    #[test]
    fn a_stored_pool_answers_from_its_runs_as_its_bits_would() {
        let n = net("198.51.100.0/24");
        let lazy = AddressPool::from_stored(n, "9,3-4,1-2,200-210,205", "0,255").unwrap();
        assert!(lazy.instance.bits.get().is_none(), "read without expanding");
        let mut expanded = lazy.clone();
        expanded
            .reserve(ip("198.51.100.100"), Kind::Instance)
            .unwrap();
        expanded
            .release(ip("198.51.100.100"), Kind::Instance)
            .unwrap();
        assert!(expanded.instance.runs.is_none());
        for i in 0..256u32 {
            let a = Ipv4Addr::from(u32::from(n.network()) + i);
            for kind in [Kind::Instance, Kind::External] {
                assert_eq!(
                    lazy.is_reserved(a, kind).unwrap(),
                    expanded.is_reserved(a, kind).unwrap(),
                    "{a}"
                );
            }
        }
        assert!(
            lazy.instance.bits.get().is_none(),
            "looked up without expanding"
        );
        assert_eq!(lazy.to_stored().0, "1-4,9,200-210");
        assert_eq!(expanded.to_stored(), lazy.to_stored());
        assert_eq!(lazy, expanded);
        assert!(lazy.same_bits(&expanded, Kind::Instance));
        expanded
            .reserve(ip("198.51.100.7"), Kind::Instance)
            .unwrap();
        assert_ne!(lazy, expanded);
    }

    #[test]
    fn same_bits_sees_a_difference_in_whole_and_partial_words() {
        // A /26 is one whole word; a /30 only part of one; a /24 four words.
        for subnet in ["198.51.100.0/26", "198.51.100.0/30", "198.51.100.0/24"] {
            let fresh = AddressPool::initialize(net(subnet), None).unwrap();
            let last = fresh.addr(fresh.size() - 2);
            for which in [ip("198.51.100.1"), last] {
                let mut p = fresh.clone();
                assert!(p.same_bits(&fresh, Kind::Instance), "{subnet}");
                p.reserve(which, Kind::Instance).unwrap();
                assert!(!p.same_bits(&fresh, Kind::Instance), "{subnet} {which}");
                assert!(p.same_bits(&fresh, Kind::External), "{subnet} {which}");
            }
        }
        let a = AddressPool::initialize(net("198.51.100.0/24"), None).unwrap();
        let b = AddressPool::initialize(net("203.0.113.0/24"), None).unwrap();
        assert!(!a.same_bits(&b, Kind::Instance));
    }

    #[test]
    fn fresh_24_with_gateway() {
        let p = AddressPool::initialize(net("192.168.1.0/24"), Some(ip("192.168.1.1"))).unwrap();
        assert_eq!(p.size(), 256);
        assert_eq!(p.free_count(), 253);
        assert_eq!(p.reserved_count(), 3);
        assert_eq!(
            p.external_reservations(),
            [ip("192.168.1.0"), ip("192.168.1.1"), ip("192.168.1.255")]
        );
        assert_eq!(p.first_free(), Some(ip("192.168.1.2")));
        assert_eq!(p.to_stored(), (String::new(), "0-1,255".to_owned()));
    }

    #[test]
    fn size_limits_have_ganeti_texts() {
        assert_eq!(
            AddressPool::initialize(net("10.0.0.0/31"), None)
                .unwrap_err()
                .0,
            "A network with only 2 host(s) is too small, please specify at least a /30 network"
        );
        assert_eq!(
            AddressPool::initialize(net("10.0.0.0/32"), None)
                .unwrap_err()
                .0,
            "A network with only 1 host(s) is too small, please specify at least a /30 network"
        );
        assert_eq!(
            AddressPool::initialize(net("10.0.0.0/15"), None)
                .unwrap_err()
                .0,
            "A big network with 131072 host(s) is currently not supported. please specify at most a /16 network"
        );
        let p = AddressPool::initialize(net("10.0.0.0/30"), None).unwrap();
        assert_eq!(p.free_count(), 2);
    }

    #[test]
    fn gateway_errors() {
        assert_eq!(
            AddressPool::initialize(net("192.0.2.0/24"), Some(ip("198.51.100.1")))
                .unwrap_err()
                .0,
            "192.0.2.0/24 does not contain 198.51.100.1"
        );
        assert_eq!(
            AddressPool::initialize(net("192.0.2.0/24"), Some(ip("192.0.2.255")))
                .unwrap_err()
                .0,
            "IP 192.0.2.255 is already externally reserved"
        );
    }

    #[test]
    fn reserve_release_texts() {
        let mut p = AddressPool::initialize(net("10.0.0.0/16"), None).unwrap();
        let a = ip("10.0.0.2");
        p.reserve(a, Kind::Instance).unwrap();
        assert_eq!(
            p.reserve(a, Kind::Instance).unwrap_err().0,
            "IP 10.0.0.2 is already used by an instance"
        );
        p.release(a, Kind::Instance).unwrap();
        assert_eq!(
            p.release(a, Kind::Instance).unwrap_err().0,
            "IP 10.0.0.2 is not used by an instance"
        );
        assert_eq!(
            p.release(a, Kind::External).unwrap_err().0,
            "IP 10.0.0.2 is not externally reserved"
        );
        // Both bitmaps may hold the same address; it counts once.
        p.reserve(a, Kind::Instance).unwrap();
        p.reserve(a, Kind::External).unwrap();
        assert_eq!(p.reserved_count(), 3);
    }

    #[test]
    fn fill_a_16_in_order_then_full() {
        let mut p = AddressPool::initialize(net("10.0.0.0/16"), None).unwrap();
        assert_eq!(p.allocate().unwrap(), ip("10.0.0.1"));
        for _ in 0..65533 {
            p.allocate().unwrap();
        }
        assert!(p.is_full());
        assert_eq!(p.allocate().unwrap_err().0, "10.0.0.0/16 is full");
        assert_eq!(p.to_stored(), ("1-65534".to_owned(), "0,65535".to_owned()));
    }

    #[test]
    fn short_pools_never_hand_out_padding_bits() {
        let mut p = AddressPool::initialize(net("10.0.0.0/30"), None).unwrap();
        assert_eq!(p.allocate().unwrap(), ip("10.0.0.1"));
        assert_eq!(p.allocate().unwrap(), ip("10.0.0.2"));
        assert_eq!(p.first_free(), None);
        assert_eq!(p.map(), "XXXX");
    }

    fn range(s: &str) -> AllocRange {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_hands_out_exactly_its_addresses_in_order_then_is_full() {
        let mut p =
            AddressPool::initialize(net("198.51.100.0/24"), Some(ip("198.51.100.1"))).unwrap();
        p.set_ranges(vec![range("198.51.100.100-198.51.100.150")]);
        assert_eq!(p.allocatable_size(), 51);
        assert_eq!(p.free_count(), 51);
        assert_eq!(p.reserved_count(), 3);
        let got: Vec<Ipv4Addr> = std::iter::from_fn(|| p.allocate().ok()).collect();
        let want: Vec<Ipv4Addr> = (100..=150)
            .map(|i| Ipv4Addr::new(198, 51, 100, i))
            .collect();
        assert_eq!(got, want);
        assert_eq!(p.free_count(), 0);
        assert!(p.is_full());
        assert_eq!(p.allocate().unwrap_err().0, "198.51.100.0/24 is full");
        // Outside the ranges an address is still the operator's to give.
        p.reserve(ip("198.51.100.20"), Kind::Instance).unwrap();
        assert!(!p.in_ranges(ip("198.51.100.20")));
        assert!(p.in_ranges(ip("198.51.100.150")));
        assert!(!p.in_ranges(ip("203.0.113.1")));
        assert_eq!(p.reserved_count(), 3 + 51 + 1);
        // Releasing one inside gives it back to the next allocation.
        p.release(ip("198.51.100.120"), Kind::Instance).unwrap();
        assert_eq!(p.allocate().unwrap(), ip("198.51.100.120"));
    }

    #[test]
    fn ranges_skip_reservations_and_follow_changes() {
        let mut p = AddressPool::initialize(net("10.0.0.0/16"), None).unwrap();
        p.set_ranges(vec![
            range("10.0.200.0-10.0.200.1"),
            range("10.0.1.254-10.0.2.1"),
        ]);
        assert_eq!(
            p.ranges(),
            [range("10.0.1.254-10.0.2.1"), range("10.0.200.0-10.0.200.1")]
        );
        p.reserve(ip("10.0.1.255"), Kind::External).unwrap();
        assert_eq!(p.allocate().unwrap(), ip("10.0.1.254"));
        assert_eq!(p.allocate().unwrap(), ip("10.0.2.0"));
        assert_eq!(p.free_count(), 3);
        // No ranges again: the whole subnet, as before.
        p.set_ranges(Vec::new());
        assert_eq!(p.first_free(), Some(ip("10.0.0.1")));
        assert_eq!(p.free_count(), 65536 - 5);
        assert_eq!(p.allocatable_size(), 65536);
    }

    #[test]
    fn the_map_marks_free_addresses_outside_the_ranges() {
        let mut p = AddressPool::initialize(net("192.0.2.0/28"), Some(ip("192.0.2.1"))).unwrap();
        assert_eq!(p.map(), "XX.............X");
        p.set_ranges(vec![range("192.0.2.4-192.0.2.7")]);
        p.reserve(ip("192.0.2.10"), Kind::Instance).unwrap();
        p.reserve(ip("192.0.2.5"), Kind::External).unwrap();
        assert_eq!(p.map(), "XX--.X..--X----X");
        assert_eq!(p.free_count(), 3);
        assert_eq!(p.allocatable_size(), 4);
        // A short pool's padding bits count nowhere.
        let mut p = AddressPool::initialize(net("10.0.0.0/30"), None).unwrap();
        p.set_ranges(vec![range("10.0.0.2-10.0.0.2")]);
        assert_eq!((p.free_count(), p.allocatable_size()), (1, 1));
        assert_eq!(p.allocate().unwrap(), ip("10.0.0.2"));
        assert_eq!(p.first_free(), None);
        assert_eq!(p.map(), "X-XX");
    }

    #[test]
    fn ranges_outside_the_subnet_are_clipped_not_trusted() {
        // A hand edit can hold such ranges; verify reports them, the pool must not panic.
        let mut p = AddressPool::initialize(net("192.0.2.0/28"), None).unwrap();
        p.set_ranges(vec![
            range("192.0.1.0-192.0.2.2"),
            range("192.0.2.14-192.0.3.9"),
            range("203.0.113.1-203.0.113.9"),
            range("10.0.0.0-10.0.0.9"),
        ]);
        assert_eq!(p.allocatable_size(), 5);
        assert_eq!(p.map(), "X..-----------.X");
        assert_eq!(p.allocate().unwrap(), ip("192.0.2.1"));
    }

    #[test]
    fn stored_forms_round_trip_and_ganeti_strings_are_read() {
        let mut p = AddressPool::initialize(net("192.0.2.0/28"), Some(ip("192.0.2.1"))).unwrap();
        p.reserve(ip("192.0.2.10"), Kind::External).unwrap();
        p.reserve(ip("192.0.2.2"), Kind::Instance).unwrap();
        p.reserve(ip("192.0.2.3"), Kind::Instance).unwrap();
        let (i, e) = p.to_stored();
        assert_eq!((i.as_str(), e.as_str()), ("2-3", "0-1,10,15"));
        assert_eq!(AddressPool::from_stored(p.network(), &i, &e).unwrap(), p);
        let (gi, ge) = p.to_ganeti_strings();
        assert_eq!(ge, "1100000000100001");
        assert_eq!(AddressPool::from_stored(p.network(), &gi, &ge).unwrap(), p);
        assert_eq!(p.map(), "XXXX......X....X");
        assert!(AddressPool::from_stored(p.network(), "0-16", "").is_err());
        assert!(AddressPool::from_stored(p.network(), "x", "").is_err());
        assert!(AddressPool::from_stored(p.network(), "5-2", "").is_err());
    }
}
