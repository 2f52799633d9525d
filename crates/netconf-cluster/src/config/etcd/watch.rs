//! Following the cluster in etcd: one watch (`POST /v3/watch` on the gateway, answered
//! by a stream of JSON objects, one a line) over the whole prefix, read by a thread of its
//! own so that [`StoreWatch::wait`] never waits longer than it is asked to.
//!
//! The whole prefix, not only this node's instances: an instance's key is its UUID and
//! what makes it this node's (its primary node) is inside its value, so no key range
//! selects them; the group, node and network keys a NIC depends on must be followed
//! anyway. A change elsewhere costs the follower one read that finds nothing to do.
//!
//! An outage changes nothing applied: the thread reconnects with backoff, member after
//! member, and resumes from the revision after the last event it saw, so nothing that
//! happened meanwhile is missed. When that revision has been compacted away, etcd cancels
//! the watch (and the gateway keeps the stream open): the follower is told to read the
//! whole store again, and the watch restarts at the compacted revision.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;

use super::client::{number, range_end};
use super::url::EtcdUrl;
use crate::config::watch::StoreWatch;
use crate::error::GntError;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A quiet stream is re-opened this often (resuming where it was): a member that hangs
/// without closing the connection is left after this long at the latest.
const QUIET_REOPEN: Duration = Duration::from_secs(60);
/// The first wait after a failed attempt; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// One message of the stream (a replay after a reconnect can be large) is refused above
/// this, as a whole-cluster read is.
const MAX_LINE: u64 = 1 << 30;

enum Msg {
    Changed,
    News(String),
}

/// The watch on one cluster's prefix; the thread behind it ends when this is dropped.
pub struct EtcdWatch {
    rx: mpsc::Receiver<Msg>,
    news: Vec<String>,
}

impl EtcdWatch {
    /// Watches everything under `root` from the revision after the current one (asked
    /// for now: the caller reads after this, so it sees at least that revision). Starts
    /// also when etcd cannot be reached: then the first connection reports a change.
    pub fn start(url: &EtcdUrl, root: &[u8]) -> Result<EtcdWatch, GntError> {
        // etcds:// watches over the same TLS settings as every other request; settings
        // that cannot be used fail here, as the client's first request would.
        let tls = match url.tls() {
            true => Some(super::tls::load().map_err(|e| {
                GntError::Exec(format!(
                    "cannot use the etcd cluster {url}: its TLS settings: {e}"
                ))
            })?),
            false => None,
        };
        Self::start_with(url, root, tls)
    }

    /// [`start`](Self::start) with the TLS settings of an `etcds://` URL already loaded.
    fn start_with(
        url: &EtcdUrl,
        root: &[u8],
        tls: Option<ureq::tls::TlsConfig>,
    ) -> Result<EtcdWatch, GntError> {
        let bases: Vec<String> = url
            .endpoints()
            .iter()
            .map(|e| e.base_for(url.tls()))
            .collect();
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(QUIET_REOPEN))
            .http_status_as_error(false);
        if let Some(tls) = tls {
            config = config.tls_config(tls);
        }
        let agent: ureq::Agent = config.build().into();
        let next = bases.iter().find_map(|b| current_revision(&agent, b, root));
        let (tx, rx) = mpsc::channel();
        let mut w = Watcher {
            agent,
            bases,
            shown: url.to_string(),
            root: root.to_vec(),
            next: next.map(|r| r + 1),
            tx,
        };
        std::thread::Builder::new()
            .name("etcd-watch".into())
            .spawn(move || w.run())
            .map_err(|e| GntError::Exec(format!("cannot start the etcd watch: {e}")))?;
        Ok(EtcdWatch {
            rx,
            news: Vec::new(),
        })
    }
}

impl StoreWatch for EtcdWatch {
    fn wait(&mut self, timeout: Duration) -> Result<bool, GntError> {
        let first = match self.rx.recv_timeout(timeout) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(GntError::Exec("the etcd watch stopped".into()));
            }
        };
        // Everything queued is one burst.
        let mut changed = false;
        for m in std::iter::once(first).chain(self.rx.try_iter()) {
            match m {
                Msg::Changed => changed = true,
                Msg::News(n) => self.news.push(n),
            }
        }
        Ok(changed)
    }

    fn news(&mut self) -> Vec<String> {
        std::mem::take(&mut self.news)
    }
}

