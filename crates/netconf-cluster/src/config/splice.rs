//! Plans the bytes of a new config.data and cache. With instances still stored (see
//! `instances`), unchanged instances are copied from the old files by the kernel
//! (`copy_file_range`) and only changed ones are rendered: a command that adds one
//! instance to 10,000 renders one. Otherwise everything is rendered. Both give the same
//! bytes; a test holds them to it.

use std::fs::File;
use std::ops::Range;

use super::cache::{self, CachePlan, IndexMeta};
use super::fingerprint::Fingerprint;
use super::index;
use super::instance::Instance;
use super::instances::{Overlay, Stored};
use super::model::ClusterConfig;
use super::segments::Out;
use super::writer::{self, END_MARKER, HEADER};

#[cfg(test)]
thread_local! {
    /// How many plans this thread spliced, for tests that must know which path ran.
    pub(super) static SPLICED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What to write: config.data, and the cache unless an instance does not fit its index
/// record (then there is no cache and the next reader parses the TOML).
pub(super) struct Plan<'a> {
    pub toml: Out<'a>,
    pub toml_src: Option<&'a File>,
    pub cache: Option<CachePlan<'a>>,
}

/// The plan for `cfg`: spliced when its instances allow it and were loaded from the
/// config.data bytes with fingerprint `current`, else rendered in full.
pub(super) fn plan(cfg: &ClusterConfig, current: Option<Fingerprint>) -> Plan<'_> {
    if let Some((stored, overlay)) = cfg.instances.spliceable(current)
        && let Some(p) = plan_splice(cfg, stored, overlay)
    {
        #[cfg(test)]
        SPLICED.with(|c| c.set(c.get() + 1));
        return p;
    }
    plan_full(cfg)
}

fn head_text(cfg: &ClusterConfig) -> String {
    let mut s = String::with_capacity(64 * 1024);
    s.push_str(HEADER);
    writer::write_head(&mut s, cfg);
    s
}

fn tail_text(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\n");
    out.extend_from_slice(END_MARKER.as_bytes());
    out.extend_from_slice(b"\n");
}

/// config.data's bytes rendered from the whole map, where its instances start, and the
/// size of each instance's block.
pub(super) fn full_toml(cfg: &ClusterConfig) -> (Vec<u8>, u64, Vec<usize>) {
    let mut text = String::with_capacity(4096 + cfg.instances.len() * 420);
    text.push_str(HEADER);
    let (start, lens) = writer::write_config_parallel(&mut text, cfg);
    let mut bytes = text.into_bytes();
    tail_text(&mut bytes);
    (bytes, start as u64, lens)
}

/// Everything rendered and encoded from the whole map.
pub(super) fn plan_full(cfg: &ClusterConfig) -> Plan<'_> {
    let (new, start, lens) = full_toml(cfg);
    let toml = Out::from_new(new);
    Plan {
        toml: toml.finish(),
        toml_src: None,
        cache: cache_full(cfg, Some((start, &lens))),
    }
}

/// A cache of the whole map; with `toml`, the instances' start and block sizes in the
/// config.data it goes with.
pub(super) fn cache_full<'a>(
    cfg: &ClusterConfig,
    toml: Option<(u64, &[usize])>,
) -> Option<CachePlan<'a>> {
    let all = cfg.instances.all_decoded();
    let mut blobs = Out::from_new(Vec::with_capacity(all.len() * 200));
    let mut records = Out::from_new(Vec::with_capacity(all.len() * 80));
    for (k, (key, inst)) in all.iter().enumerate() {
        let blob = index::encode_blob(inst, &mut blobs.new)?;
        let toml_len = toml.map_or(0, |(_, lens)| lens[k]);
        index::push_record(&mut records.new, key, inst, toml_len, blob)?;
    }
    Some(CachePlan {
        head: cache::encode_head(cfg)?,
        meta: IndexMeta {
            count: u32::try_from(all.len()).ok()?,
            toml_start: toml.map(|(start, _)| start),
        },
        records: records.finish(),
        blobs: blobs.finish(),
        blob_src: None,
    })
}

enum Step<'a> {
    /// Stored instances, unchanged.
    Old(Range<usize>),
    New(&'a str, &'a Instance),
}

/// The stored instances not overridden and the overlay's new values, in key order; found
/// by binary search, so the cost grows with the changes, not with the instances.
fn merged<'a>(stored: Option<&'a Stored>, overlay: &'a Overlay) -> Vec<Step<'a>> {
    let n = stored.map_or(0, Stored::len);
    let mut steps = Vec::with_capacity(2 * overlay.len() + 1);
    let mut next = 0;
    for (k, v) in overlay {
        let (at, exists) = match stored.map(|s| s.search(k)) {
            Some(Ok(i)) => (i, true),
            Some(Err(i)) => (i, false),
            None => (0, false),
        };
        if next < at {
            steps.push(Step::Old(next..at));
        }
        if let Some(inst) = v {
            steps.push(Step::New(k, inst));
        }
        next = if exists { at + 1 } else { at };
    }
    if next < n {
        steps.push(Step::Old(next..n));
    }
    steps
}

fn plan_splice<'a>(
    cfg: &ClusterConfig,
    stored: Option<&'a Stored>,
    overlay: &Overlay,
) -> Option<Plan<'a>> {
    let old_start = stored
        .and_then(|s| s.toml.as_ref())
        .map_or(0, |(_, st)| *st);
    let mut toml = Out::from_new(head_text(cfg).into_bytes());
    let start = toml.new.len() as u64;
    let mut blobs = Out::default();
    let mut records = Out::with_mem(stored.map_or(&[][..], |s| &s.index[..]));
    let mut count = 0usize;
    let mut scratch = String::new();
    for step in merged(stored, overlay) {
        match step {
            Step::Old(run) => {
                let s = stored.expect("old entries come from stored");
                count += run.len();
                let (recs, t, b) = index::spans(s.entries[run.start], s.entries[run.end - 1]);
                toml.copy(old_start + t.0, t.1);
                blobs.copy(s.blob_base + b.0, b.1);
                records.take_mem(recs);
            }
            Step::New(key, inst) => {
                count += 1;
                scratch.clear();
                writer::instance(&mut scratch, key, inst);
                toml.new.extend_from_slice(scratch.as_bytes());
                let blob = index::encode_blob(inst, &mut blobs.new)?;
                index::push_record(&mut records.new, key, inst, scratch.len(), blob)?;
            }
        }
    }
    tail_text(&mut toml.new);
    Some(Plan {
        toml: toml.finish(),
        toml_src: stored.and_then(|s| s.toml.as_ref()).map(|(f, _)| f),
        cache: Some(CachePlan {
            head: cache::encode_head(cfg)?,
            meta: IndexMeta {
                count: u32::try_from(count).ok()?,
                toml_start: Some(start),
            },
            records: records.finish(),
            blobs: blobs.finish(),
            blob_src: stored.map(|s| (&s.cache, &s.blob_marks)),
        }),
    })
}
