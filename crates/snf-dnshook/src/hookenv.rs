//! The GANETI_* environment of an instance hook, as this hook reads it. The instance
//! variables are decoded by `netconf::hookenv`, the contract the operations write.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, bail};
use ipnet::{Ipv4Net, Ipv6Net};
use netconf::{HookNic, HookVars, InstanceHookEnv, MacAddr};

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

/// One NIC as the DNS sees it (for instance-modify: the NEW list).
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

impl Nic {
    /// The DNS part of NIC `index`; A records need an IPv4 address, so another family
    /// is refused.
    fn from_hook(index: usize, nic: &HookNic) -> Result<Self> {
        let ip = match nic.ip {
            None => None,
            Some(IpAddr::V4(ip)) => Some(ip),
            Some(IpAddr::V6(ip)) => {
                bail!("GANETI_INSTANCE_NIC{index}_IP: '{ip}' is not an IPv4 address")
            }
        };
        Ok(Nic {
            index,
            ip,
            mac: nic.mac,
            network: nic.network.clone(),
            subnet: nic.subnet,
            subnet6: nic.subnet6,
            tags: nic.network_tags.clone(),
        })
    }
}

/// The hook environment. Only the phase is checked up front: the pre phase must never
/// fail (a failing pre hook aborts the Ganeti operation), whatever else the variables hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEnv {
    pub phase: Phase,
    pub op_code: String,
    /// The next three as given, unchecked: enough to decide whether to act at all.
    /// [`HookEnv::instance_env`] checks them with the rest.
    pub instance: Option<String>,
    pub primary: Option<String>,
    pub new_name: Option<String>,
    vars: HookVars,
}

impl HookEnv {
    /// Reads the GANETI_* variables; `vars` is usually the process environment.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let vars = HookVars::from_process_env(vars);
        let phase = match vars.get("HOOKS_PHASE") {
            Some("pre") => Phase::Pre,
            Some("post") => Phase::Post,
            Some(other) => bail!("GANETI_HOOKS_PHASE: unknown phase '{other}'"),
            None => bail!(
                "GANETI_HOOKS_PHASE is not set: snf-dnshook runs as a Ganeti instance hook \
                 (see snf-dnshook(8))"
            ),
        };
        let owned = |k: &str| vars.get(k).map(str::to_string);
        Ok(HookEnv {
            phase,
            op_code: owned("OP_CODE").unwrap_or_default(),
            instance: owned("INSTANCE_NAME"),
            primary: owned("INSTANCE_PRIMARY"),
            new_name: owned("INSTANCE_NEW_NAME"),
            vars,
        })
    }

    /// The instance, every variable checked.
    pub fn instance_env(&self) -> Result<InstanceHookEnv> {
        Ok(InstanceHookEnv::from_env(&self.vars)?)
    }

    /// The instance's NICs (for instance-modify: the NEW list).
    pub fn nics(&self) -> Result<Vec<Nic>> {
        dns_nics(&HookNic::all_from_env(&self.vars)?)
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

/// The DNS view of the hook's NICs.
pub fn dns_nics(nics: &[HookNic]) -> Result<Vec<Nic>> {
    nics.iter()
        .enumerate()
        .map(|(i, n)| Nic::from_hook(i, n))
        .collect()
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
    fn a_nic_address_must_be_ipv4() {
        let env = |ip: &str| {
            HookEnv::from_vars(vars(&[
                ("GANETI_HOOKS_PHASE", "post"),
                ("GANETI_INSTANCE_NIC_COUNT", "1"),
                ("GANETI_INSTANCE_NIC0_IP", ip),
            ]))
            .unwrap()
        };
        let e = env("2001:db8::5").nics().unwrap_err().to_string();
        assert_eq!(
            e,
            "GANETI_INSTANCE_NIC0_IP: '2001:db8::5' is not an IPv4 address"
        );
        let e = env("2001:db8::g").nics().unwrap_err().to_string();
        assert_eq!(
            e,
            "GANETI_INSTANCE_NIC0_IP: '2001:db8::g' is not an IPv6 address"
        );
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
