//! The cluster store on a real 3-member etcd cluster: many "nodes" (each talking to its own
//! member) allocate from one network at once, and nothing is handed out twice or lost.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use netconf_cluster::config::Store;
use netconf_cluster::config::etcd::EtcdStore;
use netconf_test_support::{EtcdCluster, need_etcd, unique_prefix};

const INST: &str = env!("CARGO_BIN_EXE_gnt-instance");
const NET: &str = env!("CARGO_BIN_EXE_gnt-network");
const CLUSTER: &str = env!("CARGO_BIN_EXE_gnt-cluster");

const NODES: usize = 3;
const PROCS_PER_NODE: usize = 8;
/// 100 each: 2,400 commands, as issue 14 asks, in every build (an add reads only the
/// heads and its own keys, so the run does not slow down as the cluster grows).
const ADDS_PER_PROC: usize = 100;

fn gnt(bin: &str, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("NETCONF_STORE", url)
        .env("NETCONF_CACHE_DIR", "")
        .env("NETCONF_HOOKS_DIR", "/nonexistent")
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// Issue 14: 3 nodes × 8 processes × 100 `gnt-instance add … ip=pool` on one /20, each node
/// through its own etcd member: 0 duplicate IPs or MACs, every instance whose command
/// exited 0 present, `gnt-cluster verify` clean.
#[test]
fn three_nodes_allocate_from_one_network_without_duplicates_or_loss() {
    if !need_etcd("three_nodes_allocate_from_one_network_without_duplicates_or_loss") {
        return;
    }
    let etcd = EtcdCluster::start(3);
    let prefix = unique_prefix();
    let all = etcd.url(&prefix);
    for args in [
        &[
            "add",
            "--network",
            "10.32.0.0/20",
            "--gateway",
            "10.32.0.1",
            "big",
        ][..],
        &["connect", "-N", "link=br0", "big"],
    ] {
        let o = gnt(NET, &all, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let t0 = Instant::now();
    // Per process: (instances whose add exited 0, failures, retries reported by -d).
    let results: Vec<(Vec<String>, Vec<String>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..NODES * PROCS_PER_NODE)
            .map(|p| {
                let url = etcd.member_url(p % NODES, &prefix);
                s.spawn(move || {
                    let (mut ok, mut failed, mut retries) = (Vec::new(), Vec::new(), 0);
                    for k in 0..ADDS_PER_PROC {
                        let name = format!("vm-{p}-{k}");
                        let o = gnt(
                            INST,
                            &url,
                            &["-d", "add", "--net", "0:ip=pool,network=big", &name],
                        );
                        let err = String::from_utf8_lossy(&o.stderr).into_owned();
                        for l in err.lines() {
                            if let Some(n) = l
                                .strip_prefix("etcd: committed after ")
                                .and_then(|r| r.strip_suffix(" retries"))
                            {
                                retries += n.parse::<u64>().unwrap_or(0);
                            }
                        }
                        if o.status.success() {
                            ok.push(name);
                        } else {
                            assert!(
                                err.starts_with("Failure: "),
                                "{name}: an unclear failure: {err}"
                            );
                            failed.push(format!("{name}: {err}"));
                        }
                    }
                    (ok, failed, retries)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = t0.elapsed();
    let ok: BTreeSet<String> = results.iter().flat_map(|r| r.0.iter().cloned()).collect();
    let failed: Vec<&String> = results.iter().flat_map(|r| r.1.iter()).collect();
    let retries: u64 = results.iter().map(|r| r.2).sum();

    let store = EtcdStore::new(&all.parse().unwrap());
    let (cfg, _) = store.read_versioned().unwrap();
    let insts = cfg.instances.all_decoded();
    let names: BTreeSet<String> = insts.values().map(|i| i.name.as_str().to_owned()).collect();
    let missing: Vec<&String> = ok.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "exit 0 but not in the store: {missing:?}"
    );
    let mut ips = BTreeSet::new();
    let mut macs = BTreeSet::new();
    for i in insts.values() {
        for n in &i.nics {
            let ip = n.ip.unwrap_or_else(|| panic!("{}: no IP", i.name));
            assert!(ips.insert(ip), "IP {ip} handed out twice");
            assert!(macs.insert(n.mac), "MAC {} handed out twice", n.mac);
        }
    }
    let net = cfg.networks.values().next().unwrap();
    let o = gnt(CLUSTER, &all, &["verify"]);
    assert!(
        o.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = writeln_stderr(&format!(
        "etcd 3 members: {} commands, {} exit 0, {} failed, {} instances, {} retries, {:.1} s ({:.1} commands/s), pool free {}",
        NODES * PROCS_PER_NODE * ADDS_PER_PROC,
        ok.len(),
        failed.len(),
        insts.len(),
        retries,
        took.as_secs_f64(),
        (NODES * PROCS_PER_NODE * ADDS_PER_PROC) as f64 / took.as_secs_f64(),
        net.pool.as_ref().unwrap().free_count(),
    ));
    for f in failed.iter().take(5) {
        let _ = writeln_stderr(f);
    }
    assert_eq!(insts.len(), names.len());
}

fn writeln_stderr(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}
