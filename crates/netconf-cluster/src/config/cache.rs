//! The snapshot cache file (`config.data.cache`): a binary copy of the configuration that
//! loads in a fraction of the TOML's parse time.
//!
//! Layout: the fingerprint of the config.data bytes it was made from (`Fingerprint`: magic,
//! length, CRC-32); the *head* part (everything but the instances, postcard); the *index*
//! part (instance count, whether the TOML sizes are valid, where config.data's instances
//! start, then the records of the `index` module); then each instance's postcard encoding,
//! back to back. Parts are `u64` length, bytes, `u32` CRC-32; each encoding's CRC is in its
//! index record. A reader checks all of it at load (the encodings streamed through their
//! CRCs, not kept) and decodes instances later from the open file, which writers do not
//! reuse while it is share-locked; an encoding that still fails its check then is handled
//! by `instances`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fingerprint::{Fingerprint, Marks, crc_from, crc_from_marked};
use super::index;
use super::instances::Stored;
use super::model::{Cluster, ClusterConfig, Network, Node, NodeGroup};
use super::segments::Out;
use super::writer::END_MARKER;

/// The cache format's magic, first in the header. 6: networks carry allocation ranges
/// (postcard is positional: a cache of 5 would decode wrongly, so it is ignored); 7: a
/// network's subnet and reservations are optional (L2-only networks).
const MAGIC: &[u8; 8] = b"NCCACHE7";

/// The header's first part: the magic and the fingerprint of the config.data the cache
/// was made from.
fn stamp(fp: &Fingerprint) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&fp.len().to_le_bytes());
    h[16..].copy_from_slice(&fp.crc().to_le_bytes());
    h
}

/// The header: the fingerprint of the config.data the cache was made from, and the CRC-32
/// of the encodings area (checked in one pass at load; each encoding's own CRC is checked
/// when it is decoded).
pub(super) const HEADER_LEN: usize = 24;

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

pub(super) fn encode_head(cfg: &ClusterConfig) -> Option<Vec<u8>> {
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

    fn parse(m: &[u8; META_LEN]) -> Option<Self> {
        let count = u32::from_le_bytes(m[..4].try_into().ok()?);
        let start = u64::from_le_bytes(m[5..].try_into().ok()?);
        let toml_start = match m[4] {
            0 => None,
            1 => Some(start),
            _ => return None,
        };
        Some(IndexMeta { count, toml_start })
    }
}

fn read_u64(r: &mut impl Read) -> Option<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// `len` bytes into a vector of exactly that size; a damaged length fails at the end of
/// the file instead of asking for huge memory.
fn read_exact_vec(r: &mut impl Read, len: u64) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(usize::try_from(len.min(1 << 30)).ok()?);
    r.take(len).read_to_end(&mut v).ok()?;
    (v.len() as u64 == len).then_some(v)
}

fn crc_matches(r: &mut impl Read, crc: u32) -> bool {
    let mut b = [0; 4];
    r.read_exact(&mut b).is_ok() && u32::from_le_bytes(b) == crc
}

