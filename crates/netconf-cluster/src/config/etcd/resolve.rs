//! Host resolution for the members' gateways without a thread per request.
//!
//! ureq's default resolver, under a timeout, starts a thread for every request, even for an
//! address literal such as `127.0.0.1`; on a busy machine a command then waits for that
//! thread to be scheduled three or four times (measured: 3–4 ms each at a load of 5 on two
//! cores, against a command of 7–10 ms). Members are nearly always given as address
//! literals, which need no lookup at all; a host name still goes to the default resolver.

use std::net::{IpAddr, SocketAddr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

#[derive(Debug, Default)]
pub(super) struct LiteralFirst {
    names: DefaultResolver,
}

/// The address of `uri` if its host is an IPv4 or (bracketed) IPv6 literal with a port.
fn literal(uri: &Uri) -> Option<SocketAddr> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, authority.port_u16()?))
}

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal(uri) {
            Some(addr) => {
                let mut v = self.names.empty();
                v.push(addr);
                Ok(v)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Option<SocketAddr> {
        literal(&s.parse::<Uri>().ok()?)
    }

    #[test]
    fn address_literals_resolve_in_place_and_names_do_not() {
        assert_eq!(
            lit("http://127.0.0.1:2379/v3/kv/range"),
            Some("127.0.0.1:2379".parse().unwrap())
        );
        assert_eq!(
            lit("https://[::1]:2379/v3/kv/txn"),
            Some("[::1]:2379".parse().unwrap())
        );
        assert_eq!(lit("https://etcd1.example:2379/v3/kv/txn"), None);
        assert_eq!(lit("http://127.0.0.1/v3"), None);
    }
}
