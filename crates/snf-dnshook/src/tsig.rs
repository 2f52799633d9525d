//! TSIG (RFC 8945): signing requests and verifying the server's signed answers.
//!
//! Done here rather than with hickory's `TSigner`, which only implements HMAC-SHA256/384/512
//! and needs ring or aws-lc; BIND keys also use HMAC-MD5, -SHA1 and -SHA224.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use hmac::{Hmac, KeyInit, Mac};

use crate::wire::{self, Reader};

pub const TYPE_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;

/// The HMAC algorithms BIND accepts for TSIG keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    HmacMd5,
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::HmacMd5,
        Algorithm::HmacSha1,
        Algorithm::HmacSha224,
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// The name as BIND's `algorithm` statement writes it.
    pub fn bind_name(self) -> &'static str {
        match self {
            Algorithm::HmacMd5 => "hmac-md5",
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha224 => "hmac-sha224",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm name carried in the TSIG RR (RFC 8945 6).
    pub fn wire_name(self) -> &'static str {
        match self {
            Algorithm::HmacMd5 => "hmac-md5.sig-alg.reg.int.",
            Algorithm::HmacSha1 => "hmac-sha1.",
            Algorithm::HmacSha224 => "hmac-sha224.",
            Algorithm::HmacSha256 => "hmac-sha256.",
            Algorithm::HmacSha384 => "hmac-sha384.",
            Algorithm::HmacSha512 => "hmac-sha512.",
        }
    }

    /// DNSSEC algorithm numbers that `dnssec-keygen` used in `K*.private` files.
    pub fn from_private_key_number(n: u16) -> Option<Self> {
        Some(match n {
            157 => Algorithm::HmacMd5,
            161 => Algorithm::HmacSha1,
            162 => Algorithm::HmacSha224,
            163 => Algorithm::HmacSha256,
            164 => Algorithm::HmacSha384,
            165 => Algorithm::HmacSha512,
            _ => return None,
        })
    }

    pub fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::HmacMd5 => run::<Hmac<md5::Md5>>(key, data),
            Algorithm::HmacSha1 => run::<Hmac<sha1::Sha1>>(key, data),
            Algorithm::HmacSha224 => run::<Hmac<sha2::Sha224>>(key, data),
            Algorithm::HmacSha256 => run::<Hmac<sha2::Sha256>>(key, data),
            Algorithm::HmacSha384 => run::<Hmac<sha2::Sha384>>(key, data),
            Algorithm::HmacSha512 => run::<Hmac<sha2::Sha512>>(key, data),
        }
    }

    /// Constant-time comparison of a received MAC with the expected one.
    pub fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(key, data);
        expected.len() == tag.len()
            && expected
                .iter()
                .zip(tag)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl FromStr for Algorithm {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().trim_end_matches('.').to_ascii_lowercase();
        for a in Algorithm::ALL {
            if norm == a.bind_name() || norm == a.wire_name().trim_end_matches('.') {
                return Ok(a);
            }
        }
        bail!(
            "unknown TSIG algorithm '{s}' (expected one of hmac-md5, hmac-sha1, hmac-sha224, \
             hmac-sha256, hmac-sha384, hmac-sha512)"
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.bind_name())
    }
}

/// A shared-secret TSIG key as BIND knows it.
#[derive(Clone)]
pub struct Key {
    /// Key name, lower case, without the trailing dot.
    pub name: String,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
    /// Allowed clock skew in seconds (RFC 8945 recommends 300).
    pub fudge: u16,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Key({} {})", self.name, self.algorithm)
    }
}

/// TSIG error codes (RFC 8945 3, RFC 2845).
pub fn error_name(code: u16) -> String {
    match code {
        16 => "BADSIG".into(),
        17 => "BADKEY".into(),
        18 => "BADTIME".into(),
        22 => "BADTRUNC".into(),
        n => format!("TSIG error {n}"),
    }
}

