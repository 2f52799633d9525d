//! Ganeti's per-NIC environment: what the node daemon exports to NIC scripts (KVM
//! `kvm-ifup`/`kvm-vif-bridge`, Ganeti 3.2 `network/<mode>/<action>`) and what the Xen
//! hypervisor writes into `/var/run/ganeti/xen-hypervisor/nic/<instance>/<idx>`.
//!
//! `NicEnv` holds it typed; [`NicEnv::to_env`] reproduces Ganeti's variable set exactly
//! (which variables are present when), so a NIC described by config.data, by an environment
//! or by a Xen NIC file ends up as the same value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::ifname::IfName;
use crate::mac::{MacPrefix, UnicastMac};
use crate::name::InstanceName;
use crate::nicmode::NicMode;

/// The network a NIC belongs to (Ganeti's `netinfo`, exported as `NETWORK_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub uuid: String,
    /// Network tags, in Ganeti's order.
    pub tags: Vec<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac_prefix: Option<MacPrefix>,
}

/// Ganeti's `vlan` nicparam: `[.]N` (untagged/access VLAN) optionally followed by
/// `:M[:M…]` (tagged/trunk VLANs), or only `:M[:M…]`. Empty means no VLAN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vlan {
    pub untagged: Option<u16>,
    pub tagged: Vec<u16>,
}

impl Vlan {
    pub fn is_empty(&self) -> bool {
        self.untagged.is_none() && self.tagged.is_empty()
    }
}

impl FromStr for Vlan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid VLAN '{s}' (expected .N, N, :N[:M…] or .N:M[:M…])");
        if s.is_empty() {
            return Ok(Vlan::default());
        }
        let id = |t: &str| -> Result<u16, String> {
            match t.parse::<u16>() {
                Ok(v) if (1..=4094).contains(&v) => Ok(v),
                _ => Err(bad()),
            }
        };
        let mut parts = s.split(':');
        let first = parts.next().unwrap_or_default();
        let untagged = if first.is_empty() {
            None
        } else {
            Some(id(first.strip_prefix('.').unwrap_or(first))?)
        };
        let tagged = parts.map(id).collect::<Result<Vec<_>, _>>()?;
        if untagged.is_none() && tagged.is_empty() {
            return Err(bad());
        }
        Ok(Vlan { untagged, tagged })
    }
}

impl fmt::Display for Vlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = self.untagged {
            write!(f, ".{u}")?;
        }
        for t in &self.tagged {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

/// One NIC as Ganeti describes it to NIC scripts (§8.1 of the Ganeti reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicEnv {
    /// `INSTANCE`: instance name. It reaches binding files and DHCP answers, so it is
    /// checked like any instance name: a newline in it must not forge a binding's lines.
    pub instance: InstanceName,
    /// `INTERFACE`: the host TAP. A Xen NIC file does not carry it (Xen names the vif).
    pub interface: Option<IfName>,
    /// `INTERFACE_INDEX`: 0-based NIC index.
    pub index: u32,
    /// `INTERFACE_UUID`.
    pub uuid: String,
    /// `INTERFACE_NAME`, if the NIC has a name.
    pub name: Option<String>,
    pub mac: UnicastMac,
    /// `IP`: Ganeti's pools are IPv4 only, and so are NIC scripts' uses of it. Checked
    /// against the network by [`check_ip`] in every constructor.
    pub ip: Option<Ipv4Addr>,
    pub mode: NicMode,
    /// `LINK`: bridge (bridged), routing table (routed) or switch (openvswitch).
    pub link: Option<String>,
    pub vlan: Vlan,
    /// `TAGS`: the **instance** tags.
    pub tags: Vec<String>,
    pub network: Option<NetworkInfo>,
}

/// A missing or malformed variable; the message names the variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicEnvError(pub String);

impl fmt::Display for NicEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NicEnvError {}

