//! Allocation ranges through the operations and a store: `ip=pool` inside them, explicit
//! addresses outside them, the ranges kept by other changes, and bad ranges refused with
//! nothing changed.

use std::net::Ipv4Addr;

use super::*;
use crate::config::{Store, transaction, with_each_store};
use crate::ops::instance::{self, AddInstance, NicChange, NicRef, NicSpec};

const R: &str = "198.51.100.100-198.51.100.150";

/// net1 (198.51.100.0/24, gateway .1, reserved .30, range .100–.150) connected to `default`.
fn net1(store: &dyn Store) {
    let mut fb = Feedback::default();
    let add = AddNetwork {
        name: "net1".into(),
        network: Some("198.51.100.0/24".into()),
        gateway: Some("198.51.100.1".into()),
        add_reserved_ips: vec!["198.51.100.30".into()],
        allocation_ranges: vec![R.into()],
        conflicts_check: true,
        ..Default::default()
    };
    transaction(store, |c| add_then_connect(c, &add, &mut fb)).unwrap();
}

fn add_then_connect(
    c: &mut ClusterConfig,
    add: &AddNetwork,
    fb: &mut Feedback,
) -> Result<(), GntError> {
    self::add(c, add, fb)?;
    let raw = RawNicParams {
        link: Some("br0".into()),
        ..Default::default()
    };
    connect(c, &add.name, &raw, &[], true, fb)?;
    Ok(())
}

fn add_inst(store: &dyn Store, name: &str, nic: &str, check: bool) -> Result<(), GntError> {
    let a = AddInstance {
        name: name.into(),
        nics: vec![NicSpec::parse(nic).unwrap()],
        conflicts_check: check,
        ..Default::default()
    };
    transaction(store, |c| instance::add(c, &a, &mut Feedback::default())).map(|_| ())
}

