//! The GANETI_* environment of an instance hook.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use ipnet::{Ipv4Net, Ipv6Net};
use netconf::MacAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

/// What the opcode asks of the DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Add,
    Modify,
    Rename { new_name: String },
    Remove,
}

/// One NIC as the hook sees it (for instance-modify: the NEW list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nic {
    pub index: usize,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<MacAddr>,
    pub network: Option<String>,
    pub subnet: Option<Ipv4Net>,
    pub subnet6: Option<Ipv6Net>,
    pub tags: Vec<String>,
}

/// The hook environment. Only the phase is checked up front: the pre phase must never
/// fail (a failing pre hook aborts the Ganeti operation), whatever else the variables hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEnv {
    pub phase: Phase,
    pub op_code: String,
    pub instance: Option<String>,
    pub primary: Option<String>,
    pub new_name: Option<String>,
    vars: HashMap<String, String>,
}

impl HookEnv {
    /// Reads the GANETI_* variables; `vars` is usually the process environment.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("GANETI_"))
            .collect();
        let env = HookEnv {
            phase: Phase::Pre,
            op_code: String::new(),
            instance: None,
            primary: None,
            new_name: None,
            vars,
        };
        let phase = match env.get("HOOKS_PHASE") {
            Some("pre") => Phase::Pre,
            Some("post") => Phase::Post,
            Some(other) => bail!("GANETI_HOOKS_PHASE: unknown phase '{other}'"),
            None => bail!(
                "GANETI_HOOKS_PHASE is not set: snf-dnshook runs as a Ganeti instance hook \
                 (see snf-dnshook(8))"
            ),
        };
        let owned = |k: &str| env.get(k).map(str::to_string);
        Ok(HookEnv {
            phase,
            op_code: owned("OP_CODE").unwrap_or_default(),
            instance: owned("INSTANCE_NAME"),
            primary: owned("INSTANCE_PRIMARY"),
            new_name: owned("INSTANCE_NEW_NAME"),
            ..env
        })
    }

    /// `GANETI_<k>`; Ganeti exports unset values as "" (and some versions as "None").
    fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .get(&format!("GANETI_{k}"))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && *v != "None")
    }

    /// The instance's NICs (for instance-modify: the NEW list).
    pub fn nics(&self) -> Result<Vec<Nic>> {
        let count: usize = match self.get("INSTANCE_NIC_COUNT") {
            Some(n) => n
                .parse()
                .with_context(|| format!("GANETI_INSTANCE_NIC_COUNT: not a number: '{n}'"))?,
            None => 0,
        };
        let mut nics = Vec::with_capacity(count);
        for i in 0..count {
            let field = |f: &str| self.get(&format!("INSTANCE_NIC{i}_{f}"));
            let ip = match field("IP") {
                Some(v) => Some(v.parse::<Ipv4Addr>().with_context(|| {
                    format!("GANETI_INSTANCE_NIC{i}_IP: '{v}' is not an IPv4 address")
                })?),
                None => None,
            };
            let mac = match field("MAC") {
                Some(v) => Some(
                    v.parse::<MacAddr>()
                        .with_context(|| format!("GANETI_INSTANCE_NIC{i}_MAC"))?,
                ),
                None => None,
            };
            let subnet = match field("NETWORK_SUBNET") {
                Some(v) => Some(v.parse::<Ipv4Net>().with_context(|| {
                    format!("GANETI_INSTANCE_NIC{i}_NETWORK_SUBNET: '{v}' is not an IPv4 network")
                })?),
                None => None,
            };
            let subnet6 = match field("NETWORK_SUBNET6") {
                Some(v) => Some(v.parse::<Ipv6Net>().with_context(|| {
                    format!("GANETI_INSTANCE_NIC{i}_NETWORK_SUBNET6: '{v}' is not an IPv6 network")
                })?),
                None => None,
            };
            let tags = field("NETWORK_TAGS")
                .map(|t| {
                    t.split(|c: char| c.is_whitespace() || c == ',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            nics.push(Nic {
                index: i,
                ip,
                mac,
                network: field("NETWORK_NAME").map(str::to_string),
                subnet,
                subnet6,
                tags,
            });
        }
        Ok(nics)
    }

    /// The DNS work an opcode implies; `None` for opcodes this hook ignores.
    pub fn action(&self) -> Result<Option<Action>> {
        Ok(Some(match self.op_code.as_str() {
            "OP_INSTANCE_CREATE" => Action::Add,
            "OP_INSTANCE_SET_PARAMS" => Action::Modify,
            "OP_INSTANCE_REMOVE" => Action::Remove,
            "OP_INSTANCE_RENAME" => Action::Rename {
                new_name: self
                    .new_name
                    .clone()
                    .context("OP_INSTANCE_RENAME without GANETI_INSTANCE_NEW_NAME")?,
            },
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_an_instance_add_post_hook() {
        let env = HookEnv::from_vars(vars(&[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_CREATE"),
            ("GANETI_INSTANCE_NAME", "web1.example.org"),
            ("GANETI_INSTANCE_PRIMARY", "node1.example.org"),
            ("GANETI_INSTANCE_NIC_COUNT", "2"),
            ("GANETI_INSTANCE_NIC0_IP", "198.51.100.10"),
            ("GANETI_INSTANCE_NIC0_MAC", "AA:00:00:12:34:56"),
            ("GANETI_INSTANCE_NIC0_NETWORK_NAME", "pub4"),
            ("GANETI_INSTANCE_NIC0_NETWORK_SUBNET", "198.51.100.0/24"),
            ("GANETI_INSTANCE_NIC0_NETWORK_TAGS", "public nfdhcpd"),
            ("GANETI_INSTANCE_NIC1_IP", ""),
            ("GANETI_INSTANCE_NIC1_MAC", "aa:00:00:00:00:01"),
            ("GANETI_INSTANCE_NIC1_NETWORK_SUBNET6", "2001:db8:1::/64"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(env.phase, Phase::Post);
        assert_eq!(env.action().unwrap(), Some(Action::Add));
        assert_eq!(env.instance.as_deref(), Some("web1.example.org"));
        let nics = env.nics().unwrap();
        assert_eq!(nics.len(), 2);
        assert_eq!(nics[0].ip, Some("198.51.100.10".parse().unwrap()));
        assert_eq!(nics[0].tags, ["public", "nfdhcpd"]);
        assert_eq!(nics[0].network.as_deref(), Some("pub4"));
        assert_eq!(nics[1].ip, None);
        assert!(nics[1].tags.is_empty());
        assert_eq!(nics[1].subnet6, Some("2001:db8:1::/64".parse().unwrap()));
    }

    #[test]
    fn rename_needs_the_new_name_and_others_are_ignored() {
        let base = [
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_RENAME"),
        ];
        let env = HookEnv::from_vars(vars(&base)).unwrap();
        assert!(
            env.action()
                .unwrap_err()
                .to_string()
                .contains("GANETI_INSTANCE_NEW_NAME")
        );
        let env = HookEnv::from_vars(vars(&[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_OP_CODE", "OP_INSTANCE_STARTUP"),
        ]))
        .unwrap();
        assert_eq!(env.action().unwrap(), None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = HookEnv::from_vars(vars(&[
            ("GANETI_HOOKS_PHASE", "post"),
            ("GANETI_INSTANCE_NIC_COUNT", "1"),
            ("GANETI_INSTANCE_NIC0_IP", "300.1.1.1"),
        ]))
        .unwrap()
        .nics()
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("GANETI_INSTANCE_NIC0_IP"),
            "{e:#}"
        );
        let e = HookEnv::from_vars(vars(&[("GANETI_OP_CODE", "OP_INSTANCE_CREATE")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("GANETI_HOOKS_PHASE is not set"), "{e}");
    }
}
