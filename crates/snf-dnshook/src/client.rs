//! Talking to the primary server: plain queries for the current records, signed UPDATEs,
//! retries with backoff on timeouts and SERVFAIL, and errors that name the RCODE.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::tsig::{self, Key, Verdict};
use crate::update::{RType, Rd, RrSet, ZoneUpdate};
use crate::wire;

pub const NOERROR: u8 = 0;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const REFUSED: u8 = 5;
pub const NOTAUTH: u8 = 9;
pub const NOTZONE: u8 = 10;

pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        n => format!("RCODE {n}"),
    }
}

/// The server answered, but not with success.
#[derive(Debug)]
pub struct RcodeError {
    pub what: String,
    pub server: SocketAddr,
    pub rcode: u8,
    pub tsig_error: Option<u16>,
    pub key: Option<String>,
}

impl RcodeError {
    /// A prerequisite did not hold: someone changed the records since we read them.
    pub fn is_prerequisite_failure(&self) -> bool {
        matches!(self.rcode, 3 | 6 | 7 | 8)
    }

    fn hint(&self) -> String {
        let key = self.key.as_deref().unwrap_or("(none)");
        match (self.rcode, self.tsig_error) {
            (_, Some(16)) => format!("the server rejected the signature of key '{key}': wrong secret or algorithm"),
            (_, Some(17)) => format!("the server does not know key '{key}' with this algorithm"),
            (_, Some(18)) => "the clocks of this node and the server differ by more than the fudge".into(),
            (9, None) => "the server is not authoritative for this zone, or the zone does not exist there".into(),
            (5, _) => "the server does not serve this zone, or its allow-update/allow-query does not permit this key or address".into(),
            (10, _) => "a record lies outside the zone".into(),
            (6..=8, _) => "the records changed since they were read (prerequisite failed)".into(),
            (2, _) => "the server failed (see its log)".into(),
            (1, _) => "the server could not parse the message".into(),
            (4, _) => "the server does not implement dynamic updates".into(),
            _ => String::new(),
        }
    }
}

impl fmt::Display for RcodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: server {} answered {}",
            self.what,
            self.server,
            rcode_name(self.rcode)
        )?;
        if let Some(e) = self.tsig_error {
            write!(f, " ({})", tsig::error_name(e))?;
        }
        let hint = self.hint();
        if !hint.is_empty() {
            write!(f, ": {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RcodeError {}

/// The server answered a query without the AA bit: it is not the zone's server.
#[derive(Debug)]
pub struct NotAuthoritative {
    pub what: String,
    pub server: SocketAddr,
}

impl fmt::Display for NotAuthoritative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: server {} is not authoritative for the name (its answer lacks the AA flag): \
             `server` must be the zone's primary",
            self.what, self.server
        )
    }
}

impl std::error::Error for NotAuthoritative {}

pub struct Client {
    /// The server's addresses; attempts go to them in turn.
    pub servers: Vec<SocketAddr>,
    pub key: Option<Key>,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
}

/// What a query found.
pub struct Answer {
    pub rcode: u8,
    pub records: RrSet,
    /// Owner of the SOA in the answer or authority section: the enclosing zone.
    pub soa_owner: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id() -> Result<u16> {
    Ok(getrandom::u32().map_err(|e| anyhow!("no random numbers: {e}"))? as u16)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One request, one answer: UDP, or TCP for large requests and truncated answers.
fn send(server: SocketAddr, timeout: Duration, request: &[u8], id: u16) -> io::Result<Vec<u8>> {
    // Requests beyond the classic 512-octet limit go over TCP (as nsupdate does).
    if request.len() > 512 {
        return send_tcp(server, timeout, request);
    }
    let answer = send_udp(server, timeout, request, id)?;
    if wire::is_truncated(&answer) {
        return send_tcp(server, timeout, request);
    }
    Ok(answer)
}

fn send_udp(server: SocketAddr, timeout: Duration, request: &[u8], id: u16) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("constant")
    } else {
        "[::]:0".parse().expect("constant")
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(server)?;
    sock.send(request)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        let answer = &buf[..n];
        // Ignore stray datagrams (late answers to an earlier attempt).
        if wire::id(answer) == Some(id) && wire::is_response(answer) {
            return Ok(answer.to_vec());
        }
    }
}

