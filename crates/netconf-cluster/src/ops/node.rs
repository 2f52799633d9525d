//! `gnt-node` operations: enough to place nodes (and so instances) in groups.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::config::{ClusterConfig, Node, new_uuid, now};
use crate::error::{ErrorCode, GntError, IntoGnt};
use netconf::name::NodeName;

pub fn add(
    cfg: &mut ClusterConfig,
    name: &str,
    group: Option<&str>,
    primary_ip: Option<Ipv4Addr>,
    secondary_ip: Option<Ipv4Addr>,
) -> Result<(), GntError> {
    let name = NodeName::parse(name).map_err(|e| e.into_gnt("OP_NODE_ADD", "node_name"))?;
    if cfg.nodes.values().any(|n| n.name == name) {
        return Err(GntError::prereq(
            ErrorCode::Exists,
            format!("Node {name} is already in the configuration"),
        ));
    }
    let group = match group {
        Some(g) => cfg.group_uuid(g)?,
        None => cfg.group_uuid("default").or_else(|_| {
            cfg.nodegroups
                .keys()
                .next()
                .cloned()
                .ok_or_else(|| GntError::noent("Node group 'default' not found"))
        })?,
    };
    let t = now();
    cfg.nodes.insert(
        new_uuid(),
        Node {
            name,
            group,
            primary_ip,
            secondary_ip: secondary_ip.or(primary_ip),
            tags: BTreeSet::new(),
            serial_no: 1,
            ctime: t,
            mtime: t,
        },
    );
    Ok(())
}

pub fn remove(cfg: &mut ClusterConfig, name: &str) -> Result<(), GntError> {
    let uuid = cfg.node_uuid(name)?;
    if let Some((_, i)) = cfg.instances.on_node(&uuid).first() {
        return Err(GntError::state(format!(
            "Instance {} is still running on the node, please remove first",
            i.name
        )));
    }
    cfg.nodes.remove(&uuid);
    Ok(())
}

/// Moves a node (and the instances on it) to another group. Ganeti did not check the
/// target group's networks nor refresh NIC parameters (issue #1016); here every NIC on a
/// network must find it connected in the new group, and takes that connection's parameters.
pub fn set_group(cfg: &mut ClusterConfig, name: &str, group: &str) -> Result<usize, GntError> {
    let uuid = cfg.node_uuid(name)?;
    let target = cfg.group_uuid(group)?;
    let conns = cfg.nodegroups[&target].networks.clone();
    let gname = cfg.nodegroups[&target].name.clone();
    let on_node = cfg.instances.on_node(&uuid);
    for (_, inst) in &on_node {
        for (idx, nic) in inst.nics.iter().enumerate() {
            if let Some(net) = &nic.network
                && !conns.contains_key(net)
            {
                return Err(GntError::state(format!(
                    "Instance '{}' NIC {idx} uses network '{}', which is not connected to node group '{gname}'",
                    inst.name, cfg.networks[net].name
                )));
            }
        }
    }
    let mut moved = 0;
    // The copies `on_node` decoded are changed and put back: no second decode.
    for (key, mut inst) in on_node {
        inst.group = target.clone();
        for nic in &mut inst.nics {
            if let Some(p) = nic.network.as_ref().and_then(|n| conns.get(n)) {
                nic.mode = p.mode;
                nic.link = p.link.clone();
                nic.vlan = p.vlan.clone();
            }
        }
        inst.serial_no += 1;
        cfg.instances.insert(key, inst);
        moved += 1;
    }
    let node = cfg.nodes.get_mut(&uuid).expect("looked up");
    node.group = target;
    node.serial_no += 1;
    node.mtime = now();
    Ok(moved)
}
