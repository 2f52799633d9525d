//! Per-TAP state under `/var/lib/snf-network/<tap>.toml`: the NIC as it was configured
//! (Ganeti's variables) and what `down` must undo. Written before anything is changed (so
//! that `down` after a partial `up` knows what to look for) and again when `up` finished.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use netconf::{IfName, NicEnv};
use serde::{Deserialize, Serialize};

use crate::firewall::{
    Chain, Driver, Family, Hook, Jump, JumpMatch, TableSpec, parse_rule, rule_text,
};
use crate::plan::{Flavour, Undo};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub tap: String,
    pub flavour: Flavour,
    /// False while an `up` is in progress (or was interrupted).
    pub complete: bool,
    /// Ganeti's variables of the NIC, in Ganeti's order.
    pub env: Vec<(String, String)>,
    /// Firewall tables that may hold chains of this TAP.
    pub families: Vec<Family>,
    /// (sysctl, value before our first `up`), restored by `down`.
    pub sysctl_restore: Vec<(String, String)>,
    /// The binding file written for nfdhcpd, if any.
    pub binding: Option<PathBuf>,
    pub undo: Undo,
    /// The chains and jumps applied (valid when `complete`).
    #[serde(default)]
    pub firewall: Vec<FwRecord>,
    /// The firewall driver that applied them.
    #[serde(default)]
    pub driver: Driver,
    /// The TAP's ifindex when it was configured: a TAP deleted and created again under the
    /// same name has another one, and its NIC is not this record's (see `watch`).
    #[serde(default)]
    pub ifindex: Option<u32>,
    /// The NIC in the cluster store it was taken from (`up --instance`), which `watch`
    /// follows; none for NICs Ganeti or Xen described (older files have none either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreNic>,
}

/// A NIC's identity in the cluster store: the instance by UUID (it survives a rename) and
/// the NIC's index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreNic {
    pub instance_uuid: String,
    pub index: u32,
}

/// One family's chains and jumps as applied. In the file, rules are the iptables/ebtables
/// text of the rule (as before the rule model was typed), read back by the family's syntax.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireRecord", into = "WireRecord")]
pub struct FwRecord {
    pub family: Family,
    pub spec: TableSpec,
}

#[derive(Serialize, Deserialize)]
struct WireRecord {
    family: Family,
    spec: WireSpec,
}

#[derive(Serialize, Deserialize)]
struct WireSpec {
    chains: Vec<WireChain>,
    shared: Vec<WireChain>,
    jumps: Vec<WireJump>,
}

#[derive(Serialize, Deserialize)]
struct WireChain {
    name: String,
    rules: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WireJump {
    from: String,
    matches: String,
    target: String,
}

impl From<FwRecord> for WireRecord {
    fn from(r: FwRecord) -> WireRecord {
        let fam = r.family;
        let chains = |cs: &[Chain]| -> Vec<WireChain> {
            cs.iter()
                .map(|c| WireChain {
                    name: c.name.clone(),
                    rules: c.rules.iter().map(|r| rule_text(fam, r)).collect(),
                })
                .collect()
        };
        WireRecord {
            family: fam,
            spec: WireSpec {
                chains: chains(&r.spec.chains),
                shared: chains(&r.spec.shared),
                jumps: r
                    .spec
                    .jumps
                    .iter()
                    .map(|j| WireJump {
                        from: j.from.to_string(),
                        matches: j.matches.to_string(),
                        target: j.target.clone(),
                    })
                    .collect(),
            },
        }
    }
}

impl TryFrom<WireRecord> for FwRecord {
    type Error = anyhow::Error;