/// The TSIG variables appended to the digest (RFC 8945 4.3.3).
fn variables(
    key_name: &[u8],
    alg: &[u8],
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(key_name.len() + alg.len() + 20 + other.len());
    v.extend_from_slice(key_name);
    v.extend_from_slice(&CLASS_ANY.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(alg);
    v.extend_from_slice(&time.to_be_bytes()[2..]);
    v.extend_from_slice(&fudge.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&(other.len() as u16).to_be_bytes());
    v.extend_from_slice(other);
    v
}

/// A signed request and the MAC that the answer's signature must chain to.
pub struct Signed {
    pub bytes: Vec<u8>,
    pub mac: Vec<u8>,
}

/// Appends a TSIG RR to an encoded message (which must not already carry one).
pub fn sign(msg: &[u8], key: &Key, time: u64) -> Result<Signed> {
    let name = wire::canonical_name(&key.name)?;
    let alg = wire::canonical_name(key.algorithm.wire_name())?;
    let mut tbs = msg.to_vec();
    tbs.extend(variables(&name, &alg, time, key.fudge, 0, &[]));
    let mac = key.algorithm.mac(&key.secret, &tbs);
    let bytes = append_tsig(msg, &name, &alg, time, key.fudge, &mac)?;
    Ok(Signed { bytes, mac })
}

/// `msg` with one more additional record: the TSIG RR carrying `mac`.
fn append_tsig(
    msg: &[u8],
    name: &[u8],
    alg: &[u8],
    time: u64,
    fudge: u16,
    mac: &[u8],
) -> Result<Vec<u8>> {
    let id = wire::id(msg).context("DNS message shorter than its header")?;
    let mut rdata = Vec::with_capacity(alg.len() + 16 + mac.len());
    rdata.extend_from_slice(alg);
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&fudge.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes()); // error
    rdata.extend_from_slice(&0u16.to_be_bytes()); // other len

    let mut out = msg.to_vec();
    let ar = wire::arcount(&out)?;
    wire::set_arcount(&mut out, ar + 1);
    out.extend_from_slice(name);
    out.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    Ok(out)
}

/// What the TSIG RR of an answer says.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed with our key, MAC and time valid.
    Valid,
    /// No TSIG RR at all.
    Unsigned,
    /// The server reports a TSIG error (its MAC is then empty and not checked).
    ServerError(u16),
}

/// The TSIG RR found at the end of a message.
struct TsigRr {
    start: usize,
    key_name: Vec<u8>,
    alg: Vec<u8>,
    time: u64,
    fudge: u16,
    mac: Vec<u8>,
    original_id: u16,
    error: u16,
    other: Vec<u8>,
}

fn find_tsig(msg: &[u8]) -> Result<Option<TsigRr>> {
    let Some(start) = wire::last_additional_offset(msg)? else {
        return Ok(None);
    };
    let mut r = Reader::new(msg, start);
    let key_name = r.name()?;
    if r.u16()? != TYPE_TSIG {
        return Ok(None);
    }
    r.u16()?; // class
    r.u32()?; // ttl
    let rdlen = usize::from(r.u16()?);
    let rdata_end = r.pos + rdlen;
    let alg = r.name()?;
    let time = (u64::from(r.u16()?) << 32) | u64::from(r.u32()?);
    let fudge = r.u16()?;
    let mac_len = usize::from(r.u16()?);
    let mac = r.bytes(mac_len)?.to_vec();
    let original_id = r.u16()?;
    let error = r.u16()?;
    let other_len = usize::from(r.u16()?);
    let other = r.bytes(other_len)?.to_vec();
    ensure!(r.pos == rdata_end, "malformed TSIG record in the answer");
    Ok(Some(TsigRr {
        start,
        key_name,
        alg,
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
    }))
}

