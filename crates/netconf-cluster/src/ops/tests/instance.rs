//! `gnt-instance` operations (the network side) through each store.

use std::net::{IpAddr, Ipv4Addr};

use super::{committed, net1, refused};
use crate::config::{ClusterConfig, Instance, Store, with_each_store};
use crate::error::{ErrorCode, GntError};
use crate::ops::Feedback;
use crate::ops::instance::{self, AddInstance, NicChange, NicRef, NicSpec};
use crate::pool::Kind;

fn spec(s: &str) -> NicSpec {
    NicSpec::parse(s).unwrap()
}

fn add_instance(name: &str, nics: &[&str]) -> AddInstance {
    AddInstance {
        name: name.into(),
        nics: nics.iter().map(|s| spec(s)).collect(),
        conflicts_check: true,
        ..Default::default()
    }
}

fn add(store: &dyn Store, name: &str, nics: &[&str]) {
    committed(store, |cfg| {
        instance::add(cfg, &add_instance(name, nics), &mut Feedback::default())
    });
}

fn get(cfg: &ClusterConfig, name: &str) -> Instance {
    cfg.instances
        .get_cloned(&cfg.instance_uuid(name).unwrap())
        .unwrap()
}

fn used_in_net1(store: &dyn Store) -> Vec<Ipv4Addr> {
    let cfg = store.read().unwrap();
    cfg.networks[&cfg.network_uuid("net1").unwrap()]
        .pool
        .as_ref()
        .unwrap()
        .instance_reservations()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn add_takes_addresses_and_macs_that_the_store_keeps() {
    with_each_store(|store| {
        net1(store);
        let mut fb = Feedback::default();
        let a = add_instance(
            "a",
            &[
                "ip=pool,network=net1,name=eth0",
                "ip=198.51.100.9,network=net1,mac=aa:00:00:11:22:33",
            ],
        );
        let env = committed(store, |cfg| instance::add(cfg, &a, &mut fb));
        assert_eq!(env.op_code, "OP_INSTANCE_CREATE");
        assert!(
            fb.messages
                .iter()
                .any(|(_, m)| m == "Chose IP 198.51.100.2 from network net1"),
            "{:?}",
            fb.messages
        );
        let cfg = store.read().unwrap();
        let inst = get(&cfg, "a");
        assert_eq!(inst.group, cfg.group_uuid("default").unwrap());
        let nics: Vec<_> = inst
            .nics
            .iter()
            .map(|n| (n.name.as_deref(), n.ip, n.link.as_str()))
            .collect();
        assert_eq!(
            nics,
            [
                (Some("eth0"), Some(IpAddr::V4(ip("198.51.100.2"))), "br0"),
                (None, Some(IpAddr::V4(ip("198.51.100.9"))), "br0"),
            ]
        );
        assert_eq!(inst.nics[1].mac.to_string(), "aa:00:00:11:22:33");
        assert_ne!(inst.nics[0].mac, inst.nics[1].mac);
        assert_eq!(
            used_in_net1(store),
            [ip("198.51.100.2"), ip("198.51.100.9")]
        );
    });
}

/// An add that fails at its second NIC keeps nothing of the first: the address the first
/// NIC took from the pool is free again in the store.
#[test]
fn an_add_refused_at_a_later_nic_takes_no_address() {
    with_each_store(|store| {
        net1(store);
        add(store, "a", &["ip=198.51.100.9,network=net1"]);
        let mut fb = Feedback::default();
        let b = add_instance(
            "b",
            &["ip=pool,network=net1", "ip=198.51.100.9,network=net1"],
        );
        assert_eq!(
            refused(store, |cfg| instance::add(cfg, &b, &mut fb)),
            GntError::prereq(
                ErrorCode::NotUnique,
                "IP address 198.51.100.9 already in use or does not belong to network net1"
            )
        );
        assert_eq!(used_in_net1(store), [ip("198.51.100.9")]);
        assert_eq!(
            refused(store, |cfg| instance::add(
                cfg,
                &add_instance("a", &["ip=pool,network=net1"]),
                &mut fb
            )),
            GntError::prereq(ErrorCode::Exists, "Instance 'a' is already in the cluster")
        );
        assert_eq!(
            refused(store, |cfg| instance::add(
                cfg,
                &add_instance("c", &["ip=pool"]),
                &mut fb
            )),
            GntError::inval("if ip=pool, parameter network must be passed too")
        );
        assert_eq!(store.read().unwrap().instances.len(), 1);
    });
}

#[test]
fn modify_adds_changes_and_removes_nics_or_nothing() {
    with_each_store(|store| {
        net1(store);
        add(store, "a", &["ip=pool,network=net1,name=eth0"]);
        let mut fb = Feedback::default();
        let changes = [
            NicChange::Add(None, spec("ip=pool,network=net1,name=eth1")),
            NicChange::Modify(NicRef::Ident("eth0".into()), spec("ip=198.51.100.20")),
        ];
        let env = committed(store, |cfg| {
            instance::modify(cfg, "a", &changes, true, &mut fb)
        });
        assert_eq!(env.op_code, "OP_INSTANCE_SET_PARAMS");
        let cfg = store.read().unwrap();
        let inst = get(&cfg, "a");
        let ips: Vec<_> = inst.nics.iter().map(|n| n.ip).collect();
        assert_eq!(
            ips,
            [
                Some(IpAddr::V4(ip("198.51.100.20"))),
                Some(IpAddr::V4(ip("198.51.100.3")))
            ]
        );
        assert_eq!(inst.serial_no, 2);
        assert_eq!(
            used_in_net1(store),
            [ip("198.51.100.3"), ip("198.51.100.20")],
            "the old address of eth0 was released"
        );

        // The first change (a removal releasing .20) is not kept when the second fails.
        let changes = [
            NicChange::Remove(NicRef::Index(0)),
            NicChange::Modify(NicRef::Index(5), spec("ip=pool")),
        ];
        assert_eq!(
            refused(store, |cfg| instance::modify(
                cfg, "a", &changes, true, &mut fb
            )),
            GntError::inval("Invalid NIC index 5, valid range is 0-0")
        );
        assert_eq!(
            refused(store, |cfg| instance::modify(cfg, "a", &[], true, &mut fb)),
            GntError::Usage("Please give at least one of the parameters.".into())
        );
        committed(store, |cfg| {
            instance::modify(cfg, "a", &[NicChange::Remove(NicRef::Last)], true, &mut fb)
        });
        assert_eq!(get(&store.read().unwrap(), "a").nics.len(), 1);
        assert_eq!(used_in_net1(store), [ip("198.51.100.20")]);
    });
}

#[test]
fn rename_and_remove_commit_or_refuse() {
    with_each_store(|store| {
        net1(store);
        add(store, "a", &["ip=pool,network=net1"]);
        add(store, "b", &["ip=pool,network=net1"]);
        assert_eq!(
            refused(store, |cfg| instance::rename(cfg, "a", "b")),
            GntError::prereq(ErrorCode::Exists, "Instance 'b' is already in the cluster")
        );
        committed(store, |cfg| instance::rename(cfg, "a", "c"));
        let cfg = store.read().unwrap();
        assert!(cfg.instance_uuid("a").is_err());
        assert_eq!(get(&cfg, "c").serial_no, 2);

        assert_eq!(
            refused(store, |cfg| instance::remove(cfg, "a")),
            GntError::noent("Instance 'a' not known")
        );
        committed(store, |cfg| instance::remove(cfg, "c"));
        let cfg = store.read().unwrap();
        assert_eq!(cfg.instances.len(), 1);
        assert_eq!(used_in_net1(store), [ip("198.51.100.3")]);
        let net = &cfg.networks[&cfg.network_uuid("net1").unwrap()];
        assert!(
            !net.pool
                .as_ref()
                .unwrap()
                .is_reserved(ip("198.51.100.2"), Kind::Instance)
                .unwrap()
        );
    });
}

#[test]
fn tags_are_added_and_removed_or_refused() {
    with_each_store(|store| {
        add(store, "r", &["mode=routed,link=rt,ip=203.0.113.5"]);
        let tags = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        committed(store, |cfg| {
            instance::add_tags(cfg, "r", &tags(&["a", "b"]))
        });
        assert_eq!(
            refused(store, |cfg| instance::remove_tags(
                cfg,
                "r",
                &tags(&["b", "zz"])
            )),
            GntError::noent("Tag(s) 'zz' not found")
        );
        committed(store, |cfg| instance::remove_tags(cfg, "r", &tags(&["a"])));
        let inst = get(&store.read().unwrap(), "r");
        assert_eq!(inst.tags.iter().collect::<Vec<_>>(), ["b"]);
        assert_eq!(inst.serial_no, 3);
    });
}