    fn try_from(w: WireRecord) -> anyhow::Result<FwRecord> {
        let fam = w.family;
        let chains = |cs: Vec<WireChain>| -> anyhow::Result<Vec<Chain>> {
            cs.into_iter()
                .map(|c| {
                    Ok(Chain {
                        rules: c
                            .rules
                            .iter()
                            .map(|r| parse_rule(fam, r))
                            .collect::<anyhow::Result<_>>()?,
                        name: c.name,
                    })
                })
                .collect()
        };
        let jumps = w
            .spec
            .jumps
            .into_iter()
            .map(|j| {
                Ok(Jump {
                    from: Hook::from_chain(&j.from)
                        .with_context(|| format!("unknown hook {:?}", j.from))?,
                    matches: JumpMatch::parse(&j.matches)
                        .with_context(|| format!("cannot read the jump match {:?}", j.matches))?,
                    target: j.target,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(FwRecord {
            family: fam,
            spec: TableSpec {
                chains: chains(w.spec.chains)?,
                shared: chains(w.spec.shared)?,
                jumps,
            },
        })
    }
}

pub use crate::firewall::FwMap;

pub fn to_records(m: &FwMap) -> Vec<FwRecord> {
    m.iter()
        .map(|(f, s)| FwRecord {
            family: *f,
            spec: s.clone(),
        })
        .collect()
}

impl State {
    pub fn fw_map(&self) -> FwMap {
        self.firewall
            .iter()
            .map(|r| (r.family, r.spec.clone()))
            .collect()
    }

    pub fn nic(&self) -> anyhow::Result<NicEnv> {
        NicEnv::from_env(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .with_context(|| format!("state of {}: recorded NIC is invalid", self.tap))
    }
}

/// The most a state file may hold. Its bulk is the NIC's environment, which the kernel
/// bounds (argv and environment together at most 6 MiB), or the store's tags (Ganeti's
/// limits: 4096 tags of 128 characters per object); the rules and undo lists are small
/// beside it. Room above that for TOML's quoting.
pub const MAX_STATE_BYTES: u64 = 16 << 20;

pub fn path(dir: &Path, tap: &IfName) -> PathBuf {
    dir.join(format!("{tap}.toml"))
}

pub fn load(dir: &Path, tap: &IfName) -> anyhow::Result<Option<State>> {
    let p = path(dir, tap);
    // A symbolic link is refused, not followed: `save` only ever renames a regular file
    // into place, so a link is not ours, and following it would let whoever made it
    // choose what `down` tears down. A FIFO is refused at once rather than hanging every
    // later call for this TAP.
    let text = match netconf::textfile::read(&p, MAX_STATE_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
    };
    let s: State =
        toml::from_str(&text).with_context(|| format!("invalid state file {}", p.display()))?;
    Ok(Some(s))
}

/// Writes atomically (see [`netconf::textfile::write_atomic`]: a temporary file in the same
/// directory that a link planted under its name cannot redirect, then a rename), mode
/// 0644 (what `File::create` gave under root's usual umask). No fsync: the state describes
/// kernel objects that do not survive a reboot either.
pub fn save(dir: &Path, st: &State) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tap: IfName = st.tap.parse().map_err(anyhow::Error::msg)?;
    let target = path(dir, &tap);
    let text = toml::to_string(st).context("serialising state")?;
    netconf::textfile::write_atomic(
        &target,
        text.as_bytes(),
        0o644,
        netconf::textfile::Durability::None,
    )
    .with_context(|| format!("cannot write {}", target.display()))
}

/// Records that `tap`'s NIC comes from the store (after an `up` from it), under the lock.
pub fn mark_from_store(dir: &Path, tap: &IfName, nic: StoreNic) -> anyhow::Result<()> {
    let _lock = lock(dir)?;
    if let Some(mut st) = load(dir, tap)?
        && st.store.as_ref() != Some(&nic)
    {
        st.store = Some(nic);
        save(dir, &st)?;
    }
    Ok(())
}

/// Forgets `tap`, with the temporaries of its state file that a run killed inside `save`
/// left (`.<tap>.toml.tmp…`; nothing else ever removes them). Here rather than on every
/// `save`: a `down` is rare and already writes the directory. Those of the last minute stay,
/// in case a writer that does not hold the lock is still at work.
pub fn remove(dir: &Path, tap: &IfName) -> anyhow::Result<()> {
    let p = path(dir, tap);
    netconf::textfile::remove_stale_temporaries(&p, std::time::Duration::from_secs(60));
    match fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove state of {tap}"))
        }
        _ => Ok(()),
    }
}

/// Every recorded TAP, sorted.
pub fn all(dir: &Path) -> anyhow::Result<Vec<IfName>> {
    let mut v = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for e in rd {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(tap) = name.strip_suffix(".toml").and_then(|t| t.parse().ok()) {
            v.push(tap);
        }
    }
    v.sort();
    Ok(v)
}

/// An exclusive lock serialising snf-ifup runs on this node (firewall batches are computed
/// from a dump, so two runs must not interleave).
pub fn lock(dir: &Path) -> anyhow::Result<fs::File> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let p = dir.join(".lock");
    // Every `up` and `down` passes here, so nothing at this name may make it wait: a FIFO
    // opens at once (O_NONBLOCK, and read-write, which never waits for the other end) and
    // is refused; a symbolic link is refused rather than followed (creating its target).
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .with_context(|| format!("cannot open {}", p.display()))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        anyhow::bail!("cannot lock {}: not a regular file: refused", p.display());
    }
    f.lock()
        .with_context(|| format!("cannot lock {}", p.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_list() {
        let d = tempfile::tempdir().unwrap();
        let st = State {
            tap: "tap3".into(),
            flavour: Flavour::Kvm,
            complete: true,
            env: vec![("INSTANCE".into(), "vm".into())],
            families: vec![Family::Eb],
            sysctl_restore: vec![("net.ipv4.conf.tap3.proxy_arp".into(), "0".into())],
            binding: None,
            undo: Undo::default(),
            firewall: vec![FwRecord {
                family: Family::Eb,
                spec: TableSpec::default(),
            }],
            driver: Driver::Nftables,
            ifindex: Some(7),
            store: None,
        };
        save(d.path(), &st).unwrap();
        let tap: IfName = "tap3".parse().unwrap();
        assert_eq!(load(d.path(), &tap).unwrap(), Some(st));
        {
            let _l = lock(d.path()).unwrap();
            assert_eq!(all(d.path()).unwrap(), std::slice::from_ref(&tap));
        }
        let from = StoreNic {
            instance_uuid: "u-1".into(),
            index: 2,
        };
        mark_from_store(d.path(), &tap, from.clone()).unwrap();
        assert_eq!(load(d.path(), &tap).unwrap().unwrap().store, Some(from));
        remove(d.path(), &tap).unwrap();
        remove(d.path(), &tap).unwrap();
        assert_eq!(load(d.path(), &tap).unwrap(), None);
    }

    /// `remove` sweeps the temporaries killed writers of this TAP's state left, and only
    /// those: not a fresh one, not another TAP's (`tap10` after `tap1`), not a link.
    #[test]
    fn remove_sweeps_stale_temporaries_of_its_own_tap() {
        let d = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let plant = |name: &str, aged: bool| {
            let f = fs::File::create(d.path().join(name)).unwrap();
            if aged {
                f.set_modified(old).unwrap();
            }
        };
        plant(".tap1.toml.tmp4242.0", true);
        plant(".tap1.toml.tmp4243.7", true);
        plant(".tap1.toml.tmp4244.0", false);
        plant(".tap10.toml.tmp4245.0", true);
        plant("tap1.toml", false);
        std::os::unix::fs::symlink("/etc/hostname", d.path().join(".tap1.toml.tmp1.0")).unwrap();
        remove(d.path(), &"tap1".parse().unwrap()).unwrap();
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".tap1.toml.tmp1.0",
                ".tap1.toml.tmp4244.0",
                ".tap10.toml.tmp4245.0"
            ]
        );
    }

