//! The snapshot cache file (`config.data.cache`): a binary copy of the configuration that
//! loads in a fraction of the TOML's parse time.
//!
//! Layout: the fingerprint of the config.data bytes it was made from (`Fingerprint`: magic,
//! length, CRC-32); the *head* part (everything but the instances, postcard); the *index*
//! part (instance count, whether the TOML sizes are valid, where config.data's instances
//! start, then the records of the `index` module); then each instance's postcard encoding,
//! back to back. Parts are `u64` length, bytes, `u32` CRC-32; each encoding's CRC is in its
//! index record. A reader reads the whole file and checks all of it before using any of it,
//! so nothing decoded later can meet bytes that were not checked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::index::{self, Pos};
use super::model::{Cluster, Config, Network, Node, NodeGroup};
use super::splice::{END_MARKER, Out};

/// What a cache must have been made from to stand in for a config.data: the length and
/// CRC-32 of its bytes. Content, not timestamps: an edit in place within the clock's
/// resolution, or a file copied back over it, is still told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint {
    len: u64,
    crc: u32,
}

impl Fingerprint {
    const MAGIC: &'static [u8; 8] = b"NCCACHE5";
    pub const HEADER_LEN: usize = 20;

    pub fn of(bytes: &[u8]) -> Self {
        Fingerprint {
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        }
    }

    pub fn from_parts(len: u64, crc: u32) -> Self {
        Fingerprint { len, crc }
    }

    /// The first bytes of a cache made from these bytes.
    pub fn header(&self) -> [u8; Self::HEADER_LEN] {
        let mut h = [0u8; Self::HEADER_LEN];
        h[..8].copy_from_slice(Self::MAGIC);
        h[8..16].copy_from_slice(&self.len.to_le_bytes());
        h[16..].copy_from_slice(&self.crc.to_le_bytes());
        h
    }
}

#[derive(Serialize)]
struct HeadRef<'a> {
    version: u32,
    cluster: &'a Cluster,
    nodegroups: &'a BTreeMap<String, NodeGroup>,
    nodes: &'a BTreeMap<String, Node>,
    networks: &'a BTreeMap<String, Network>,
}

/// The configuration without its instances.
#[derive(Deserialize)]
pub(super) struct Head {
    pub version: u32,
    pub cluster: Cluster,
    pub nodegroups: BTreeMap<String, NodeGroup>,
    pub nodes: BTreeMap<String, Node>,
    pub networks: BTreeMap<String, Network>,
}

pub(super) fn encode_head(cfg: &Config) -> Option<Vec<u8>> {
    postcard::to_allocvec(&HeadRef {
        version: cfg.version,
        cluster: &cfg.cluster,
        nodegroups: &cfg.nodegroups,
        nodes: &cfg.nodes,
        networks: &cfg.networks,
    })
    .ok()
}

const META_LEN: usize = 13;

/// The index part's fields before the records.
pub(super) struct IndexMeta {
    pub count: u32,
    /// Where config.data's instances start, when the records' TOML sizes describe it.
    pub toml_start: Option<u64>,
}

impl IndexMeta {
    fn bytes(&self) -> [u8; META_LEN] {
        let mut m = [0; META_LEN];
        m[..4].copy_from_slice(&self.count.to_le_bytes());
        m[4] = u8::from(self.toml_start.is_some());
        m[5..].copy_from_slice(&self.toml_start.unwrap_or(0).to_le_bytes());
        m
    }

    fn parse(m: &[u8]) -> Option<Self> {
        let count = u32::from_le_bytes(m.get(..4)?.try_into().ok()?);
        let start = u64::from_le_bytes(m.get(5..META_LEN)?.try_into().ok()?);
        let toml_start = match m.get(4)? {
            0 => None,
            1 => Some(start),
            _ => return None,
        };
        Some(IndexMeta { count, toml_start })
    }
}

