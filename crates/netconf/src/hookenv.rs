//! The `GANETI_INSTANCE_*` variables of an instance hook: the contract between the
//! operations that run hooks (writer, [`InstanceHookEnv::to_env`]) and the hooks of this
//! suite (reader, [`InstanceHookEnv::from_env`]), in the names and forms of Ganeti's
//! `BuildInstanceHookEnv` so that a hook reads real Ganeti and this suite alike.
//!
//! Variables here are named without the `GANETI_` prefix, which the hook runner adds.
//! Ganeti exports an unset value as an empty string (some versions as `None`); both read
//! back as unset. Every value is checked once, here: the instance names, IP addresses,
//! MACs and subnets a hook gets are typed. Messages name the variable.
//!
//! This module knows nothing of the config store: the operations convert their model into
//! [`InstanceHookEnv`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::mac::{MacAddr, MacPrefix};
use crate::name::{InstanceName, printable};
use crate::nicmode::NicMode;

/// The most NICs a hook environment may announce. Ganeti allows 8; the margin keeps
/// instances of other tools readable while a forged count cannot make the reader loop or
/// allocate without bound.
pub const MAX_HOOK_NICS: usize = 1024;

/// What this suite's instances tell hooks about the parts it does not manage: no
/// secondaries, no OS, no disks, not running.
const FIXED: [(&str, &str); 5] = [
    ("INSTANCE_SECONDARIES", ""),
    ("INSTANCE_OS_TYPE", ""),
    ("INSTANCE_STATUS", "down"),
    ("INSTANCE_DISK_TEMPLATE", "diskless"),
    ("INSTANCE_DISK_COUNT", "0"),
];

/// The hook variables of one run, without the `GANETI_` prefix. Reading them checks
/// nothing: a hook decides what it needs (its pre phase, for one, must never fail).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookVars(HashMap<String, String>);

impl HookVars {
    /// From a process environment: the `GANETI_*` variables, prefix removed.
    pub fn from_process_env(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        HookVars(
            vars.into_iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("GANETI_")?.to_owned(), v)))
                .collect(),
        )
    }

    /// From pairs named without the prefix, as [`InstanceHookEnv::to_env`] gives them.
    pub fn from_pairs(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        HookVars(vars.into_iter().collect())
    }

    /// The value of `GANETI_<name>`, trimmed; `None` when unset, empty or `None`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && *v != "None")
    }

    fn require(&self, name: &str) -> Result<&str, HookEnvError> {
        self.get(name).ok_or_else(|| HookEnvError::missing(name))
    }

    /// `name` read as a `T`; `what` completes "'…' is not …" when it does not parse.
    fn parsed<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, HookEnvError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| HookEnvError::bad(name, format!("'{}' is {what}", printable(v))))
            })
            .transpose()
    }

    /// `name` read as a `T` whose parse error says what is wrong with the value. Those
    /// errors quote the value as it came; it is shown escaped, as names are.
    fn parsed_with<T>(&self, name: &str) -> Result<Option<T>, HookEnvError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|e: T::Err| {
                    HookEnvError::bad(name, e.to_string().replace(v, &printable(v)))
                })
            })
            .transpose()
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A list Ganeti joins with spaces (this suite) or commas (some hook writers).
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|t| {
                t.split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn instance_name(&self, name: &str) -> Result<Option<InstanceName>, HookEnvError> {
        self.get(name)
            .map(|v| InstanceName::check(v.to_owned()).map_err(|e| HookEnvError::bad(name, e)))
            .transpose()
    }
}

/// A variable that is missing or does not hold what it must.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookEnvError {
    /// Without the `GANETI_` prefix.
    pub var: String,
    /// `None`: the variable is not set.
    pub reason: Option<String>,
}

impl HookEnvError {
    fn missing(var: &str) -> Self {
        HookEnvError {
            var: var.to_owned(),
            reason: None,
        }
    }

    fn bad(var: &str, reason: impl fmt::Display) -> Self {
        HookEnvError {
            var: var.to_owned(),
            reason: Some(reason.to_string()),
        }
    }
}

impl fmt::Display for HookEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            None => write!(f, "GANETI_{} is not set", self.var),
            Some(r) => write!(f, "GANETI_{}: {r}", self.var),
        }
    }
}

impl std::error::Error for HookEnvError {}

/// An instance as its hooks see it (for instance-modify: after the change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceHookEnv {
    /// `INSTANCE_NAME`; for a rename, the old name.
    pub name: InstanceName,
    /// `INSTANCE_PRIMARY`: the node a hook compares itself with, as Ganeti names it.
    pub primary: String,
    /// `INSTANCE_TAGS`.
    pub tags: Vec<String>,
    /// `INSTANCE_NIC_COUNT` and `INSTANCE_NIC<n>_*`.
    pub nics: Vec<HookNic>,
    /// `INSTANCE_NEW_NAME`, set by a rename.
    pub new_name: Option<InstanceName>,
}

