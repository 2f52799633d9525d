//! `gnt-network` operations through each store.

use std::net::Ipv4Addr;

use super::{add_network, committed, connect, net1, refused};
use crate::config::{ClusterConfig, with_each_store};
use crate::error::{ErrorCode, GntError};
use crate::ops::instance::{self, AddInstance, NicSpec};
use crate::ops::network::{self, AddNetwork, ModifyNetwork, RawNicParams};
use crate::ops::{Feedback, Severity, group, node};
use crate::pool::Kind;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ips(v: &[&str]) -> Vec<Ipv4Addr> {
    v.iter().map(|s| ip(s)).collect()
}

fn network<'a>(cfg: &'a ClusterConfig, name: &str) -> &'a crate::config::Network {
    &cfg.networks[&cfg.network_uuid(name).unwrap()]
}

fn add_instance(name: &str, nics: &[&str]) -> AddInstance {
    AddInstance {
        name: name.into(),
        nics: nics.iter().map(|s| NicSpec::parse(s).unwrap()).collect(),
        conflicts_check: true,
        ..Default::default()
    }
}

#[test]
fn add_commits_the_network_with_its_reservations() {
    with_each_store(|store| {
        let (primary, secondary) = (Some(ip("198.51.100.10")), Some(ip("203.0.113.10")));
        committed(store, |cfg| {
            node::add(cfg, "node1.example.org", None, primary, secondary)
        });
        let add = AddNetwork {
            name: "net1".into(),
            network: Some("198.51.100.0/24".into()),
            gateway: Some("198.51.100.1".into()),
            network6: Some("2001:db8:1::/64".into()),
            add_reserved_ips: vec!["198.51.100.20".into()],
            tags: vec!["public".into()],
            conflicts_check: true,
            ..Default::default()
        };
        let mut fb = Feedback::default();
        let env = committed(store, |cfg| network::add(cfg, &add, &mut fb));
        assert_eq!(env.op_code, "OP_NETWORK_ADD");
        assert_eq!(
            fb.messages,
            [(
                Severity::Info,
                "Reserved IP address of node 'node1.example.org' (198.51.100.10)".to_owned()
            )]
        );
        let cfg = store.read().unwrap();
        let net = network(&cfg, "net1");
        assert_eq!(net.gateway, Some(ip("198.51.100.1")));
        assert_eq!(net.network6, Some("2001:db8:1::/64".parse().unwrap()));
        assert_eq!(
            net.pool.as_ref().unwrap().external_reservations(),
            ips(&[
                "198.51.100.0",
                "198.51.100.1",
                "198.51.100.10",
                "198.51.100.20",
                "198.51.100.255"
            ])
        );
        assert_eq!(net.tags.iter().collect::<Vec<_>>(), ["public"]);
    });
}

#[test]
fn add_refuses_a_taken_name_an_overlap_and_an_outside_reservation() {
    with_each_store(|store| {
        net1(store);
        let uuid = store.read().unwrap().network_uuid("net1").unwrap();
        let add = |name: &str, net: &str| AddNetwork {
            name: name.into(),
            network: Some(net.into()),
            conflicts_check: true,
            ..Default::default()
        };
        let mut fb = Feedback::default();
        assert_eq!(
            refused(store, |cfg| network::add(
                cfg,
                &add("net1", "203.0.113.0/24"),
                &mut fb
            )),
            GntError::prereq(
                ErrorCode::Exists,
                format!("Desired network name 'net1' already exists as a network (UUID: {uuid})")
            )
        );
        assert_eq!(
            refused(store, |cfg| network::add(
                cfg,
                &add("net2", "198.51.100.128/25"),
                &mut fb
            )),
            GntError::state(
                "Network 198.51.100.128/25 overlaps with network 'net1' (198.51.100.0/24); use --no-conflicts-check to add it anyway"
            )
        );
        let outside = AddNetwork {
            add_reserved_ips: vec!["192.0.2.1".into()],
            ..add("net2", "203.0.113.0/24")
        };
        let e = refused(store, |cfg| network::add(cfg, &outside, &mut fb));
        assert!(
            matches!(&e, GntError::Exec(m) if m.starts_with("Cannot reserve IP address '192.0.2.1'")),
            "{e}"
        );
        // Without the conflicts check an overlap is the operator's call.
        let overlap = AddNetwork {
            conflicts_check: false,
            ..add("net2", "198.51.100.128/25")
        };
        committed(store, |cfg| network::add(cfg, &overlap, &mut fb));
        assert_eq!(store.read().unwrap().networks.len(), 2);
    });
}

