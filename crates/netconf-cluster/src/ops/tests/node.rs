//! `gnt-node` operations through each store.

use super::{committed, connect, net1, refused};
use crate::config::with_each_store;
use crate::error::{ErrorCode, GntError};
use crate::ops::instance::{self, AddInstance, NicSpec};
use crate::ops::{Feedback, group, node};

#[test]
fn add_places_a_node_in_its_group_and_refuses_a_second_of_the_name() {
    with_each_store(|store| {
        committed(store, |cfg| group::add(cfg, "g2"));
        let ip = Some("203.0.113.10".parse().unwrap());
        committed(store, |cfg| {
            node::add(cfg, "node1.example.org", None, ip, None)
        });
        committed(store, |cfg| {
            node::add(cfg, "node2.example.org", Some("g2"), None, None)
        });
        assert_eq!(
            refused(store, |cfg| node::add(
                cfg,
                "node1.example.org",
                Some("g2"),
                None,
                None
            )),
            GntError::prereq(
                ErrorCode::Exists,
                "Node node1.example.org is already in the configuration"
            )
        );
        assert_eq!(
            refused(store, |cfg| node::add(
                cfg,
                "node3.example.org",
                Some("g3"),
                None,
                None
            )),
            GntError::noent("Node group 'g3' not found")
        );
        let cfg = store.read().unwrap();
        let n1 = &cfg.nodes[&cfg.node_uuid("node1.example.org").unwrap()];
        assert_eq!(n1.group, cfg.group_uuid("default").unwrap());
        assert_eq!((n1.primary_ip, n1.secondary_ip), (ip, ip));
        let n2 = &cfg.nodes[&cfg.node_uuid("node2.example.org").unwrap()];
        assert_eq!(n2.group, cfg.group_uuid("g2").unwrap());
        assert_eq!(cfg.nodes.len(), 2);
    });
}

/// Moving a node moves its instances, whose NICs take the new group's connection; a move
/// to a group without the network commits nothing.
#[test]
fn set_group_moves_the_instances_or_nothing() {
    with_each_store(|store| {
        committed(store, |cfg| group::add(cfg, "g2"));
        committed(store, |cfg| group::add(cfg, "g3"));
        net1(store);
        // net1 goes over br0 in default and g3 (connected to all), br2 in g2.
        connect(store, "net1", "br2", &["g2"]);
        committed(store, |cfg| {
            crate::ops::network::disconnect(cfg, "net1", &["g3".into()], &mut Feedback::default())
        });
        committed(store, |cfg| {
            node::add(cfg, "node1.example.org", None, None, None)
        });
        let a = AddInstance {
            name: "a".into(),
            node: Some("node1.example.org".into()),
            nics: vec![NicSpec::parse("ip=pool,network=net1").unwrap()],
            conflicts_check: true,
            ..Default::default()
        };
        committed(store, |cfg| {
            instance::add(cfg, &a, &mut Feedback::default())
        });

        assert_eq!(
            refused(store, |cfg| node::set_group(cfg, "node1.example.org", "g3")),
            GntError::state(
                "Instance 'a' NIC 0 uses network 'net1', which is not connected to node group 'g3'"
            )
        );
        assert_eq!(
            committed(store, |cfg| node::set_group(cfg, "node1.example.org", "g2")),
            1
        );
        let cfg = store.read().unwrap();
        let g2 = cfg.group_uuid("g2").unwrap();
        assert_eq!(
            cfg.nodes[&cfg.node_uuid("node1.example.org").unwrap()].group,
            g2
        );
        let inst = cfg
            .instances
            .get_cloned(&cfg.instance_uuid("a").unwrap())
            .unwrap();
        assert_eq!(
            (inst.group.as_str(), inst.nics[0].link.as_str()),
            (g2.as_str(), "br2")
        );
        assert_eq!(inst.serial_no, 2);
    });
}

#[test]
fn remove_refuses_a_node_with_instances() {
    with_each_store(|store| {
        committed(store, |cfg| {
            node::add(cfg, "node1.example.org", None, None, None)
        });
        let r = AddInstance {
            name: "r".into(),
            node: Some("node1.example.org".into()),
            nics: vec![NicSpec::parse("mode=routed,link=rt,ip=203.0.113.5").unwrap()],
            conflicts_check: true,
            ..Default::default()
        };
        committed(store, |cfg| {
            instance::add(cfg, &r, &mut Feedback::default())
        });
        assert_eq!(
            refused(store, |cfg| node::remove(cfg, "node1.example.org")),
            GntError::state("Instance r is still running on the node, please remove first")
        );
        committed(store, |cfg| instance::remove(cfg, "r"));
        committed(store, |cfg| node::remove(cfg, "node1.example.org"));
        assert!(store.read().unwrap().nodes.is_empty());
    });
}