/// Every variable name `NicEnv` reads or writes, in Ganeti's order.
pub const VARIABLES: [&str; 20] = [
    "INSTANCE",
    "INTERFACE",
    "INTERFACE_INDEX",
    "INTERFACE_UUID",
    "INTERFACE_NAME",
    "MAC",
    "IP",
    "MODE",
    "LINK",
    "VLAN",
    "BRIDGE",
    "TAGS",
    "NETWORK_NAME",
    "NETWORK_UUID",
    "NETWORK_TAGS",
    "NETWORK_SUBNET",
    "NETWORK_GATEWAY",
    "NETWORK_SUBNET6",
    "NETWORK_GATEWAY6",
    "NETWORK_MAC_PREFIX",
];

fn err(msg: String) -> NicEnvError {
    NicEnvError(msg)
}

/// Variable `name`, when set and not empty, parsed as a `T`; a bad value is refused as an
/// invalid `what`, quoted (the std parsers' errors do not name the value).
fn optional_as<T: FromStr>(
    vars: &BTreeMap<String, String>,
    name: &str,
    what: &str,
) -> Result<Option<T>, NicEnvError> {
    optional_value(vars, name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| err(format!("{name}: invalid {what} '{v}'")))
        })
        .transpose()
}

/// Variable `name`, when set and not empty, parsed as a `T` whose errors already say what
/// is wrong with the value.
fn optional_explained<T>(
    vars: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, NicEnvError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    optional_value(vars, name)
        .map(|v| v.parse::<T>().map_err(|e| err(format!("{name}: {e}"))))
        .transpose()
}

/// An empty variable counts as unset, as an empty required one counts as missing.
fn optional_value<'a>(vars: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn split_tags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

