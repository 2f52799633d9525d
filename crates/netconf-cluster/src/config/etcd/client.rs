//! etcd's v3 API through its JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`), over plain
//! HTTP (or HTTPS for `etcds://`, with the settings of `tls.rs`) with a blocking client: a command is one short process that reads once and commits
//! once, so an async runtime, gRPC stubs and `protoc` would cost more than they give (see
//! the commit that added this module for the measured figures).
//!
//! The gateway's traps are handled here once: numbers come as JSON strings; a failed txn has
//! no `succeeded` field at all (missing means failed); a compare without `target` and
//! `result` silently compares `VERSION == 0`, so every compare carries both; HTTP 400, 429
//! and 503 carry etcd's error text in the body.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::url::EtcdUrl;

/// A request waits this long at most; a leader that died with the request in flight would
/// otherwise hold it for the server's own 5–7 s timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// etcd's default `--max-txn-ops`: the most entries in each of a txn's lists.
pub const MAX_TXN_OPS: usize = 128;
/// etcd's default `--max-request-bytes` (of the decoded request).
pub const MAX_REQUEST_BYTES: usize = 1_572_864;
/// The protobuf framing of one compare or op, over its key and value bytes (a safe bound).
const PER_ENTRY_OVERHEAD: usize = 48;
/// A whole cluster read is refused above this (100,000 instances take about 60 MB).
const MAX_RESPONSE_BYTES: u64 = 1 << 30;
/// ureq's input and output buffers, and the largest answer header taken (etcd's gateway
/// sends a few hundred bytes of headers).
const IO_BUFFER_BYTES: usize = 16 << 10;
/// A range of many keys is read in pages of this many (about 10 MB of instances), all at
/// the revision of the first, so that no single answer takes longer than the request
/// timeout. Not fewer: etcd 3.4 walks every key of the range for each page to count them.
const PAGE_KEYS: i64 = 16384;

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// No member could be reached; nothing was sent.
    Unreachable(String),
    /// The request was sent but no answer came (a timeout, a dropped connection, etcd's own
    /// "request timed out"): a txn may or may not have been applied.
    Unknown(String),
    /// etcd answered with an error (too large, too many operations, no space, …); nothing
    /// was applied.
    Refused(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Unreachable(m) | EtcdError::Unknown(m) | EtcdError::Refused(m) => {
                f.write_str(m)
            }
        }
    }
}

/// One key as a range returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    /// How many times the key was written since it was created (1 after the first put).
    pub version: i64,
}

/// Every key of a range, all as of one revision.
#[derive(Debug, Clone)]
pub struct RangeResult {
    pub revision: i64,
    pub kvs: Vec<Kv>,
    /// How many keys the range holds, before `min_mod_revision` left some out.
    pub count: i64,
    /// The etcd cluster that answered (its ID, as the gateway gives it): revisions mean
    /// something only within one cluster.
    pub cluster_id: String,
}

/// A condition of a txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmp {
    /// The key was last written at exactly this revision.
    ModIs(Vec<u8>, i64),
    /// The key does not exist (`CREATE == 0`).
    Absent(Vec<u8>),
    /// The key exists and holds exactly this value (etcd fails a value compare on an
    /// absent key).
    ValueIs(Vec<u8>, Vec<u8>),
    /// No key in `[from, to)` was written after `revision`.
    NoneWrittenAfter {
        from: Vec<u8>,
        to: Vec<u8>,
        revision: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// What a txn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held and every op was applied, at this revision.
    Committed(i64),
    /// A compare failed; nothing was applied.
    Conflict,
}

/// The end of a prefix range: the prefix with its last byte incremented.
pub fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

