//! `nfdhcpd --convert-config`: turns the original INI-style `nfdhcpd.conf` (configobj) into
//! `nfdhcpd.toml`, keeping comments. Keys keep their names; values get TOML types.

use anyhow::{Context, bail};

use crate::config::DaemonSettings;

enum Kind {
    Bool,
    Int,
    List,
    Str,
}

fn kind(section: &str, key: &str) -> Kind {
    match key {
        "enable_dhcp" | "server_on_link" | "enable_ipv6" | "enable_dhcpv6" => Kind::Bool,
        "lease_lifetime" | "lease_renewal" | "dhcp_queue" | "ra_period" | "rs_queue"
        | "ns_queue" | "dhcpv6_queue" => Kind::Int,
        "nameservers" | "domains" => Kind::List,
        _ if section == "ipv6" && key == "dhcp_queue" => Kind::Int,
        _ => Kind::Str,
    }
}

fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            _ => o.push(c),
        }
    }
    o.push('"');
    o
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Converts the text of an old configuration; the result is checked by parsing it.
pub fn convert(old: &str) -> anyhow::Result<String> {
    let mut out = String::from("# Converted from nfdhcpd.conf by nfdhcpd --convert-config.\n");
    let mut section = String::new();
    for (i, raw) in old.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // configobj: `#` after a value starts a comment.
        let (body, comment) = match line.find(" #").or_else(|| line.find("\t#")) {
            Some(p) => (line[..p].trim(), Some(line[p..].trim())),
            None => (line, None),
        };
        if let Some(name) = body.strip_prefix('[').and_then(|b| b.strip_suffix(']')) {
            section = name.trim().to_owned();
            out.push_str(&format!("[{section}]"));
        } else {
            let Some((key, value)) = body.split_once('=') else {
                bail!("line {n}: expected 'key = value', got '{line}'");
            };
            let (key, value) = (key.trim(), value.trim());
            let key = match (section.as_str(), key) {
                // Deprecated alias in the original (it warned about it).
                ("ipv6", "dhcp_queue") => "dhcpv6_queue",
                // Ignored by nfdhcpd 0.16 already (replaced by `mode`).
                (_, "enable_dhcpv6") => {
                    out.push_str(&format!("# {key} = {value}  (obsolete: see mode)\n"));
                    continue;
                }
                _ => key,
            };
            let v = match kind(&section, key) {
                Kind::Bool => match unquote(value).to_ascii_lowercase().as_str() {
                    "yes" | "true" | "on" | "1" => "true".to_owned(),
                    "no" | "false" | "off" | "0" => "false".to_owned(),
                    other => bail!("line {n}: {key}: '{other}' is not a boolean"),
                },
                Kind::Int => {
                    let v = unquote(value);
                    v.parse::<u64>()
                        .with_context(|| format!("line {n}: {key}: '{v}' is not a number"))?;
                    v.to_owned()
                }
                Kind::List => {
                    let items: Vec<String> = value
                        .split(',')
                        .map(unquote)
                        .filter(|s| !s.is_empty())
                        .map(toml_str)
                        .collect();
                    format!("[{}]", items.join(", "))
                }
                Kind::Str => toml_str(unquote(value)),
            };
            out.push_str(&format!("{key} = {v}"));
        }
        if let Some(c) = comment {
            out.push_str("  ");
            out.push_str(c);
        }
        out.push('\n');
    }
    DaemonSettings::parse(&out).context("the converted configuration is not valid")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    // Shaped like the original's sample file (reference B3): comments after values,
    // comma lists, yes/no, the obsolete enable_dhcpv6 and the deprecated ipv6 dhcp_queue.
    const OLD: &str = "## sample\n[general]\npidfile = /var/run/nfdhcpd/nfdhcpd.pid\ndatapath = /var/lib/nfdhcpd # bindings\nlogdir = /var/log/nfdhcpd\nuser = nobody\n\n[dhcp]\nenable_dhcp = yes\nlease_lifetime = 604800 # 1 week\nlease_renewal = 3600\t# 1 hour\nserver_ip = 192.0.2.1\nserver_on_link = no\ndhcp_queue = 42\nnameservers = 192.0.2.53, 192.0.2.54\n#domain = example.com\n\n[ipv6]\nenable_ipv6 = yes\nenable_dhcpv6 = no\nra_period = 300\nrs_queue = 43\nns_queue = 44\ndhcp_queue = 45\nnameservers = 2001:db8::53\ndomains = example.com, example.net\n";

    #[test]
    fn sample_converts_and_means_the_same() {
        let toml = convert(OLD).unwrap();
        let cfg = DaemonSettings::parse(&toml).unwrap();
        assert_eq!(cfg.general.datapath.to_str(), Some("/var/lib/nfdhcpd"));
        assert_eq!(cfg.general.user.as_deref(), Some("nobody"));
        assert_eq!(cfg.dhcp.lease_lifetime, 604_800);
        assert_eq!(cfg.dhcp.lease_renewal, 3600);
        assert!(!cfg.dhcp.server_on_link);
        assert_eq!(
            cfg.dhcp.nameservers,
            [Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)]
        );
        assert_eq!(cfg.ipv6.plan.and_then(|p| p.dhcpv6_queue), Some(45));
        assert_eq!(cfg.ipv6.domains, ["example.com", "example.net"]);
        assert_eq!(cfg.queues(), [42, 43, 44, 45]);
        assert!(toml.contains("lease_lifetime = 604800  # 1 week"));
        assert!(toml.contains("#domain = example.com"));
    }

    #[test]
    fn bad_values_name_the_line() {
        let e = convert("[dhcp]\nenable_dhcp = maybe\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = convert("[dhcp]\nlease_lifetime = long\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(convert("[dhcp]\nserver_ip = 1.2.3\n").is_err());
        assert!(convert("garbage\n").is_err());
    }
}