fn send_tcp(server: SocketAddr, timeout: Duration, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer)?;
    Ok(answer)
}

impl Client {
    /// Sends `msg` (signed when a key is configured) and returns the checked answer bytes.
    /// Timeouts, unreachable servers and SERVFAIL are retried with exponential backoff.
    fn exchange(&self, msg: &mut Message, what: &str) -> Result<(Vec<u8>, SocketAddr)> {
        anyhow::ensure!(!self.servers.is_empty(), "no server address");
        let mut last: Option<anyhow::Error> = None;
        for attempt in 0..self.attempts {
            let server = self.servers[attempt as usize % self.servers.len()];
            if attempt > 0 {
                std::thread::sleep(self.backoff * 2u32.saturating_pow(attempt - 1));
            }
            // Fresh id and signature time per attempt.
            msg.metadata.id = random_id()?;
            let bytes = msg.to_vec().context("cannot encode the DNS message")?;
            let (request, request_mac) = match &self.key {
                Some(k) => {
                    let s = tsig::sign(&bytes, k, now())?;
                    (s.bytes, Some(s.mac))
                }
                None => (bytes, None),
            };
            let answer = match send(server, self.timeout, &request, msg.metadata.id) {
                Ok(a) => a,
                Err(e) if is_timeout(&e) => {
                    last = Some(anyhow!("no answer within {:?}", self.timeout));
                    continue;
                }
                Err(e) => {
                    last = Some(anyhow!(e));
                    continue;
                }
            };
            let rcode = wire::rcode(&answer).context("answer shorter than a DNS header")?;
            let tsig_error = match (&self.key, &request_mac) {
                (Some(k), Some(mac)) => match tsig::verify_response(&answer, k, mac, now())
                    .with_context(|| format!("{what}: answer from {server}"))?
                {
                    Verdict::Valid => None,
                    Verdict::ServerError(e) => Some(e),
                    // BIND signs every answer to a signed request, errors included, unless it
                    // could not use the key; an unsigned success could be forged.
                    Verdict::Unsigned if rcode == NOERROR || rcode == NXDOMAIN => bail!(
                        "{what}: the answer from {server} is not signed with key '{}'",
                        k.name
                    ),
                    Verdict::Unsigned => None,
                },
                _ => None,
            };
            if rcode == SERVFAIL && tsig_error.is_none() {
                last = Some(anyhow!(self.rcode_error(what, server, rcode, None)));
                continue;
            }
            if tsig_error.is_some() {
                return Err(self.rcode_error(what, server, rcode, tsig_error).into());
            }
            return Ok((answer, server));
        }
        let last = last.unwrap_or_else(|| anyhow!("no attempt made"));
        let servers: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        Err(last.context(format!(
            "{what}: no usable answer from {} after {} attempt(s)",
            servers.join(", "),
            self.attempts
        )))
    }

    fn rcode_error(
        &self,
        what: &str,
        server: SocketAddr,
        rcode: u8,
        tsig_error: Option<u16>,
    ) -> RcodeError {
        RcodeError {
            what: what.to_string(),
            server,
            rcode,
            tsig_error,
            key: self.key.as_ref().map(|k| k.name.clone()),
        }
    }