/// Checks the answer to a request signed with `request_mac` (RFC 8945 5.3).
pub fn verify_response(msg: &[u8], key: &Key, request_mac: &[u8], now: u64) -> Result<Verdict> {
    let Some(t) = find_tsig(msg)? else {
        return Ok(Verdict::Unsigned);
    };
    if t.error != 0 {
        return Ok(Verdict::ServerError(t.error));
    }
    ensure!(
        t.key_name == wire::canonical_name(&key.name)?
            && t.alg == wire::canonical_name(key.algorithm.wire_name())?,
        "the answer is signed with another key than '{}'",
        key.name
    );
    let mut tbs = Vec::with_capacity(msg.len() + request_mac.len() + 64);
    tbs.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    tbs.extend_from_slice(request_mac);
    let mut body = msg[..t.start].to_vec();
    body[..2].copy_from_slice(&t.original_id.to_be_bytes());
    let ar = wire::arcount(&body)?;
    wire::set_arcount(&mut body, ar - 1);
    tbs.extend(body);
    tbs.extend(variables(
        &t.key_name,
        &t.alg,
        t.time,
        t.fudge,
        t.error,
        &t.other,
    ));
    ensure!(
        key.algorithm.verify(&key.secret, &tbs, &t.mac),
        "the answer's TSIG signature does not verify with key '{}'",
        key.name
    );
    ensure!(
        now.abs_diff(t.time) <= u64::from(t.fudge),
        "the answer's TSIG time is {} s away from ours (fudge {} s): check the clocks",
        now.abs_diff(t.time),
        t.fudge
    );
    Ok(Verdict::Valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

    fn key(alg: Algorithm) -> Key {
        Key {
            name: "dnshook-key".into(),
            algorithm: alg,
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            fudge: 300,
        }
    }

    fn query_bytes(id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("example.org.").unwrap(),
            RecordType::SOA,
        ));
        m.to_vec().unwrap()
    }

    // RFC 4231 test case 2 (HMAC-SHA-256 with key "Jefe").
    #[test]
    fn hmac_sha256_known_vector() {
        let mac = Algorithm::HmacSha256.mac(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn algorithm_names_parse() {
        for a in Algorithm::ALL {
            assert_eq!(a.bind_name().parse::<Algorithm>().unwrap(), a);
            assert_eq!(a.wire_name().parse::<Algorithm>().unwrap(), a);
        }
        assert_eq!(
            "HMAC-MD5.SIG-ALG.REG.INT".parse::<Algorithm>().unwrap(),
            Algorithm::HmacMd5
        );
        let e = "hmac-foo".parse::<Algorithm>().unwrap_err().to_string();
        assert!(e.contains("unknown TSIG algorithm 'hmac-foo'"), "{e}");
    }

    #[test]
    fn signed_message_decodes_with_hickory() {
        for alg in Algorithm::ALL {
            let signed = sign(&query_bytes(0x1234), &key(alg), 1_700_000_000).unwrap();
            let m = Message::from_vec(&signed.bytes).unwrap();
            // Without hickory's crypto features the TSIG RR stays in the additional section.
            assert_eq!(m.additionals.len(), 1);
            let rr = &m.additionals[0];
            assert_eq!(rr.name, Name::from_ascii("dnshook-key.").unwrap());
            assert_eq!(rr.dns_class, DNSClass::ANY);
            assert_eq!(rr.ttl, 0);
            let RData::TSIG(t) = &rr.data else {
                panic!("not a TSIG record: {rr:?}");
            };
            assert_eq!(t.time, 1_700_000_000);
            assert_eq!(t.fudge, 300);
            assert_eq!(t.oid, 0x1234);
            assert_eq!(t.mac, signed.mac);
            assert_eq!(
                t.algorithm.to_name().to_ascii().trim_end_matches('.'),
                alg.wire_name().trim_end_matches('.')
            );
            assert_eq!(m.queries.len(), 1);
        }
    }

    /// Signs an answer the way a server does (RFC 8945 5.3): request MAC, then the answer.
    fn server_sign(answer: &[u8], key: &Key, request_mac: &[u8], time: u64) -> Vec<u8> {
        let name = wire::canonical_name(&key.name).unwrap();
        let alg = wire::canonical_name(key.algorithm.wire_name()).unwrap();
        let mut tbs = (request_mac.len() as u16).to_be_bytes().to_vec();
        tbs.extend_from_slice(request_mac);
        tbs.extend_from_slice(answer);
        tbs.extend(variables(&name, &alg, time, key.fudge, 0, &[]));
        let mac = key.algorithm.mac(&key.secret, &tbs);
        append_tsig(answer, &name, &alg, time, key.fudge, &mac).unwrap()
    }

    #[test]
    fn verifies_a_correctly_signed_answer_and_rejects_tampering() {
        let k = key(Algorithm::HmacSha256);
        let req = sign(&query_bytes(7), &k, 1000).unwrap();
        let mut answer = query_bytes(7);
        answer[2] |= 0x80;
        let good = server_sign(&answer, &k, &req.mac, 1001);
        assert_eq!(
            verify_response(&good, &k, &req.mac, 1002).unwrap(),
            Verdict::Valid
        );
        // Another request MAC (replay onto another request) fails.
        assert!(verify_response(&good, &k, &[0u8; 32], 1002).is_err());
        // A flipped bit in the body fails.
        let mut bad = good.clone();
        bad[3] ^= 0x01;
        assert!(verify_response(&bad, &k, &req.mac, 1002).is_err());
        // Too far from our clock.
        let e = verify_response(&good, &k, &req.mac, 5000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("check the clocks"), "{e}");
        // Unsigned answers are reported as such.
        assert_eq!(
            verify_response(&answer, &k, &req.mac, 1002).unwrap(),
            Verdict::Unsigned
        );
    }

    #[test]
    fn reports_server_side_tsig_errors() {
        let k = key(Algorithm::HmacSha256);
        let mut answer = sign(&query_bytes(9), &k, 1000).unwrap().bytes;
        // Error field = BADSIG (16): the two bytes before the "other len".
        let n = answer.len();
        answer[n - 4..n - 2].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            verify_response(&answer, &k, &[], 1000).unwrap(),
            Verdict::ServerError(16)
        );
        assert_eq!(error_name(16), "BADSIG");
        assert_eq!(error_name(17), "BADKEY");
    }
}