/// Checks a txn against etcd's limits before sending it, so that a change too large for
/// one transaction fails with the reason rather than etcd's bare code.
pub fn check_limits(compares: &[Cmp], ops: &[Op]) -> Result<(), String> {
    if compares.len() > MAX_TXN_OPS || ops.len() > MAX_TXN_OPS {
        return Err(format!(
            "this change needs {} conditions and {} writes in one etcd transaction, more than its limit of {MAX_TXN_OPS} each",
            compares.len(),
            ops.len()
        ));
    }
    let cmp_bytes: usize = compares
        .iter()
        .map(|c| {
            PER_ENTRY_OVERHEAD
                + match c {
                    Cmp::ModIs(k, _) | Cmp::Absent(k) => k.len(),
                    Cmp::ValueIs(k, v) => k.len() + v.len(),
                    Cmp::NoneWrittenAfter { from, to, .. } => from.len() + to.len(),
                }
        })
        .sum();
    let op_bytes: usize = ops
        .iter()
        .map(|o| {
            PER_ENTRY_OVERHEAD
                + match o {
                    Op::Put(k, v) => k.len() + v.len(),
                    Op::Delete(k) => k.len(),
                }
        })
        .sum();
    if cmp_bytes + op_bytes > MAX_REQUEST_BYTES {
        return Err(format!(
            "this change is about {} bytes, more than the {MAX_REQUEST_BYTES} bytes etcd accepts in one request",
            cmp_bytes + op_bytes
        ));
    }
    Ok(())
}

/// A client of one etcd cluster: its members' gateways, tried in turn.
pub struct Client {
    agent: ureq::Agent,
    bases: Vec<String>,
    /// The member that answered last; requests start there.
    current: AtomicUsize,
    shown: String,
    /// Why nothing can be sent at all (the TLS settings of `etcds://` are unusable): every
    /// request fails with it, before connecting.
    unusable: Option<String>,
    /// When every request of this client must have ended (`with_budget`).
    deadline: Option<Instant>,
    /// How the members are reached, for the hints of failed connections.
    link: Link,
    /// Requests sent and answer bytes received, for tests that show what a command reads.
    requests: AtomicU64,
    received: AtomicU64,
}

/// Plain HTTP, or TLS with or without a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Plain,
    Tls { client_cert: bool },
}

/// One range of a read: `key` alone, or `[key, end)`, at `revision` (the current one when
/// `None`), at most `limit` keys (0: all).
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Vec<u8>,
    pub end: Option<Vec<u8>>,
    pub revision: Option<i64>,
    pub limit: i64,
    pub keys_only: bool,
    /// Answered by the member asked from what it has applied, without asking the leader
    /// (for a read pinned to a revision that member has already shown).
    pub serializable: bool,
    /// Only keys changed at or after this revision are returned (the count still counts
    /// them all).
    pub min_mod_revision: Option<i64>,
}

impl Read {
    /// One key at `revision`.
    pub fn key(key: Vec<u8>, revision: Option<i64>) -> Self {
        Read {
            key,
            end: None,
            revision,
            limit: 0,
            keys_only: false,
            serializable: false,
            min_mod_revision: None,
        }
    }

    /// Every key under `prefix` at `revision`.
    pub fn prefix(prefix: &[u8], revision: Option<i64>) -> Self {
        Read {
            key: prefix.to_vec(),
            end: Some(range_end(prefix)),
            revision,
            limit: 0,
            keys_only: false,
            serializable: false,
            min_mod_revision: None,
        }
    }

    fn json(&self) -> Value {
        let mut req = json!({ "key": B64.encode(&self.key) });
        if let Some(e) = &self.end {
            req["range_end"] = json!(B64.encode(e));
        }
        if let Some(r) = self.revision {
            req["revision"] = json!(r.to_string());
        }
        if self.limit > 0 {
            req["limit"] = json!(self.limit.to_string());
        }
        if self.keys_only {
            req["keys_only"] = json!(true);
        }
        if self.serializable {
            req["serializable"] = json!(true);
        }
        if let Some(m) = self.min_mod_revision {
            req["min_mod_revision"] = json!(m.to_string());
        }
        req
    }
}

/// A request body as a member can be asked it, and what came of the attempt.
enum Attempt {
    Answer(u16, Vec<u8>),
    /// Nothing reached the member (refused, unreachable, connect timeout).
    NotSent(String),
    /// Sent, no complete answer.
    Lost(String),
}

