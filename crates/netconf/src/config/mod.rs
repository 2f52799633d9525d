//! The cluster configuration (`config.data`): the model and the store behind it.

mod cache;
mod index;
mod instances;
mod model;
mod splice;
#[cfg(test)]
mod splice_tests;
mod store;
pub mod tags;
pub mod verify;
mod writer;

pub use instances::Instances;
pub use model::{
    CONFIG_VERSION, Cluster, Config, Instance, Network, NetworkSpec, Nic, NicParams, Node,
    NodeGroup, Origin, new_uuid, now,
};
pub use store::{DEFAULT_CONFIG_PATH, FileStore, Store, Version, parse, render, transaction};
