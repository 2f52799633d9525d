//! `nfdhcpd.toml`: the original's INI sections and keys (`general`, `dhcp`, `ipv6`) in TOML,
//! so converting an old `nfdhcpd.conf` is mechanical, plus a `rules` section for the
//! NFQUEUE rules this daemon installs itself.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/nfdhcpd/nfdhcpd.toml";

/// The most a settings file (this one, or an old `nfdhcpd.conf` to convert) may hold: a
/// real one is a few KiB; anything near this is not one.
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;

/// The file as written: sections and keys exactly as the operator spelled them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct SettingsFile {
    general: General,
    dhcp: Dhcp,
    ipv6: Ipv6,
    rules: Rules,
}

/// What the daemon runs with: the file checked once, the IPv6 mode resolved into the
/// queues it serves, so that no packet path has to re-derive (or can disagree about) it.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    pub general: General,
    pub dhcp: Dhcp,
    pub ipv6: Ipv6Settings,
    pub rules: Rules,
}

/// The IPv6 side once `enable_ipv6`, `mode` and the queues are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Ipv6Settings {
    /// None: IPv6 disabled; RS, NS and DHCPv6 are not answered.
    pub plan: Option<Ipv6Plan>,
    pub ra_period: NonZeroU32,
    pub router_lifetime: u16,
    pub nameservers: Vec<Ipv6Addr>,
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Written in daemon and foreground mode alike; empty = none.
    pub pidfile: PathBuf,
    /// Directory of binding files, one per TAP.
    pub datapath: PathBuf,
    /// Daemon mode (no `-f`): log to `<logdir>/nfdhcpd.log`; else stderr (the journal).
    pub logdir: Option<PathBuf>,
    /// After the start, run as this user (name or number) with CAP_NET_ADMIN and CAP_NET_RAW.
    pub user: Option<String>,
    /// Counters for `nfdhcpd --status`, rewritten every second.
    pub status_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Dhcp {
    pub enable_dhcp: bool,
    pub lease_lifetime: u32,
    /// T1 (option 58).
    pub lease_renewal: u32,
    /// T2 (option 59); default 7/8 of the lifetime, as RFC 2131 suggests.
    pub lease_rebinding: Option<u32>,
    /// Source address and server identifier (need not exist on the node).
    pub server_ip: Ipv4Addr,
    /// Use the binding's GATEWAY (else the first host of SUBNET) as server address.
    pub server_on_link: bool,
    pub dhcp_queue: u16,
    pub nameservers: Vec<Ipv4Addr>,
    /// Option 15; unset: HOSTNAME without its first label.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv6Mode {
    Auto,
    Slaac,
    #[serde(rename = "slaac+dhcpv6")]
    SlaacDhcpv6,
    Dhcpv6,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ipv6 {
    pub enable_ipv6: bool,
    pub mode: Ipv6Mode,
    /// Seconds between unsolicited RA rounds; RDNSS/DNSSL lifetime is 3 × this.
    pub ra_period: u32,
    /// Router lifetime of RAs (RFC 4861 caps it at 9000 s; the original sent 14400).
    pub router_lifetime: u16,
    pub rs_queue: Option<u16>,
    pub ns_queue: Option<u16>,
    pub dhcpv6_queue: Option<u16>,
    pub nameservers: Vec<Ipv6Addr>,
    /// DNSSL and DHCPv6 option 24; empty: HOSTNAME without its first label.
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Install the iptables/ip6tables rules at start and remove them at exit.
    pub install: bool,
    /// Chain of the mangle table owned by nfdhcpd (flushed and deleted at exit).
    pub chain: String,
    /// Routed TAPs: `-i <prefix>+`.
    pub tap_prefix: String,
    /// Bridged TAPs: `-m physdev --physdev-in <prefix>+`.
    pub bridged: bool,
    pub routed: bool,
    /// Kernel queue length per queue.
    pub queue_maxlen: u32,
    /// When the queue is full, accept instead of drop.
    pub fail_open: bool,
}

impl Default for General {
    fn default() -> Self {
        General {
            pidfile: PathBuf::from("/run/nfdhcpd/nfdhcpd.pid"),
            datapath: PathBuf::from(netconf::binding::DEFAULT_STATE_DIR),
            logdir: None,
            user: None,
            status_file: PathBuf::from("/run/nfdhcpd/status"),
        }
    }
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            enable_dhcp: true,
            lease_lifetime: 604_800,
            lease_renewal: 3600,
            lease_rebinding: None,
            server_ip: Ipv4Addr::new(1, 2, 3, 4),
            server_on_link: false,
            dhcp_queue: 42,
            nameservers: Vec::new(),
            domain: None,
        }
    }
}

