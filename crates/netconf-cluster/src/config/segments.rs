//! A file's bytes as a list of segments: new bytes, ranges of a buffer in memory, and
//! ranges of an old file that the kernel copies (`copy_file_range`). The writers of
//! config.data (`splice`) and of its cache (`cache`) build their files this way, so that an
//! unchanged instance is copied, not rendered again.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::fingerprint::Fingerprint;

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
    /// Starts with `new` as its first bytes.
    pub(super) fn from_new(new: Vec<u8>) -> Self {
        Out {
            new,
            ..Out::default()
        }
    }

    pub(super) fn with_mem(mem: &'a [u8]) -> Self {
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
    pub(super) fn copy(&mut self, from: u64, len: u64) {
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
    pub(super) fn take_mem(&mut self, r: Range<usize>) {
        self.flush();
        if let Some(Seg::Mem(last)) = self.segs.last_mut()
            && last.end == r.start
        {
            last.end = r.end;
            return;
        }
        self.segs.push(Seg::Mem(r));
    }

    pub(super) fn finish(mut self) -> Self {
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

    /// The fingerprint of the bytes these segments stand for, with `copied(from, len)` the
    /// CRC-32 of a range of the source file: what a cache made with them describes.
    pub(super) fn fingerprint(
        &self,
        mut copied: impl FnMut(u64, u64) -> std::io::Result<u32>,
    ) -> std::io::Result<Fingerprint> {
        let mut h = crc32fast::Hasher::new();
        for s in &self.segs {
            match s {
                Seg::New(r) => h.update(&self.new[r.clone()]),
                Seg::Mem(r) => h.update(&self.mem[r.clone()]),
                Seg::Copy { from, len } => {
                    h.combine(&crc32fast::Hasher::new_with_initial_len(
                        copied(*from, *len)?,
                        *len,
                    ));
                }
            }
        }
        Ok(Fingerprint::from_parts(self.len() as u64, h.finalize()))
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