    /// The records of one RRset (`rcode` tells NXDOMAIN from "exists, no such type").
    pub fn query(&self, name: &str, rtype: RecordType) -> Result<Answer> {
        let what = format!("query {name} {rtype}");
        let mut m = Message::new(0, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = false;
        m.add_query(Query::query(
            Name::from_ascii(name).with_context(|| format!("invalid DNS name '{name}'"))?,
            rtype,
        ));
        let (bytes, server) = self.exchange(&mut m, &what)?;
        let rcode = wire::rcode(&bytes).unwrap_or(SERVFAIL);
        let answer = Message::from_vec(&bytes)
            .map_err(|e| anyhow!("{what}: cannot parse the answer from {server}: {e}"))?;
        if rcode != NOERROR && rcode != NXDOMAIN {
            return Err(self.rcode_error(&what, server, rcode, None).into());
        }
        // Only the zone's own server knows the records as they are (a resolver's answer may be
        // cached or from elsewhere).
        if !answer.metadata.authoritative {
            return Err(NotAuthoritative { what, server }.into());
        }
        let wanted = Name::from_ascii(name)?;
        let mut records = RrSet::default();
        for r in answer
            .answers
            .iter()
            .filter(|r| r.name == wanted && r.record_type() == rtype)
        {
            if let Some(rd) = Rd::from_hickory(&r.data) {
                records.rds.push(rd);
                records.ttl = Some(r.ttl);
            }
        }
        let soa_owner = answer
            .answers
            .iter()
            .chain(&answer.authorities)
            .find(|r| matches!(r.data, RData::SOA(_)))
            .map(|r| r.name.to_ascii().to_ascii_lowercase());
        Ok(Answer {
            rcode,
            records,
            soa_owner,
        })
    }

    pub fn lookup(&self, name: &str, rtype: RType) -> Result<RrSet> {
        Ok(self.query(name, rtype.hickory())?.records)
    }

    /// The zone `name` belongs to on this server, or `None` if the server serves no
    /// enclosing zone (REFUSED).
    pub fn zone_of(&self, name: &str) -> Result<Option<String>> {
        match self.query(name, RecordType::SOA) {
            Ok(a) => Ok(a.soa_owner),
            Err(e) if e.is::<NotAuthoritative>() => Ok(None),
            Err(e) => match e.downcast_ref::<RcodeError>() {
                Some(r) if r.rcode == REFUSED || r.rcode == NOTAUTH => Ok(None),
                _ => Err(e),
            },
        }
    }

    pub fn update(&self, u: &ZoneUpdate) -> Result<()> {
        let what = format!("UPDATE of zone {}", u.zone);
        let mut m = u.to_message(0)?;
        let (bytes, server) = self.exchange(&mut m, &what)?;
        let rcode = wire::rcode(&bytes).unwrap_or(SERVFAIL);
        if rcode != NOERROR {
            return Err(self.rcode_error(&what, server, rcode, None).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A UDP responder on 127.0.0.1 that answers the first `failures` requests with
    /// SERVFAIL and the rest with an empty NOERROR (with the AA flag if `aa`); counts
    /// requests.
    fn responder(failures: usize, aa: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                let i = count.fetch_add(1, Ordering::SeqCst);
                let mut answer = buf[..n].to_vec();
                answer[2] = if aa { 0x84 } else { 0x80 }; // QR, AA
                answer[3] = if i < failures { SERVFAIL } else { NOERROR };
                let _ = sock.send_to(&answer, peer);
            }
        });
        (addr, seen)
    }

    fn client(addr: SocketAddr) -> Client {
        Client {
            servers: vec![addr],
            key: None,
            timeout: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(10),
        }
    }

    #[test]
    fn servfail_is_retried() {
        let (addr, seen) = responder(2, true);
        let rrs = client(addr).lookup("web1.example.org.", RType::A).unwrap();
        assert!(rrs.rds.is_empty());
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn persistent_servfail_fails_after_the_last_attempt() {
        let (addr, seen) = responder(usize::MAX, true);
        let e = client(addr)
            .lookup("web1.example.org.", RType::A)
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("after 3 attempt(s)"), "{msg}");
        assert!(msg.contains("answered SERVFAIL"), "{msg}");
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn answers_without_aa_are_not_trusted() {
        let (addr, _) = responder(0, false);
        let c = client(addr);
        let e = c.lookup("web1.example.org.", RType::A).unwrap_err();
        assert!(e.to_string().contains("not authoritative"), "{e}");
        // For finding a stale address's zone it means "no zone here".
        assert_eq!(c.zone_of("1.100.51.198.in-addr.arpa.").unwrap(), None);
    }

    #[test]
    fn rcode_errors_explain_themselves() {
        let e = RcodeError {
            what: "UPDATE of zone example.org.".into(),
            server: "127.0.0.1:53".parse().unwrap(),
            rcode: 9,
            tsig_error: Some(18),
            key: Some("k".into()),
        };
        assert_eq!(
            e.to_string(),
            "UPDATE of zone example.org.: server 127.0.0.1:53 answered NOTAUTH (BADTIME): \
             the clocks of this node and the server differ by more than the fudge"
        );
        assert!(!e.is_prerequisite_failure());
        for (rcode, name) in [
            (7, "YXRRSET"),
            (8, "NXRRSET"),
            (10, "NOTZONE"),
            (5, "REFUSED"),
        ] {
            assert_eq!(rcode_name(rcode), name);
        }
    }
}