/// One NIC: `INSTANCE_NIC<n>_*`. Every field may be unset, as Ganeti leaves them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookNic {
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub ip: Option<IpAddr>,
    pub mac: Option<MacAddr>,
    pub mode: Option<NicMode>,
    pub link: Option<String>,
    pub vlan: Option<String>,
    /// Set for bridged and Open vSwitch NICs: the link.
    pub bridge: Option<String>,
    /// `NETWORK_*`: the network the NIC is on.
    pub network: Option<String>,
    pub network_uuid: Option<String>,
    pub network_tags: Vec<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac_prefix: Option<MacPrefix>,
}

impl InstanceHookEnv {
    /// The variables, in Ganeti's order. Keys Ganeti always exports are written even when
    /// unset (empty), the others only when set.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("INSTANCE_NAME".into(), self.name.to_string()),
            ("INSTANCE_PRIMARY".into(), self.primary.clone()),
        ];
        v.extend(FIXED.iter().map(|(k, val)| ((*k).into(), (*val).into())));
        v.push(("INSTANCE_TAGS".into(), self.tags.join(" ")));
        v.push(("INSTANCE_NIC_COUNT".into(), self.nics.len().to_string()));
        for (i, nic) in self.nics.iter().enumerate() {
            nic.put(&format!("INSTANCE_NIC{i}_"), &mut v);
        }
        if let Some(n) = &self.new_name {
            v.push(("INSTANCE_NEW_NAME".into(), n.to_string()));
        }
        v
    }

    /// Reads and checks the instance's variables.
    pub fn from_env(vars: &HookVars) -> Result<Self, HookEnvError> {
        let name = vars
            .instance_name("INSTANCE_NAME")?
            .ok_or_else(|| HookEnvError::missing("INSTANCE_NAME"))?;
        let primary = vars.require("INSTANCE_PRIMARY")?.to_owned();
        Ok(InstanceHookEnv {
            name,
            primary,
            tags: vars.list("INSTANCE_TAGS"),
            nics: HookNic::all_from_env(vars)?,
            new_name: vars.instance_name("INSTANCE_NEW_NAME")?,
        })
    }
}

impl HookNic {
    /// The NICs alone (`INSTANCE_NIC_COUNT`, `INSTANCE_NIC<n>_*`), for a hook that needs
    /// nothing else.
    pub fn all_from_env(vars: &HookVars) -> Result<Vec<HookNic>, HookEnvError> {
        const COUNT: &str = "INSTANCE_NIC_COUNT";
        let count: usize = match vars.get(COUNT) {
            Some(n) => n.parse().map_err(|_| {
                HookEnvError::bad(COUNT, format!("not a number: '{}'", printable(n)))
            })?,
            None => 0,
        };
        if count > MAX_HOOK_NICS {
            return Err(HookEnvError::bad(
                COUNT,
                format!("{count} NICs, at most {MAX_HOOK_NICS} are read"),
            ));
        }
        (0..count)
            .map(|i| HookNic::from_env(vars, &format!("INSTANCE_NIC{i}_")))
            .collect()
    }

    fn from_env(vars: &HookVars, p: &str) -> Result<HookNic, HookEnvError> {
        let k = |f: &str| format!("{p}{f}");
        let ip_key = k("IP");
        // The message says which family the text looked like it meant.
        let ip_kind = match vars.get(&ip_key) {
            Some(v) if v.contains(':') => "not an IPv6 address",
            _ => "not an IPv4 address",
        };
        Ok(HookNic {
            name: vars.text(&k("NAME")),
            uuid: vars.text(&k("UUID")),
            ip: vars.parsed(&ip_key, ip_kind)?,
            mac: vars.parsed_with(&k("MAC"))?,
            mode: vars.parsed_with(&k("MODE"))?,
            link: vars.text(&k("LINK")),
            vlan: vars.text(&k("VLAN")),
            bridge: vars.text(&k("BRIDGE")),
            network: vars.text(&k("NETWORK_NAME")),
            network_uuid: vars.text(&k("NETWORK_UUID")),
            network_tags: vars.list(&k("NETWORK_TAGS")),
            subnet: vars.parsed(&k("NETWORK_SUBNET"), "not an IPv4 network")?,
            gateway: vars.parsed(&k("NETWORK_GATEWAY"), "not an IPv4 address")?,
            subnet6: vars.parsed(&k("NETWORK_SUBNET6"), "not an IPv6 network")?,
            gateway6: vars.parsed(&k("NETWORK_GATEWAY6"), "not an IPv6 address")?,
            mac_prefix: vars.parsed_with(&k("NETWORK_MAC_PREFIX"))?,
        })
    }

