//! Whole plans as snapshots, over mode × feature × firewall driver: for each case the
//! exact text `up --dry-run` prints on a node that holds nothing of the NIC yet, then the
//! warnings (stderr) and what the state file records for `down`. No root, no tools: the
//! facts are fixed and the firewall drivers render against empty tables.
//!
//! The expected files live in `tests/snapshots/plans/`; `UPDATE_SNAPSHOTS=1 cargo test -p
//! snf-ifup snapshots` rewrites them (review the diff before committing it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::apply::fresh_dry_run_text;
use crate::firewall::Driver;

const MODES: [&str; 3] = ["bridged", "routed", "openvswitch"];

/// One NIC and node to plan for.
struct Case {
    name: &'static str,
    net_tags: &'static str,
    tags: &'static str,
    flavour: Flavour,
    /// Ganeti's `vlan` nicparam.
    vlan: &'static str,
    /// Whether table LINK has default routes (routed: where announcements go).
    uplinks: bool,
    /// False in Ganeti's pre-migration phase.
    announce: bool,
}

const fn tags(name: &'static str, net_tags: &'static str, tags: &'static str) -> Case {
    Case {
        name,
        net_tags,
        tags,
        flavour: Flavour::Kvm,
        vlan: "",
        uplinks: true,
        announce: true,
    }
}

const CASES: &[Case] = &[
    tags("plain", "", ""),
    Case {
        flavour: Flavour::Xen,
        ..tags("xen", "", "")
    },
    tags("nfdhcpd", "nfdhcpd", ""),
    tags("spoof-protected", "spoof-protected", ""),
    tags("private-filtered", "private-filtered", ""),
    // The older name of the same feature, and a tag that means nothing to us.
    tags("mac-filtered-alias", "mac-filtered public", ""),
    tags("ip-less-routed", "ip-less-routed", ""),
    tags("masq", "masq", ""),
    tags("profile-protected", "", "synnefo:network:0:protected"),
    tags("profile-limited", "", "synnefo:network:eth-a:limited"),
    tags("profile-unprotected", "", "synnefo:network:u0:unprotected"),
    tags(
        "everything",
        "nfdhcpd spoof-protected private-filtered ip-less-routed",
        "synnefo:network:0:limited",
    ),
    Case {
        vlan: ".10:20:30",
        ..tags("vlans", "", "")
    },
    Case {
        uplinks: false,
        ..tags("no-uplinks", "nfdhcpd", "")
    },
    Case {
        announce: false,
        ..tags("pre-migration", "", "")
    },
];

fn nic(mode: &str, case: &Case) -> NicEnv {
    let nic = NicEnv::from_env([
        ("INSTANCE", "vm1"),
        ("INTERFACE", "tap1"),
        ("INTERFACE_INDEX", "0"),
        ("INTERFACE_UUID", "u0"),
        ("INTERFACE_NAME", "eth-a"),
        ("MAC", "aa:00:00:12:34:56"),
        ("IP", "198.51.100.10"),
        ("MODE", mode),
        ("LINK", if mode == "routed" { "100" } else { "br0" }),
        ("TAGS", case.tags),
        ("NETWORK_NAME", "n"),
        ("NETWORK_TAGS", case.net_tags),
        ("NETWORK_SUBNET", "198.51.100.0/24"),
        ("NETWORK_GATEWAY", "198.51.100.1"),
        ("NETWORK_SUBNET6", "2001:db8:1::/64"),
        ("NETWORK_GATEWAY6", "2001:db8:1::1"),
        ("VLAN", case.vlan),
    ]);
    nic.unwrap_or_else(|e| panic!("test NIC: {e:#}"))
}

fn facts(case: &Case) -> Facts {
    let uplink = case.uplinks.then(|| name("up0"));
    Facts {
        tap_exists: true,
        tap_mac: Some(MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef])),
        bridge: Some(BridgeFacts {
            mtu: 1400,
            vlan_filtering: Some(true),
        }),
        link_exists: true,
        uplink4: uplink.clone(),
        uplink6: uplink,
        // A stale rule for the TAP into another table: the plan removes it.
        rules4: vec![IpRule {
            priority: 32000,
            table: 7,
        }],
        rules6: Vec::new(),
        table_id: Some(100),
        ovs_available: true,
    }
}

fn name(s: &str) -> IfName {
    s.parse()
        .unwrap_or_else(|e| panic!("test interface name {s}: {e:#}"))
}

/// What the snapshot holds for one case and driver.
fn render(mode: &str, case: &Case, drv: Driver) -> String {
    let cfg = IfupSettings::default();
    let tap = name("tap1");
    let nic = nic(mode, case);
    let plan = match build(&nic, &tap, case.flavour, &cfg, &facts(case), case.announce) {
        Ok(p) => p,
        Err(e) => return format!("## refused\n{e:#}\n"),
    };
    let binding = cfg.nfdhcpd_state_dir.join(tap.as_str());
    let mut out = fresh_dry_run_text(&tap, &plan, drv, &binding)
        .unwrap_or_else(|e| format!("## dry-run failed\n{e:#}\n"));
    if !plan.warnings.is_empty() {
        out += "## warnings (stderr)\n";
        for w in &plan.warnings {
            let _ = writeln!(out, "{w}");
        }
    }
    let _ = writeln!(out, "## recorded for down\n{:#?}", plan.undo);
    out
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/plans")
}

/// A line diff (longest common subsequence): `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn whole_plans_match_their_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let dir = dir();
    let mut want_files = Vec::new();
    let mut failures = Vec::new();
    for mode in MODES {
        for case in CASES {
            let ipt = render(mode, case, Driver::Iptables);
            let nft = render(mode, case, Driver::Nftables);
            // One file when the drivers print the same (no firewall rules), else one each.
            let files = if ipt == nft {
                vec![(format!("{mode}-{}.txt", case.name), ipt)]
            } else {
                vec![
                    (format!("{mode}-{}.iptables.txt", case.name), ipt),
                    (format!("{mode}-{}.nftables.txt", case.name), nft),
                ]
            };
            for (file, text) in files {
                let path = dir.join(&file);
                want_files.push(file.clone());
                if update {
                    std::fs::create_dir_all(&dir)
                        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                    std::fs::write(&path, &text)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    continue;
                }
                match std::fs::read_to_string(&path) {
                    Ok(expected) if expected == text => {}
                    Ok(expected) => failures.push(format!(
                        "{file} differs (- expected, + actual):\n{}",
                        diff(&expected, &text)
                    )),
                    Err(e) => failures.push(format!("{file}: {e}\nactual:\n{text}")),
                }
            }
        }
    }
    // A snapshot no case writes any more is a case that silently went away.
    let mut stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| !want_files.contains(f))
                .collect()
        })
        .unwrap_or_default();
    stale.sort();
    if update {
        for f in &stale {
            let _ = std::fs::remove_file(dir.join(f));
        }
        return;
    }
    for f in stale {
        failures.push(format!("{f}: no case writes this snapshot any more"));
    }
    assert!(
        failures.is_empty(),
        "{} plan snapshot(s) differ; if the change is intended, rerun with UPDATE_SNAPSHOTS=1 and review the files\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_diff_shows_changed_lines() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
}