impl NicEnv {
    /// Builds a `NicEnv` from `(name, value)` pairs, e.g. `std::env::vars()`. Variables not
    /// in [`VARIABLES`] are ignored; the ones present are validated.
    pub fn from_env<I, K, V>(vars: I) -> Result<NicEnv, NicEnvError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in vars {
            if VARIABLES.contains(&k.as_ref()) {
                map.insert(k.as_ref().to_owned(), v.as_ref().to_owned());
            }
        }
        Self::build(&map, true)
    }

    /// Parses a Xen NIC file written by Ganeti (shell assignments `KEY=value`,
    /// `KEY="value"`, `KEY='value'`, with `\ ` escapes in TAGS). INSTANCE and INTERFACE are
    /// not in the file: `instance` is the one the caller found from Xen's arguments, and
    /// the result has no `interface` (the caller's too).
    pub fn from_xen_nic_file(text: &str, instance: InstanceName) -> Result<NicEnv, NicEnvError> {
        let mut vars = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                return Err(err(format!(
                    "line {}: expected KEY=value, got '{line}'",
                    n + 1
                )));
            };
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(err(format!("line {}: invalid variable name '{k}'", n + 1)));
            }
            let v = shell_word(v).map_err(|e| err(format!("line {}: {k}: {e}", n + 1)))?;
            vars.insert(k.to_owned(), v);
        }
        vars.insert("INSTANCE".to_owned(), instance.into_string());
        Self::build(&vars, false)
    }

    fn build(vars: &BTreeMap<String, String>, kvm: bool) -> Result<NicEnv, NicEnvError> {
        let get = |name: &str| vars.get(name).map(String::as_str);
        let required = |name: &str| -> Result<&str, NicEnvError> {
            match get(name) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(err(format!("{name} is missing"))),
            }
        };
        let optional = |name: &str| optional_value(vars, name);
        let parse = |name: &str, what: &str, v: &str| err(format!("{name}: invalid {what} '{v}'"));

        let instance = InstanceName::check(required("INSTANCE")?.to_owned())
            .map_err(|e| err(format!("INSTANCE: {e}")))?;
        let interface = optional_explained::<IfName>(vars, "INTERFACE")?;
        // KVM names the TAP; a Xen NIC file does not (Xen names the vif).
        if kvm && interface.is_none() {
            return Err(err("INTERFACE is missing".to_owned()));
        }
        let idx = required("INTERFACE_INDEX")?;
        let index = idx
            .parse::<u32>()
            .map_err(|_| parse("INTERFACE_INDEX", "NIC index", idx))?;
        let uuid = required("INTERFACE_UUID")?.to_owned();
        let name = optional("INTERFACE_NAME").map(str::to_owned);
        let mac_s = required("MAC")?;
        let mac = mac_s
            .parse::<UnicastMac>()
            .map_err(|e| err(format!("MAC: {e}")))?;
        let ip = match optional("IP") {
            Some(v) => Some(v.parse::<Ipv4Addr>().map_err(|_| {
                if v.parse::<Ipv6Addr>().is_ok() {
                    err(format!("IP: '{v}' is IPv6; NIC addresses must be IPv4"))
                } else {
                    parse("IP", "IPv4 address", v)
                }
            })?),
            None => None,
        };
        let mode_s = required("MODE")?;
        let mode = mode_s
            .parse::<NicMode>()
            .map_err(|e| err(format!("MODE: {e}")))?;
        let link = optional("LINK").map(str::to_owned);
        if let (NicMode::Bridged, Some(b)) = (mode, optional("BRIDGE"))
            && link.as_deref() != Some(b)
        {
            return Err(err(format!(
                "BRIDGE '{b}' differs from LINK '{}'",
                link.as_deref().unwrap_or("")
            )));
        }
        let vlan = get("VLAN")
            .unwrap_or_default()
            .parse::<Vlan>()
            .map_err(|e| err(format!("VLAN: {e}")))?;
        // Ganeti's Xen writer joins instance tags with `\ `; shell_word already unescaped.
        let tags = split_tags(get("TAGS").unwrap_or_default());

        let network = match optional("NETWORK_NAME") {
            None => {
                if let Some(k) = VARIABLES[13..]
                    .iter()
                    .find(|k| optional(k).is_some() && **k != "NETWORK_TAGS")
                {
                    return Err(err(format!("{k} is set but NETWORK_NAME is missing")));
                }
                None
            }
            Some(net_name) => {
                // Parsed in Ganeti's order of the variables, so that the first bad one is named.
                let subnet = optional_as::<Ipv4Net>(vars, "NETWORK_SUBNET", "IPv4 subnet")?;
                let gateway = optional_as::<Ipv4Addr>(vars, "NETWORK_GATEWAY", "IPv4 address")?;
                let subnet6 = optional_as::<Ipv6Net>(vars, "NETWORK_SUBNET6", "IPv6 subnet")?;
                let gateway6 = optional_as::<Ipv6Addr>(vars, "NETWORK_GATEWAY6", "IPv6 address")?;
                Some(NetworkInfo {
                    name: net_name.to_owned(),
                    uuid: get("NETWORK_UUID").unwrap_or_default().to_owned(),
                    tags: split_tags(get("NETWORK_TAGS").unwrap_or_default()),
                    subnet,
                    gateway,
                    subnet6,
                    gateway6,
                    mac_prefix: optional_explained(vars, "NETWORK_MAC_PREFIX")?,
                })
            }
        };
        check_ip(ip, network.as_ref())?;
        Ok(NicEnv {
            instance,
            interface,
            index,
            uuid,
            name,
            mac,
            ip,
            mode,
            link,
            vlan,
            tags,
            network,
        })
    }

    /// Ganeti's variable set for this NIC, in Ganeti's order: INSTANCE, INTERFACE (when
    /// known), INTERFACE_INDEX, INTERFACE_UUID, MAC, MODE, VLAN and TAGS always;
    /// INTERFACE_NAME, IP and LINK when set; BRIDGE (= LINK) only in bridged mode;
    /// NETWORK_NAME/UUID/TAGS when the NIC is in a network and the other NETWORK_* only
    /// when set on that network.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(20);
        let mut put = |k: &str, v: String| out.push((k.to_owned(), v));
        put("INSTANCE", self.instance.to_string());
        if let Some(i) = &self.interface {
            put("INTERFACE", i.to_string());
        }
        put("INTERFACE_INDEX", self.index.to_string());
        put("INTERFACE_UUID", self.uuid.clone());
        if let Some(n) = &self.name {
            put("INTERFACE_NAME", n.clone());
        }
        put("MAC", self.mac.to_string());
        if let Some(ip) = self.ip {
            put("IP", ip.to_string());
        }
        put("MODE", self.mode.to_string());
        if let Some(l) = &self.link {
            put("LINK", l.clone());
        }
        put("VLAN", self.vlan.to_string());
        if self.mode == NicMode::Bridged {
            put("BRIDGE", self.link.clone().unwrap_or_default());
        }
        put("TAGS", self.tags.join(" "));
        if let Some(n) = &self.network {
            put("NETWORK_NAME", n.name.clone());
            put("NETWORK_UUID", n.uuid.clone());
            put("NETWORK_TAGS", n.tags.join(" "));
            if let Some(v) = n.subnet {
                put("NETWORK_SUBNET", v.to_string());
            }
            if let Some(v) = n.gateway {
                put("NETWORK_GATEWAY", v.to_string());
            }
            if let Some(v) = n.subnet6 {
                put("NETWORK_SUBNET6", v.to_string());
            }
            if let Some(v) = n.gateway6 {
                put("NETWORK_GATEWAY6", v.to_string());
            }
            if let Some(v) = n.mac_prefix {
                put("NETWORK_MAC_PREFIX", v.to_string());
            }
        }
        out
    }

    /// The text Ganeti's Xen hypervisor writes for this NIC (the inverse of
    /// [`NicEnv::from_xen_nic_file`]): TAGS joined with `\ `, NETWORK_* quoted.
    pub fn to_xen_nic_file(&self) -> String {
        let mut s = format!("TAGS=\"{}\"\n", self.tags.join("\\ "));
        let env = self.to_env();
        for (k, v) in env.iter().filter(|(k, _)| k.starts_with("NETWORK_")) {
            s.push_str(&format!("{k}=\"{v}\"\n"));
        }
        s.push_str(&format!("MAC={}\n", self.mac));
        if let Some(ip) = self.ip {
            s.push_str(&format!("IP={ip}\n"));
        }
        s.push_str(&format!("INTERFACE_INDEX={}\n", self.index));
        if let Some(n) = &self.name {
            s.push_str(&format!("INTERFACE_NAME={n}\n"));
        }
        s.push_str(&format!("INTERFACE_UUID={}\n", self.uuid));
        s.push_str(&format!("MODE={}\n", self.mode));
        s.push_str(&format!(
            "LINK={}\n",
            self.link.as_deref().unwrap_or_default()
        ));
        s.push_str(&format!("VLAN={}\n", self.vlan));
        s
    }

    /// Network tags (empty when the NIC is in no network).
    pub fn network_tags(&self) -> &[String] {
        self.network.as_ref().map(|n| &n.tags[..]).unwrap_or(&[])
    }
}