impl Client {
    pub fn new(url: &EtcdUrl) -> Self {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            // ureq's default buffers are 128 KiB each, allocated and zeroed for every
            // connection, that is every command: a cost per command larger than the
            // bodies sent here (a txn is a few KiB; answers stream through the buffer).
            .input_buffer_size(IO_BUFFER_BYTES)
            .output_buffer_size(IO_BUFFER_BYTES)
            .max_response_header_size(IO_BUFFER_BYTES)
            .http_status_as_error(false);
        let mut unusable = None;
        let mut link = Link::Plain;
        if url.tls() {
            match super::tls::load() {
                Ok(tls) => {
                    link = Link::Tls {
                        client_cert: tls.client_cert().is_some(),
                    };
                    config = config.tls_config(tls);
                }
                Err(e) => {
                    unusable = Some(format!(
                        "cannot use the etcd cluster {url}: its TLS settings: {e}"
                    ));
                }
            }
        }
        Client {
            agent: ureq::Agent::with_parts(
                config.build(),
                ureq::unversioned::transport::DefaultConnector::new(),
                super::resolve::LiteralFirst::default(),
            ),
            bases: url
                .endpoints()
                .iter()
                .map(|e| e.base_for(url.tls()))
                .collect(),
            current: AtomicUsize::new(0),
            shown: url.to_string(),
            unusable,
            deadline: None,
            link,
            requests: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    /// Every request of this client, retries and connecting included, ends within `total`
    /// from now: for a reader that must answer at once or not at all (shell completion).
    pub fn with_budget(mut self, total: Duration) -> Self {
        self.deadline = Some(Instant::now() + total);
        self
    }

    /// What is left of the budget: `None` without one, `Some(ZERO)` once spent.
    fn left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// How many requests this client sent and how many answer bytes it received.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    fn attempt(&self, base: &str, path: &str, body: &[u8]) -> Attempt {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .agent
            .post(format!("{base}{path}"))
            .header("content-type", "application/json");
        if let Some(left) = self.left() {
            req = req
                .config()
                .timeout_global(Some(left.min(REQUEST_TIMEOUT)))
                .timeout_connect(Some(left.min(CONNECT_TIMEOUT)))
                .build();
        }
        let r = req.send(body);
        let mut resp = match r {
            Ok(r) => r,
            Err(e) => {
                let why = format!("{base}: {e}{}", hint(&e, self.link));
                return if not_sent(&e) {
                    Attempt::NotSent(why)
                } else {
                    Attempt::Lost(why)
                };
            }
        };
        let status = resp.status().as_u16();
        match resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
        {
            Ok(b) => {
                self.received.fetch_add(b.len() as u64, Ordering::Relaxed);
                Attempt::Answer(status, b)
            }
            Err(e) => Attempt::Lost(format!("{base}: reading the answer: {e}")),
        }
    }

    /// POSTs `body` to `path`, starting at the member that answered last and moving on
    /// when one cannot be reached. A request that may have been applied (`idempotent`
    /// false: a txn) is not sent twice: its outcome is for the caller to find out.
    fn post(&self, path: &str, body: &Value, idempotent: bool) -> Result<Value, EtcdError> {
        if let Some(why) = &self.unusable {
            return Err(EtcdError::Unreachable(why.clone()));
        }
        let body = serde_json::to_vec(body).map_err(|e| EtcdError::Refused(e.to_string()))?;
        let n = self.bases.len();
        let mut errors = Vec::new();
        // Two rounds: a member may be restarting, or a new leader being elected.
        'rounds: for round in 0..2 {
            if round > 0 {
                let pause = Duration::from_millis(200);
                if self.left().is_some_and(|l| l <= pause) {
                    break;
                }
                std::thread::sleep(pause);
            }
            for i in 0..n {
                if self.left().is_some_and(|l| l.is_zero()) {
                    errors.push("no answer within the time allowed".into());
                    break 'rounds;
                }
                let at = (self.current.load(Ordering::Relaxed) + i) % n;
                let base = &self.bases[at];
                match self.attempt(base, path, &body) {
                    Attempt::Answer(200, b) => {
                        self.current.store(at, Ordering::Relaxed);
                        return serde_json::from_slice(&b).map_err(|e| {
                            EtcdError::Unknown(format!("{base}: not etcd's JSON answer: {e}"))
                        });
                    }
                    Attempt::Answer(status, b) => {
                        let why = error_text(status, &b);
                        // 503: no leader, or etcd timed the request out (it may still be
                        // applied); anything else: refused, nothing applied.
                        if status == 503 {
                            if !idempotent {
                                return Err(EtcdError::Unknown(format!("{base}: {why}")));
                            }
                            errors.push(format!("{base}: {why}"));
                        } else {
                            return Err(EtcdError::Refused(format!("{base}: {why}")));
                        }
                    }
                    Attempt::NotSent(e) => errors.push(e),
                    Attempt::Lost(e) => {
                        if !idempotent {
                            return Err(EtcdError::Unknown(e));
                        }
                        errors.push(e);
                    }
                }
            }
        }
        Err(EtcdError::Unreachable(format!(
            "cannot reach the etcd cluster {}: {}",
            self.shown,
            errors.join("; ")
        )))
    }