fn ranges(store: &dyn Store) -> Vec<String> {
    let cfg = store.read().unwrap();
    let n = &cfg.networks[&cfg.network_uuid("net1").unwrap()];
    n.pool
        .as_ref()
        .unwrap()
        .ranges()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn nic_ip(store: &dyn Store, inst: &str) -> Ipv4Addr {
    let cfg = store.read().unwrap();
    let uuid = cfg.instance_uuid(inst).unwrap();
    cfg.instances.get_cloned(&uuid).unwrap().nics[0]
        .ipv4()
        .unwrap()
}

fn modify_net(store: &dyn Store, m: &ModifyNetwork) -> Result<Feedback, GntError> {
    let mut fb = Feedback::default();
    transaction(store, |c| modify(c, m, &mut fb))?;
    Ok(fb)
}

fn list(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn a_range_hands_out_its_51_addresses_in_order_then_the_pool_is_full() {
    with_each_store(|store| {
        net1(store);
        for k in 0..51u8 {
            add_inst(store, &format!("i{k}"), "ip=pool,network=net1", true).unwrap();
            assert_eq!(
                nic_ip(store, &format!("i{k}")),
                Ipv4Addr::new(198, 51, 100, 100 + k)
            );
        }
        let before = store.read().unwrap();
        assert_eq!(
            add_inst(store, "full", "ip=pool,network=net1", true).unwrap_err(),
            GntError::state("Unable to get a free IP for NIC 0 from the address pool")
        );
        assert_eq!(store.read().unwrap(), before);
        // Outside the range, inside the subnet: the operator's to give.
        add_inst(store, "out", "ip=198.51.100.20,network=net1", true).unwrap();
        assert_eq!(
            nic_ip(store, "out"),
            "198.51.100.20".parse::<Ipv4Addr>().unwrap()
        );
        // A reserved address outside the range: only without the conflicts check.
        assert_eq!(
            add_inst(store, "rsv", "ip=198.51.100.30,network=net1", true).unwrap_err(),
            GntError::prereq(
                ErrorCode::NotUnique,
                "IP address 198.51.100.30 already in use or does not belong to network net1"
            )
        );
        add_inst(store, "rsv", "ip=198.51.100.30,network=net1", false).unwrap();
        // `gnt-instance modify` to ip=pool on a full range fails the same way.
        let change = [NicChange::Modify(
            NicRef::Index(0),
            NicSpec::parse("ip=pool,network=net1").unwrap(),
        )];
        let err = transaction(store, |c| {
            instance::modify(c, "out", &change, true, &mut Feedback::default())
        })
        .unwrap_err();
        assert_eq!(
            err,
            GntError::state("Unable to get a free IP from the address pool")
        );
        let cfg = store.read().unwrap();
        let pool = cfg.networks[&cfg.network_uuid("net1").unwrap()]
            .pool
            .as_ref()
            .unwrap();
        assert_eq!(pool.free_count(), 0);
        assert!(crate::config::verify::errors(&cfg).is_empty());
    });
}

#[test]
fn ranges_survive_gateway_and_reserved_ip_changes() {
    with_each_store(|store| {
        net1(store);
        let steps = [
            ModifyNetwork {
                gateway: Some("198.51.100.254".into()),
                ..Default::default()
            },
            ModifyNetwork {
                gateway: Some(NONE.into()),
                ..Default::default()
            },
            ModifyNetwork {
                add_reserved_ips: list(&["198.51.100.100", "198.51.100.31"]),
                ..Default::default()
            },
            ModifyNetwork {
                remove_reserved_ips: list(&["198.51.100.30"]),
                ..Default::default()
            },
            ModifyNetwork {
                network6: Some("2001:db8:1::/64".into()),
                mac_prefix: Some("aa:00:01".into()),
                ..Default::default()
            },
        ];
        for m in steps {
            modify_net(
                store,
                &ModifyNetwork {
                    name: "net1".into(),
                    ..m
                },
            )
            .unwrap();
            assert_eq!(ranges(store), [R]);
        }
        transaction(store, |c| rename(c, "net1", "net2").map(|_| ())).unwrap();
        transaction(store, |c| rename(c, "net2", "net1").map(|_| ())).unwrap();
        assert_eq!(ranges(store), [R]);
        // .100 is reserved now: the range starts handing out at .101.
        add_inst(store, "a", "ip=pool,network=net1", true).unwrap();
        assert_eq!(
            nic_ip(store, "a"),
            "198.51.100.101".parse::<Ipv4Addr>().unwrap()
        );
    });
}

#[test]
fn modify_sets_adds_removes_and_clears_ranges() {
    with_each_store(|store| {
        net1(store);
        let named = |m: ModifyNetwork| ModifyNetwork {
            name: "net1".into(),
            ..m
        };
        modify_net(
            store,
            &named(ModifyNetwork {
                add_allocation_ranges: list(&[
                    "198.51.100.200-198.51.100.210",
                    "198.51.100.10-198.51.100.19",
                ]),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(
            ranges(store),
            [
                "198.51.100.10-198.51.100.19",
                R,
                "198.51.100.200-198.51.100.210"
            ]
        );
        // Remove then add in one change: a range is resized.
        modify_net(
            store,
            &named(ModifyNetwork {
                remove_allocation_ranges: list(&[R, "198.51.100.10-198.51.100.19"]),
                add_allocation_ranges: list(&["198.51.100.100-198.51.100.199"]),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(
            ranges(store),
            [
                "198.51.100.100-198.51.100.199",
                "198.51.100.200-198.51.100.210"
            ]
        );
        modify_net(
            store,
            &named(ModifyNetwork {
                allocation_ranges: list(&["198.51.100.2-198.51.100.9"]),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(ranges(store), ["198.51.100.2-198.51.100.9"]);
        modify_net(
            store,
            &named(ModifyNetwork {
                allocation_ranges: list(&[NONE]),
                ..Default::default()
            }),
        )
        .unwrap();
        assert!(ranges(store).is_empty());
        // Without ranges the whole subnet is the pool again: .2 is the first free.
        add_inst(store, "a", "ip=pool,network=net1", true).unwrap();
        assert_eq!(
            nic_ip(store, "a"),
            "198.51.100.2".parse::<Ipv4Addr>().unwrap()
        );
    });
}

#[test]
fn bad_ranges_are_refused_and_nothing_changes() {
    with_each_store(|store| {
        net1(store);
        let inval = |s: &str| GntError::inval(s);
        let add_cases: [(&str, &str); 6] = [
            (
                "198.51.100.5",
                "Invalid allocation range '198.51.100.5': expected START-END, two IPv4 addresses",
            ),
            (
                "198.51.100.9-198.51.100.5",
                "Invalid allocation range '198.51.100.9-198.51.100.5': 198.51.100.9 comes after 198.51.100.5",
            ),
            (
                "203.0.113.1-203.0.113.9",
                "Allocation range 203.0.113.1-203.0.113.9 is not inside 198.51.100.0/24",
            ),
            (
                "198.51.100.0-198.51.100.9",
                "Allocation range 198.51.100.0-198.51.100.9 holds the network address 198.51.100.0 of 198.51.100.0/24",
            ),
            (
                "198.51.100.250-198.51.100.255",
                "Allocation range 198.51.100.250-198.51.100.255 holds the broadcast address 198.51.100.255 of 198.51.100.0/24",
            ),
            (
                "198.51.100.150-198.51.100.160",
                "Allocation ranges 198.51.100.100-198.51.100.150 and 198.51.100.150-198.51.100.160 overlap",
            ),
        ];
        let before = store.read().unwrap();
        for (given, msg) in add_cases {
            let m = ModifyNetwork {
                name: "net1".into(),
                add_allocation_ranges: list(&[given]),
                ..Default::default()
            };
            assert_eq!(modify_net(store, &m).unwrap_err(), inval(msg), "{given}");
        }
        let refused = [
            (
                ModifyNetwork {
                    remove_allocation_ranges: list(&["198.51.100.100-198.51.100.149"]),
                    ..Default::default()
                },
                "Allocation range 198.51.100.100-198.51.100.149 is not set on network 'net1'",
            ),
            (
                ModifyNetwork {
                    allocation_ranges: list(&[R]),
                    add_allocation_ranges: list(&[R]),
                    ..Default::default()
                },
                "Cannot set and add/remove allocation ranges at once",
            ),
            (
                ModifyNetwork {
                    allocation_ranges: list(&[NONE, R]),
                    ..Default::default()
                },
                "--allocation-range none clears the ranges and cannot be given with ranges",
            ),
            (
                ModifyNetwork {
                    add_allocation_ranges: list(&[R]),
                    ..Default::default()
                },
                "Allocation range 198.51.100.100-198.51.100.150 is given twice",
            ),
        ];
        for (m, msg) in refused {
            let m = ModifyNetwork {
                name: "net1".into(),
                ..m
            };
            assert_eq!(modify_net(store, &m).unwrap_err(), inval(msg));
        }
        // A refused add creates nothing.
        let add = AddNetwork {
            name: "net2".into(),
            network: Some("203.0.113.0/24".into()),
            allocation_ranges: vec![
                "203.0.113.10-203.0.113.20".into(),
                "203.0.113.15-203.0.113.30".into(),
            ],
            conflicts_check: true,
            ..Default::default()
        };
        assert_eq!(
            transaction(store, |c| self::add(c, &add, &mut Feedback::default())).unwrap_err(),
            inval(
                "Allocation ranges 203.0.113.10-203.0.113.20 and 203.0.113.15-203.0.113.30 overlap"
            )
        );
        assert_eq!(store.read().unwrap(), before);
    });
}
