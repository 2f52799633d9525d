//! `gnt-cluster verify` on the etcd store checks the index keys that keep instance names
//! and MACs unique (`names/instance/<name>`, `macs/<mac>`) against the instances: a key
//! left behind, a key missing, a key pointing to the wrong instance, each named as one
//! `ECLUSTERINDEX` error, in text and JSON; a clean store verifies clean.

use std::process::{Command, Output};

use netconf_cluster::config::Store;
use netconf_cluster::config::etcd::EtcdStore;
use netconf_cluster::config::etcd::client::{Client, Op, TxnOutcome};
use netconf_test_support::{EtcdCluster, need_etcd, unique_prefix};

const INST: &str = env!("CARGO_BIN_EXE_gnt-instance");
const CLUSTER: &str = env!("CARGO_BIN_EXE_gnt-cluster");

fn gnt(bin: &str, url: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("NETCONF_STORE", url)
        .env("NETCONF_CACHE_DIR", "")
        .env("NETCONF_HOOKS_DIR", "/nonexistent")
        .env("TZ", "UTC")
        .env_remove("NETCONF_COMPLETE")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `--error-codes` lines of the index check.
fn index_lines(o: &Output) -> Vec<String> {
    text(o)
        .lines()
        .filter_map(|l| l.split_once("  - ").map(|(_, f)| f.to_owned()))
        .filter(|f| f.contains(":ECLUSTERINDEX:"))
        .collect()
}

#[test]
fn verify_names_each_bad_index_key_and_a_clean_store_verifies_clean() {
    if !need_etcd("verify_names_each_bad_index_key_and_a_clean_store_verifies_clean") {
        return;
    }
    let prefix = unique_prefix();
    let url = EtcdCluster::shared().url(&prefix);
    for (name, mac) in [("vm1", "aa:00:00:00:00:01"), ("vm2", "aa:00:00:00:00:02")] {
        let nic = format!("0:mac={mac},link=br9");
        let o = gnt(INST, &url, &["add", "--net", &nic, name]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let clean = gnt(CLUSTER, &url, &["verify", "--error-codes"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(index_lines(&clean).is_empty(), "{}", text(&clean));

    let parsed = url.parse().unwrap();
    let (cfg, _) = EtcdStore::new(&parsed).read_versioned().unwrap();
    let uuid = |name: &str| {
        cfg.instances
            .all_decoded()
            .iter()
            .find(|(_, i)| i.name.as_str() == name)
            .map(|(u, _)| u.clone())
            .unwrap()
    };
    let (u1, u2) = (uuid("vm1"), uuid("vm2"));
    let key = |rel: &str| format!("{prefix}/{rel}").into_bytes();
    let client = Client::new(&parsed);
    let ghost = "00000000-0000-4000-8000-000000000000";
    let corrupt = [
        // A name no instance holds, for an instance that is gone.
        Op::Put(key("names/instance/ghost"), ghost.as_bytes().to_vec()),
        // vm1's name pointing to vm2.
        Op::Put(key("names/instance/vm1"), u2.as_bytes().to_vec()),
        // vm2's MAC without its key.
        Op::Delete(key("macs/aa:00:00:00:00:02")),
        // A MAC that vm1 does not have.
        Op::Put(key("macs/aa:00:00:00:00:99"), u1.as_bytes().to_vec()),
    ];
    assert!(matches!(
        client.txn(&[], &corrupt).unwrap(),
        TxnOutcome::Committed(_)
    ));

    let bad = gnt(CLUSTER, &url, &["verify", "--error-codes"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert_eq!(
        index_lines(&bad),
        [
            format!(
                "ERROR:ECLUSTERINDEX:cluster::index key names/instance/ghost points to {ghost}, which is not an instance (a stale key)"
            ),
            format!(
                "ERROR:ECLUSTERINDEX:instance:vm1:index key names/instance/vm1 points to instance vm2 ({u2}), not to this instance ({u1})"
            ),
            format!(
                "ERROR:ECLUSTERINDEX:cluster::index key macs/aa:00:00:00:00:99 points to instance vm1 ({u1}), which has no NIC with that MAC"
            ),
            "ERROR:ECLUSTERINDEX:instance:vm2:NIC 0's MAC aa:00:00:00:00:02 has no index key macs/aa:00:00:00:00:02: another command may take it too".to_owned(),
        ],
        "{}",
        text(&bad)
    );
    // Under the first step, as Ganeti's config checks.
    let out = text(&bad);
    let step = out.find("* Verifying cluster config").unwrap();
    let pools = out.find("* Verifying network address pools").unwrap();
    let first = out.find("ECLUSTERINDEX").unwrap();
    assert!(step < first && first < pools, "{out}");
    // The plain form.
    let plain = text(&gnt(CLUSTER, &url, &["verify"]));
    assert!(
        plain.contains("  - ERROR: cluster: index key names/instance/ghost points to "),
        "{plain}"
    );
    assert!(
        plain.contains("  - ERROR: instance vm2: NIC 0's MAC aa:00:00:00:00:02 has no index key"),
        "{plain}"
    );

    // JSON: the same four, with their items (names before MACs, key side first).
    let json = gnt(CLUSTER, &url, &["verify", "--output-format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let found: Vec<(String, String)> = v["steps"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "ECLUSTERINDEX")
        .map(|f| {
            assert_eq!(f["level"], "ERROR");
            (
                f["type"].as_str().unwrap().to_owned(),
                f["item"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("cluster".into(), String::new()),
            ("instance".into(), "vm1".into()),
            ("cluster".into(), String::new()),
            ("instance".into(), "vm2".into()),
        ]
    );
    // The code can be ignored as any other.
    let ignored = gnt(
        CLUSTER,
        &url,
        &[
            "verify",
            "--error-codes",
            "--ignore-errors",
            "ECLUSTERINDEX",
        ],
    );
    assert_eq!(ignored.status.code(), Some(0), "{}", text(&ignored));
    assert_eq!(index_lines(&ignored).len(), 4);
    assert!(
        index_lines(&ignored)
            .iter()
            .all(|l| l.starts_with("WARNING:"))
    );

    // Put right by hand again: clean.
    let fix = [
        Op::Delete(key("names/instance/ghost")),
        Op::Put(key("names/instance/vm1"), u1.as_bytes().to_vec()),
        Op::Put(key("macs/aa:00:00:00:00:02"), u2.as_bytes().to_vec()),
        Op::Delete(key("macs/aa:00:00:00:00:99")),
    ];
    assert!(matches!(
        client.txn(&[], &fix).unwrap(),
        TxnOutcome::Committed(_)
    ));
    let again = gnt(CLUSTER, &url, &["verify", "--error-codes"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(index_lines(&again).is_empty());
}
