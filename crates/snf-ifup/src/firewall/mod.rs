//! Per-NIC firewall rules: a pure model of what each NIC needs (`model`, its rules typed
//! in `rule`) and drivers that apply it behind the [`Firewall`] trait:
//! iptables/ebtables/arptables (`iptables`, the default, writing rules as `xt` text) and
//! native nftables (`nft`). `firewall` in snf-network.toml picks one.

mod iptables;
mod model;
mod nft;
mod nftnl;
mod rule;
mod xt;

pub use model::*;
pub use rule::*;
pub use xt::{parse_rule, rule_text};

use serde::{Deserialize, Serialize};

/// One NIC's change: afterwards its rules are exactly `want` and `arp_new` (all empty:
/// removed).
pub struct NicRules<'a> {
    pub tap: &'a str,
    pub want: &'a FwMap,
    /// arptables OUTPUT rules it may have from before (removed unless in `arp_new`).
    pub arp_old: &'a [String],
    pub arp_new: &'a [String],
    /// What the tables hold of this TAP, when the recorded state says so for sure.
    pub known: Option<&'a FwMap>,
    /// What this driver last applied for it (the state file), even when the tables must
    /// be read to know what still exists.
    pub recorded: Option<&'a FwMap>,
    /// Families to look at when `known` is unset.
    pub maybe: &'a [Family],
}

/// A firewall backend. `apply` with several NICs is `reapply`: the driver may read the
/// tables once and change them in one batch.
pub trait Firewall: Sync {
    fn name(&self) -> &'static str;
    /// Brings each NIC's rules to what it wants; rules of others are left alone.
    fn apply(&self, nics: &[NicRules]) -> anyhow::Result<()>;
    /// Prints (for `--dry-run`) the commands `apply` would run for one NIC.
    fn print_plan(&self, nic: &NicRules) -> anyhow::Result<()>;
    /// Lines for `status`, one list per TAP.
    fn status(&self, taps: &[&str]) -> anyhow::Result<Vec<Vec<String>>>;
}

/// `firewall` in snf-network.toml.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    #[default]
    Iptables,
    Nftables,
    /// nftables when the kernel takes our tables and the expressions our rules need
    /// (checked over netlink, `nft` need not be installed), else iptables.
    Auto,
}

/// The driver that applied a NIC's rules, recorded in its state (so that `down` removes
/// them with the same one after the configuration changed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Iptables,
    Nftables,
}

impl Choice {
    pub fn resolve(self) -> Driver {
        match self {
            Choice::Iptables => Driver::Iptables,
            Choice::Nftables => Driver::Nftables,
            Choice::Auto if nft::usable() => Driver::Nftables,
            Choice::Auto => Driver::Iptables,
        }
    }
}

impl Driver {
    /// The driver; `state_dir` is where it may keep its own records (nftables' index).
    pub fn get(self, state_dir: &std::path::Path) -> Box<dyn Firewall> {
        match self {
            Driver::Iptables => Box::new(iptables::Iptables),
            Driver::Nftables => Box::new(nft::Nft {
                index: state_dir.join(".nftables-index"),
            }),
        }
    }
}

#[cfg(test)]
impl Driver {
    /// What `--dry-run` prints of `nic`'s rules on a node whose tables hold nothing yet,
    /// read from nowhere (the plan snapshots run without root).
    pub fn fresh_plan_text(self, nic: &NicRules) -> anyhow::Result<String> {
        match self {
            Driver::Iptables => iptables::plan_text(nic, |_| Ok(iptables::Dump::default())),
            Driver::Nftables => nft::Nft {
                index: std::path::PathBuf::new(),
            }
            .fresh_plan_text(nic),
        }
    }
}

/// Whether nftables' `queue` statement works in this namespace (for `status`).
pub fn nft_queue_supported() -> bool {
    nft::queue_supported()
}

/// Joins worker threads, keeping every error.
fn join_all<'a>(
    hs: impl Iterator<Item = std::thread::ScopedJoinHandle<'a, anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for h in hs {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(anyhow::anyhow!("internal error: a worker panicked")),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            let all: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
            anyhow::bail!("{}", all.join("; "))
        }
    }
}
