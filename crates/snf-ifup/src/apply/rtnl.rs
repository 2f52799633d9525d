//! A plan's `ip` and `bridge` lines, executed as rtnetlink requests in this process. The
//! lines stay the plan's description (dry-run, status, snapshots); each one snf-ifup
//! writes has a request here, and a line of any other form is an error, never skipped.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{Context, anyhow, bail};
use netconf::MacAddr;
use netconf_sys::netlink;
use netconf_sys::rtnl::{LinkChange, Op, Rtnl};

/// Which tool's syntax a line is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Ip4,
    Ip6,
    Bridge,
}

impl Tool {
    fn describe(self) -> &'static str {
        match self {
            Tool::Ip4 => "ip -4",
            Tool::Ip6 => "ip -6",
            Tool::Bridge => "bridge",
        }
    }
}

/// One request, with names still unresolved (a device is looked up when its step runs:
/// an earlier step may create or rename nothing, but a TAP can vanish at any time).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Link {
        dev: String,
        mtu: Option<u32>,
        /// `Some(None)`: nomaster.
        master: Option<Option<String>>,
        address: Option<MacAddr>,
        up: bool,
    },
    Rule {
        op: Op,
        iif: String,
        priority: Option<u32>,
        table: String,
    },
    Route {
        op: Op,
        dst: IpAddr,
        prefix: u8,
        dev: String,
        table: String,
    },
    NeighProxy {
        op: Op,
        addr: IpAddr,
        dev: String,
    },
    VlanAdd {
        dev: String,
        vid: u16,
        pvid_untagged: bool,
    },
}

fn parse(tool: Tool, line: &str) -> anyhow::Result<Step> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let bad = || {
        anyhow!(
            "internal error: no netlink request for `{} {line}`",
            tool.describe()
        )
    };
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let step = match (tool, w.as_slice()) {
        (Tool::Ip4 | Tool::Ip6, ["link", "set", "dev", dev, rest @ ..]) => {
            let (mut mtu, mut master, mut address, mut up) = (None, None, None, false);
            let mut it = rest.iter();
            while let Some(&k) = it.next() {
                match k {
                    "up" => up = true,
                    "nomaster" => master = Some(None),
                    "mtu" => mtu = Some(num(it.next().ok_or_else(bad)?)?),
                    "master" => master = Some(Some((*it.next().ok_or_else(bad)?).to_owned())),
                    "address" => {
                        address = Some(it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?);
                    }
                    _ => return Err(bad()),
                }
            }
            Step::Link {
                dev: (*dev).to_owned(),
                mtu,
                master,
                address,
                up,
            }
        }
        (Tool::Ip4 | Tool::Ip6, ["rule", "add", "iif", iif, "table", t]) => Step::Rule {
            op: Op::Add,
            iif: (*iif).to_owned(),
            priority: None,
            table: (*t).to_owned(),
        },
        (Tool::Ip4 | Tool::Ip6, ["rule", "del", "priority", p, "iif", iif, "lookup", t]) => {
            Step::Rule {
                op: Op::Delete,
                iif: (*iif).to_owned(),
                priority: Some(num(p)?),
                table: (*t).to_owned(),
            }
        }
        (Tool::Ip4 | Tool::Ip6, ["route", verb, dst, "dev", dev, "table", t, rest @ ..]) => {
            let op = match (*verb, rest) {
                ("replace", ["proto", "static"]) => Op::Replace,
                ("del", []) => Op::Delete,
                _ => return Err(bad()),
            };
            let (dst, prefix) = prefixed(dst).ok_or_else(bad)?;
            if dst.is_ipv4() != (tool == Tool::Ip4) {
                return Err(bad());
            }
            Step::Route {
                op,
                dst,
                prefix,
                dev: (*dev).to_owned(),
                table: (*t).to_owned(),
            }
        }
        (Tool::Ip6, ["neigh", verb, "proxy", addr, "dev", dev]) => Step::NeighProxy {
            op: match *verb {
                "replace" => Op::Replace,
                "del" => Op::Delete,
                _ => return Err(bad()),
            },
            addr: addr.parse().map_err(|_| bad())?,
            dev: (*dev).to_owned(),
        },
        (Tool::Bridge, ["vlan", "add", "dev", dev, "vid", vid, rest @ ..]) => Step::VlanAdd {
            dev: (*dev).to_owned(),
            vid: vid.parse().map_err(|_| bad())?,
            pvid_untagged: match rest {
                ["pvid", "untagged", "master"] => true,
                ["master"] => false,
                _ => return Err(bad()),
            },
        },
        _ => return Err(bad()),
    };
    Ok(step)
}

