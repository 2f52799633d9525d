//! Property test: random reserve / release / allocate sequences on /16 … /30 pools agree
//! with a plain two-vector model on free count, map, external list and first free address,
//! and survive the stored form; with allocation ranges, with a model that also knows which
//! addresses lie inside them.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netconf_cluster::pool::{AddressPool, AllocRange, Kind};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Reserve(u32, bool),
    Release(u32, bool),
    Allocate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u32>(), any::<bool>()).prop_map(|(i, e)| Op::Reserve(i, e)),
        (any::<u32>(), any::<bool>()).prop_map(|(i, e)| Op::Release(i, e)),
        Just(Op::Allocate),
    ]
}

struct Model {
    base: u32,
    inst: Vec<bool>,
    ext: Vec<bool>,
}

impl Model {
    fn used(&self, i: usize) -> bool {
        self.inst[i] || self.ext[i]
    }
    fn first_free(&self) -> Option<usize> {
        (0..self.inst.len()).find(|&i| !self.used(i))
    }
    fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.base + i as u32)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn pool_agrees_with_model(prefix in 16u8..=30, third in any::<u8>(), ops in proptest::collection::vec(op(), 0..300)) {
        let net = Ipv4Net::new(Ipv4Addr::new(10, third, 0, 0), prefix).unwrap().trunc();
        let mut pool = AddressPool::initialize(net, None).unwrap();
        let size = 1usize << (32 - prefix);
        let mut m = Model { base: u32::from(net.network()), inst: vec![false; size], ext: vec![false; size] };
        m.ext[0] = true;
        m.ext[size - 1] = true;
        for op in ops {
            match op {
                Op::Reserve(i, e) | Op::Release(i, e) => {
                    let idx = (i as usize) % size;
                    let ip = m.addr(idx);
                    let kind = if e { Kind::External } else { Kind::Instance };
                    let bits = if e { &mut m.ext } else { &mut m.inst };
                    if matches!(op, Op::Reserve(..)) {
                        let r = pool.reserve(ip, kind);
                        prop_assert_eq!(r.is_ok(), !bits[idx]);
                        bits[idx] = true;
                    } else {
                        let r = pool.release(ip, kind);
                        prop_assert_eq!(r.is_ok(), bits[idx]);
                        bits[idx] = false;
                    }
                }
                Op::Allocate => {
                    let expect = m.first_free();
                    let got = pool.allocate().ok();
                    prop_assert_eq!(got, expect.map(|i| m.addr(i)));
                    if let Some(i) = expect {
                        m.inst[i] = true;
                    }
                }
            }
            let free = (0..size).filter(|&i| !m.used(i)).count();
            prop_assert_eq!(pool.free_count(), free);
            prop_assert_eq!(pool.reserved_count(), size - free);
            prop_assert_eq!(pool.first_free(), m.first_free().map(|i| m.addr(i)));
        }
        let map: String = (0..size).map(|i| if m.used(i) { 'X' } else { '.' }).collect();
        prop_assert_eq!(pool.map(), map);
        let ext: Vec<Ipv4Addr> = (0..size).filter(|&i| m.ext[i]).map(|i| m.addr(i)).collect();
        prop_assert_eq!(pool.external_reservations(), ext);
        prop_assert_eq!(pool.is_full(), (0..size).all(|i| m.used(i)));
        let (a, b) = pool.to_stored();
        prop_assert_eq!(AddressPool::from_stored(net, &a, &b).unwrap(), pool.clone());
        let (ga, gb) = pool.to_ganeti_strings();
        prop_assert_eq!(AddressPool::from_stored(net, &ga, &gb).unwrap(), pool);
    }

    #[test]
    fn pool_with_ranges_agrees_with_model(
        prefix in 22u8..=30,
        cuts in proptest::collection::vec(any::<u32>(), 0..8),
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let net = Ipv4Net::new(Ipv4Addr::new(10, 9, 0, 0), prefix).unwrap().trunc();
        let size = 1usize << (32 - prefix);
        // Sorted distinct offsets taken in pairs: disjoint ranges, possibly adjacent.
        let mut cuts: Vec<usize> = cuts.iter().map(|c| *c as usize % size).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut m = Model { base: u32::from(net.network()), inst: vec![false; size], ext: vec![false; size] };
        let mut inside = vec![false; size];
        let mut ranges = Vec::new();
        for pair in cuts.chunks_exact(2) {
            ranges.push(AllocRange::new(m.addr(pair[0]), m.addr(pair[1])).unwrap());
            inside[pair[0]..=pair[1]].iter_mut().for_each(|x| *x = true);
        }
        if ranges.is_empty() {
            inside = vec![true; size];
        }
        let mut pool = AddressPool::initialize(net, None).unwrap();
        pool.set_ranges(ranges);
        m.ext[0] = true;
        m.ext[size - 1] = true;
        let free_at = |m: &Model, i: usize| !m.used(i) && inside[i];
        for op in ops {
            match op {
                Op::Reserve(i, e) | Op::Release(i, e) => {
                    let idx = (i as usize) % size;
                    let ip = m.addr(idx);
                    let kind = if e { Kind::External } else { Kind::Instance };
                    let bits = if e { &mut m.ext } else { &mut m.inst };
                    if matches!(op, Op::Reserve(..)) {
                        prop_assert_eq!(pool.reserve(ip, kind).is_ok(), !bits[idx]);
                        bits[idx] = true;
                    } else {
                        prop_assert_eq!(pool.release(ip, kind).is_ok(), bits[idx]);
                        bits[idx] = false;
                    }
                }
                Op::Allocate => {
                    let expect = (0..size).find(|&i| free_at(&m, i));
                    prop_assert_eq!(pool.allocate().ok(), expect.map(|i| m.addr(i)));
                    if let Some(i) = expect {
                        m.inst[i] = true;
                    }
                }
            }
            let free = (0..size).filter(|&i| free_at(&m, i)).count();
            prop_assert_eq!(pool.free_count(), free);
            prop_assert_eq!(pool.reserved_count(), (0..size).filter(|&i| m.used(i)).count());
        }
        let map: String = (0..size)
            .map(|i| if m.used(i) { 'X' } else if inside[i] { '.' } else { '-' })
            .collect();
        let map = if pool.ranges().is_empty() { map.replace('-', ".") } else { map };
        prop_assert_eq!(pool.map(), map);
        prop_assert_eq!(pool.allocatable_size(), inside.iter().filter(|x| **x).count());
        prop_assert_eq!(pool.is_full(), (0..size).all(|i| !free_at(&m, i)));
    }
}