    /// Every key under `prefix`, at `revision` (the current one when `None`), read in
    /// pages all at the revision of the first.
    pub fn range_prefix(
        &self,
        prefix: &[u8],
        revision: Option<i64>,
    ) -> Result<RangeResult, EtcdError> {
        let mut read = Read::prefix(prefix, revision);
        read.limit = PAGE_KEYS;
        let mut out: Option<RangeResult> = None;
        loop {
            let v = self.post("/v3/kv/range", &read.json(), true)?;
            let r: RangeAnswer = serde_json::from_value(v)
                .map_err(|e| EtcdError::Unknown(format!("etcd's range answer: {e}")))?;
            let more = r.more;
            let page = r.decode()?;
            let Some(last) = page.kvs.last() else {
                return Ok(out.unwrap_or(page));
            };
            read.key = last.key.clone();
            read.key.push(0);
            match &mut out {
                None => {
                    // The header names the current revision, not the one asked for.
                    read.revision.get_or_insert(page.revision);
                    out = Some(page);
                }
                Some(o) => o.kvs.extend(page.kvs),
            }
            if !more {
                return Ok(out.unwrap_or_else(|| RangeResult {
                    revision: 0,
                    kvs: Vec::new(),
                    count: 0,
                    cluster_id: String::new(),
                }));
            }
        }
    }

    /// Several ranges in read-only txns (of at most [`MAX_TXN_OPS`] each), all at one
    /// revision: that of the first txn's answer, unless the reads name theirs. Returns that
    /// revision and each read's keys, in order.
    pub fn read_many(&self, reads: &[Read]) -> Result<(i64, Vec<RangeResult>), EtcdError> {
        let mut pinned: Option<i64> = None;
        let mut out = Vec::with_capacity(reads.len());
        for chunk in reads.chunks(MAX_TXN_OPS) {
            let success: Vec<Value> = chunk
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r.revision.is_none() {
                        r.revision = pinned;
                    }
                    json!({ "request_range": r.json() })
                })
                .collect();
            let v = self.post("/v3/kv/txn", &json!({ "success": success }), true)?;
            let r: ReadTxnAnswer = serde_json::from_value(v)
                .map_err(|e| EtcdError::Unknown(format!("etcd's txn answer: {e}")))?;
            if r.responses.len() != chunk.len() {
                return Err(EtcdError::Unknown(format!(
                    "etcd answered {} of {} reads",
                    r.responses.len(),
                    chunk.len()
                )));
            }
            pinned.get_or_insert(r.header.revision);
            for resp in r.responses {
                let mut rr = resp.response_range.decode()?;
                rr.revision = r.header.revision;
                rr.cluster_id.clone_from(&r.header.cluster_id);
                out.push(rr);
            }
        }
        Ok((pinned.unwrap_or(0), out))
    }

    /// One txn: if every compare holds, apply every op.
    pub fn txn(&self, compares: &[Cmp], ops: &[Op]) -> Result<TxnOutcome, EtcdError> {
        check_limits(compares, ops).map_err(EtcdError::Refused)?;
        let compare: Vec<Value> = compares.iter().map(cmp_json).collect();
        let success: Vec<Value> = ops
            .iter()
            .map(|o| match o {
                Op::Put(k, v) => {
                    json!({"request_put": {"key": B64.encode(k), "value": B64.encode(v)}})
                }
                Op::Delete(k) => json!({"request_delete_range": {"key": B64.encode(k)}}),
            })
            .collect();
        let v = self.post(
            "/v3/kv/txn",
            &json!({"compare": compare, "success": success}),
            false,
        )?;
        let r: TxnAnswer = serde_json::from_value(v)
            .map_err(|e| EtcdError::Unknown(format!("etcd's txn answer: {e}")))?;
        // A failed txn's answer has no `succeeded` at all; only an explicit true commits.
        Ok(if r.succeeded == Some(true) {
            TxnOutcome::Committed(r.header.revision)
        } else {
            TxnOutcome::Conflict
        })
    }
}