/// The thread's side.
struct Watcher {
    agent: ureq::Agent,
    bases: Vec<String>,
    shown: String,
    root: Vec<u8>,
    /// The first revision not seen yet (`None`: not known, watch from now).
    next: Option<i64>,
    tx: mpsc::Sender<Msg>,
}

/// How one stream ended.
enum End {
    /// The receiver is gone: stop.
    Dropped,
    /// etcd no longer has the revision to resume from.
    Compacted(i64),
    /// Quiet for `QUIET_REOPEN`: open it again at once.
    Quiet,
    /// The stream broke (or never opened); `created` says whether it had been working.
    Broken { why: String, created: bool },
}

impl Watcher {
    fn send(&self, m: Msg) -> bool {
        self.tx.send(m).is_ok()
    }

    fn run(&mut self) {
        let mut at = 0;
        let mut failures: u32 = 0;
        let mut lost: Option<String> = None;
        loop {
            let base = self.bases[at % self.bases.len()].clone();
            match self.stream(&base, &mut lost) {
                End::Dropped => return,
                End::Compacted(c) => {
                    let from = self.next.map_or_else(|| "?".to_owned(), |n| n.to_string());
                    self.next = Some(c);
                    if !self.send(Msg::News(format!(
                        "etcd compacted its history past revision {from} (to {c}): reading the whole store again"
                    ))) || !self.send(Msg::Changed)
                    {
                        return;
                    }
                    failures = 0;
                }
                End::Quiet => failures = 0,
                End::Broken { why, created } => {
                    if created {
                        failures = 0;
                    }
                    if lost.is_none() {
                        let n = format!(
                            "lost the watch on {} ({why}); what is applied stays, reconnecting",
                            self.shown
                        );
                        if !self.send(Msg::News(n)) {
                            return;
                        }
                        lost = Some(why);
                    }
                    at += 1;
                    failures = failures.saturating_add(1);
                    std::thread::sleep(backoff(failures));
                }
            }
        }
    }

