//! `gnt-group` operations.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{ClusterConfig, NodeGroup, new_uuid, now};
use crate::error::{ErrorCode, GntError, IntoGnt};
use netconf::name::GroupName;

pub fn add(cfg: &mut ClusterConfig, name: &str) -> Result<(), GntError> {
    let name = GroupName::parse(name).map_err(|e| e.into_gnt("OP_GROUP_ADD", "group_name"))?;
    if let Some((uuid, _)) = cfg.nodegroups.iter().find(|(_, g)| g.name == name) {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!("Desired group name '{name}' already exists as a node group (UUID: {uuid})"),
        ));
    }
    let t = now();
    cfg.nodegroups.insert(
        new_uuid(),
        NodeGroup {
            name,
            networks: BTreeMap::new(),
            tags: BTreeSet::new(),
            serial_no: 1,
            ctime: t,
            mtime: t,
        },
    );
    Ok(())
}

pub fn remove(cfg: &mut ClusterConfig, name: &str) -> Result<(), GntError> {
    let uuid = cfg.group_uuid(name)?;
    let name = cfg.nodegroups[&uuid].name.clone();
    let mut nodes: Vec<&str> = cfg
        .nodes
        .values()
        .filter(|n| n.group == uuid)
        .map(|n| n.name.as_str())
        .collect();
    nodes.sort_unstable();
    if !nodes.is_empty() {
        return Err(GntError::state(format!(
            "Group '{name}' not empty, has the following node(s): {}",
            nodes.join(", ")
        )));
    }
    let held = cfg.instances.in_group(&uuid);
    let insts: Vec<&str> = held.iter().map(|(_, i)| i.name.as_str()).collect();
    if !insts.is_empty() {
        return Err(GntError::state(format!(
            "Group '{name}' still holds instances: {}",
            insts.join(", ")
        )));
    }
    if cfg.nodegroups.len() == 1 {
        return Err(GntError::state(format!(
            "Group '{name}' is the only group, cannot be removed"
        )));
    }
    cfg.nodegroups.remove(&uuid);
    Ok(())
}

pub fn rename(cfg: &mut ClusterConfig, old: &str, new: &str) -> Result<(), GntError> {
    let new = GroupName::parse(new).map_err(|e| e.into_gnt("OP_GROUP_RENAME", "new_name"))?;
    let uuid = cfg.group_uuid(old)?;
    if cfg.nodegroups.values().any(|g| g.name == new) {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!("Desired new name '{new}' clashes with existing node group"),
        ));
    }
    let g = cfg.nodegroups.get_mut(&uuid).expect("looked up");
    g.name = new;
    g.serial_no += 1;
    g.mtime = now();
    Ok(())
}
