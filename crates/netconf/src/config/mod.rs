//! The cluster configuration (`config.data`): the model and the store behind it.

mod cache;
mod model;
mod store;
pub mod tags;
mod writer;

pub use model::{
    CONFIG_VERSION, Cluster, Config, Instance, Network, NetworkSpec, Nic, NicParams, Node,
    NodeGroup, new_uuid, now,
};
pub use store::{DEFAULT_CONFIG_PATH, FileStore, Store, parse, render, transaction};