impl Default for Ipv6 {
    fn default() -> Self {
        Ipv6 {
            enable_ipv6: true,
            mode: Ipv6Mode::Auto,
            ra_period: 300,
            router_lifetime: 1800,
            rs_queue: Some(43),
            ns_queue: Some(44),
            dhcpv6_queue: Some(45),
            nameservers: Vec::new(),
            domains: Vec::new(),
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            install: true,
            chain: "nfdhcpd".into(),
            tap_prefix: "tap".into(),
            bridged: true,
            routed: true,
            queue_maxlen: 5000,
            fail_open: true,
        }
    }
}

/// What the IPv6 side does once `mode` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Plan {
    pub rs_queue: u16,
    pub ns_queue: u16,
    /// Set in slaac+dhcpv6 mode: RAs carry O=1 and Information-Requests are answered.
    pub dhcpv6_queue: Option<u16>,
}

impl DaemonSettings {
    /// Reads and checks the settings file at `path`. A symbolic link is followed
    /// (configuration management installs settings that way); what it ends at must be a
    /// regular file of at most [`MAX_SETTINGS_BYTES`]: a FIFO is refused, not waited on.
    pub fn load(path: &Path) -> anyhow::Result<DaemonSettings> {
        let text = netconf::textfile::read_following(path, MAX_SETTINGS_BYTES)
            .with_context(|| format!("reading {}", path.display()))?;
        DaemonSettings::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<DaemonSettings> {
        let file: SettingsFile = toml::from_str(text)?;
        file.resolve()
    }

    /// T2 as sent in option 59.
    pub fn rebinding(&self) -> u32 {
        self.dhcp
            .lease_rebinding
            .unwrap_or_else(|| (u64::from(self.dhcp.lease_lifetime) * 7 / 8) as u32)
    }

    /// Set in slaac+dhcpv6 mode: RAs carry O=1 and Information-Requests are answered.
    pub fn answers_dhcpv6(&self) -> bool {
        self.ipv6.plan.is_some_and(|p| p.dhcpv6_queue.is_some())
    }

    /// Every queue number to bind, without duplicates.
    pub fn queues(&self) -> Vec<u16> {
        let mut q = Vec::new();
        if self.dhcp.enable_dhcp {
            q.push(self.dhcp.dhcp_queue);
        }
        if let Some(p) = self.ipv6.plan {
            q.push(p.rs_queue);
            q.push(p.ns_queue);
            q.extend(p.dhcpv6_queue);
        }
        q.sort_unstable();
        q.dedup();
        q
    }
}

impl SettingsFile {
    fn resolve(self) -> anyhow::Result<DaemonSettings> {
        let Some(ra_period) = NonZeroU32::new(self.ipv6.ra_period) else {
            bail!("ipv6.ra_period must be at least 1");
        };
        if self.dhcp.lease_renewal > self.dhcp.lease_lifetime {
            bail!("dhcp.lease_renewal exceeds dhcp.lease_lifetime");
        }
        if self.rules.chain.is_empty() || self.rules.chain.len() > 28 {
            bail!("rules.chain must be 1 to 28 characters");
        }
        if self.rules.tap_prefix.is_empty() || self.rules.tap_prefix.len() > 14 {
            bail!("rules.tap_prefix must be 1 to 14 characters");
        }
        for d in self.ipv6.domains.iter().chain(self.dhcp.domain.iter()) {
            if d.is_empty() || d.len() > 253 || d.split('.').any(|l| l.is_empty() || l.len() > 63) {
                bail!("invalid domain name '{d}'");
            }
        }
        let plan = self.ipv6.plan()?;
        let Ipv6 {
            router_lifetime,
            nameservers,
            domains,
            ..
        } = self.ipv6;
        Ok(DaemonSettings {
            general: self.general,
            dhcp: self.dhcp,
            ipv6: Ipv6Settings {
                plan,
                ra_period,
                router_lifetime,
                nameservers,
                domains,
            },
            rules: self.rules,
        })
    }
}

impl Ipv6 {
    /// The original's mode resolution (B3): `auto` takes the richest mode whose queues are
    /// configured; stateful DHCPv6 is not implemented.
    pub fn plan(&self) -> anyhow::Result<Option<Ipv6Plan>> {
        if !self.enable_ipv6 {
            return Ok(None);
        }
        let (rs, ns, d6) = (self.rs_queue, self.ns_queue, self.dhcpv6_queue);
        let plan = |with_dhcpv6: bool| -> Option<Ipv6Plan> {
            Some(Ipv6Plan {
                rs_queue: rs?,
                ns_queue: ns?,
                dhcpv6_queue: if with_dhcpv6 { Some(d6?) } else { None },
            })
        };
        match self.mode {
            Ipv6Mode::Auto => plan(true)
                .or_else(|| plan(false))
                .map(Some)
                .context("ipv6: mode auto needs at least rs_queue and ns_queue"),
            Ipv6Mode::SlaacDhcpv6 => plan(true)
                .map(Some)
                .context("ipv6: mode slaac+dhcpv6 needs rs_queue, ns_queue and dhcpv6_queue"),
            Ipv6Mode::Slaac => plan(false)
                .map(Some)
                .context("ipv6: mode slaac needs rs_queue and ns_queue"),
            Ipv6Mode::Dhcpv6 => bail!("ipv6: mode dhcpv6 (stateful) is not implemented"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses() {
        let text = include_str!("../examples/nfdhcpd.toml");
        let cfg = DaemonSettings::parse(text).unwrap();
        assert_eq!(cfg.dhcp.dhcp_queue, 42);
        assert_eq!(cfg.ipv6.plan.map(|p| p.rs_queue), Some(43));
        assert_eq!(cfg.queues(), [42, 43, 44, 45]);
        assert!(!cfg.dhcp.nameservers.is_empty());
    }

    #[test]
    fn defaults_have_queues_42_to_45() {
        let cfg = DaemonSettings::parse("").unwrap();
        assert_eq!(cfg.queues(), [42, 43, 44, 45]);
        assert_eq!(cfg.rebinding(), 529_200);
    }

    #[test]
    fn modes_resolve_like_the_original() {
        let cfg = DaemonSettings::parse("[ipv6]\ndhcpv6_queue = 0\nmode = \"slaac\"\n").unwrap();
        assert_eq!(cfg.ipv6.plan.unwrap().dhcpv6_queue, None);
        let e = DaemonSettings::parse("[ipv6]\nmode = \"dhcpv6\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("not implemented"));
        // auto without a DHCPv6 queue falls back to slaac.
        let mut v6 = Ipv6 {
            dhcpv6_queue: None,
            ..Ipv6::default()
        };
        assert_eq!(v6.plan().unwrap().unwrap().dhcpv6_queue, None);
        v6.ns_queue = None;
        assert!(v6.plan().is_err());
        v6.enable_ipv6 = false;
        assert_eq!(v6.plan().unwrap(), None);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(DaemonSettings::parse("[dhcp]\nserver_ip = \"300.1.1.1\"\n").is_err());
        assert!(DaemonSettings::parse("[dhcp]\nunknown_key = 1\n").is_err());
        assert!(DaemonSettings::parse("[ipv6]\nra_period = 0\n").is_err());
        assert!(DaemonSettings::parse("[ipv6]\ndomains = [\"a..b\"]\n").is_err());
        assert!(DaemonSettings::parse("[dhcp\n").is_err());
    }

    /// The IPv6 plan is resolved when the file is loaded: a mode that cannot be served stops
    /// the daemon at start-up, naming the file, instead of leaving every packet to find out
    /// (and, as before, silently answer nothing).
    #[test]
    fn load_refuses_ipv6_settings_that_do_not_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nfdhcpd.toml");
        std::fs::write(&path, "[ipv6]\nmode = \"dhcpv6\"\n").unwrap();
        let shown = format!("{:#}", DaemonSettings::load(&path).unwrap_err());
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(
            shown.contains("ipv6: mode dhcpv6 (stateful) is not implemented"),
            "{shown}"
        );
        std::fs::write(&path, "[ipv6]\nmode = \"slaac\"\nra_period = 0\n").unwrap();
        let shown = format!("{:#}", DaemonSettings::load(&path).unwrap_err());
        assert!(
            shown.contains("ipv6.ra_period must be at least 1"),
            "{shown}"
        );
        std::fs::write(
            &path,
            "[ipv6]\nmode = \"slaac+dhcpv6\"\nrs_queue = \"43\"\n",
        )
        .unwrap();
        assert!(DaemonSettings::load(&path).is_err());
        // Resolved once: what the packet paths read is the plan, not the mode.
        std::fs::write(&path, "[ipv6]\nmode = \"slaac\"\n").unwrap();
        let cfg = DaemonSettings::load(&path).unwrap();
        assert_eq!(
            cfg.ipv6.plan,
            Some(Ipv6Plan {
                rs_queue: 43,
                ns_queue: 44,
                dhcpv6_queue: None
            })
        );
        assert!(!cfg.answers_dhcpv6());
    }
}
