use super::*;
use crate::config::{FileStore, Store, transaction};
use crate::ops::{Feedback, instance, network};

/// net1 (198.51.100.0/24, gateway .1) connected to `default`, instances a (.2) and b (.3).
fn cluster(store: &FileStore) {
    transaction(store, |c| {
        let mut fb = Feedback::default();
        let add = network::AddNetwork {
            name: "net1".into(),
            network: Some("198.51.100.0/24".into()),
            gateway: Some("198.51.100.1".into()),
            conflicts_check: true,
            ..Default::default()
        };
        network::add(c, &add, &mut fb)?;
        let raw = network::RawNicParams {
            link: Some("br0".into()),
            ..Default::default()
        };
        network::connect(c, "net1", &raw, &[], true, &mut fb)?;
        for name in ["a", "b"] {
            let a = instance::AddInstance {
                name: name.into(),
                nics: vec![instance::NicSpec::parse("ip=pool,network=net1").unwrap()],
                conflicts_check: true,
                ..Default::default()
            };
            instance::add(c, &a, &mut fb)?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_configuration_the_ops_build_is_clean_by_both_checks() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    cluster(&store);
    let cfg = store.read().unwrap();
    assert!(!cfg.origin.parsed_from_toml(), "loaded from the cache");
    assert!(quick_clean(&cfg));
    assert_eq!(verify(&cfg), vec![]);
}

#[test]
fn an_unmarked_address_is_found_by_both_checks_and_refused_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    cluster(&store);
    // b's bit cleared, as a hand edit of `reservations` would.
    let mut cfg = store.read().unwrap();
    let uuid = cfg.network_uuid("net1").unwrap();
    let ip: Ipv4Addr = "198.51.100.3".parse().unwrap();
    cfg.networks
        .get_mut(&uuid)
        .unwrap()
        .pool
        .as_mut()
        .unwrap()
        .release(ip, Kind::Instance)
        .unwrap();
    assert!(!quick_clean(&cfg));
    let errs = check_commit(&cfg).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        "ERROR: network net1: addresses not marked as used in the pool, which can hand them out again: 198.51.100.3 (instance b NIC 0)"
    );
    // The repair marks it again and nothing else.
    let fixes = repair_pools(&mut cfg);
    assert_eq!(
        fixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["network net1: marked 198.51.100.3 as used by instance b NIC 0"]
    );
    assert_eq!(errors(&cfg), vec![]);
}

/// The commit check on the index sees what a command could break in the instances it did
/// not decode: each of these changes is caught, and the full check names it.
#[test]
fn the_index_check_catches_clashes_with_instances_it_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("config.data"));
    cluster(&store);
    let base = store.read().unwrap();
    let a_key = base.instance_uuid("a").unwrap();
    let a = base.instances.get_cloned(&a_key).unwrap();
    let b_key = base.instance_uuid("b").unwrap();
    let b = base.instances.get_cloned(&b_key).unwrap();

    type Change = Box<dyn Fn(&mut ClusterConfig)>;
    let mut changes: Vec<(&str, Change)> = Vec::new();
    changes.push(("b takes a's MAC", {
        let (k, mut i) = (b_key.clone(), b.clone());
        i.nics[0].mac = a.nics[0].mac;
        Box::new(move |c: &mut ClusterConfig| c.instances.insert(k.clone(), i.clone()))
    }));
    changes.push(("b takes a's address", {
        let (k, mut i) = (b_key, b);
        i.nics[0].ip = a.nics[0].ip;
        Box::new(move |c: &mut ClusterConfig| c.instances.insert(k.clone(), i.clone()))
    }));
    changes.push((
        "the group's connection goes",
        Box::new(|c: &mut ClusterConfig| {
            for g in c.nodegroups.values_mut() {
                g.networks.clear();
            }
        }),
    ));
    changes.push((
        "a's bit is released",
        Box::new(move |c: &mut ClusterConfig| {
            let Some(IpAddr::V4(ip)) = a.nics[0].ip else {
                unreachable!()
            };
            for n in c.networks.values_mut() {
                n.pool
                    .as_mut()
                    .unwrap()
                    .release(ip, Kind::Instance)
                    .unwrap();
            }
        }),
    ));
    for (what, change) in changes {
        let mut cfg = store.read().unwrap();
        assert!(quick_clean(&cfg), "{what}: clean before");
        change(&mut cfg);
        assert!(!quick_clean(&cfg), "{what}: not caught on the index");
        assert!(check_commit(&cfg).is_err(), "{what}: not refused");
    }
}
