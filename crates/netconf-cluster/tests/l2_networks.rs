//! Networks without an IPv4 subnet (L2-only, beyond Ganeti) in config.data: no IPv4 keys
//! in the TOML, the same network from the TOML and from the snapshot cache, a file
//! without one rendering as before, and IPv4 data hung on one named or refused.

use std::fs;

use netconf_cluster::config::{FileStore, Store, parse, render, transaction, verify};
use netconf_cluster::ops::Feedback;
use netconf_cluster::ops::network::{self, AddNetwork};

fn add(store: &FileStore, a: &AddNetwork) {
    transaction(store, |c| network::add(c, a, &mut Feedback::default())).unwrap();
}

fn l2() -> AddNetwork {
    AddNetwork {
        name: "l2".into(),
        network6: Some("2001:db8:2::/64".into()),
        gateway6: Some("2001:db8:2::1".into()),
        mac_prefix: Some("aa:00:02".into()),
        tags: vec!["nfdhcpd".into()],
        conflicts_check: true,
        ..Default::default()
    }
}

fn v4(name: &str, net: &str) -> AddNetwork {
    AddNetwork {
        name: name.into(),
        network: Some(net.into()),
        gateway: Some(net.replace(".0/24", ".1")),
        conflicts_check: true,
        ..Default::default()
    }
}

#[test]
fn an_l2_network_round_trips_through_the_toml_and_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(&store, &v4("net1", "198.51.100.0/24"));
    add(&store, &l2());
    let text = fs::read_to_string(store.path()).unwrap();
    let section = text
        .split("name = \"l2\"\n")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap();
    for key in [
        "network =",
        "gateway =",
        "reservations",
        "allocation_ranges",
    ] {
        assert!(!section.contains(key), "{key} in {section}");
    }
    assert!(
        section.starts_with("network6 = \"2001:db8:2::/64\"\n"),
        "{section}"
    );
    assert!(store.cache_is_fresh());
    let from_cache = store.read().unwrap();
    assert!(!from_cache.origin.parsed_from_toml(), "read from the cache");
    let from_toml = parse(&text, store.path()).unwrap();
    assert_eq!(from_cache, from_toml);
    let n = &from_toml.networks[&from_toml.network_uuid("l2").unwrap()];
    assert!(n.network.is_none() && n.pool.is_none() && n.gateway.is_none());
    assert_eq!(render(&from_toml).unwrap(), text);
    assert!(verify::errors(&from_toml).is_empty());
    fs::remove_file(dir.path().join("config.data.cache")).unwrap();
    assert_eq!(store.read().unwrap(), from_cache);
}

/// A file with only IPv4 networks (every file before L2-only networks) renders to the
/// same bytes as before: no new keys, and the subnet still second.
#[test]
fn a_file_without_l2_networks_renders_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(&store, &v4("net1", "198.51.100.0/24"));
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(text.contains(
        "name = \"net1\"\nnetwork = \"198.51.100.0/24\"\ngateway = \"198.51.100.1\"\nreservations = \"\"\next_reservations = \"0-1,255\"\ntags = []\n"
    ), "{text}");
    assert_eq!(render(&parse(&text, store.path()).unwrap()).unwrap(), text);
}

/// What only an IPv4 subnet can carry: a hand-edited gateway is read and named by verify
/// (and so refused at commit); reservations or ranges without a subnet cannot be held by
/// the model and the file is refused when read.
#[test]
fn ipv4_data_on_an_l2_network_is_named_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(&store, &l2());
    let text = fs::read_to_string(store.path()).unwrap();
    let with = |extra: &str| text.replace("name = \"l2\"\n", &format!("name = \"l2\"\n{extra}\n"));

    let cfg = parse(&with("gateway = \"198.51.100.1\""), store.path()).unwrap();
    let errors: Vec<String> = verify::errors(&cfg)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("gateway 198.51.100.1 on a network without an IPv4 subnet")),
        "{errors:?}"
    );
    for extra in [
        "reservations = \"\"\next_reservations = \"0,3\"",
        "allocation_ranges = [\"198.51.100.2-198.51.100.3\"]",
    ] {
        let e = parse(&with(extra), store.path()).unwrap_err().to_string();
        assert!(
            e.contains("network l2: reservations or allocation ranges without an IPv4 subnet"),
            "{e}"
        );
    }
    // A subnet without its reservations is refused as before.
    let e = parse(&with("network = \"198.51.100.0/24\""), store.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `reservations`"), "{e}");
}

/// The commit check accepts L2-only networks (every commit above) and refuses a change
/// that hangs IPv4 data on one, leaving config.data byte-identical.
#[test]
fn a_commit_hanging_ipv4_data_on_an_l2_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    add(&store, &l2());
    let before = fs::read(store.path()).unwrap();
    let e = transaction(&store, |c| {
        let uuid = c.network_uuid("l2")?;
        c.networks.get_mut(&uuid).unwrap().gateway = Some("198.51.100.1".parse().unwrap());
        Ok(())
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("gateway 198.51.100.1 on a network without an IPv4 subnet"),
        "{e}"
    );
    let e = transaction(&store, |c| {
        let uuid = c.network_uuid("l2")?;
        c.networks.get_mut(&uuid).unwrap().network = Some("198.51.100.0/24".parse().unwrap());
        Ok(())
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("IPv4 subnet without its address pool, or a pool without a subnet"),
        "{e}"
    );
    assert!(fs::read(store.path()).unwrap() == before);
}
