//! The snapshot cache's instance index: one record per instance, in key order, holding what
//! commands look up without decoding instances (key, name, MACs) and the sizes of the
//! instance's TOML block and binary encoding. Records hold sizes, not offsets, so a writer
//! copies the records of unchanged instances verbatim; offsets are running sums made at load.
//!
//! Record (little endian): u16 key length, key, u16 name length, name, u8 NIC count, per
//! NIC its MAC (six bytes), a hint of its network (`hint`, four bytes) and its IPv4
//! address (four bytes, 0.0.0.0 for none), hints of the group and of the primary node
//! (four bytes each), u32 TOML block size, u32 encoding size, u32 CRC-32 of the encoding.

use std::net::Ipv4Addr;

use super::instance::Instance;
use netconf::mac::MacAddr;
use netconf::name::InstanceName;

/// Where a record is, and the offsets of its instance in config.data (from the start of
/// the instances) and in the cache's encoding area.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pos {
    pub rec: u32,
    pub rec_len: u32,
    pub toml_off: u64,
    pub toml_len: u32,
    pub blob_off: u64,
    pub blob_len: u32,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Entry<'a> {
    pub key: &'a str,
    pub name: &'a [u8],
    nics: &'a [u8],
    pub group_hint: u32,
    pub node_hint: u32,
    pub toml_len: u32,
    pub blob_len: u32,
    pub crc: u32,
}

const NIC_LEN: usize = 14;

impl<'a> Entry<'a> {
    pub fn macs(self) -> impl Iterator<Item = MacAddr> + 'a {
        self.nics.chunks_exact(NIC_LEN).map(|m| {
            let mut a = [0; 6];
            a.copy_from_slice(&m[..6]);
            MacAddr(a)
        })
    }

    /// Whether a NIC may be on the network with this hint (hints can collide).
    pub fn may_use(self, hint: u32) -> bool {
        self.nics
            .chunks_exact(NIC_LEN)
            .any(|n| n[6..10] == hint.to_le_bytes())
    }

    /// Each NIC's MAC, network hint (0: none) and IPv4 address.
    pub fn nic_briefs(self) -> impl Iterator<Item = (MacAddr, u32, Option<Ipv4Addr>)> + 'a {
        self.nics.chunks_exact(NIC_LEN).map(|n| {
            let mut a = [0; 6];
            a.copy_from_slice(&n[..6]);
            let hint = u32::from_le_bytes([n[6], n[7], n[8], n[9]]);
            let ip = Ipv4Addr::new(n[10], n[11], n[12], n[13]);
            (MacAddr(a), hint, (!ip.is_unspecified()).then_some(ip))
        })
    }

    /// The NICs' IPv4 addresses.
    pub fn ipv4s(self) -> impl Iterator<Item = Ipv4Addr> + 'a {
        self.nics
            .chunks_exact(NIC_LEN)
            .map(|n| Ipv4Addr::new(n[10], n[11], n[12], n[13]))
            .filter(|ip| !ip.is_unspecified())
    }
}

/// A short hint of a network, group or node UUID, so that their instances are found
/// without decoding the others. Never 0, which stands for "none".
pub(super) fn hint(uuid: &str) -> u32 {
    crc32fast::hash(uuid.as_bytes()).max(1)
}

pub(super) fn opt_hint(uuid: Option<&str>) -> u32 {
    uuid.map_or(0, hint)
}

/// Encodes `inst` after `out`'s current end; returns its size and CRC.
pub(super) fn encode_blob(inst: &Instance, out: &mut Vec<u8>) -> Option<(u32, u32)> {
    let start = out.len();
    let taken = std::mem::take(out);
    *out = postcard::to_extend(inst, taken).ok()?;
    let blob = &out[start..];
    Some((u32::try_from(blob.len()).ok()?, crc32fast::hash(blob)))
}

pub(super) fn decode_blob(bytes: &[u8], crc: u32) -> Option<Instance> {
    if crc32fast::hash(bytes) != crc {
        return None;
    }
    postcard::from_bytes(bytes).ok()
}

