//! A whole cluster written into an etcd prefix at once, for `gnt-cluster copy-store`.
//!
//! etcd takes at most 128 ops and 1.5 MiB in one txn, so a cluster of more than a few dozen
//! instances cannot be written in one. The copy is written in chunks, with the schema key
//! last: until it is there, every command refuses the prefix ("keys but no schema key"),
//! so no command ever works on half a copy, and a copy that stopped midway is visible as
//! such. Every chunk also checks that the schema key is still absent, so a command that
//! created a cluster in the prefix meanwhile stops the copy instead of being mixed into it.

use std::collections::BTreeMap;

use super::client::{Client, Cmp, EtcdError, Op, TxnOutcome, check_limits};
use super::keys::{Key, Layout, SerialValue, index_keys};
use super::url::EtcdUrl;
use crate::config::model::ClusterConfig;
use crate::error::GntError;

/// Ops per chunk: under etcd's 128 (one compare, the rest puts or deletes).
const CHUNK_OPS: usize = 120;
/// Bytes of keys and values per chunk: well under etcd's 1.5 MiB request limit, which
/// counts the base64 of both.
const CHUNK_BYTES: usize = 512 * 1024;

fn failed(url: &EtcdUrl, e: &EtcdError) -> GntError {
    GntError::Exec(format!("{url}: {e}"))
}

/// Whether anything at all is stored under the URL's prefix.
pub fn holds_anything(url: &EtcdUrl) -> Result<bool, GntError> {
    let layout = Layout::new(url.prefix());
    let r = Client::new(url)
        .range_prefix(layout.root(), None)
        .map_err(|e| failed(url, &e))?;
    Ok(!r.kvs.is_empty())
}

/// Every key and value of `cfg` as the etcd store lays it out; the cluster's serial and
/// times are kept (the serial key is written once, so its write count adds 1 to `base`).
fn encode(layout: &Layout, cfg: &ClusterConfig) -> Result<(Vec<Op>, Vec<Op>), GntError> {
    fn ser<T: serde::Serialize>(what: &str, v: &T) -> Result<Vec<u8>, GntError> {
        toml::to_string(v)
            .map(String::into_bytes)
            .map_err(|e| GntError::Exec(format!("cannot encode {what}: {e}")))
    }
    let mut body: BTreeMap<Key, Vec<u8>> = BTreeMap::new();
    for (u, g) in &cfg.nodegroups {
        body.insert(Key::Group(u.clone()), ser("a group", g)?);
    }
    for (u, n) in &cfg.nodes {
        body.insert(Key::Node(u.clone()), ser("a node", n)?);
    }
    for (u, n) in &cfg.networks {
        body.insert(Key::Network(u.clone()), ser("a network", n)?);
    }
    for (u, i) in cfg.instances.all_decoded() {
        body.insert(Key::Instance(u.clone()), ser("an instance", i)?);
        for k in index_keys(i) {
            body.insert(k, u.clone().into_bytes());
        }
    }
    let base = cfg.cluster.serial_no.saturating_sub(1);
    let mut cluster = cfg.cluster.clone();
    cluster.serial_no = base;
    let serial = SerialValue {
        base,
        mtime: cfg.cluster.mtime,
        commit: crate::config::new_uuid(),
    };
    let last = vec![
        Op::Put(layout.key(&Key::Cluster), ser("the cluster", &cluster)?),
        Op::Put(layout.key(&Key::Serial), ser("the serial", &serial)?),
        Op::Put(
            layout.key(&Key::Schema),
            cfg.version.to_string().into_bytes(),
        ),
    ];
    let body = body
        .into_iter()
        .map(|(k, v)| Op::Put(layout.key(&k), v))
        .collect();
    Ok((body, last))
}

fn op_len(op: &Op) -> usize {
    match op {
        Op::Put(k, v) => k.len() + v.len(),
        Op::Delete(k) => k.len(),
    }
}

/// Sends `ops` in txns of at most [`CHUNK_OPS`] ops and [`CHUNK_BYTES`] bytes, each on
/// the condition `guard`.
fn send_chunked(
    client: &Client,
    url: &EtcdUrl,
    guard: &[Cmp],
    ops: Vec<Op>,
) -> Result<(), GntError> {
    let mut chunk: Vec<Op> = Vec::new();
    let mut bytes = 0;
    let mut it = ops.into_iter().peekable();
    while let Some(op) = it.next() {
        bytes += op_len(&op);
        chunk.push(op);
        let full = it
            .peek()
            .is_none_or(|next| chunk.len() >= CHUNK_OPS || bytes + op_len(next) > CHUNK_BYTES);
        if !full {
            continue;
        }
        check_limits(guard, &chunk)
            .map_err(|e| GntError::Exec(format!("{url}: an object too large for etcd: {e}")))?;
        match client.txn(guard, &chunk).map_err(|e| failed(url, &e))? {
            TxnOutcome::Committed(_) => {}
            TxnOutcome::Conflict => {
                return Err(GntError::Exec(format!(
                    "{url}: another command wrote a cluster here while it was being copied"
                )));
            }
        }
        chunk.clear();
        bytes = 0;
    }
    Ok(())
}

/// Writes `cfg` under the URL's prefix, replacing whatever is there when `replace` (else
/// refusing a prefix that holds anything). On an error midway the prefix holds a partial
/// copy without its schema key, which every command refuses; the error says so.
pub fn write_whole(url: &EtcdUrl, cfg: &ClusterConfig, replace: bool) -> Result<(), GntError> {
    let client = Client::new(url);
    let layout = Layout::new(url.prefix());
    let schema = layout.key(&Key::Schema);
    let present = client
        .range_prefix(layout.root(), None)
        .map_err(|e| failed(url, &e))?;
    if !present.kvs.is_empty() && !replace {
        return Err(refused(&url.to_string()));
    }
    let midway = |e: GntError| {
        let e = match e {
            GntError::Exec(m) => m,
            other => other.to_string(),
        };
        GntError::Exec(format!(
            "{e}\nThe copy stopped midway: {url} holds part of it and no schema key, so every command refuses it; run copy-store again with --force."
        ))
    };
    // The schema key goes first, so the old cluster is refused from the first delete on.
    let mut deletes: Vec<Op> = present
        .kvs
        .iter()
        .filter(|kv| kv.key != schema)
        .map(|kv| Op::Delete(kv.key.clone()))
        .collect();
    if present.kvs.iter().any(|kv| kv.key == schema) {
        deletes.insert(0, Op::Delete(schema.clone()));
    }
    send_chunked(&client, url, &[], deletes).map_err(midway)?;
    let (body, last) = encode(&layout, cfg)?;
    let guard = [Cmp::Absent(schema)];
    send_chunked(&client, url, &guard, body).map_err(midway)?;
    match client
        .txn(&guard, &last)
        .map_err(|e| midway(failed(url, &e)))?
    {
        TxnOutcome::Committed(_) => Ok(()),
        TxnOutcome::Conflict => Err(midway(GntError::Exec(format!(
            "{url}: another command wrote a cluster here while it was being copied"
        )))),
    }
}

pub use crate::config::store::refused_to_overwrite as refused;