/// `addr/len` (or a bare address: a host route).
fn prefixed(s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if a.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((a, len))
}

/// Why a step failed: the device is missing, or the kernel said no.
enum Failure {
    NoDevice(String),
    Kernel(netconf_sys::rtnl::Error),
    Other(anyhow::Error),
}

impl Failure {
    /// A removal of something already gone (teardown treats that as done).
    fn is_gone(&self) -> bool {
        match self {
            Failure::NoDevice(_) => true,
            Failure::Kernel(e) => matches!(e.errno, libc::ENOENT | libc::ESRCH | libc::ENODEV),
            Failure::Other(_) => false,
        }
    }

    fn text(&self) -> String {
        match self {
            Failure::NoDevice(d) => format!("Cannot find device \"{d}\""),
            Failure::Kernel(e) => format!("RTNETLINK answers: {e}"),
            Failure::Other(e) => format!("{e:#}"),
        }
    }
}

/// The socket the steps go through, and the indexes of the devices they named (a reapply
/// names each TAP and bridge several times; each lookup is three system calls).
pub struct Session {
    nl: Rtnl,
    indexes: HashMap<String, u32>,
}

impl Session {
    fn index(&mut self, dev: &str) -> Result<u32, Failure> {
        if let Some(&i) = self.indexes.get(dev) {
            return Ok(i);
        }
        let i =
            netconf_sys::link::index_of(dev).ok_or_else(|| Failure::NoDevice(dev.to_owned()))?;
        self.indexes.insert(dev.to_owned(), i);
        Ok(i)
    }
}

fn table(name: &str) -> Result<u32, Failure> {
    netlink::table_id(name)
        .filter(|&t| t != 0)
        .ok_or_else(|| Failure::Other(anyhow!("table id value is invalid: \"{name}\"")))
}

fn exec(se: &mut Session, tool: Tool, step: &Step) -> Result<(), Failure> {
    let v6 = tool == Tool::Ip6;
    let r = match step {
        Step::Link {
            dev,
            mtu,
            master,
            address,
            up,
        } => {
            let master = match master {
                None => None,
                Some(None) => Some(0),
                Some(Some(b)) => Some(se.index(b)?),
            };
            let change = LinkChange {
                mtu: *mtu,
                master,
                address: address.map(|m| m.octets()),
                up: *up,
            };
            let i = se.index(dev)?;
            se.nl.link_set(i, &change)
        }
        Step::Rule {
            op,
            iif,
            priority,
            table: t,
        } => se.nl.rule(*op, v6, iif, *priority, table(t)?),
        Step::Route {
            op,
            dst,
            prefix,
            dev,
            table: t,
        } => {
            let (i, t) = (se.index(dev)?, table(t)?);
            se.nl.route(*op, *dst, *prefix, i, t)
        }
        Step::NeighProxy { op, addr, dev } => {
            let i = se.index(dev)?;
            se.nl.neigh_proxy(*op, *addr, i)
        }
        Step::VlanAdd {
            dev,
            vid,
            pvid_untagged,
        } => {
            let i = se.index(dev)?;
            se.nl.bridge_vlan_add(i, *vid, *pvid_untagged)
        }
    };
    r.map_err(Failure::Kernel)
}

/// Runs `lines` in order, stopping at the first failure (as `ip -batch`).
pub fn run(se: &mut Session, tool: Tool, lines: &[String]) -> anyhow::Result<()> {
    for line in lines {
        let step = parse(tool, line)?;
        if let Err(f) = exec(se, tool, &step) {
            bail!("`{} {line}` failed: {}", tool.describe(), f.text());
        }
    }
    Ok(())
}

/// Runs every line of a teardown (as `ip -force -batch`): what is already gone counts as
/// done; the other failures are returned together.
pub fn run_forgiving(se: &mut Session, tool: Tool, lines: &[String]) -> anyhow::Result<()> {
    let mut real = Vec::new();
    for line in lines {
        match parse(tool, line) {
            Ok(step) => match exec(se, tool, &step) {
                Ok(()) => {}
                Err(f) if f.is_gone() => {}
                Err(f) => real.push(format!("`{} {line}`: {}", tool.describe(), f.text())),
            },
            Err(e) => real.push(format!("{e:#}")),
        }
    }
    if real.is_empty() {
        Ok(())
    } else {
        bail!("{}", real.join("; "))
    }
}