/// Appends the record of instance `key`; `None` if a field does not fit its width.
pub(super) fn push_record(
    out: &mut Vec<u8>,
    key: &str,
    inst: &Instance,
    toml_len: usize,
    blob: (u32, u32),
) -> Option<()> {
    let short = |s: &str| u16::try_from(s.len()).ok();
    let (klen, nlen) = (short(key)?, short(&inst.name)?);
    let nnics = u8::try_from(inst.nics.len()).ok()?;
    out.extend_from_slice(&klen.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&nlen.to_le_bytes());
    out.extend_from_slice(inst.name.as_bytes());
    out.push(nnics);
    for n in &inst.nics {
        out.extend_from_slice(&n.mac.octets());
        out.extend_from_slice(&opt_hint(n.network.as_deref()).to_le_bytes());
        out.extend_from_slice(&n.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
    }
    out.extend_from_slice(&hint(&inst.group).to_le_bytes());
    out.extend_from_slice(&opt_hint(inst.primary_node.as_deref()).to_le_bytes());
    out.extend_from_slice(&u32::try_from(toml_len).ok()?.to_le_bytes());
    out.extend_from_slice(&blob.0.to_le_bytes());
    out.extend_from_slice(&blob.1.to_le_bytes());
    Some(())
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<usize> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

fn parse_at(buf: &[u8], at: usize) -> Option<(Entry<'_>, usize)> {
    let mut r = Reader { buf, at };
    let klen = r.u16()?;
    let key = std::str::from_utf8(r.take(klen)?).ok()?;
    let nlen = r.u16()?;
    let name = r.take(nlen)?;
    let nnics = *r.take(1)?.first()? as usize;
    let nics = r.take(nnics * NIC_LEN)?;
    let e = Entry {
        key,
        name,
        nics,
        group_hint: r.u32()?,
        node_hint: r.u32()?,
        toml_len: r.u32()?,
        blob_len: r.u32()?,
        crc: r.u32()?,
    };
    Some((e, r.at))
}

/// Checks `count` records that fill `buf` exactly, in strictly increasing key order, with
/// valid instance names, and computes their positions. A cache of an older build may hold
/// a name config.data can no longer load: it is then no cache at all, so that the load
/// falls back to config.data and reports the name, instead of failing on first decode.
pub(super) fn parse(buf: &[u8], count: usize) -> Option<Vec<Pos>> {
    let mut out = Vec::with_capacity(count);
    let (mut at, mut toml_off, mut blob_off) = (0usize, 0u64, 0u64);
    let mut prev: Option<&str> = None;
    for _ in 0..count {
        let (e, end) = parse_at(buf, at)?;
        if !InstanceName::is_valid(std::str::from_utf8(e.name).ok()?) {
            return None;
        }
        if prev.is_some_and(|p| p >= e.key) {
            return None;
        }
        prev = Some(e.key);
        out.push(Pos {
            rec: u32::try_from(at).ok()?,
            rec_len: u32::try_from(end - at).ok()?,
            toml_off,
            toml_len: e.toml_len,
            blob_off,
            blob_len: e.blob_len,
        });
        toml_off += u64::from(e.toml_len);
        blob_off += u64::from(e.blob_len);
        at = end;
    }
    (at == buf.len()).then_some(out)
}

/// The record at `p`, which `parse` checked.
pub(super) fn entry(buf: &[u8], p: Pos) -> Entry<'_> {
    parse_at(buf, p.rec as usize)
        .expect("parse checked every record")
        .0
}

/// The bytes of records `first..=last` in the index, of their TOML blocks (from the start
/// of the instances) and of their encodings.
pub(super) fn spans(first: Pos, last: Pos) -> (std::ops::Range<usize>, (u64, u64), (u64, u64)) {
    (
        first.rec as usize..(last.rec + last.rec_len) as usize,
        (
            first.toml_off,
            last.toml_off + u64::from(last.toml_len) - first.toml_off,
        ),
        (
            first.blob_off,
            last.blob_off + u64::from(last.blob_len) - first.blob_off,
        ),
    )
}

#[cfg(test)]
mod tests {
    /// One record without NICs, laid out as `push_record` writes it.
    fn record(key: &str, name: &str) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&(key.len() as u16).to_le_bytes());
        r.extend_from_slice(key.as_bytes());
        r.extend_from_slice(&(name.len() as u16).to_le_bytes());
        r.extend_from_slice(name.as_bytes());
        r.push(0);
        r.extend_from_slice(&[0; 20]);
        r
    }

    /// A cache written before names were checked may hold one that config.data can no
    /// longer load: its index is then refused, so that no command decodes (and fails on)
    /// such an instance; the load falls back to config.data, which names it.
    #[test]
    fn an_index_with_an_invalid_instance_name_is_no_index() {
        assert!(super::parse(&record("k1", "vm1"), 1).is_some());
        for bad in ["vm6\nMACSPOOF=1", "vm 1", "", "a/b", "vm\u{0}"] {
            assert!(super::parse(&record("k1", bad), 1).is_none(), "{bad:?}");
        }
    }
}
