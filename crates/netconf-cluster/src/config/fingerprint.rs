//! The fingerprint of a config.data's bytes, which the snapshot cache and the stored
//! instances check before they trust bytes read earlier.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// What a cache must have been made from to stand in for a config.data: the length and
/// CRC-32 of its bytes. Content, not timestamps: an edit in place within the clock's
/// resolution, or a file copied back over it, is still told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint {
    len: u64,
    crc: u32,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Self {
        Fingerprint {
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        }
    }

    /// The fingerprint of `f`'s bytes, streamed through a small buffer (a fresh process
    /// pays more in page faults for holding 4 MB than for reading them); `None` if it is
    /// longer than `max`.
    pub fn of_file(f: &File, max: u64) -> std::io::Result<Option<Self>> {
        let (crc, len, more) = crc_from(f, 0, max)?;
        Ok((!more).then_some(Fingerprint { len, crc }))
    }

    /// As [`Fingerprint::of_file`], with the [`Marks`] of the pass.
    pub fn of_file_marked(f: &File, max: u64) -> std::io::Result<Option<(Self, Marks)>> {
        let (crc, len, more, marks) = crc_from_marked(f, 0, max)?;
        Ok((!more).then_some((Fingerprint { len, crc }, marks)))
    }

    /// The fingerprint of `len` bytes whose CRC-32 is `crc`.
    pub fn from_parts(len: u64, crc: u32) -> Self {
        Fingerprint { len, crc }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn crc(&self) -> u32 {
        self.crc
    }
}

/// The CRC-32 of an area's first bytes at points along it (every read of the pass that
/// checked it), so that the CRC-32 of any range of those bytes costs reading at most two
/// short pieces again, not the range: a writer that copied ranges of an old file into a
/// new one knows the new one's CRC without reading it back.
#[derive(Debug)]
pub(super) struct Marks {
    /// Where the area starts in its file.
    base: u64,
    /// (offset in the area, CRC-32 of the area's bytes before it), ascending from (0, 0).
    points: Vec<(u64, u32)>,
}

impl Marks {
    /// The CRC-32 of the area's first `at` bytes: from the last mark at or before `at`,
    /// on over the bytes after it.
    fn prefix(&self, f: &File, at: u64) -> std::io::Result<u32> {
        let i = self.points.partition_point(|&(o, _)| o <= at) - 1;
        let (mut from, crc) = self.points[i];
        let mut h = crc32fast::Hasher::new_with_initial_len(crc, from);
        // One read's worth as a rule; a buffer of that size whatever `at` claims.
        let mut buf = vec![0; (at - from).min(1 << 16) as usize];
        while from < at {
            let n = (at - from).min(buf.len() as u64) as usize;
            let pos = self
                .base
                .checked_add(from)
                .ok_or(std::io::ErrorKind::InvalidInput)?;
            f.read_exact_at(&mut buf[..n], pos)?;
            h.update(&buf[..n]);
            from += n as u64;
        }
        Ok(h.finalize())
    }

    /// The CRC-32 of `len` bytes of `f` at `from` (an offset in the file, inside the
    /// area), taken from the marks: exact as long as `f` holds the bytes it held when
    /// they were taken (else the CRC it goes into matches no file's, and a cache stamped
    /// with it is not used).
    pub fn range_crc(&self, f: &File, from: u64, len: u64) -> std::io::Result<u32> {
        let from = from
            .checked_sub(self.base)
            .ok_or_else(|| std::io::Error::other("a range before the marked area"))?;
        let end = from
            .checked_add(len)
            .ok_or_else(|| std::io::Error::other("a range past the end of any file"))?;
        let (a, b) = (self.prefix(f, from)?, self.prefix(f, end)?);
        // CRC-32 is linear: crc(A ‖ B) = shift(crc(A), |B|) ^ crc(B), and combining
        // with the CRC 0 of |B| bytes is that shift.
        let mut shifted = crc32fast::Hasher::new_with_initial_len(a, from);
        shifted.combine(&crc32fast::Hasher::new_with_initial_len(0, len));
        Ok(b ^ shifted.finalize())
    }
}

/// The CRC-32 and length of up to `max` of `f`'s bytes from `from` on, streamed through a
/// small buffer, and whether more follow.
pub(super) fn crc_from(f: &File, from: u64, max: u64) -> std::io::Result<(u32, u64, bool)> {
    crc_marked(f, from, max, &mut Vec::new())
}

/// As [`crc_from`], with the [`Marks`] of the pass.
pub(super) fn crc_from_marked(
    f: &File,
    from: u64,
    max: u64,
) -> std::io::Result<(u32, u64, bool, Marks)> {
    let mut points = vec![(0, 0)];
    let (crc, len, more) = crc_marked(f, from, max, &mut points)?;
    Ok((crc, len, more, Marks { base: from, points }))
}

/// As [`crc_from`], pushing the CRC-32 so far to `marks` at each read that ends before
/// `max` (the offsets are counted from `from`).
fn crc_marked(
    f: &File,
    from: u64,
    max: u64,
    marks: &mut Vec<(u64, u32)>,
) -> std::io::Result<(u32, u64, bool)> {
    let mut buf = vec![0; 1 << 16];
    let (mut h, mut len) = (crc32fast::Hasher::new(), 0u64);
    loop {
        let want = usize::try_from((max - len).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = match f.read_at(&mut buf[..want.max(1)], from + len) {
            Ok(0) => return Ok((h.finalize(), len, false)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if len == max {
            return Ok((h.finalize(), len, true));
        }
        h.update(&buf[..n]);
        len += n as u64;
        if len < max {
            marks.push((len, h.clone().finalize()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn marks_give_the_crc_of_any_range_without_reading_it() {
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bytes).unwrap();
        let (fp, marks) = Fingerprint::of_file_marked(&f, u64::MAX).unwrap().unwrap();
        assert_eq!(fp, Fingerprint::of(&bytes));
        assert!(
            marks.points.len() > 3,
            "a mark per read: {}",
            marks.points.len()
        );
        let len = bytes.len() as u64;
        for (from, n) in [
            (0, 0),
            (0, len),
            (1, 10),
            (65_535, 2),
            (65_536, 65_536),
            (70_000, 120_000),
            (len - 1, 1),
            (len, 0),
        ] {
            let want = crc32fast::hash(&bytes[from as usize..(from + n) as usize]);
            assert_eq!(marks.range_crc(&f, from, n).unwrap(), want, "{from}+{n}");
        }
        // An area that starts inside the file: offsets stay the file's.
        let (crc, n, more, marks) = crc_from_marked(&f, 1000, 150_000).unwrap();
        assert_eq!(
            (crc, n, more),
            (crc32fast::hash(&bytes[1000..151_000]), 150_000, true)
        );
        for (from, n) in [
            (1000, 0),
            (1000, 150_000),
            (1001, 70_000),
            (100_000, 51_000),
        ] {
            let want = crc32fast::hash(&bytes[from as usize..(from + n) as usize]);
            assert_eq!(marks.range_crc(&f, from, n).unwrap(), want, "{from}+{n}");
        }
        assert!(marks.range_crc(&f, 999, 1).is_err());
    }
}
