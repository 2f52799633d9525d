//! Writes a large config.data for benchmarks: N /16 networks connected to `default` and M
//! instances with one pool NIC each, spread over the networks.
//! Usage: gen-large-config PATH [NETWORKS=64] [INSTANCES=10000]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use netconf::MacAddr;
use netconf_cluster::config::{
    ClusterConfig, Instance, Network, Nic, NicParams, new_uuid, now, render,
};
use netconf_cluster::pool::AddressPool;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gen-large-config PATH [NETWORKS] [INSTANCES]"))?;
    let nets: u32 = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let insts: u32 = args.get(3).map_or(Ok(10_000), |s| s.parse())?;
    let mut cfg = ClusterConfig::new();
    let group = cfg
        .nodegroups
        .keys()
        .next()
        .cloned()
        .expect("default group");
    let t = now();
    let mut net_uuids = Vec::new();
    for n in 0..nets {
        let base = Ipv4Addr::new(10, n as u8, 0, 0);
        let net = ipnet::Ipv4Net::new(base, 16)?;
        let gw = Ipv4Addr::new(10, n as u8, 0, 1);
        let uuid = new_uuid();
        cfg.networks.insert(
            uuid.clone(),
            Network {
                name: netconf::NetworkName::parse(&format!("net{n}"))?,
                network: Some(net),
                gateway: Some(gw),
                network6: None,
                gateway6: None,
                mac_prefix: None,
                pool: Some(AddressPool::initialize(net, Some(gw))?),
                tags: BTreeSet::new(),
                serial_no: 1,
                ctime: t,
                mtime: t,
            },
        );
        cfg.nodegroups
            .get_mut(&group)
            .expect("group")
            .networks
            .insert(
                uuid.clone(),
                NicParams {
                    mode: netconf::NicMode::Bridged,
                    link: format!("br{n}"),
                    vlan: String::new(),
                },
            );
        net_uuids.push(uuid);
    }
    for i in 0..insts {
        let nu = &net_uuids[(i % nets.max(1)) as usize];
        let net = cfg.networks.get_mut(nu).expect("net");
        let ip = net.pool.as_mut().context("no pool")?.allocate()?;
        let mac = MacAddr([0xaa, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let link = cfg.nodegroups[&group].networks[nu].link.clone();
        cfg.instances.insert(
            new_uuid(),
            Instance {
                name: netconf::InstanceName::parse(&format!("inst{i}.example.com"))?,
                group: group.clone(),
                primary_node: None,
                tags: BTreeSet::new(),
                nics: vec![Nic {
                    uuid: new_uuid(),
                    name: None,
                    mac,
                    ip: Some(IpAddr::V4(ip)),
                    network: Some(nu.clone()),
                    mode: netconf::NicMode::Bridged,
                    link,
                    vlan: String::new(),
                }],
                serial_no: 1,
                ctime: t,
                mtime: t,
            },
        );
    }
    std::fs::write(path, render(&cfg)?)?;
    Ok(())
}
