//! The cluster store on etcd (v3 API, through its JSON gateway): `etcd://` and `etcds://`
//! URLs (`url`), the TLS settings of `etcds://` (`tls`), the HTTP client (`client`) and its resolver (`resolve`), where
//! each object lives (`keys`), a node-local copy of the heads (`heads_cache`), the [`Store`] over them (`store`), the watch that follows
//! them (`watch`), and the check of the name and MAC index keys against the instances
//! (`audit`, for `gnt-cluster verify`).
//!
//! [`Store`]: super::Store

mod audit;
pub mod client;
pub mod copy;
mod heads_cache;
mod keys;
mod resolve;
mod snapshot;
mod store;
pub mod tls;
pub mod url;
mod watch;

pub use store::EtcdStore;
pub use url::EtcdUrl;
