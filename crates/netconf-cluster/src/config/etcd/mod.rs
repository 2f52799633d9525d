//! The cluster store on etcd (v3 API, through its JSON gateway): `etcd://` URLs (`url`),
//! the HTTP client (`client`), where each object lives (`keys`), the [`Store`] over
//! them (`store`) and the watch that follows them (`watch`).
//!
//! [`Store`]: super::Store

pub mod client;
pub mod copy;
mod keys;
mod store;
pub mod url;
mod watch;

pub use store::EtcdStore;
pub use url::EtcdUrl;
