//! The operations through the seam the commands use: each test commits with
//! `transaction(store, …)` and reads back through the store, once per store backend
//! (`with_each_store`), and every refused operation leaves the store as it was.

mod group;
mod instance;
mod network;
mod node;

use std::fmt::Debug;

use super::Feedback;
use super::network::{AddNetwork, RawNicParams};
use crate::config::{ClusterConfig, Store, transaction};
use crate::error::GntError;

/// Runs `op` in a transaction that must commit: its result, with the cluster's serial
/// advanced by exactly one in the store.
fn committed<T>(
    store: &dyn Store,
    op: impl FnOnce(&mut ClusterConfig) -> Result<T, GntError>,
) -> T {
    let serial = store.read().unwrap().cluster.serial_no;
    let out = transaction(store, op).unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(store.read().unwrap().cluster.serial_no, serial + 1);
    out
}

/// Runs `op` in a transaction that must fail: its error. Whatever `op` changed before it
/// failed is not in the store, which holds exactly what it held before.
fn refused<T: Debug>(
    store: &dyn Store,
    op: impl FnOnce(&mut ClusterConfig) -> Result<T, GntError>,
) -> GntError {
    let before = store.read().unwrap();
    let e = transaction(store, op).expect_err("the operation should fail");
    assert_eq!(
        store.read().unwrap(),
        before,
        "the failed operation ({e}) changed the store"
    );
    e
}

/// `name` (`net` with `gateway`), committed.
fn add_network(store: &dyn Store, name: &str, net: &str, gateway: Option<&str>) {
    let add = AddNetwork {
        name: name.into(),
        network: Some(net.into()),
        gateway: gateway.map(Into::into),
        conflicts_check: true,
        ..Default::default()
    };
    committed(store, |cfg| {
        super::network::add(cfg, &add, &mut Feedback::default())
    });
}

/// `name` connected bridged to `link` in `groups` (all when empty), committed.
fn connect(store: &dyn Store, name: &str, link: &str, groups: &[&str]) {
    let raw = RawNicParams {
        link: Some(link.into()),
        ..Default::default()
    };
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    committed(store, |cfg| {
        super::network::connect(cfg, name, &raw, &groups, true, &mut Feedback::default())
    });
}

/// net1 (198.51.100.0/24, gateway .1) connected bridged to br0 in every group.
fn net1(store: &dyn Store) {
    add_network(store, "net1", "198.51.100.0/24", Some("198.51.100.1"));
    connect(store, "net1", "br0", &[]);
}