/// Opens the socket the steps go through.
pub fn open() -> anyhow::Result<Session> {
    Ok(Session {
        nl: Rtnl::open().context("cannot open a netlink socket")?,
        indexes: HashMap::new(),
    })
}

/// `ip link set dev <dev> nomaster`.
pub fn nomaster(se: &mut Session, dev: &str) -> anyhow::Result<()> {
    run(se, Tool::Ip4, &[format!("link set dev {dev} nomaster")])
}

/// `ip link set dev <dev> address <mac>`.
pub fn set_address(se: &mut Session, dev: &str, mac: MacAddr) -> anyhow::Result<()> {
    run(
        se,
        Tool::Ip4,
        &[format!("link set dev {dev} address {mac}")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_form_of_a_plan_has_a_request() {
        let ok = [
            (Tool::Ip4, "link set dev tap1 address fe:00:00:12:34:56"),
            (Tool::Ip4, "link set dev tap1 mtu 1400"),
            (Tool::Ip4, "link set dev tap1 master br0"),
            (Tool::Ip4, "link set dev tap1 nomaster"),
            (Tool::Ip4, "link set dev tap1 up"),
            (Tool::Ip4, "rule add iif tap1 table 100"),
            (Tool::Ip6, "rule add iif tap1 table rt_vm"),
            (Tool::Ip4, "rule del priority 32765 iif tap1 lookup 100"),
            (
                Tool::Ip4,
                "route replace 198.51.100.10/32 dev tap1 table 100 proto static",
            ),
            (Tool::Ip4, "route del 198.51.100.10/32 dev tap1 table main"),
            (
                Tool::Ip6,
                "route replace 2001:db8::a800:ff:fe12:3456/128 dev tap1 table 100 proto static",
            ),
            (Tool::Ip6, "neigh replace proxy 2001:db8::1 dev up0"),
            (Tool::Ip6, "neigh del proxy 2001:db8::1 dev up0"),
            (
                Tool::Bridge,
                "vlan add dev tap1 vid 10 pvid untagged master",
            ),
            (Tool::Bridge, "vlan add dev tap1 vid 20 master"),
        ];
        for (tool, line) in ok {
            assert!(parse(tool, line).is_ok(), "{line}");
        }
        assert_eq!(
            parse(Tool::Ip4, "route del 198.51.100.10/32 dev tap1 table main").unwrap(),
            Step::Route {
                op: Op::Delete,
                dst: "198.51.100.10".parse().unwrap(),
                prefix: 32,
                dev: "tap1".into(),
                table: "main".into()
            }
        );
    }

    #[test]
    fn unknown_forms_are_refused() {
        for (tool, line) in [
            (Tool::Ip4, "link set dev tap1 alias x"),
            (Tool::Ip4, "link set dev tap1 mtu"),
            (
                Tool::Ip4,
                "route replace 2001:db8::1/128 dev tap1 table 100 proto static",
            ),
            (
                Tool::Ip4,
                "route replace 198.51.100.1/33 dev tap1 table 100 proto static",
            ),
            (Tool::Ip4, "route add 198.51.100.1/32 dev tap1 table 100"),
            (Tool::Ip4, "neigh replace proxy 2001:db8::1 dev up0"),
            (Tool::Bridge, "vlan del dev tap1 vid 10 master"),
            (Tool::Ip4, "addr flush dev tap1"),
            (Tool::Ip4, ""),
        ] {
            assert!(parse(tool, line).is_err(), "{line}");
        }
    }

    /// Every `ip`/`bridge` line of the plan snapshots (all modes and features) parses.
    #[test]
    fn every_snapshot_line_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/plans");
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let mut tool = None;
            for line in text.lines() {
                if line.starts_with('#') {
                    tool = match line.strip_prefix("# ").unwrap_or("") {
                        "ip -4 -batch -" => Some(Tool::Ip4),
                        "ip -6 -batch -" => Some(Tool::Ip6),
                        "bridge -batch -" => Some(Tool::Bridge),
                        _ => None,
                    };
                    continue;
                }
                if let Some(t) = tool
                    && !line.trim().is_empty()
                {
                    parse(t, line).unwrap_or_else(|e| panic!("{e:#}"));
                    seen += 1;
                }
            }
        }
        assert!(seen > 50, "only {seen} lines seen");
    }
}
