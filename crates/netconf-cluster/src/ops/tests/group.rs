//! `gnt-group` operations through each store.

use super::{committed, refused};
use crate::config::with_each_store;
use crate::error::{ErrorCode, GntError};
use crate::ops::instance::{self, AddInstance, NicSpec};
use crate::ops::{Feedback, group, node};

#[test]
fn add_rename_and_remove_commit_or_refuse_a_clash() {
    with_each_store(|store| {
        committed(store, |cfg| group::add(cfg, "g2"));
        let uuid = store.read().unwrap().group_uuid("g2").unwrap();
        assert_eq!(
            refused(store, |cfg| group::add(cfg, "g2")),
            GntError::prereq(
                ErrorCode::Exists,
                format!("Desired group name 'g2' already exists as a node group (UUID: {uuid})")
            )
        );
        assert_eq!(
            refused(store, |cfg| group::rename(cfg, "g2", "default")),
            GntError::prereq(
                ErrorCode::Exists,
                "Desired new name 'default' clashes with existing node group"
            )
        );
        committed(store, |cfg| group::rename(cfg, "g2", "rack2"));
        let cfg = store.read().unwrap();
        assert_eq!(cfg.group_uuid("rack2").unwrap(), uuid);
        assert_eq!(cfg.nodegroups[&uuid].serial_no, 2);
        assert_eq!(
            refused(store, |cfg| group::remove(cfg, "g2")),
            GntError::noent("Node group 'g2' not found")
        );
        committed(store, |cfg| group::remove(cfg, "rack2"));
        let cfg = store.read().unwrap();
        assert_eq!(cfg.nodegroups.len(), 1);
        assert!(cfg.group_uuid("rack2").is_err());
    });
}

#[test]
fn remove_refuses_a_group_with_nodes_or_instances_and_the_last_group() {
    with_each_store(|store| {
        committed(store, |cfg| group::add(cfg, "g2"));
        committed(store, |cfg| {
            node::add(cfg, "node2.example.org", Some("g2"), None, None)
        });
        assert_eq!(
            refused(store, |cfg| group::remove(cfg, "g2")),
            GntError::state("Group 'g2' not empty, has the following node(s): node2.example.org")
        );
        committed(store, |cfg| node::remove(cfg, "node2.example.org"));
        let routed = AddInstance {
            name: "r".into(),
            group: Some("g2".into()),
            nics: vec![NicSpec::parse("mode=routed,link=rt,ip=203.0.113.5").unwrap()],
            conflicts_check: true,
            ..Default::default()
        };
        committed(store, |cfg| {
            instance::add(cfg, &routed, &mut Feedback::default())
        });
        assert_eq!(
            refused(store, |cfg| group::remove(cfg, "g2")),
            GntError::state("Group 'g2' still holds instances: r")
        );
        committed(store, |cfg| instance::remove(cfg, "r"));
        committed(store, |cfg| group::remove(cfg, "g2"));
        assert_eq!(
            refused(store, |cfg| group::remove(cfg, "default")),
            GntError::state("Group 'default' is the only group, cannot be removed")
        );
    });
}