#[test]
fn modify_moves_the_gateway_and_reservations_or_changes_nothing() {
    with_each_store(|store| {
        net1(store);
        committed(store, |cfg| {
            instance::add(
                cfg,
                &add_instance("a", &["ip=198.51.100.5,network=net1"]),
                &mut Feedback::default(),
            )
        });
        let m = |f: fn(&mut ModifyNetwork)| {
            let mut m = ModifyNetwork {
                name: "net1".into(),
                ..Default::default()
            };
            f(&mut m);
            m
        };
        let mut fb = Feedback::default();
        let gw = m(|m| m.gateway = Some("198.51.100.254".into()));
        committed(store, |cfg| network::modify(cfg, &gw, &mut fb));
        let reserve = m(|m| {
            m.add_reserved_ips = Some(vec!["198.51.100.30".into(), "198.51.100.255".into()]);
            m.mac_prefix = Some("aa:00:02".into());
        });
        committed(store, |cfg| network::modify(cfg, &reserve, &mut fb));
        assert_eq!(
            fb.warnings().collect::<Vec<_>>(),
            [
                "Cannot reserve IP address 198.51.100.255: IP 198.51.100.255 is already externally reserved"
            ]
        );
        let cfg = store.read().unwrap();
        let net = network(&cfg, "net1");
        assert_eq!(net.gateway, Some(ip("198.51.100.254")));
        assert_eq!(
            net.mac_prefix.map(|p| p.to_string()).as_deref(),
            Some("aa:00:02")
        );
        assert_eq!(
            net.pool.as_ref().unwrap().external_reservations(),
            ips(&[
                "198.51.100.0",
                "198.51.100.30",
                "198.51.100.254",
                "198.51.100.255"
            ])
        );
        assert_eq!(net.serial_no, 3);

        assert_eq!(
            refused(store, |cfg| network::modify(
                cfg,
                &m(|m| m.gateway = Some("198.51.100.5".into())),
                &mut fb
            )),
            GntError::state("Gateway IP address '198.51.100.5' is already reserved")
        );
        assert_eq!(
            refused(store, |cfg| network::modify(
                cfg,
                &m(|m| {
                    m.gateway = Some("198.51.100.2".into());
                    m.add_reserved_ips = Some(vec!["198.51.100.3".into()]);
                }),
                &mut fb
            )),
            GntError::inval("Cannot modify gateway and reserved ips at once")
        );
        assert_eq!(
            refused(store, |cfg| network::modify(
                cfg,
                &m(|m| m.remove_reserved_ips = Some(vec!["198.51.100.255".into()])),
                &mut fb
            )),
            GntError::inval(
                "Cannot unreserve the network or broadcast address of 198.51.100.0/24: 198.51.100.255"
            )
        );
        assert_eq!(
            refused(store, |cfg| network::modify(cfg, &m(|_| ()), &mut fb)),
            GntError::Usage("Please give at least one of the parameters.".into())
        );
        let none = m(|m| {
            m.gateway = Some("none".into());
            m.mac_prefix = Some("none".into());
        });
        committed(store, |cfg| network::modify(cfg, &none, &mut fb));
        let cfg = store.read().unwrap();
        let net = network(&cfg, "net1");
        assert_eq!((net.gateway, net.mac_prefix), (None, None));
        assert!(
            !net.pool
                .as_ref()
                .unwrap()
                .is_reserved(ip("198.51.100.254"), Kind::External)
                .unwrap()
        );
    });
}

#[test]
fn rename_and_remove_commit_or_refuse_a_clash_and_a_connected_network() {
    with_each_store(|store| {
        net1(store);
        add_network(store, "net2", "203.0.113.0/24", None);
        let uuid2 = store.read().unwrap().network_uuid("net2").unwrap();
        assert_eq!(
            refused(store, |cfg| network::rename(cfg, "net1", "net2")),
            GntError::prereq(
                ErrorCode::Exists,
                format!("Desired new name 'net2' clashes with existing network (UUID: {uuid2})")
            )
        );
        let env = committed(store, |cfg| network::rename(cfg, "net1", "front"));
        assert!(env.vars.contains(&("NEW_NAME".into(), "front".into())));
        let cfg = store.read().unwrap();
        assert!(cfg.network_uuid("net1").is_err());
        assert_eq!(network(&cfg, "front").serial_no, 2);

        let mut fb = Feedback::default();
        assert_eq!(
            refused(store, |cfg| {
                // A store may run this more than once (an etcd store's careful second
                // attempt): the feedback is that of the last run, as the tools show it.
                fb = Feedback::default();
                network::remove(cfg, "front", &mut fb)
            }),
            GntError::state("Network still connected")
        );
        assert_eq!(
            fb.warnings().collect::<Vec<_>>(),
            ["Network 'front' is connected to the following node groups: default"]
        );
        assert_eq!(
            refused(store, |cfg| network::remove(cfg, "nosuch", &mut fb)),
            GntError::noent("Network 'nosuch' not found")
        );
        committed(store, |cfg| network::remove(cfg, "net2", &mut fb));
        let cfg = store.read().unwrap();
        assert_eq!(cfg.networks.len(), 1);
        assert!(cfg.network_uuid("net2").is_err());
    });
}

