//! Plans the bytes of a new config.data and cache. With instances still stored (see
//! `instances`), unchanged instances are copied from the old files by the kernel
//! (`copy_file_range`) and only changed ones are rendered: a command that adds one
//! instance to 10,000 renders one. Otherwise everything is rendered. Both give the same
//! bytes; a test holds them to it.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::cache::{self, CachePlan, Fingerprint, IndexMeta};
use super::index;
use super::instances::{Overlay, Stored};
use super::model::{Config, Instance};
use super::writer;

pub(super) const HEADER: &str = "# netconf cluster configuration: change it with gnt-network, gnt-group, gnt-node and\n# gnt-instance only (they lock, validate and write it atomically).\n";
/// The last line of every file we write; its absence means the file was cut short.
pub(super) const END_MARKER: &str = "# end of config.data";

#[cfg(test)]
thread_local! {
    /// How many plans this thread spliced, for tests that must know which path ran.
    pub(super) static SPLICED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

enum Seg {
    /// Bytes of `Out::new`.
    New(Range<usize>),
    /// Bytes of `Out::mem`.
    Mem(Range<usize>),
    /// Bytes of the source file.
    Copy { from: u64, len: u64 },
}

/// A file's bytes as new data, ranges of a buffer in memory (`mem`) and ranges copied
/// from an old file, written without gathering them into one buffer first.
#[derive(Default)]
pub(super) struct Out<'a> {
    pub new: Vec<u8>,
    mem: &'a [u8],
    flushed: usize,
    segs: Vec<Seg>,
}

impl<'a> Out<'a> {
    fn with_mem(mem: &'a [u8]) -> Self {
        Out {
            mem,
            ..Out::default()
        }
    }

    fn flush(&mut self) {
        if self.new.len() > self.flushed {
            self.segs.push(Seg::New(self.flushed..self.new.len()));
            self.flushed = self.new.len();
        }
    }

    /// Copies `len` bytes at `from` of the source file, joined to the previous copy when
    /// they continue it.
    fn copy(&mut self, from: u64, len: u64) {
        self.flush();
        if let Some(Seg::Copy { from: f, len: l }) = self.segs.last_mut()
            && *f + *l == from
        {
            *l += len;
            return;
        }
        self.segs.push(Seg::Copy { from, len });
    }

    /// Takes `mem[r]`, joined to the previous range when it continues it.
    fn take_mem(&mut self, r: Range<usize>) {
        self.flush();
        if let Some(Seg::Mem(last)) = self.segs.last_mut()
            && last.end == r.start
        {
            last.end = r.end;
            return;
        }
        self.segs.push(Seg::Mem(r));
    }

    fn finish(mut self) -> Self {
        self.flush();
        self
    }

    pub(super) fn len(&self) -> usize {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::New(r) | Seg::Mem(r) => r.len(),
                Seg::Copy { len, .. } => *len as usize,
            })
            .sum()
    }

    /// Hashes the bytes held in memory (copied ranges are not).
    pub(super) fn hash_into(&self, h: &mut crc32fast::Hasher) {
        for s in &self.segs {
            match s {
                Seg::New(r) => h.update(&self.new[r.clone()]),
                Seg::Mem(r) => h.update(&self.mem[r.clone()]),
                Seg::Copy { .. } => {}
            }
        }
    }

    pub(super) fn write_to(&self, dst: &mut File, src: Option<&File>) -> std::io::Result<()> {
        for seg in &self.segs {
            match seg {
                Seg::New(r) => dst.write_all(&self.new[r.clone()])?,
                Seg::Mem(r) => dst.write_all(&self.mem[r.clone()])?,
                Seg::Copy { from, len } => {
                    let src = src.ok_or_else(|| std::io::Error::other("no file to copy from"))?;
                    copy_range(src, *from, *len, dst)?;
                }
            }
        }
        Ok(())
    }
}

/// Kernel-side copy, with a read/write fallback for file systems without it.
fn copy_range(src: &File, from: u64, len: u64, dst: &mut File) -> std::io::Result<()> {
    let (mut off, end) = (
        i64::try_from(from).map_err(std::io::Error::other)?,
        from + len,
    );
    while (off as u64) < end {
        let want = usize::try_from(end - off as u64).unwrap_or(usize::MAX);
        match nix::fcntl::copy_file_range(src, Some(&mut off), &*dst, None, want) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(
                nix::errno::Errno::EXDEV
                | nix::errno::Errno::ENOSYS
                | nix::errno::Errno::EINVAL
                | nix::errno::Errno::EOPNOTSUPP,
            ) => {
                let mut buf =
                    vec![0; usize::try_from(end - off as u64).map_err(std::io::Error::other)?];
                src.read_exact_at(&mut buf, off as u64)?;
                return dst.write_all(&buf);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
pub(super) fn plan(cfg: &Config, current: Option<Fingerprint>) -> Plan<'_> {
    if let Some((stored, overlay)) = cfg.instances.spliceable(current)
        && let Some(p) = plan_splice(cfg, stored, overlay)
    {
        #[cfg(test)]
        SPLICED.with(|c| c.set(c.get() + 1));
        return p;
    }
    plan_full(cfg)
}

fn head_text(cfg: &Config) -> String {
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
pub(super) fn full_toml(cfg: &Config) -> (Vec<u8>, u64, Vec<usize>) {
    let mut text = String::with_capacity(4096 + cfg.instances.len() * 420);
    text.push_str(HEADER);
    let (start, lens) = writer::write_config_parallel(&mut text, cfg);
    let mut bytes = text.into_bytes();
    tail_text(&mut bytes);
    (bytes, start as u64, lens)
}

/// Everything rendered and encoded from the whole map.
pub(super) fn plan_full(cfg: &Config) -> Plan<'_> {
    let (new, start, lens) = full_toml(cfg);
    let toml = Out {
        new,
        ..Out::default()
    };
    Plan {
        toml: toml.finish(),
        toml_src: None,
        cache: cache_full(cfg, Some((start, &lens))),
    }
}

/// A cache of the whole map; with `toml`, the instances' start and block sizes in the
/// config.data it goes with.
pub(super) fn cache_full<'a>(cfg: &Config, toml: Option<(u64, &[usize])>) -> Option<CachePlan<'a>> {
    let all = &*cfg.instances;
    let mut blobs = Out {
        new: Vec::with_capacity(all.len() * 200),
        ..Out::default()
    };
    let mut records = Out {
        new: Vec::with_capacity(all.len() * 80),
        ..Out::default()
    };
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
    cfg: &Config,
    stored: Option<&'a Stored>,
    overlay: &Overlay,
) -> Option<Plan<'a>> {
    let old_start = stored
        .and_then(|s| s.toml.as_ref())
        .map_or(0, |(_, st)| *st);
    let mut toml = Out {
        new: head_text(cfg).into_bytes(),
        ..Out::default()
    };
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
            blob_src: stored.map(|s| &s.cache),
        }),
    })
}
