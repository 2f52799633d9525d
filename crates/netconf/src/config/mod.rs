//! The cluster configuration (`config.data`): the model and the store behind it.

mod cache;
mod finding;
mod fingerprint;
mod index;
mod instance;
mod instances;
mod model;
mod segments;
mod splice;
#[cfg(test)]
mod splice_tests;
mod store;
pub mod tags;
pub mod verify;
mod writer;

pub use instance::{Instance, Nic, NicParams};
pub use instances::Instances;
pub use model::{
    CONFIG_VERSION, Cluster, Config, Network, NetworkSpec, Node, NodeGroup, Origin, new_uuid, now,
};
pub use store::{DEFAULT_CONFIG_PATH, FileStore, Store, Version, parse, render, transaction};
