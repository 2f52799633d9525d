//! The cluster store on etcd (v3 API, through its JSON gateway): `etcd://` and `etcds://`
//! URLs (`url`), the TLS settings of `etcds://` (`tls`), the HTTP client (`client`), where
//! each object lives (`keys`) and the [`Store`] over them (`store`).
//!
//! [`Store`]: super::Store

pub mod client;
pub mod copy;
mod keys;
mod store;
pub mod tls;
pub mod url;

pub use store::EtcdStore;
pub use url::EtcdUrl;