    /// One watch stream on `base`, until it ends.
    fn stream(&mut self, base: &str, lost: &mut Option<String>) -> End {
        let mut req = json!({
            "key": B64.encode(&self.root),
            "range_end": B64.encode(range_end(&self.root)),
        });
        if let Some(n) = self.next {
            req["start_revision"] = json!(n.to_string());
        }
        let body = json!({ "create_request": req }).to_string();
        let resp = self
            .agent
            .post(format!("{base}/v3/watch"))
            .header("content-type", "application/json")
            .send(body.as_bytes());
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return End::Broken {
                    why: format!("{base}: {e}"),
                    created: false,
                };
            }
        };
        if resp.status().as_u16() != 200 {
            return End::Broken {
                why: format!("{base}: HTTP {}", resp.status().as_u16()),
                created: false,
            };
        }
        let mut reader = BufReader::new(resp.body_mut().as_reader());
        let mut created = false;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line);
            match read {
                Ok(0) => {
                    return End::Broken {
                        why: format!("{base}: the stream ended"),
                        created,
                    };
                }
                Ok(_) if !line.ends_with(b"\n") && line.len() as u64 >= MAX_LINE => {
                    return End::Broken {
                        why: format!("{base}: a message over {MAX_LINE} bytes"),
                        created,
                    };
                }
                Ok(_) => {}
                // Quiet after the watch was made: reopen it. Silent from the start: this
                // member does not serve watches, try the next.
                Err(e) if is_timeout(&e) && created => return End::Quiet,
                Err(e) => {
                    return End::Broken {
                        why: format!("{base}: {e}"),
                        created,
                    };
                }
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let msg: Line = match serde_json::from_slice(&line) {
                Ok(m) => m,
                Err(e) => {
                    return End::Broken {
                        why: format!("{base}: not etcd's watch answer: {e}"),
                        created,
                    };
                }
            };
            let Some(r) = msg.result else {
                let why = msg.error.map_or_else(
                    || "an answer without a result".to_owned(),
                    |e| e.to_string(),
                );
                return End::Broken {
                    why: format!("{base}: {}", netconf::name::printable(&why)),
                    created,
                };
            };
            if r.compact_revision > 0 {
                return End::Compacted(r.compact_revision);
            }
            if r.canceled {
                return End::Broken {
                    why: format!("{base}: etcd cancelled the watch"),
                    created,
                };
            }
            if r.created {
                created = true;
                let unknown_start = self.next.is_none();
                if unknown_start {
                    // Watching from now without knowing what came before: whatever the
                    // follower read (if it could) may be older.
                    self.next = Some(r.header.revision + 1);
                }
                if let Some(why) = lost.take() {
                    let n = format!(
                        "watching {} again through {base}, from revision {} (was lost: {why})",
                        self.shown,
                        self.next.unwrap_or(0)
                    );
                    if !self.send(Msg::News(n)) {
                        return End::Dropped;
                    }
                }
                if unknown_start && !self.send(Msg::Changed) {
                    return End::Dropped;
                }
            }
            let mut any = false;
            for ev in &r.events {
                any = true;
                let after = ev.kv.mod_revision + 1;
                if self.next.is_none_or(|n| after > n) {
                    self.next = Some(after);
                }
            }
            if any && !self.send(Msg::Changed) {
                return End::Dropped;
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let full = (FIRST_BACKOFF * (1u32 << failures.min(6))).min(MAX_BACKOFF);
    // Half of it fixed, half random: nodes that lost the same member do not come back in
    // step.
    let half = u64::try_from(full.as_micros() / 2)
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_micros(half + getrandom::u64().unwrap_or(0) % half)
}

fn is_timeout(e: &std::io::Error) -> bool {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// The current revision of the cluster, from a count-only range (no values moved).
fn current_revision(agent: &ureq::Agent, base: &str, root: &[u8]) -> Option<i64> {
    let body = json!({
        "key": B64.encode(root),
        "range_end": B64.encode(range_end(root)),
        "count_only": true,
    })
    .to_string();
    let mut resp = agent
        .post(format!("{base}/v3/kv/range"))
        .config()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    let b = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .ok()?;
    let r: Counted = serde_json::from_slice(&b).ok()?;
    (r.header.revision > 0).then_some(r.header.revision)
}

#[derive(Deserialize)]
struct Counted {
    header: Header,
}

#[derive(Deserialize, Default)]
struct Header {
    #[serde(deserialize_with = "number", default)]
    revision: i64,
}

#[derive(Deserialize)]
struct Line {
    result: Option<WatchResult>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WatchResult {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    canceled: bool,
    #[serde(deserialize_with = "number", default)]
    compact_revision: i64,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    kv: EventKv,
}

#[derive(Deserialize)]
struct EventKv {
    #[serde(deserialize_with = "number", default)]
    mod_revision: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_watch_lines_decode() {
        let created: Line = serde_json::from_str(
            r#"{"result":{"header":{"cluster_id":"1","revision":"20","raft_term":"2"},"created":true}}"#,
        )
        .unwrap();
        let r = created.result.unwrap();
        assert!(r.created && r.events.is_empty());
        assert_eq!(r.header.revision, 20);
        let events: Line = serde_json::from_str(
            r#"{"result":{"header":{"revision":"22"},"events":[{"kv":{"key":"L2E=","mod_revision":"21","value":"eA=="}},{"type":"DELETE","kv":{"key":"L2I=","mod_revision":"22"}}]}}"#,
        )
        .unwrap();
        let revs: Vec<i64> = events
            .result
            .unwrap()
            .events
            .iter()
            .map(|e| e.kv.mod_revision)
            .collect();
        assert_eq!(revs, [21, 22]);
        let compacted: Line = serde_json::from_str(
            r#"{"result":{"header":{"revision":"30"},"canceled":true,"compact_revision":"11"}}"#,
        )
        .unwrap();
        let r = compacted.result.unwrap();
        assert!(r.canceled);
        assert_eq!(r.compact_revision, 11);
        let err: Line =
            serde_json::from_str(r#"{"error":{"grpc_code":14,"message":"x"}}"#).unwrap();
        assert!(err.result.is_none() && err.error.is_some());
    }

    #[test]
    fn a_commit_is_reported_and_nothing_else_is() {
        use crate::config::mem_store::etcd_store;
        use crate::config::{Store, transaction};
        let Some(store) = etcd_store() else { return };
        let mut w = store.changes().unwrap();
        assert!(!w.wait(Duration::from_millis(300)).unwrap());
        transaction(&store, |c| {
            c.cluster.name = "x".into();
            Ok(())
        })
        .unwrap();
        assert!(w.wait(Duration::from_secs(5)).unwrap());
        // One commit, one report (however many keys it wrote).
        assert!(!w.wait(Duration::from_millis(300)).unwrap());
        assert!(w.news().is_empty());
    }

    #[test]
    fn wait_returns_while_a_member_never_answers() {
        // Connections complete into the backlog of a socket that never accepts: the
        // watch's request hangs, and `wait` still returns (a generous bound, not a speed).
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = hung.local_addr().unwrap().port();
        let url: EtcdUrl = format!("etcd://127.0.0.1:{port}/p").parse().unwrap();
        let mut w = EtcdWatch::start(&url, b"/p/").unwrap();
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            assert!(!w.wait(Duration::from_millis(100)).unwrap());
            assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        }
        drop(hung);
    }

    #[test]
    fn an_unreachable_cluster_is_told_once() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url: EtcdUrl = format!("etcd://127.0.0.1:{port}/p").parse().unwrap();
        let mut w = EtcdWatch::start(&url, b"/p/").unwrap();
        let mut news = Vec::new();
        for _ in 0..10 {
            assert!(!w.wait(Duration::from_millis(100)).unwrap());
            news.extend(w.news());
        }
        assert_eq!(news.len(), 1, "the loss is told once: {news:?}");
        assert!(news[0].contains("lost the watch"), "{news:?}");
    }

    #[test]
    fn backoff_grows_to_its_cap_and_is_never_zero() {
        assert!(backoff(1) >= FIRST_BACKOFF);
        assert!(backoff(1) <= FIRST_BACKOFF * 2);
        for f in [6, 10, 40, u32::MAX] {
            let b = backoff(f);
            assert!(b >= MAX_BACKOFF / 2 && b <= MAX_BACKOFF, "{f}: {b:?}");
        }
    }

    #[test]
    fn a_watch_over_etcds_reports_a_put_on_a_tls_cluster() {
        use netconf_test_support as ts;
        if !ts::need_etcd("a_watch_over_etcds_reports_a_put_on_a_tls_cluster") {
            return;
        }
        let etcd = ts::EtcdCluster::start_tls(1);
        let pem = etcd.tls().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("store.toml");
        std::fs::write(
            &settings,
            format!(
                "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                pem.ca.display(),
                pem.cert.display(),
                pem.key.display()
            ),
        )
        .unwrap();
        let prefix = ts::unique_prefix();
        let url: EtcdUrl = etcd.url(&prefix).parse().unwrap();
        let tls = super::super::tls::load_from(&settings).unwrap();
        let root = format!("{prefix}/");
        let mut w = EtcdWatch::start_with(&url, root.as_bytes(), Some(tls)).unwrap();
        assert!(!w.wait(Duration::from_millis(300)).unwrap());
        let put = std::process::Command::new("etcdctl")
            .arg(format!("--endpoints=https://{}", etcd.endpoints()[0]))
            .arg(format!("--cacert={}", pem.ca.display()))
            .arg(format!("--cert={}", pem.cert.display()))
            .arg(format!("--key={}", pem.key.display()))
            .args(["put", &format!("{root}cluster"), "x"])
            .output()
            .unwrap();
        assert!(
            put.status.success(),
            "{}",
            String::from_utf8_lossy(&put.stderr)
        );
        assert!(
            w.wait(Duration::from_secs(5)).unwrap(),
            "a put over TLS was not reported: {:?}",
            w.news()
        );
    }
}