/// A cursor over the cache's bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Option<(&'a [u8], Range<usize>)> {
        let end = self.at.checked_add(usize::try_from(n).ok()?)?;
        let s = self.buf.get(self.at..end)?;
        let r = self.at..end;
        self.at = end;
        Some((s, r))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.0.try_into().ok()?))
    }

    fn crc_is(&mut self, crc: u32) -> bool {
        self.take(4)
            .and_then(|(b, _)| b.try_into().ok())
            .is_some_and(|b| u32::from_le_bytes(b) == crc)
    }
}

/// A cache that checked out against the config.data bytes it claims to mirror.
pub(super) struct Checked {
    pub head: Head,
    /// The index records, in the cache's bytes.
    pub index: Range<usize>,
    pub entries: Vec<Pos>,
    /// Where the encodings start in the cache's bytes.
    pub blob_base: usize,
    /// Where config.data's instances start, when the index's TOML sizes describe `toml`.
    pub toml_start: Option<usize>,
}

/// Checks all of `cache` against `toml`, the config.data bytes read now (whose
/// fingerprint is `fp`): the fingerprint, every part's and every encoding's CRC, the index records, and that the
/// TOML sizes add up to `toml` (else they are not used). `None` for anything else: a
/// damaged, truncated, foreign or stale cache is as good as none.
pub(super) fn check(cache: &[u8], fp: &Fingerprint, toml: &[u8]) -> Option<Checked> {
    let mut r = Reader { buf: cache, at: 0 };
    if r.take(Fingerprint::HEADER_LEN as u64)?.0 != fp.header() {
        return None;
    }
    let len = r.u64()?;
    let (head_bytes, _) = r.take(len)?;
    if !r.crc_is(crc32fast::hash(head_bytes)) {
        return None;
    }
    let head: Head = postcard::from_bytes(head_bytes).ok()?;

    let len = r.u64()?.checked_sub(META_LEN as u64)?;
    let (meta, _) = r.take(META_LEN as u64)?;
    let (records, index) = r.take(len)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(meta);
    crc.update(records);
    if !r.crc_is(crc.finalize()) {
        return None;
    }
    let meta = IndexMeta::parse(meta)?;
    let entries = index::parse(records, meta.count as usize)?;
    let blob_base = r.at;
    // Every encoding checks out and they fill the rest of the file exactly.
    let mut at = blob_base;
    for p in &entries {
        let e = index::entry(records, *p);
        let end = at.checked_add(e.blob_len as usize)?;
        if crc32fast::hash(cache.get(at..end)?) != e.crc {
            return None;
        }
        at = end;
    }
    if at != cache.len() {
        return None;
    }
    let toml_total: u64 = entries.iter().map(|p| u64::from(p.toml_len)).sum();
    let tail = END_MARKER.len() as u64 + 2;
    let toml_start = meta
        .toml_start
        .filter(|s| {
            s.checked_add(toml_total).and_then(|e| e.checked_add(tail)) == Some(toml.len() as u64)
        })
        .and_then(|s| usize::try_from(s).ok());
    Some(Checked {
        head,
        index,
        entries,
        blob_base,
        toml_start,
    })
}

/// What a new cache file holds besides its fingerprint.
pub(super) struct CachePlan<'a> {
    pub head: Vec<u8>,
    pub meta: IndexMeta,
    pub records: Out<'a>,
    pub blobs: Out<'a>,
}

/// Writes a cache file: fingerprint, head part, index part, encodings.
pub(super) fn write(dst: &mut File, header: &[u8], plan: &CachePlan<'_>) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut *dst);
    w.write_all(header)?;
    w.write_all(&(plan.head.len() as u64).to_le_bytes())?;
    w.write_all(&plan.head)?;
    w.write_all(&crc32fast::hash(&plan.head).to_le_bytes())?;
    let meta = plan.meta.bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta);
    plan.records.hash_into(&mut crc);
    w.write_all(&((META_LEN + plan.records.len()) as u64).to_le_bytes())?;
    w.write_all(&meta)?;
    plan.records.write_to(&mut w, None)?;
    w.write_all(&crc.finalize().to_le_bytes())?;
    plan.blobs.write_to(&mut w, None)?;
    w.flush()
}