/// Reads `cache` if it was made from the config.data bytes with fingerprint `fp` (read
/// from `toml`, at `path`) and all of it checks out: every part's and every encoding's
/// CRC, the index records, and the TOML sizes against `fp`'s length (else they are not
/// used). `None` for anything else: a damaged, cut, foreign or stale cache is as good as
/// none.
pub(super) fn load(
    cache: File,
    fp: &Fingerprint,
    toml: File,
    path: &Path,
) -> Option<(Head, Stored)> {
    // Instances are decoded from `cache` later, maybe after the config lock is gone; a
    // writer reuses a replaced file as its next spare only if nobody holds such a lock.
    for f in [&cache, &toml] {
        match f.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return None,
            // Without file locks writers never reuse files: nothing to protect against.
            Err(std::fs::TryLockError::Error(_)) => {}
        }
    }
    let mut r = &cache;
    let header = read_exact_vec(&mut r, HEADER_LEN as u64)?;
    if header[..20] != stamp(fp) {
        return None;
    }
    let blobs_crc = u32::from_le_bytes(header[20..].try_into().ok()?);
    let len = read_u64(&mut r)?;
    let head_bytes = read_exact_vec(&mut r, len)?;
    if !crc_matches(&mut r, crc32fast::hash(&head_bytes)) {
        return None;
    }
    let head: Head = postcard::from_bytes(&head_bytes).ok()?;

    let len = read_u64(&mut r)?.checked_sub(META_LEN as u64)?;
    let mut meta = [0; META_LEN];
    r.read_exact(&mut meta).ok()?;
    let records = read_exact_vec(&mut r, len)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta);
    crc.update(&records);
    if !crc_matches(&mut r, crc.finalize()) {
        return None;
    }
    let meta = IndexMeta::parse(&meta)?;
    let entries = index::parse(&records, meta.count as usize)?;
    let blob_base = r.stream_position().ok()?;
    let toml_total: u64 = entries.iter().map(|p| u64::from(p.toml_len)).sum();
    let tail = END_MARKER.len() as u64 + 2;
    let toml_start = meta
        .toml_start
        .filter(|s| s.checked_add(toml_total).and_then(|e| e.checked_add(tail)) == Some(fp.len()));
    // The encodings fill the rest of the file exactly and check out, streamed (holding
    // them costs a fresh process more in page faults than reading them).
    let area: u64 = entries.iter().map(|p| u64::from(p.blob_len)).sum();
    let (crc, len, more, blob_marks) = crc_from_marked(&cache, blob_base, area).ok()?;
    if len != area || more || crc != blobs_crc {
        return None;
    }
    let stored = Stored {
        index: records,
        entries,
        blob_base,
        blob_marks,
        toml: match toml_start {
            Some(s) => Some((toml.try_clone().ok()?, s)),
            None => None,
        },
        source: toml,
        cache,
        fp: *fp,
        path: path.to_owned(),
    };
    Some((head, stored))
}

/// What a new cache file holds besides its stamp.
pub(super) struct CachePlan<'a> {
    pub head: Vec<u8>,
    pub meta: IndexMeta,
    pub records: Out<'a>,
    pub blobs: Out<'a>,
    /// The old cache, for encodings copied from it, and the marks of its encodings.
    pub blob_src: Option<(&'a File, &'a Marks)>,
}

/// Writes a cache file but for its header (blank: it is not valid until `seal`ed): head
/// part, index part, encodings. Returns the CRC-32 of the encodings planned, the copied
/// ones by their CRC at load (should the kernel have copied other bytes, the cache fails
/// its check and is not used); read back only where that cannot be had.
pub(super) fn write(dst: &mut File, plan: &CachePlan<'_>) -> std::io::Result<u32> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut *dst);
    w.write_all(&[0; HEADER_LEN])?;
    w.write_all(&(plan.head.len() as u64).to_le_bytes())?;
    w.write_all(&plan.head)?;
    w.write_all(&crc32fast::hash(&plan.head).to_le_bytes())?;
    let meta = plan.meta.bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta);
    plan.records.hash_into(&mut crc);
    w.write_all(&((META_LEN + plan.records.len()) as u64).to_le_bytes())?;
    w.write_all(&meta)?;
    w.flush()?;
    drop(w);
    plan.records.write_to(dst, None)?;
    dst.write_all(&crc.finalize().to_le_bytes())?;
    let base = dst.stream_position()?;
    plan.blobs.write_to(dst, plan.blob_src.map(|(f, _)| f))?;
    let planned = plan.blobs.fingerprint(|from, len| match plan.blob_src {
        Some((src, marks)) => marks.range_crc(src, from, len),
        None => Err(std::io::ErrorKind::NotFound.into()),
    });
    if let Ok(fp) = planned {
        return Ok(fp.crc());
    }
    let end = dst.stream_position()?;
    Ok(crc_from(dst, base, end - base)?.0)
}

/// Makes a written cache valid for the config.data bytes with fingerprint `fp`.
pub(super) fn seal(dst: &File, fp: &Fingerprint, blobs_crc: u32) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut h = [0u8; HEADER_LEN];
    h[..20].copy_from_slice(&stamp(fp));
    h[20..].copy_from_slice(&blobs_crc.to_le_bytes());
    dst.write_all_at(&h, 0)
}
