//! `/etc/snf-network/dnshook.toml`: server, zones, TTL, reverse zones, TSIG key.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use toml::Spanned;

use crate::files;
use crate::keyfile;
use crate::names;
use crate::tsig::{Algorithm, Key};

pub const DEFAULT_PATH: &str = "/etc/snf-network/dnshook.toml";

/// `dns_tag = "public"` or `dns_tag = ["public", "dns"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: String,
    port: Option<Spanned<i64>>,
    zone: Option<String>,
    ttl: Option<Spanned<i64>>,
    dns_tag: Option<OneOrMany>,
    node: Option<String>,
    #[serde(default)]
    reverse_zones: Vec<String>,
    ptr: Option<bool>,
    timeout: Option<Spanned<f64>>,
    attempts: Option<Spanned<i64>>,
    backoff: Option<Spanned<f64>>,
    tsig: Option<TsigFile>,
    #[serde(default)]
    networks: BTreeMap<String, NetworkFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TsigFile {
    name: Option<String>,
    algorithm: Option<String>,
    secret: Option<String>,
    key_file: Option<PathBuf>,
    fudge: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    zone: Option<String>,
    ttl: Option<Spanned<i64>>,
    reverse_zone4: Option<String>,
    reverse_zone6: Option<String>,
}

/// Per-network overrides (keyed by the Ganeti network name).
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub zone: Option<String>,
    pub ttl: Option<u32>,
    pub reverse_zone4: Option<String>,
    pub reverse_zone6: Option<String>,
}

/// The settings of `snf-dnshook.toml` (see snf-dnshook.toml(5)), validated.
#[derive(Debug, Clone)]
pub struct DnsHookSettings {
    /// `server` as written: resolved only when there is something to send (see
    /// [`DnsHookSettings::servers`]), so that a node with nothing to do never needs it.
    pub server: String,
    pub port: u16,
    pub zone: Option<String>,
    pub ttl: u32,
    pub dns_tags: Vec<String>,
    pub node: Option<String>,
    pub reverse_zones: Vec<String>,
    pub ptr: bool,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
    pub key: Option<Key>,
    /// The key came from `tsig.key_file`, not from `tsig.secret` in this file.
    pub key_from_file: bool,
    pub networks: BTreeMap<String, Network>,
    /// Files holding the secret that others may read, or that others may change: for
    /// stderr, one line each.
    pub warnings: Vec<String>,
}

/// A number as the file writes it (`0x0`, `1e-10`, `1_000`), for error messages.
fn written<'a, T>(text: &'a str, v: &Spanned<T>) -> &'a str {
    text.get(v.span()).unwrap_or("?")
}

fn seconds(text: &str, what: &str, v: Option<&Spanned<f64>>, default: f64) -> Result<Duration> {
    let Some(v) = v else {
        return Ok(Duration::from_secs_f64(default));
    };
    Duration::try_from_secs_f64(*v.get_ref())
        .ok()
        .filter(|d| !d.is_zero() || what == "backoff")
        .with_context(|| {
            let kind = if what == "backoff" {
                "a number of seconds, 0 or more"
            } else {
                "a positive number of seconds"
            };
            format!("`{what}` must be {kind}, not {}", written(text, v))
        })
}

/// An integer in `lo..=hi`; integers are read as i64 so that the error for one out of
/// range quotes it as written too.
fn integer<T: TryFrom<i64>>(
    text: &str,
    what: &str,
    v: &Spanned<i64>,
    lo: T,
    hi: T,
    unit: &str,
) -> Result<T>
where
    i64: From<T>,
{
    let (lo, hi) = (i64::from(lo), i64::from(hi));
    let n = *v.get_ref();
    let ok = (lo..=hi)
        .contains(&n)
        .then(|| T::try_from(n).ok())
        .flatten();
    ok.with_context(|| {
        format!(
            "`{what}` must be {lo} to {hi}{unit}, not {}",
            written(text, v)
        )
    })
}

/// RFC 2181 8: a TTL is below 2^31; and a record with TTL 0 is never cached, which no
/// published address wants.
const MAX_TTL: u32 = i32::MAX as u32;

fn ttl(text: &str, what: &str, v: Option<&Spanned<i64>>) -> Result<Option<u32>> {
    v.map(|v| integer(text, what, v, 1u32, MAX_TTL, " seconds"))
        .transpose()
}

fn zone(s: &str, what: &str) -> Result<String> {
    names::absolute(s).with_context(|| format!("`{what}`"))
}

