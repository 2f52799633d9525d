//! The binary snapshot cache's body: the configuration without its instances, then the
//! instances in two halves, so that two cores decode (and encode) them at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Cluster, Config, Instance, Network, Node, NodeGroup};

#[derive(Serialize)]
struct HeadRef<'a> {
    version: u32,
    cluster: &'a Cluster,
    nodegroups: &'a BTreeMap<String, NodeGroup>,
    nodes: &'a BTreeMap<String, Node>,
    networks: &'a BTreeMap<String, Network>,
}

#[derive(Deserialize)]
struct Head {
    version: u32,
    cluster: Cluster,
    nodegroups: BTreeMap<String, NodeGroup>,
    nodes: BTreeMap<String, Node>,
    networks: BTreeMap<String, Network>,
}

type Chunk = Vec<(String, Instance)>;

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_le_bytes());
    out.extend_from_slice(part);
}

fn take_part<'a>(body: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u64::from_le_bytes(body.get(..8)?.try_into().ok()?) as usize;
    let part = body.get(8..8 + len)?;
    *body = &body[8 + len..];
    Some(part)
}

pub(super) fn encode(cfg: &Config) -> Option<Vec<u8>> {
    let head = postcard::to_allocvec(&HeadRef {
        version: cfg.version,
        cluster: &cfg.cluster,
        nodegroups: &cfg.nodegroups,
        nodes: &cfg.nodes,
        networks: &cfg.networks,
    })
    .ok()?;
    let half = cfg.instances.len() / 2;
    let a: Vec<(&String, &Instance)> = cfg.instances.iter().take(half).collect();
    let b: Vec<(&String, &Instance)> = cfg.instances.iter().skip(half).collect();
    let a = postcard::to_allocvec(&a).ok()?;
    let b = postcard::to_allocvec(&b).ok()?;
    let mut out = Vec::with_capacity(24 + head.len() + a.len() + b.len());
    push_part(&mut out, &head);
    push_part(&mut out, &a);
    push_part(&mut out, &b);
    Some(out)
}

pub(super) fn decode(mut body: &[u8]) -> Option<Config> {
    let head = take_part(&mut body)?;
    let a = take_part(&mut body)?;
    let b = take_part(&mut body)?;
    if !body.is_empty() {
        return None;
    }
    let (head, a, b) = std::thread::scope(|s| {
        let second = s.spawn(|| postcard::from_bytes::<Chunk>(b).ok());
        let head = postcard::from_bytes::<Head>(head).ok();
        let a = postcard::from_bytes::<Chunk>(a).ok();
        (head, a, second.join().ok().flatten())
    });
    let (head, a, b) = (head?, a?, b?);
    // Both halves are in key order: building the map from them is linear.
    let instances: BTreeMap<String, Instance> = a.into_iter().chain(b).collect();
    Some(Config {
        version: head.version,
        cluster: head.cluster,
        nodegroups: head.nodegroups,
        nodes: head.nodes,
        networks: head.networks,
        instances,
    })
}