fn cmp_json(c: &Cmp) -> Value {
    match c {
        Cmp::ModIs(k, rev) => json!({
            "key": B64.encode(k), "target": "MOD", "result": "EQUAL",
            "mod_revision": rev.to_string(),
        }),
        Cmp::Absent(k) => json!({
            "key": B64.encode(k), "target": "CREATE", "result": "EQUAL",
            "create_revision": "0",
        }),
        Cmp::ValueIs(k, v) => json!({
            "key": B64.encode(k), "target": "VALUE", "result": "EQUAL",
            "value": B64.encode(v),
        }),
        Cmp::NoneWrittenAfter { from, to, revision } => json!({
            "key": B64.encode(from), "range_end": B64.encode(to),
            "target": "MOD", "result": "LESS",
            "mod_revision": (revision + 1).to_string(),
        }),
    }
}

/// Whether a failed request never reached the member (safe to send elsewhere). A TLS
/// handshake that failed (a certificate refused either way) sent nothing either: the
/// member refuses a client certificate before it reads a request.
fn not_sent(e: &ureq::Error) -> bool {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::Io(io) => {
            matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::AddrNotAvailable
                    | K::NetworkUnreachable
                    | K::HostUnreachable
            ) || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(handshake_refusal)
        }
        ureq::Error::Rustls(r) => handshake_refusal(r),
        ureq::Error::Tls(_) => true,
        ureq::Error::Timeout(t) => {
            matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        _ => false,
    }
}

/// What a failed connection may mean, for the operator: a TLS handshake that failed on a
/// certificate, or a member that hung up at once (as one serving TLS does on a plain HTTP
/// request, or with client certificates on a client that offers none or one it refuses).
/// A member that dies mid-request hangs up too, hence the "if".
fn hint(e: &ureq::Error, link: Link) -> &'static str {
    use std::io::ErrorKind as K;
    let (io_kind, tls_error) = match e {
        ureq::Error::Io(io) => (
            Some(io.kind()),
            io.get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        ),
        ureq::Error::Rustls(r) => (None, Some(r)),
        _ => (None, None),
    };
    let hung_up = tls_error.is_none()
        && matches!(
            io_kind,
            Some(K::BrokenPipe | K::ConnectionReset | K::UnexpectedEof)
        );
    match (link, tls_error) {
        (
            Link::Tls { .. },
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
            )),
        ) => " (the member's certificate is not signed by the CA that the TLS settings name)",
        (Link::Tls { client_cert: false }, Some(rustls::Error::AlertReceived(_))) => {
            " (the member refused the connection: it asks for a client certificate, and the TLS settings name none)"
        }
        (Link::Tls { client_cert: false }, _) if hung_up => {
            " (if the member asks for a client certificate: the TLS settings name none)"
        }
        (Link::Tls { client_cert: true }, Some(rustls::Error::AlertReceived(_))) => {
            " (the member refused the connection: is the client certificate signed by its CA?)"
        }
        (Link::Tls { client_cert: true }, _) if hung_up => {
            " (if the member asks for a client certificate: is this one signed by its CA?)"
        }
        (Link::Plain, _) if hung_up => " (if the member serves TLS, use etcds://)",
        _ => "",
    }
}