impl DnsHookSettings {
    pub fn load(path: &Path) -> Result<DnsHookSettings> {
        let file = files::read(path)?;
        let mut cfg = DnsHookSettings::parse(&file.text, path.parent().unwrap_or(Path::new("/")))
            .with_context(|| format!("{}", path.display()))?;
        // Reading matters only where the file holds the secret; changing it always does
        // (it names the server and the key file).
        let inline_secret = cfg.key.is_some() && !cfg.key_from_file;
        let mask = if inline_secret { 0o006 } else { 0o002 };
        if let Some(access) = files::others_access(file.mode & mask) {
            let p = path.display();
            let holds = if inline_secret {
                " and holds the TSIG secret"
            } else {
                ""
            };
            cfg.warnings.insert(
                0,
                format!(
                    "{p} is {access} (mode {:04o}){holds}: chmod o-rw {p}",
                    file.mode
                ),
            );
        }
        Ok(cfg)
    }

    /// Parses the file's text; relative `key_file` paths are taken from `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<DnsHookSettings> {
        let f: File = toml::from_str(text)?;
        let port = match &f.port {
            None => 53,
            Some(p) => integer(text, "port", p, 1u16, u16::MAX, "")?,
        };
        let dns_tags = match f.dns_tag {
            None => vec!["public".to_string(), "dns".to_string()],
            Some(OneOrMany::One(t)) => vec![t],
            Some(OneOrMany::Many(v)) => v,
        };
        ensure!(!dns_tags.is_empty(), "`dns_tag` must name at least one tag");
        let mut networks = BTreeMap::new();
        for (name, n) in f.networks {
            let ctx = |k: &str| format!("networks.{name}.{k}");
            networks.insert(
                name.clone(),
                Network {
                    zone: n.zone.map(|z| zone(&z, &ctx("zone"))).transpose()?,
                    ttl: ttl(text, &ctx("ttl"), n.ttl.as_ref())?,
                    reverse_zone4: n
                        .reverse_zone4
                        .map(|z| zone(&z, &ctx("reverse_zone4")))
                        .transpose()?,
                    reverse_zone6: n
                        .reverse_zone6
                        .map(|z| zone(&z, &ctx("reverse_zone6")))
                        .transpose()?,
                },
            );
        }
        let mut warnings = Vec::new();
        let key_from_file = f.tsig.as_ref().is_some_and(|t| t.key_file.is_some());
        let key = f
            .tsig
            .map(|t| tsig_key(t, dir, &mut warnings))
            .transpose()?;
        // More would wait for minutes with the doubling backoff: a hook holds Ganeti's job.
        let attempts = match &f.attempts {
            None => 3,
            Some(a) => integer(text, "attempts", a, 1u32, 10, "")?,
        };
        Ok(DnsHookSettings {
            server: f.server,
            port,
            zone: f.zone.map(|z| zone(&z, "zone")).transpose()?,
            ttl: ttl(text, "ttl", f.ttl.as_ref())?.unwrap_or(300),
            dns_tags,
            node: f.node,
            reverse_zones: f
                .reverse_zones
                .iter()
                .map(|z| zone(z, "reverse_zones"))
                .collect::<Result<_>>()?,
            ptr: f.ptr.unwrap_or(true),
            timeout: seconds(text, "timeout", f.timeout.as_ref(), 3.0)?,
            attempts,
            backoff: seconds(text, "backoff", f.backoff.as_ref(), 0.5)?,
            key,
            key_from_file,
            networks,
            warnings,
        })
    }

    /// Every address of `server` (resolved now, with the system's resolver).
    pub fn servers(&self) -> Result<Vec<SocketAddr>> {
        let servers: Vec<SocketAddr> = (self.server.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("`server`: cannot resolve '{}'", self.server))?
            .collect();
        ensure!(
            !servers.is_empty(),
            "`server`: '{}' has no address",
            self.server
        );
        Ok(servers)
    }

    /// Every forward zone the hook owns names in: the default one and the per-network ones.
    pub fn forward_zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = self
            .zone
            .iter()
            .chain(self.networks.values().filter_map(|n| n.zone.as_ref()))
            .cloned()
            .collect();
        zones.sort();
        zones.dedup();
        zones
    }

    pub fn network(&self, name: Option<&str>) -> Option<&Network> {
        name.and_then(|n| self.networks.get(n))
    }

    /// The forward zone of a NIC on network `name`.
    pub fn zone_for(&self, name: Option<&str>) -> Option<&str> {
        self.network(name)
            .and_then(|n| n.zone.as_deref())
            .or(self.zone.as_deref())
    }

    pub fn ttl_for(&self, name: Option<&str>) -> u32 {
        self.network(name).and_then(|n| n.ttl).unwrap_or(self.ttl)
    }

    /// Reverse zones named explicitly anywhere in the file.
    pub fn explicit_reverse_zones(&self) -> Vec<&str> {
        self.reverse_zones
            .iter()
            .map(String::as_str)
            .chain(self.networks.values().flat_map(|n| {
                n.reverse_zone4
                    .as_deref()
                    .into_iter()
                    .chain(n.reverse_zone6.as_deref())
            }))
            .collect()
    }

    pub fn is_dns_nic(&self, tags: &[String]) -> bool {
        tags.iter().any(|t| self.dns_tags.contains(t))
    }
}