    /// Appends this NIC's variables with prefix `p` (`INSTANCE_NIC<n>_`).
    fn put(&self, p: &str, v: &mut Vec<(String, String)>) {
        fn opt<T: ToString>(x: Option<&T>) -> String {
            x.map(ToString::to_string).unwrap_or_default()
        }
        let mut put = |k: &str, val: String| v.push((format!("{p}{k}"), val));
        if let Some(n) = &self.name {
            put("NAME", n.clone());
        }
        put("UUID", opt(self.uuid.as_ref()));
        put("IP", opt(self.ip.as_ref()));
        put("MAC", opt(self.mac.as_ref()));
        put("MODE", opt(self.mode.as_ref()));
        put("LINK", opt(self.link.as_ref()));
        put("VLAN", opt(self.vlan.as_ref()));
        if let Some(b) = &self.bridge {
            put("BRIDGE", b.clone());
        }
        // Ganeti exports these four for every NIC on a network.
        if self.network.is_some()
            || self.network_uuid.is_some()
            || !self.network_tags.is_empty()
            || self.subnet.is_some()
        {
            put("NETWORK_NAME", opt(self.network.as_ref()));
            put("NETWORK_UUID", opt(self.network_uuid.as_ref()));
            put("NETWORK_TAGS", self.network_tags.join(" "));
            put("NETWORK_SUBNET", opt(self.subnet.as_ref()));
        }
        if let Some(g) = self.gateway {
            put("NETWORK_GATEWAY", g.to_string());
        }
        if let Some(s6) = self.subnet6 {
            put("NETWORK_SUBNET6", s6.to_string());
        }
        if let Some(g6) = self.gateway6 {
            put("NETWORK_GATEWAY6", g6.to_string());
        }
        if let Some(mp) = self.mac_prefix {
            put("NETWORK_MAC_PREFIX", mp.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HookVars {
        HookVars::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn full() -> InstanceHookEnv {
        let routed = HookNic {
            name: Some("eth0".into()),
            uuid: Some("6b5a0c1e-0000-4000-8000-000000000001".into()),
            ip: Some("198.51.100.10".parse().unwrap()),
            mac: Some("aa:00:00:12:34:56".parse().unwrap()),
            mode: Some(NicMode::Routed),
            link: Some("rt100".into()),
            vlan: None,
            bridge: None,
            network: Some("pub4".into()),
            network_uuid: Some("6b5a0c1e-0000-4000-8000-000000000002".into()),
            network_tags: vec!["public".into(), "nfdhcpd".into()],
            subnet: Some("198.51.100.0/24".parse().unwrap()),
            gateway: Some("198.51.100.1".parse().unwrap()),
            subnet6: Some("2001:db8:1::/64".parse().unwrap()),
            gateway6: Some("2001:db8:1::1".parse().unwrap()),
            mac_prefix: Some("aa:00:01".parse().unwrap()),
        };
        let bridged = HookNic {
            uuid: Some("6b5a0c1e-0000-4000-8000-000000000003".into()),
            ip: Some("2001:db8:2::5".parse().unwrap()),
            mac: Some("aa:00:00:00:00:01".parse().unwrap()),
            mode: Some(NicMode::Bridged),
            link: Some("br0".into()),
            vlan: Some(".100".into()),
            bridge: Some("br0".into()),
            ..HookNic::default()
        };
        InstanceHookEnv {
            name: InstanceName::check("web1.example.org".into()).unwrap(),
            primary: "node1.example.org".into(),
            tags: vec!["a".into(), "b".into()],
            nics: vec![routed, bridged, HookNic::default()],
            new_name: Some(InstanceName::check("web2.example.org".into()).unwrap()),
        }
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let env = full();
        let back = InstanceHookEnv::from_env(&HookVars::from_pairs(env.to_env())).unwrap();
        assert_eq!(back, env);
        let mut plain = env;
        plain.nics.clear();
        plain.tags.clear();
        plain.new_name = None;
        let back = InstanceHookEnv::from_env(&HookVars::from_pairs(plain.to_env())).unwrap();
        assert_eq!(back, plain);
    }

    #[test]
    fn writes_ganeti_names_in_ganeti_order() {
        let env = full().to_env();
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            &keys[..3],
            ["INSTANCE_NAME", "INSTANCE_PRIMARY", "INSTANCE_SECONDARIES"]
        );
        assert_eq!(keys.last(), Some(&"INSTANCE_NEW_NAME"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("INSTANCE_NIC_COUNT"), Some("3"));
        assert_eq!(get("INSTANCE_TAGS"), Some("a b"));
        assert_eq!(get("INSTANCE_NIC0_NETWORK_TAGS"), Some("public nfdhcpd"));
        assert_eq!(get("INSTANCE_NIC0_VLAN"), Some(""), "always written");
        assert_eq!(get("INSTANCE_NIC0_BRIDGE"), None);
        assert_eq!(get("INSTANCE_NIC1_BRIDGE"), Some("br0"));
        assert_eq!(get("INSTANCE_NIC1_NETWORK_NAME"), None, "no network");
        assert_eq!(get("INSTANCE_NIC2_IP"), Some(""));
    }

    #[test]
    fn ganeti_unset_values_read_as_unset() {
        let env = InstanceHookEnv::from_env(&vars(&[
            ("INSTANCE_NAME", "web1"),
            ("INSTANCE_PRIMARY", " node1 "),
            ("INSTANCE_NIC_COUNT", "1"),
            ("INSTANCE_NIC0_IP", "None"),
            ("INSTANCE_NIC0_MAC", ""),
            ("INSTANCE_NIC0_NETWORK_TAGS", "public,nfdhcpd  x"),
        ]))
        .unwrap();
        assert_eq!(env.primary, "node1");
        assert_eq!(env.nics[0].ip, None);
        assert_eq!(env.nics[0].mac, None);
        assert_eq!(env.nics[0].network_tags, ["public", "nfdhcpd", "x"]);
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        let base = [
            ("INSTANCE_NAME", "web1"),
            ("INSTANCE_PRIMARY", "node1"),
            ("INSTANCE_NIC_COUNT", "1"),
        ];
        let err = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            InstanceHookEnv::from_env(&vars(&all))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("INSTANCE_NIC0_IP", "198.51.100.300")]),
            "GANETI_INSTANCE_NIC0_IP: '198.51.100.300' is not an IPv4 address"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC0_IP", "2001:db8::g")]),
            "GANETI_INSTANCE_NIC0_IP: '2001:db8::g' is not an IPv6 address"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC0_MAC", "aa:00:00:12:34")]),
            "GANETI_INSTANCE_NIC0_MAC: Invalid MAC address 'aa:00:00:12:34'"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC0_MAC", "aa:00\nIP=1")]),
            "GANETI_INSTANCE_NIC0_MAC: Invalid MAC address 'aa:00\\nIP=1'"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC0_NETWORK_SUBNET", "198.51.100.0/33")]),
            "GANETI_INSTANCE_NIC0_NETWORK_SUBNET: '198.51.100.0/33' is not an IPv4 network"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC0_NETWORK_SUBNET6", "2001:db8::/129")]),
            "GANETI_INSTANCE_NIC0_NETWORK_SUBNET6: '2001:db8::/129' is not an IPv6 network"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC0_MODE", "pool")]),
            "GANETI_INSTANCE_NIC0_MODE: Invalid NIC mode 'pool'"
        );
        assert_eq!(
            err(&[("INSTANCE_NIC_COUNT", "x")]),
            "GANETI_INSTANCE_NIC_COUNT: not a number: 'x'"
        );
        // A forged count is refused before anything is allocated for it.
        assert_eq!(
            err(&[("INSTANCE_NIC_COUNT", "18446744073709551615")]),
            "GANETI_INSTANCE_NIC_COUNT: 18446744073709551615 NICs, at most 1024 are read"
        );
        // A name that would forge lines or records elsewhere, shown escaped.
        assert_eq!(
            err(&[("INSTANCE_NAME", "web1\nMACSPOOF=1")]),
            "GANETI_INSTANCE_NAME: Invalid hostname 'web1\\nMACSPOOF=1': contains a control character ('\\n')"
        );
        assert!(
            err(&[("INSTANCE_NEW_NAME", "a..b")])
                .starts_with("GANETI_INSTANCE_NEW_NAME: Invalid hostname 'a..b'")
        );
        let missing = |k: &str| {
            let all: Vec<_> = base.iter().copied().filter(|(n, _)| *n != k).collect();
            InstanceHookEnv::from_env(&vars(&all))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(missing("INSTANCE_NAME"), "GANETI_INSTANCE_NAME is not set");
        assert_eq!(
            missing("INSTANCE_PRIMARY"),
            "GANETI_INSTANCE_PRIMARY is not set"
        );
    }

    #[test]
    fn only_ganeti_variables_are_read_from_a_process_env() {
        let v = HookVars::from_process_env([
            ("GANETI_INSTANCE_NAME".to_owned(), "web1".to_owned()),
            ("INSTANCE_PRIMARY".to_owned(), "node1".to_owned()),
        ]);
        assert_eq!(v.get("INSTANCE_NAME"), Some("web1"));
        assert_eq!(v.get("INSTANCE_PRIMARY"), None);
    }
}
