//! The cluster store on etcd (v3 API, through its JSON gateway): `etcd://` URLs (`url`),
//! the HTTP client (`client`), where each object lives (`keys`) and the [`Store`] over
//! them (`store`).
//!
//! [`Store`]: super::Store

pub mod client;
pub mod copy;
mod keys;
mod snapshot;
mod store;
pub mod url;

pub use store::EtcdStore;
pub use url::EtcdUrl;
