//! The cluster configuration (`config.data`): the model and the store behind it.
//!
//! Its modules import downwards only, so that each can be read and tested on what lies
//! below it: `instance`, `finding`, `fingerprint` and `segments` at the bottom; `index`,
//! then `instances`, then `model` (the whole configuration); `writer`, `verify`, `cache`
//! and `splice` over those; `store` on top (with `watch`, which tells a follower when it
//! changed), `etcd` (the same trait on etcd) beside it, and `mem_store` (a store in memory for tests,
//! behind the same `Store` trait) over `store`.

mod cache;
pub mod copy;
pub mod etcd;
mod finding;
mod fingerprint;
mod index;
mod instance;
mod instances;
#[cfg(any(test, feature = "test-support"))]
mod mem_store;
mod model;
mod segments;
mod splice;
#[cfg(test)]
mod splice_tests;
mod store;
pub mod tags;
pub mod verify;
mod watch;
mod writer;

pub use instance::{Instance, Nic, NicParams};
pub use instances::{Instances, MacsInUse};
#[cfg(any(test, feature = "test-support"))]
pub use mem_store::{MemStore, with_each_store};
pub use model::{
    CONFIG_VERSION, Cluster, ClusterConfig, Network, NetworkSpec, Node, NodeGroup, Origin,
    new_uuid, now,
};
// Callers open a store with `open`/`open_for_one_command` and know only `Store`; the file
// store's own type is for the tests of its files (caches, spares, hand edits).
#[cfg(any(test, feature = "test-support"))]
pub use store::FileStore;
pub use store::{
    DEFAULT_CONFIG_PATH, Location, Store, Version, open, open_at, open_for_completion,
    open_for_one_command, open_read_only, parse, render, transaction,
};
pub use watch::{FileWatch, StoreWatch};
