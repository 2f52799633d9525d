//! Where each object of the cluster lives in etcd: one key per object under the prefix,
//! so that a command writes only the objects it changes and a reader can range over just
//! the kinds it needs.
//!
//! ```text
//! <p>/schema                  format version (CONFIG_VERSION)
//! <p>/cluster                 the cluster's parameters
//! <p>/serial                  written by every commit: its etcd version counts commits
//! <p>/groups/<uuid>           a node group
//! <p>/nodes/<uuid>            a node
//! <p>/networks/<uuid>         a network with its address pool
//! <p>/instances/<uuid>        an instance with its NICs
//! <p>/names/instance/<name>   index: the instance's UUID, created only if absent
//! <p>/macs/<mac>              index: the UUID of the instance whose NIC has this MAC
//! ```
//!
//! Values are the objects' TOML (the serde form of config.data's tables). Key segments
//! other than the fixed ones are escaped (`%XX` outside `[A-Za-z0-9._:-]`), so a name can
//! never reach into another key's place.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::config::instance::Instance;

/// The serial key's value.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SerialValue {
    /// The serial before the first commit here.
    pub(super) base: u64,
    /// When the last commit was made (the cluster's `mtime`).
    pub(super) mtime: f64,
    /// Which commit wrote it last: a client that lost the answer to its txn finds out
    /// whether it was applied.
    pub(super) commit: String,
}

/// The index keys an instance holds: its name and its NICs' MACs.
pub(super) fn index_keys(i: &Instance) -> BTreeSet<Key> {
    let mut s = BTreeSet::new();
    s.insert(Key::InstanceName(i.name.as_str().to_owned()));
    for n in &i.nics {
        s.insert(Key::Mac(n.mac.to_string()));
    }
    s
}

impl Key {
    /// Whether a snapshot reads this key up front (the heads), rather than on demand.
    pub fn is_head(&self) -> bool {
        matches!(
            self,
            Key::Schema
                | Key::Cluster
                | Key::Serial
                | Key::Group(_)
                | Key::Node(_)
                | Key::Network(_)
        )
    }
}

/// One key of the layout, without the prefix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Schema,
    Cluster,
    Serial,
    Group(String),
    Node(String),
    Network(String),
    Instance(String),
    InstanceName(String),
    Mac(String),
}

/// The keys of one cluster: everything under its prefix.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The prefix with a trailing `/`.
    root: String,
}

const SERIAL: &str = "serial";

impl Layout {
    pub fn new(prefix: &str) -> Self {
        Layout {
            root: format!("{prefix}/"),
        }
    }

    /// The range that holds the whole cluster.
    pub fn root(&self) -> &[u8] {
        self.root.as_bytes()
    }

    /// The range of one kind of object: `groups`, `nodes`, `networks` or `instances`.
    pub fn under(&self, dir: &str) -> Vec<u8> {
        format!("{}{dir}/", self.root).into_bytes()
    }

    pub fn key(&self, k: &Key) -> Vec<u8> {
        let mut s = self.root.clone();
        let (dir, seg) = match k {
            Key::Schema => return format!("{s}schema").into_bytes(),
            Key::Cluster => return format!("{s}cluster").into_bytes(),
            Key::Serial => return format!("{s}{SERIAL}").into_bytes(),
            Key::Group(u) => ("groups/", u),
            Key::Node(u) => ("nodes/", u),
            Key::Network(u) => ("networks/", u),
            Key::Instance(u) => ("instances/", u),
            Key::InstanceName(n) => ("names/instance/", n),
            Key::Mac(m) => ("macs/", m),
        };
        s.push_str(dir);
        escape_into(&mut s, seg);
        s.into_bytes()
    }

    /// What a key read from etcd is; an error for one this build does not know.
    pub fn parse(&self, raw: &[u8]) -> Result<Key, String> {
        let shown = || netconf::name::printable(&String::from_utf8_lossy(raw));
        let rel = raw
            .strip_prefix(self.root.as_bytes())
            .and_then(|r| std::str::from_utf8(r).ok())
            .ok_or_else(|| format!("key '{}' is not under this cluster's prefix", shown()))?;
        let seg = |s: &str| unescape(s).ok_or_else(|| format!("key '{}': bad escape", shown()));
        let k = match rel {
            "schema" => Key::Schema,
            "cluster" => Key::Cluster,
            SERIAL => Key::Serial,
            _ => {
                let (dir, rest) = rel
                    .rsplit_once('/')
                    .ok_or_else(|| format!("unknown key '{}'", shown()))?;
                match dir {
                    "groups" => Key::Group(seg(rest)?),
                    "nodes" => Key::Node(seg(rest)?),
                    "networks" => Key::Network(seg(rest)?),
                    "instances" => Key::Instance(seg(rest)?),
                    "names/instance" => Key::InstanceName(seg(rest)?),
                    "macs" => Key::Mac(seg(rest)?),
                    _ => return Err(format!("unknown key '{}'", shown())),
                }
            }
        };
        Ok(k)
    }

    /// The ranges that hold every key but the serial: a commit that compares them sees any
    /// write since its read, yet commits (which all write the serial) do not collide on it.
    pub fn all_but_serial(&self) -> [(Vec<u8>, Vec<u8>); 2] {
        let serial = self.key(&Key::Serial);
        let mut after = serial.clone();
        after.push(0);
        [
            (self.root.as_bytes().to_vec(), serial),
            (after, super::client::range_end(self.root.as_bytes())),
        ]
    }
}

fn escape_into(out: &mut String, seg: &str) {
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.is_empty() || s == "." || s == ".." {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_and_odd_names_stay_in_their_place() {
        let l = Layout::new("/p");
        for k in [
            Key::Schema,
            Key::Cluster,
            Key::Serial,
            Key::Group("g-1".into()),
            Key::Node("n".into()),
            Key::Network("0f0e".into()),
            Key::Instance("a/../../cluster".into()),
            Key::InstanceName("web 1%".into()),
            Key::Mac("aa:00:00:00:00:01".into()),
        ] {
            let raw = l.key(&k);
            assert!(raw.starts_with(b"/p/"));
            assert_eq!(
                l.parse(&raw).unwrap(),
                k,
                "{}",
                String::from_utf8_lossy(&raw)
            );
        }
        assert_eq!(
            l.key(&Key::Instance("a/b".into())),
            b"/p/instances/a%2Fb".to_vec()
        );
        assert!(l.parse(b"/p/other/x").unwrap_err().contains("unknown key"));
        assert!(l.parse(b"/q/cluster").is_err());
    }

    #[test]
    fn the_two_ranges_leave_out_only_the_serial() {
        let l = Layout::new("/p");
        let [(a, b), (c, d)] = l.all_but_serial();
        let inside = |k: &[u8]| {
            (a.as_slice()..b.as_slice()).contains(&k) || (c.as_slice()..d.as_slice()).contains(&k)
        };
        assert!(!inside(&l.key(&Key::Serial)));
        for k in [
            Key::Schema,
            Key::Cluster,
            Key::Group("x".into()),
            Key::Mac("m".into()),
        ] {
            assert!(inside(&l.key(&k)));
        }
    }
}
