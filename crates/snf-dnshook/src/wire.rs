//! The few raw-wire facts that TSIG needs and a parsed `Message` hides: header fields, the
//! byte offset of the last additional record, uncompressed canonical names.

use anyhow::{Context, Result, bail, ensure};

/// Header offsets (RFC 1035 4.1.1).
const HEADER_LEN: usize = 12;
const ARCOUNT_AT: usize = 10;

/// The RCODE of a message (no EDNS is sent, so the 4 header bits are the whole code).
pub fn rcode(msg: &[u8]) -> Option<u8> {
    msg.get(3).map(|b| b & 0x0f)
}

pub fn id(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

pub fn is_response(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|b| b & 0x80 != 0)
}

pub fn is_truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|b| b & 0x02 != 0)
}

pub fn arcount(msg: &[u8]) -> Result<u16> {
    ensure!(
        msg.len() >= HEADER_LEN,
        "DNS message shorter than its header"
    );
    Ok(u16::from_be_bytes([msg[ARCOUNT_AT], msg[ARCOUNT_AT + 1]]))
}

pub fn set_arcount(msg: &mut [u8], n: u16) {
    msg[ARCOUNT_AT..ARCOUNT_AT + 2].copy_from_slice(&n.to_be_bytes());
}

/// A DNS name in canonical wire form (RFC 4034 6.2: lower case, uncompressed), as TSIG
/// digests it. `name` may end with a dot or not.
pub fn canonical_name(name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            ensure!(
                !label.is_empty() && label.len() <= 63,
                "invalid DNS name '{name}'"
            );
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    ensure!(
        out.len() <= 255,
        "DNS name '{name}' is longer than 255 octets"
    );
    Ok(out)
}

/// A cursor over a received message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).context("DNS message truncated")?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).context("DNS message truncated")?;
        let s = self
            .buf
            .get(self.pos..end)
            .context("DNS message truncated")?;
        self.pos = end;
        Ok(s)
    }

    /// Reads a possibly compressed name and returns it in canonical wire form.
    pub fn name(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = self.pos;
        let mut resume = None;
        // Each pointer must go backwards, so the loop ends; the bound guards bad input anyway.
        for _ in 0..128 {
            let len = *self.buf.get(at).context("DNS name truncated")?;
            match len & 0xc0 {
                0x00 => {
                    out.push(len);
                    if len == 0 {
                        self.pos = resume.unwrap_or(at + 1);
                        return Ok(out);
                    }
                    let label = self
                        .buf
                        .get(at + 1..at + 1 + usize::from(len))
                        .context("DNS name truncated")?;
                    out.extend(label.iter().map(u8::to_ascii_lowercase));
                    at += 1 + usize::from(len);
                }
                0xc0 => {
                    let lo = *self.buf.get(at + 1).context("DNS name truncated")?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                    ensure!(target < at, "DNS name compression loop");
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => bail!("unsupported DNS label type"),
            }
        }
        bail!("DNS name too long")
    }

    /// Skips the question section and `n` resource records.
    pub fn skip_records(&mut self, questions: u16, n: usize) -> Result<()> {
        for _ in 0..questions {
            self.name()?;
            self.bytes(4)?;
        }
        for _ in 0..n {
            self.name()?;
            self.bytes(8)?;
            let rdlen = self.u16()?;
            self.bytes(usize::from(rdlen))?;
        }
        Ok(())
    }
}

/// Where the last record of the message starts (the only place a TSIG RR may be), if there
/// are additional records.
pub fn last_additional_offset(msg: &[u8]) -> Result<Option<usize>> {
    ensure!(
        msg.len() >= HEADER_LEN,
        "DNS message shorter than its header"
    );
    let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    if ar == 0 {
        return Ok(None);
    }
    let mut r = Reader::new(msg, HEADER_LEN);
    r.skip_records(qd, usize::from(an) + usize::from(ns) + usize::from(ar) - 1)?;
    Ok(Some(r.pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_are_lower_case_and_rooted() {
        assert_eq!(
            canonical_name("Key.Example.").unwrap(),
            b"\x03key\x07example\x00".to_vec()
        );
        assert_eq!(
            canonical_name("key.example").unwrap(),
            canonical_name("KEY.EXAMPLE.").unwrap()
        );
        assert_eq!(canonical_name(".").unwrap(), vec![0]);
        assert!(canonical_name("a..b").is_err());
        assert!(canonical_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn reader_follows_compression_pointers() {
        // header (12) + "\x03foo\x00" at 12, then a name "\x03bar" + pointer to 12.
        let mut msg = vec![0u8; 12];
        msg.extend(b"\x03foo\x00");
        msg.extend(b"\x03BAR\xc0\x0c");
        msg.push(0xaa);
        let mut r = Reader::new(&msg, 17);
        assert_eq!(r.name().unwrap(), b"\x03bar\x03foo\x00".to_vec());
        assert_eq!(r.pos, 23);
        assert_eq!(r.u8().unwrap(), 0xaa);
    }

    #[test]
    fn reader_rejects_forward_pointers_and_truncation() {
        let mut msg = vec![0u8; 12];
        msg.extend(b"\xc0\x0c");
        assert!(Reader::new(&msg, 12).name().is_err());
        let mut msg = vec![0u8; 12];
        msg.extend(b"\x05ab");
        assert!(Reader::new(&msg, 12).name().is_err());
    }
}
