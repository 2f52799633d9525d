//! The store URL, `etcd://host:port[,host:port…][/prefix]` (or `etcds://` for TLS), checked
//! once where it enters (`--store`, `NETCONF_STORE`) into a type that holds only usable
//! endpoints and a prefix that cannot escape its key range.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Where the cluster lives in etcd when the URL names no prefix.
pub const DEFAULT_PREFIX: &str = "/netconf";

/// At most this many endpoints (a cluster of more members than this is not one to list).
const MAX_ENDPOINTS: usize = 16;
const MAX_PREFIX_LEN: usize = 128;

/// One member's client address: a host name, an IPv4 address or a bracketed IPv6 address,
/// and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// `http://host:port`, the base of the member's JSON gateway.
    pub fn base(&self) -> String {
        format!("http://{self}")
    }

    /// The member's gateway: `https://host:port` over TLS, else [`Endpoint::base`].
    pub fn base_for(&self, tls: bool) -> String {
        if tls {
            format!("https://{self}")
        } else {
            self.base()
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A checked `etcd://` or `etcds://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `etcds://`: HTTPS with the CA, client certificate and key of the TLS settings
    /// (`tls.rs`); the host names the certificate of each member must be valid for.
    tls: bool,
    endpoints: Vec<Endpoint>,
    /// Starts with `/`, has no trailing `/`, and only `[A-Za-z0-9._-]` segments, none of
    /// them `.` or `..`.
    prefix: String,
}

impl EtcdUrl {
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the members are reached over TLS (`etcds://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The same members with another prefix (tests give each cluster its own).
    pub fn with_prefix(&self, prefix: &str) -> Result<Self, String> {
        Ok(EtcdUrl {
            tls: self.tls,
            endpoints: self.endpoints.clone(),
            prefix: parse_prefix(prefix)?,
        })
    }
}

impl fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "etcds://" } else { "etcd://" })?;
        for (i, e) in self.endpoints.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{e}")?;
        }
        f.write_str(&self.prefix)
    }
}

impl FromStr for EtcdUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (tls, rest) = match (s.strip_prefix("etcd://"), s.strip_prefix("etcds://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(
                    "expected etcd://host:port[,host:port…][/prefix] (or etcds:// for TLS)".into(),
                );
            }
        };
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], parse_prefix(&rest[i..])?),
            None => (rest, DEFAULT_PREFIX.to_owned()),
        };
        if hosts.is_empty() {
            return Err("no host:port given".into());
        }
        let endpoints = hosts
            .split(',')
            .map(parse_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.len() > MAX_ENDPOINTS {
            return Err(format!("more than {MAX_ENDPOINTS} endpoints"));
        }
        Ok(EtcdUrl {
            tls,
            endpoints,
            prefix,
        })
    }
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let shown = netconf::name::printable(s);
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (addr, port) = v6
            .split_once("]:")
            .ok_or_else(|| format!("'{shown}': expected [address]:port"))?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("'{shown}': not an IPv6 address"))?;
        (addr.to_string(), port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("'{shown}': expected host:port"))?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !host.starts_with('-')
            && !host.starts_with('.');
        if !host_ok {
            return Err(format!("'{shown}': not a host name or IPv4 address"));
        }
        (host.to_owned(), port)
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => {
            return Err(format!(
                "'{shown}': the port must be a number from 1 to 65535"
            ));
        }
    };
    Ok(Endpoint { host, port })
}

fn parse_prefix(p: &str) -> Result<String, String> {
    let shown = netconf::name::printable(p);
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    if trimmed.is_empty() {
        return Ok(DEFAULT_PREFIX.to_owned());
    }
    if trimmed.len() > MAX_PREFIX_LEN {
        return Err(format!("the prefix is longer than {MAX_PREFIX_LEN} bytes"));
    }
    let Some(body) = trimmed.strip_prefix('/') else {
        return Err(format!("prefix '{shown}': must start with /"));
    };
    for seg in body.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(format!(
                "prefix '{shown}': segments may hold only letters, digits, '.', '_' and '-'"
            ));
        }
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls_parse_into_endpoints_and_prefix() {
        let u: EtcdUrl = "etcd://127.0.0.1:2379,node-b.example:22379,[::1]:2379/ganeti/c1"
            .parse()
            .unwrap();
        let eps: Vec<String> = u.endpoints().iter().map(ToString::to_string).collect();
        assert_eq!(
            eps,
            ["127.0.0.1:2379", "node-b.example:22379", "[::1]:2379"]
        );
        assert_eq!(u.prefix(), "/ganeti/c1");
        assert_eq!(
            u.to_string(),
            "etcd://127.0.0.1:2379,node-b.example:22379,[::1]:2379/ganeti/c1"
        );
        let plain: EtcdUrl = "etcd://h:1".parse().unwrap();
        assert_eq!(plain.prefix(), DEFAULT_PREFIX);
        let slash: EtcdUrl = "etcd://h:1/p/".parse().unwrap();
        assert_eq!(slash.prefix(), "/p");
        assert!(!slash.tls());
        let tls: EtcdUrl = "etcds://127.0.0.1:2379,[::1]:2379/c".parse().unwrap();
        assert!(tls.tls());
        assert_eq!(tls.to_string(), "etcds://127.0.0.1:2379,[::1]:2379/c");
        assert_eq!(tls.endpoints()[1].base_for(true), "https://[::1]:2379");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("http://h:1", "expected etcd://"),
            ("etcds://", "no host"),
            ("etcds:/h:1", "expected etcd://"),
            ("etcd://", "no host"),
            ("etcd://h", "expected host:port"),
            ("etcd://h:0", "port must be"),
            ("etcd://h:70000", "port must be"),
            ("etcd://h:+1", "port must be"),
            ("etcd://h:1,", "expected host:port"),
            ("etcd://h_x:1", "not a host name"),
            ("etcd://[zz]:1", "not an IPv6"),
            ("etcd://h:1/a/../b", "segments may hold"),
            ("etcd://h:1/a//b", "segments may hold"),
            ("etcd://h:1/a b", "segments may hold"),
            ("etcd://h:1/\u{7}", "segments may hold"),
        ] {
            let e = url.parse::<EtcdUrl>().unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
