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

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn crc(&self) -> u32 {
        self.crc
    }
}

/// The CRC-32 and length of up to `max` of `f`'s bytes from `from` on, streamed through a
/// small buffer, and whether more follow.
pub(super) fn crc_from(f: &File, from: u64, max: u64) -> std::io::Result<(u32, u64, bool)> {
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
    }
}