/// A certificate refused by either side: the connection ends before any request is read.
fn handshake_refusal(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::AlertReceived(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::PeerIncompatible(_)
    )
}

/// etcd's error text from an error answer's body (`{"error": …, "code": …}`).
fn error_text(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) if !e.error.is_empty() => e.error,
        Ok(e) if !e.message.is_empty() => e.message,
        _ => format!(
            "HTTP {status}: {}",
            netconf::name::printable(&String::from_utf8_lossy(&body[..body.len().min(200)]))
        ),
    }
}

#[derive(Deserialize)]
struct Header {
    #[serde(deserialize_with = "number", default)]
    revision: i64,
    #[serde(default)]
    cluster_id: String,
}

#[derive(Deserialize)]
struct RangeAnswer {
    #[serde(default)]
    header: Option<Header>,
    #[serde(default)]
    kvs: Vec<KvAnswer>,
    #[serde(default)]
    more: bool,
    #[serde(deserialize_with = "number", default)]
    count: i64,
}

impl RangeAnswer {
    fn decode(self) -> Result<RangeResult, EtcdError> {
        let (revision, cluster_id) = self
            .header
            .map_or((0, String::new()), |h| (h.revision, h.cluster_id));
        Ok(RangeResult {
            revision,
            cluster_id,
            count: self.count,
            kvs: self
                .kvs
                .into_iter()
                .map(KvAnswer::decode)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Deserialize)]
struct ReadTxnAnswer {
    header: Header,
    #[serde(default)]
    responses: Vec<ReadResponse>,
}

#[derive(Deserialize)]
struct ReadResponse {
    response_range: RangeAnswer,
}

#[derive(Deserialize)]
struct KvAnswer {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(deserialize_with = "number", default)]
    mod_revision: i64,
    #[serde(deserialize_with = "number", default)]
    version: i64,
}

impl KvAnswer {
    fn decode(self) -> Result<Kv, EtcdError> {
        let bad = |e: base64::DecodeError| EtcdError::Unknown(format!("etcd's answer: {e}"));
        Ok(Kv {
            key: B64.decode(self.key).map_err(bad)?,
            value: B64.decode(self.value).map_err(bad)?,
            mod_revision: self.mod_revision,
            version: self.version,
        })
    }
}

#[derive(Deserialize)]
struct TxnAnswer {
    header: Header,
    #[serde(default)]
    succeeded: Option<bool>,
}

/// The gateway's 64-bit numbers come as strings; accept plain numbers too.
pub(super) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_increments_the_last_byte_that_can_be() {
        assert_eq!(range_end(b"/cfg/"), b"/cfg0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn compares_always_name_target_and_result() {
        for c in [
            Cmp::ModIs(b"k".to_vec(), 5),
            Cmp::Absent(b"k".to_vec()),
            Cmp::ValueIs(b"k".to_vec(), b"v".to_vec()),
            Cmp::NoneWrittenAfter {
                from: b"a".to_vec(),
                to: b"b".to_vec(),
                revision: 9,
            },
        ] {
            let j = cmp_json(&c);
            assert!(j["target"].is_string() && j["result"].is_string(), "{j}");
        }
    }

    #[test]
    fn a_txn_over_etcds_limits_is_refused_before_sending() {
        let ops: Vec<Op> = (0..129)
            .map(|i| Op::Put(format!("k{i}").into_bytes(), vec![]))
            .collect();
        assert!(
            check_limits(&[], &ops)
                .unwrap_err()
                .contains("limit of 128")
        );
        let big = vec![Op::Put(b"k".to_vec(), vec![b'x'; MAX_REQUEST_BYTES])];
        assert!(check_limits(&[], &big).unwrap_err().contains("bytes"));
        assert!(check_limits(&[], &ops[..128]).is_ok());
    }

    #[test]
    fn a_missing_succeeded_is_a_failed_txn() {
        let r: TxnAnswer =
            serde_json::from_str(r#"{"header":{"revision":"18"},"responses":[]}"#).unwrap();
        assert_eq!(r.succeeded, None);
        assert_eq!(r.header.revision, 18);
    }
}