#[test]
fn connect_again_moves_the_nics_and_disconnect_refuses_while_they_use_it() {
    with_each_store(|store| {
        net1(store);
        committed(store, |cfg| {
            instance::add(
                cfg,
                &add_instance("a", &["ip=pool,network=net1"]),
                &mut Feedback::default(),
            )
        });
        let raw = RawNicParams {
            link: Some("br1".into()),
            vlan: Some(".10".into()),
            ..Default::default()
        };
        let mut fb = Feedback::default();
        let envs = committed(store, |cfg| {
            network::connect(cfg, "net1", &raw, &[], true, &mut fb)
        });
        assert_eq!(envs.len(), 1);
        assert_eq!(
            fb.messages,
            [(
                Severity::Info,
                "Network 'net1' in group 'default': parameters changed from (mode:bridged link:br0 vlan:) to (mode:bridged link:br1 vlan:.10); 1 NIC(s) updated".to_owned()
            )]
        );
        let cfg = store.read().unwrap();
        let a = cfg
            .instances
            .get_cloned(&cfg.instance_uuid("a").unwrap())
            .unwrap();
        assert_eq!(
            (a.nics[0].link.as_str(), a.nics[0].vlan.as_str()),
            ("br1", ".10")
        );

        let mut fb = Feedback::default();
        assert_eq!(
            refused(store, |cfg| {
                fb = Feedback::default();
                network::disconnect(cfg, "net1", &[], &mut fb)
            }),
            GntError::state(
                "Conflicting IP addresses found;  remove/modify the corresponding network interfaces"
            )
        );
        assert_eq!(
            fb.warnings().collect::<Vec<_>>(),
            [
                "IP addresses from network 'net1', which is about to disconnect from node group 'default', are in use: a: nic0/198.51.100.2"
            ]
        );
        committed(store, |cfg| instance::remove(cfg, "a"));
        let envs = committed(store, |cfg| network::disconnect(cfg, "net1", &[], &mut fb));
        assert_eq!(envs.len(), 1);
        let cfg = store.read().unwrap();
        assert!(cfg.nodegroups.values().all(|g| g.networks.is_empty()));
    });
}

/// A connect to several groups that fails at the second commits nothing: the first
/// group, changed in the transaction, stays unconnected in the store.
#[test]
fn a_connect_refused_in_one_group_connects_no_group() {
    with_each_store(|store| {
        committed(store, |cfg| group::add(cfg, "g2"));
        // An address of net2 in g2 on a NIC outside net2 conflicts there.
        let routed = AddInstance {
            group: Some("g2".into()),
            ..add_instance("r", &["mode=routed,link=rt,ip=203.0.113.5"])
        };
        committed(store, |cfg| {
            instance::add(cfg, &routed, &mut Feedback::default())
        });
        add_network(store, "net2", "203.0.113.0/24", None);
        let raw = RawNicParams {
            link: Some("br2".into()),
            ..Default::default()
        };
        let mut fb = Feedback::default();
        assert_eq!(
            refused(store, |cfg| {
                fb = Feedback::default();
                let out = network::connect(cfg, "net2", &raw, &[], true, &mut fb);
                let default = cfg.group_uuid("default").unwrap();
                assert_eq!(
                    cfg.nodegroups[&default].networks.len(),
                    1,
                    "connected first"
                );
                out
            }),
            GntError::state(
                "Conflicting IP addresses found;  remove/modify the corresponding network interfaces"
            )
        );
        assert_eq!(
            fb.warnings().collect::<Vec<_>>(),
            [
                "IP addresses from network 'net2', which is about to connect to node group 'g2', are in use: r: nic0/203.0.113.5"
            ]
        );
        assert!(
            store
                .read()
                .unwrap()
                .nodegroups
                .values()
                .all(|g| g.networks.is_empty())
        );
        // To the other group alone it connects.
        connect(store, "net2", "br2", &["default"]);
        let cfg = store.read().unwrap();
        let default = cfg.group_uuid("default").unwrap();
        assert_eq!(cfg.nodegroups[&default].networks.len(), 1);
    });
}

#[test]
fn tags_are_added_and_removed_or_refused() {
    with_each_store(|store| {
        net1(store);
        let tags = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        committed(store, |cfg| {
            network::add_tags(cfg, "net1", &tags(&["a", "b"]))
        });
        assert_eq!(
            refused(store, |cfg| network::add_tags(
                cfg,
                "net1",
                &tags(&["c", ""])
            )),
            GntError::Tag("Tags cannot be empty".into())
        );
        assert_eq!(
            refused(store, |cfg| network::remove_tags(
                cfg,
                "net1",
                &tags(&["a", "zz"])
            )),
            GntError::noent("Tag(s) 'zz' not found")
        );
        committed(store, |cfg| {
            network::remove_tags(cfg, "net1", &tags(&["a"]))
        });
        let cfg = store.read().unwrap();
        assert_eq!(network(&cfg, "net1").tags.iter().collect::<Vec<_>>(), ["b"]);
    });
}