    /// A link planted in the state directory under a temporary name `save` uses (the name
    /// the old code used, `.<tap>.tmp<pid>`, and the next ones it uses now) is not
    /// followed: the file it points to, outside the directory, keeps its content.
    #[test]
    fn save_never_follows_a_link_planted_under_its_temporary_name() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "victim\n").unwrap();
        let tap: IfName = "tap9".parse().unwrap();
        let link = |tmp: PathBuf| std::os::unix::fs::symlink(&victim, tmp).unwrap();
        link(d.path().join(format!(".tap9.tmp{}", std::process::id())));
        for seq in 0..256 {
            link(netconf::textfile::temp_path(&path(d.path(), &tap), seq).unwrap());
        }
        let st = State {
            tap: "tap9".into(),
            flavour: Flavour::Kvm,
            complete: false,
            env: vec![],
            families: vec![],
            sysctl_restore: vec![],
            binding: None,
            undo: Undo::default(),
            firewall: vec![],
            driver: Driver::Nftables,
            ifindex: None,
            store: None,
        };
        save(d.path(), &st).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "victim\n");
        assert_eq!(load(d.path(), &tap).unwrap(), Some(st));
        let m = fs::symlink_metadata(path(d.path(), &tap)).unwrap();
        assert!(m.is_file());
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o644
        );
    }

    /// State files keep rules as iptables/ebtables text: one written before the rule model
    /// was typed reads into it, and writing it again gives the same content.
    #[test]
    fn firewall_records_keep_their_text_form() {
        use crate::firewall::{Match, Rule, Verdict};
        let old = r#"
family = "ip4"
[spec]
chains = [{ name = "SNF-FROM-tap1", rules = ["! -s 198.51.100.10/32 -j DROP"] },
          { name = "SNF-TO-tap1", rules = ["-j snf-limited"] }]
shared = [{ name = "snf-limited", rules = ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-p tcp --dport 22 -j ACCEPT", "-j DROP"] }]
jumps = [{ from = "FORWARD", matches = "-i tap1", target = "SNF-FROM-tap1" },
         { from = "FORWARD", matches = "-m physdev --physdev-out tap1 --physdev-is-bridged", target = "SNF-TO-tap1" }]
"#;
        let r: FwRecord = toml::from_str(old).unwrap();
        assert_eq!(
            r.spec.chains[0].rules,
            [Rule::new(
                [Match::not_src(
                    "198.51.100.10".parse::<std::net::Ipv4Addr>().unwrap()
                )],
                Verdict::Drop
            )]
        );
        assert_eq!(
            r.spec.jumps[1].matches,
            JumpMatch::BridgedOut("tap1".into())
        );
        let again: toml::Value = toml::from_str(&toml::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, toml::from_str::<toml::Value>(old).unwrap());
        // A rule no version wrote makes the file invalid rather than a rule lost.
        let bad = old.replace("-p tcp --dport 22", "-m owner --uid-owner 0");
        assert!(toml::from_str::<FwRecord>(&bad).is_err());
    }

    /// Every rule a plan writes survives the state file.
    #[test]
    fn every_planned_rule_round_trips() {
        use crate::plan::{BridgeFacts, Facts, Flavour, build};
        let cfg = crate::config::IfupSettings::default();
        let facts = Facts {
            tap_exists: true,
            bridge: Some(BridgeFacts {
                mtu: 1500,
                vlan_filtering: Some(false),
            }),
            link_exists: true,
            table_id: Some(100),
            ..Facts::default()
        };
        let tap: IfName = "tap1".parse().unwrap();
        let mut rules = 0;
        for (mode, link) in [("bridged", "br0"), ("routed", "100")] {
            for profile in ["protected", "limited", "unprotected"] {
                let tags = format!("synnefo:network:0:{profile}");
                let nic = NicEnv::from_env([
                    ("INSTANCE", "vm1"),
                    ("INTERFACE", "tap1"),
                    ("INTERFACE_INDEX", "0"),
                    ("INTERFACE_UUID", "u0"),
                    ("MAC", "aa:00:00:12:34:56"),
                    ("IP", "198.51.100.10"),
                    ("MODE", mode),
                    ("LINK", link),
                    ("TAGS", tags.as_str()),
                    ("NETWORK_NAME", "n"),
                    (
                        "NETWORK_TAGS",
                        "nfdhcpd private-filtered spoof-protected ip-less-routed",
                    ),
                    ("NETWORK_SUBNET", "198.51.100.0/24"),
                    ("NETWORK_GATEWAY", "198.51.100.1"),
                    ("NETWORK_SUBNET6", "2001:db8:1::/64"),
                ])
                .unwrap();
                let p = build(&nic, &tap, Flavour::Kvm, &cfg, &facts, false).unwrap();
                for rec in to_records(&p.firewall) {
                    let text = toml::to_string(&rec).unwrap();
                    let back: FwRecord = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(back, rec);
                    rules += rec.spec.chains.iter().map(|c| c.rules.len()).sum::<usize>();
                }
            }
        }
        assert!(rules > 50, "{rules}");
    }
}