/// Refuses a NIC address no guest can use: not a unicast host address, outside the
/// network's subnet, or the subnet's network, broadcast or gateway address. /31 and /32
/// subnets have no network or broadcast address (RFC 3021). Public so that constructors in
/// other crates (`netconf-cluster`'s from config.data) hold the same rule.
pub fn check_ip(ip: Option<Ipv4Addr>, net: Option<&NetworkInfo>) -> Result<(), NicEnvError> {
    let Some(ip) = ip else {
        return Ok(());
    };
    let bad = |why: String| Err(err(format!("IP: {ip} is {why}")));
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return bad("not a unicast host address".to_owned());
    }
    let Some(net) = net else {
        return Ok(());
    };
    if net.gateway == Some(ip) {
        return bad(format!("the gateway of network {}", net.name));
    }
    if let Some(subnet) = net.subnet {
        if !subnet.contains(&ip) {
            return bad(format!("outside NETWORK_SUBNET {subnet}"));
        }
        if subnet.prefix_len() < 31 {
            if ip == subnet.network() {
                return bad(format!("the network address of {subnet}"));
            }
            if ip == subnet.broadcast() {
                return bad(format!("the broadcast address of {subnet}"));
            }
        }
    }
    Ok(())
}

/// One shell word: unquoted (backslash escapes the next character), `"…"` (backslash
/// escapes `"`, `\`, `$`, `` ` `` and, as Ganeti's TAGS need, a space) or `'…'` (literal).
/// Concatenations such as `a"b c"` are accepted; unquoted blanks and `$` are refused because
/// we do not run a shell.
fn shell_word(v: &str) -> Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        match c {
            '\'' => loop {
                match it.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match it.next() {
                    Some('"') => break,
                    Some('\\') => match it.next() {
                        Some(c @ ('"' | '\\' | '$' | '`' | ' ')) => out.push(c),
                        Some('\n') => {}
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("unterminated double quote".into()),
                    },
                    Some('$') | Some('`') => {
                        return Err("shell expansions are not supported".into());
                    }
                    Some(c) => out.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '\\' => match it.next() {
                Some(c) => out.push(c),
                None => return Err("trailing backslash".into()),
            },
            c if c.is_whitespace() => {
                // Trailing comment after a value: `KEY=v # note`.
                let rest: String = it.collect();
                if rest.trim_start().is_empty() || rest.trim_start().starts_with('#') {
                    break;
                }
                return Err("unquoted blank in value".into());
            }
            '$' | '`' => return Err("shell expansions are not supported".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(&'static str, &'static str)> {
        vec![
            ("PATH", "/usr/bin:/sbin"),
            ("INSTANCE", "vm1.example.org"),
            ("INTERFACE", "tap3"),
            ("INTERFACE_INDEX", "0"),
            ("INTERFACE_UUID", "6a3c1c2e-0000-4000-8000-000000000001"),
            ("INTERFACE_NAME", "snf-nic-7"),
            ("MAC", "AA:00:00:12:34:56"),
            ("IP", "198.51.100.10"),
            ("MODE", "bridged"),
            ("LINK", "prv0"),
            ("VLAN", ""),
            ("BRIDGE", "prv0"),
            ("TAGS", "synnefo:network:0:protected  other"),
            ("NETWORK_NAME", "net1"),
            ("NETWORK_UUID", "u-net1"),
            ("NETWORK_TAGS", "nfdhcpd private-filtered"),
            ("NETWORK_SUBNET", "198.51.100.0/24"),
            ("NETWORK_GATEWAY", "198.51.100.1"),
            ("NETWORK_SUBNET6", "2001:db8:1::/64"),
            ("NETWORK_MAC_PREFIX", "aa:00:00"),
        ]
    }

    #[test]
    fn env_round_trip() {
        let e = NicEnv::from_env(sample()).unwrap();
        assert_eq!(e.mac.to_string(), "aa:00:00:12:34:56");
        assert_eq!(e.tags, ["synnefo:network:0:protected", "other"]);
        let net = e.network.as_ref().unwrap();
        assert_eq!(net.tags, ["nfdhcpd", "private-filtered"]);
        assert_eq!(net.gateway6, None);
        let env = e.to_env();
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "INSTANCE",
                "INTERFACE",
                "INTERFACE_INDEX",
                "INTERFACE_UUID",
                "INTERFACE_NAME",
                "MAC",
                "IP",
                "MODE",
                "LINK",
                "VLAN",
                "BRIDGE",
                "TAGS",
                "NETWORK_NAME",
                "NETWORK_UUID",
                "NETWORK_TAGS",
                "NETWORK_SUBNET",
                "NETWORK_GATEWAY",
                "NETWORK_SUBNET6",
                "NETWORK_MAC_PREFIX"
            ]
        );
        assert_eq!(NicEnv::from_env(env).unwrap(), e);
    }

    #[test]
    fn presence_rules() {
        let mut v = sample();
        v.retain(|(k, _)| {
            !k.starts_with("NETWORK_") && *k != "IP" && *k != "INTERFACE_NAME" && *k != "BRIDGE"
        });
        for (k, val) in &mut v {
            if *k == "MODE" {
                *val = "routed";
            }
            if *k == "LINK" {
                *val = "100";
            }
        }
        let e = NicEnv::from_env(v).unwrap();
        let env = e.to_env();
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        // No BRIDGE outside bridged mode, no NETWORK_* without a network; VLAN and TAGS
        // are always there, even empty.
        assert_eq!(
            keys,
            [
                "INSTANCE",
                "INTERFACE",
                "INTERFACE_INDEX",
                "INTERFACE_UUID",
                "MAC",
                "MODE",
                "LINK",
                "VLAN",
                "TAGS"
            ]
        );
    }

    #[test]
    fn clear_errors() {
        let with = |k: &str, val: &str| {
            let mut v: Vec<(String, String)> = sample()
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
            v.retain(|(a, _)| a != k);
            if !val.is_empty() {
                v.push((k.to_owned(), val.to_owned()));
            }
            NicEnv::from_env(v).unwrap_err().to_string()
        };
        assert_eq!(with("INTERFACE", ""), "INTERFACE is missing");
        assert_eq!(with("MAC", "zz"), "MAC: Invalid MAC address 'zz'");
        assert_eq!(with("MODE", "pool"), "MODE: Invalid NIC mode 'pool'");
        assert_eq!(with("IP", "1.2.3"), "IP: invalid IPv4 address '1.2.3'");
        assert_eq!(
            with("NETWORK_SUBNET", "10.0.0.0/33"),
            "NETWORK_SUBNET: invalid IPv4 subnet '10.0.0.0/33'"
        );
        assert_eq!(
            with("NETWORK_GATEWAY", "198.51.100"),
            "NETWORK_GATEWAY: invalid IPv4 address '198.51.100'"
        );
        assert_eq!(
            with("NETWORK_SUBNET6", "2001:db8::/129"),
            "NETWORK_SUBNET6: invalid IPv6 subnet '2001:db8::/129'"
        );
        assert_eq!(
            with("NETWORK_GATEWAY6", "2001:db8::g"),
            "NETWORK_GATEWAY6: invalid IPv6 address '2001:db8::g'"
        );
        assert_eq!(
            with("NETWORK_MAC_PREFIX", "aa:00"),
            "NETWORK_MAC_PREFIX: Invalid MAC address prefix 'aa:00'"
        );
        assert_eq!(
            with("INTERFACE", "a234567890123456"),
            "INTERFACE: interface name 'a234567890123456' is longer than 15 bytes"
        );
        assert_eq!(
            with("BRIDGE", "br9"),
            "BRIDGE 'br9' differs from LINK 'prv0'"
        );
        assert!(with("VLAN", "5000").starts_with("VLAN: invalid VLAN '5000'"));
        assert_eq!(
            with("NETWORK_NAME", ""),
            "NETWORK_UUID is set but NETWORK_NAME is missing"
        );
    }

    #[test]
    fn unusable_addresses_are_refused() {
        let with = |k: &str, val: &str| {
            let mut v: Vec<(String, String)> = sample()
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
            v.retain(|(a, _)| a != k);
            v.push((k.to_owned(), val.to_owned()));
            NicEnv::from_env(v).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(
            with("IP", "198.51.100.1"),
            Err("IP: 198.51.100.1 is the gateway of network net1".into())
        );
        assert_eq!(
            with("IP", "198.51.100.0"),
            Err("IP: 198.51.100.0 is the network address of 198.51.100.0/24".into())
        );
        assert_eq!(
            with("IP", "198.51.100.255"),
            Err("IP: 198.51.100.255 is the broadcast address of 198.51.100.0/24".into())
        );
        assert_eq!(
            with("IP", "203.0.113.7"),
            Err("IP: 203.0.113.7 is outside NETWORK_SUBNET 198.51.100.0/24".into())
        );
        for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1"] {
            assert_eq!(
                with("IP", bad),
                Err(format!("IP: {bad} is not a unicast host address"))
            );
        }
        assert_eq!(
            with("MAC", "ff:ff:ff:ff:ff:ff"),
            Err(
                "MAC: ff:ff:ff:ff:ff:ff is the broadcast address; a NIC needs a unicast MAC".into()
            )
        );
        assert_eq!(
            with("MAC", "01:00:5e:00:00:01"),
            Err("MAC: 01:00:5e:00:00:01 is a multicast address; a NIC needs a unicast MAC".into())
        );
        assert_eq!(
            with("MAC", "00:00:00:00:00:00"),
            Err("MAC: 00:00:00:00:00:00 is all zeros; a NIC needs a unicast MAC".into())
        );
        assert_eq!(with("IP", "198.51.100.254"), Ok(()));
        // Both addresses of a /31 are hosts; a NIC outside any network is not checked
        // against one.
        assert_eq!(with("NETWORK_SUBNET", "198.51.100.10/31"), Ok(()));
        let mut v = sample();
        v.retain(|(k, _)| !k.starts_with("NETWORK_"));
        v.retain(|(k, _)| *k != "IP");
        v.push(("IP", "203.0.113.7"));
        assert!(NicEnv::from_env(v).is_ok());
        // The same rules hold for a Xen NIC file.
        let e = NicEnv::from_xen_nic_file(
            "NETWORK_NAME=n\nNETWORK_SUBNET=198.51.100.0/24\nMAC=aa:00:00:00:00:01\nIP=198.51.100.0\nINTERFACE_INDEX=0\nINTERFACE_UUID=u\nMODE=routed\n",
            InstanceName::parse("vm1").unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "IP: 198.51.100.0 is the network address of 198.51.100.0/24"
        );
    }

    #[test]
    fn vlan_forms() {
        let v: Vlan = ".100".parse().unwrap();
        assert_eq!((v.untagged, v.tagged.len()), (Some(100), 0));
        assert_eq!("100".parse::<Vlan>().unwrap(), v);
        let v: Vlan = ":200:300".parse().unwrap();
        assert_eq!((v.untagged, v.tagged.clone()), (None, vec![200, 300]));
        assert_eq!(v.to_string(), ":200:300");
        let v: Vlan = ".10:20".parse().unwrap();
        assert_eq!(v.to_string(), ".10:20");
        assert!("".parse::<Vlan>().unwrap().is_empty());
        for bad in [":", ".", "0", "4095", "a", ".1:x"] {
            assert!(bad.parse::<Vlan>().is_err(), "{bad}");
        }
    }

    #[test]
    fn xen_file_as_ganeti_writes_it() {
        // The layout of Ganeti's _WriteNICInfoFile: TAGS joined with `\ `, NETWORK_* quoted.
        let text = "TAGS=\"synnefo:network:0:limited\\ blue\"\nNETWORK_NAME=\"net1\"\nNETWORK_UUID=\"u-net1\"\nNETWORK_TAGS=\"nfdhcpd ip-less-routed\"\nNETWORK_SUBNET=\"198.51.100.0/24\"\nNETWORK_GATEWAY=\"198.51.100.1\"\nMAC=aa:00:00:12:34:56\nIP=198.51.100.10\nINTERFACE_INDEX=1\nINTERFACE_UUID=u-nic\nMODE=routed\nLINK=100\nVLAN=\n";
        let vm1 = || InstanceName::parse("vm1").unwrap();
        let e = NicEnv::from_xen_nic_file(text, vm1()).unwrap();
        assert_eq!(e.tags, ["synnefo:network:0:limited", "blue"]);
        assert_eq!(e.interface, None);
        assert_eq!(e.instance, "vm1");
        assert_eq!(e.index, 1);
        assert_eq!(e.mode, NicMode::Routed);
        assert_eq!(
            e.network.as_ref().unwrap().tags,
            ["nfdhcpd", "ip-less-routed"]
        );
        assert_eq!(
            NicEnv::from_xen_nic_file(&e.to_xen_nic_file(), vm1()).unwrap(),
            e
        );
        assert_eq!(e.to_xen_nic_file(), text);
    }

    #[test]
    fn xen_file_errors_and_quoting() {
        assert_eq!(shell_word("'a b'").unwrap(), "a b");
        assert_eq!(shell_word("a\\ b").unwrap(), "a b");
        assert_eq!(shell_word("\"x\\\"y\"").unwrap(), "x\"y");
        assert_eq!(shell_word("v # comment").unwrap(), "v");
        assert!(shell_word("\"open").is_err());
        assert!(shell_word("$(rm)").is_err());
        assert!(shell_word("a b").is_err());
        let vm = || InstanceName::parse("vm1").unwrap();
        let e = NicEnv::from_xen_nic_file("MAC=aa:00:00:00:00:01\nnonsense\n", vm()).unwrap_err();
        assert_eq!(e.to_string(), "line 2: expected KEY=value, got 'nonsense'");
        let e =
            NicEnv::from_xen_nic_file("MAC=aa:00:00:00:00:01\nMODE=routed\n", vm()).unwrap_err();
        assert_eq!(e.to_string(), "INTERFACE_INDEX is missing");
    }
}
