//! Allocation ranges in config.data: kept by the TOML and by the snapshot cache alike,
//! absent from a network without them (whose text stays what it was), and a hand-edited
//! bad range still read, then named by verify and refused at commit.

use std::fs;

use netconf_cluster::config::{FileStore, Store, parse, render, transaction, verify};
use netconf_cluster::ops::Feedback;
use netconf_cluster::ops::network::{self, AddNetwork, ModifyNetwork};

fn add(store: &FileStore, name: &str, net: &str, ranges: &[&str]) {
    let a = AddNetwork {
        name: name.into(),
        network: Some(net.into()),
        allocation_ranges: ranges.iter().map(|r| (*r).to_owned()).collect(),
        conflicts_check: true,
        ..Default::default()
    };
    transaction(store, |c| network::add(c, &a, &mut Feedback::default())).unwrap();
}

fn ranges_of(store: &FileStore, name: &str) -> Vec<String> {
    let cfg = store.read().unwrap();
    let n = &cfg.networks[&cfg.network_uuid(name).unwrap()];
    n.pool
        .as_ref()
        .unwrap()
        .ranges()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn ranges_round_trip_through_the_toml_and_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(
        &store,
        "net1",
        "198.51.100.0/24",
        &[
            "198.51.100.200-198.51.100.210",
            "198.51.100.100-198.51.100.150",
        ],
    );
    add(&store, "net2", "203.0.113.0/24", &[]);
    let text = fs::read_to_string(store.path()).unwrap();
    // Sorted, one line, only in the network that has ranges.
    assert_eq!(text.matches("allocation_ranges").count(), 1, "{text}");
    assert!(text.contains(
        "\nallocation_ranges = [\"198.51.100.100-198.51.100.150\", \"198.51.100.200-198.51.100.210\"]\n"
    ));
    assert!(store.cache_is_fresh());
    let from_cache = store.read().unwrap();
    let from_toml = parse(&text, store.path()).unwrap();
    assert_eq!(from_cache, from_toml);
    assert_eq!(
        ranges_of(&store, "net1"),
        [
            "198.51.100.100-198.51.100.150",
            "198.51.100.200-198.51.100.210"
        ]
    );
    assert!(ranges_of(&store, "net2").is_empty());
    assert_eq!(render(&from_toml).unwrap(), text);
    // Without the cache the same again.
    fs::remove_file(dir.path().join("config.data.cache")).unwrap();
    assert_eq!(store.read().unwrap(), from_cache);
}

/// A file without ranges (as every file before ranges existed) reads and writes back to
/// the same bytes, and a change that removes the last range leaves no trace of them.
#[test]
fn a_file_without_ranges_reads_and_renders_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(&store, "net1", "198.51.100.0/24", &[]);
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains("allocation_ranges"));
    assert_eq!(render(&parse(&text, store.path()).unwrap()).unwrap(), text);

    let set = |v: &str| ModifyNetwork {
        name: "net1".into(),
        allocation_ranges: Some(vec![v.into()]),
        ..Default::default()
    };
    for v in ["198.51.100.100-198.51.100.150", network::NONE] {
        transaction(&store, |c| {
            network::modify(c, &set(v), &mut Feedback::default())
        })
        .unwrap();
    }
    let after = fs::read_to_string(store.path()).unwrap();
    assert!(!after.contains("allocation_ranges"), "{after}");
}

#[test]
fn a_hand_edited_bad_range_is_read_named_by_verify_and_refused_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(
        &store,
        "net1",
        "198.51.100.0/24",
        &["198.51.100.100-198.51.100.150"],
    );
    let text = fs::read_to_string(store.path()).unwrap();
    let edited = text.replace(
        "\"198.51.100.100-198.51.100.150\"",
        "\"198.51.100.0-198.51.100.150\", \"198.51.100.150-198.51.100.160\"",
    );
    assert_ne!(edited, text);
    fs::write(store.path(), &edited).unwrap();
    let cfg = store.read().unwrap();
    let found: Vec<String> = verify::errors(&cfg)
        .iter()
        .map(|f| format!("{}: {}", f.code, f.msg))
        .collect();
    assert_eq!(
        found,
        [
            "ENETWORKCFG: allocation range 198.51.100.0-198.51.100.150 holds the network address 198.51.100.0 of 198.51.100.0/24",
            "ENETWORKCFG: allocation ranges 198.51.100.0-198.51.100.150 and 198.51.100.150-198.51.100.160 overlap",
        ]
    );
    let err = transaction(&store, |c| {
        c.cluster.name = "elsewhere".into();
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert_eq!(fs::read_to_string(store.path()).unwrap(), edited);
    // repair-pools does not guess which range the operator meant.
    let mut cfg = store.read().unwrap();
    assert!(verify::repair_pools(&mut cfg).is_empty());
    assert_eq!(verify::errors(&cfg).len(), 2);
    // Syntax is the file's: a range that is no range makes the file unreadable.
    let broken = text.replace("\"198.51.100.100-198.51.100.150\"", "\"198.51.100.100\"");
    let e = parse(&broken, store.path()).unwrap_err();
    assert!(
        e.to_string()
            .contains("Invalid allocation range '198.51.100.100'"),
        "{e}"
    );
}