fn tsig_key(t: TsigFile, dir: &Path, warnings: &mut Vec<String>) -> Result<Key> {
    let fudge = t.fudge.unwrap_or(300);
    if let Some(path) = t.key_file {
        ensure!(
            t.secret.is_none(),
            "`tsig`: give either `secret` or `key_file`, not both"
        );
        let path = dir.join(path);
        let file = files::read(&path).context("`tsig.key_file`")?;
        let mut key = keyfile::parse(&file.text, &path, t.name.as_deref())
            .with_context(|| format!("`tsig.key_file` {}", path.display()))?;
        if let Some(access) = files::others_access(file.mode) {
            let p = path.display();
            warnings.push(format!(
                "TSIG key file {p} is {access} (mode {:04o}): chmod o-rw {p}",
                file.mode
            ));
        }
        if let Some(a) = t.algorithm {
            let a: Algorithm = a.parse()?;
            ensure!(
                a == key.algorithm,
                "`tsig.algorithm` {a} differs from the key file's {}",
                key.algorithm
            );
        }
        key.fudge = fudge;
        return Ok(key);
    }
    let Some(secret) = t.secret else {
        bail!("`tsig` needs `secret` (base64) or `key_file`");
    };
    let name = t.name.context("`tsig.name` is required with `secret`")?;
    Ok(Key {
        name: keyfile::key_name(&name)?,
        algorithm: t.algorithm.as_deref().unwrap_or("hmac-sha256").parse()?,
        secret: keyfile::decode_secret(&secret).context("`tsig.secret`")?,
        fudge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/nonexistent";

    #[test]
    fn minimal_file_takes_defaults() {
        let c = DnsHookSettings::parse(
            "server = \"127.0.0.1\"\nzone = \"Example.org\"\n",
            Path::new(DIR),
        )
        .unwrap();
        assert_eq!(c.servers().unwrap(), ["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(c.zone.as_deref(), Some("example.org."));
        assert_eq!(c.ttl, 300);
        assert_eq!(c.dns_tags, ["public", "dns"]);
        assert!(c.key.is_none());
        assert!(c.ptr);
        assert_eq!(c.attempts, 3);
        assert_eq!(c.forward_zones(), ["example.org."]);
    }

    #[test]
    fn per_network_zones_and_key() {
        let c = DnsHookSettings::parse(
            r#"
server = "127.0.0.1"
port = 5353
zone = "example.org"
ttl = 60
dns_tag = "dns"
reverse_zones = ["100.51.198.in-addr.arpa"]
[tsig]
name = "DnsHook-Key."
algorithm = "hmac-sha512"
secret = "c2VjcmV0"
[networks.pub2]
zone = "b.example.org"
ttl = 30
reverse_zone6 = "8.b.d.0.1.0.0.2.ip6.arpa"
"#,
            Path::new(DIR),
        )
        .unwrap();
        assert_eq!(c.servers().unwrap()[0].port(), 5353);
        assert_eq!(c.dns_tags, ["dns"]);
        assert_eq!(c.forward_zones(), ["b.example.org.", "example.org."]);
        assert_eq!(c.zone_for(Some("pub2")), Some("b.example.org."));
        assert_eq!(c.zone_for(Some("other")), Some("example.org."));
        assert_eq!(c.zone_for(None), Some("example.org."));
        assert_eq!(c.ttl_for(Some("pub2")), 30);
        assert_eq!(c.ttl_for(None), 60);
        assert_eq!(
            c.explicit_reverse_zones(),
            ["100.51.198.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."]
        );
        let k = c.key.unwrap();
        assert_eq!(k.name, "dnshook-key");
        assert_eq!(k.algorithm, Algorithm::HmacSha512);
        assert_eq!(k.secret, b"secret");
    }

    #[test]
    fn mistakes_are_reported() {
        let err = |s: &str| {
            format!(
                "{:#}",
                DnsHookSettings::parse(s, Path::new(DIR)).unwrap_err()
            )
        };
        assert!(err("zone = \"x\"").contains("missing field `server`"));
        assert!(err("server = \"127.0.0.1\"\nzonee = \"x\"").contains("unknown field `zonee`"));
        assert!(
            err("server = \"127.0.0.1\"\n[tsig]\nname = \"k\"\nsecret = \"!!\"")
                .contains("tsig.secret")
        );
        assert!(
            err("server = \"127.0.0.1\"\n[tsig]\nname = \"k\"\nalgorithm = \"md4\"\nsecret = \"AA==\"")
                .contains("unknown TSIG algorithm 'md4'")
        );
        assert!(err("server = \"127.0.0.1\"\n[tsig]\nname = \"k\"").contains("`secret`"));
        assert!(err("server = \"127.0.0.1\"\nzone = \"a b\"").contains("invalid DNS name"));
        assert!(err("server = \"127.0.0.1\"\ntimeout = 0").contains("`timeout`"));
    }
}
