//! Fills a /16 pool address by address (Ganeti needed 22.8 s) and prints the median of
//! several runs, plus the cost of the stored form and of the same fill limited to an
//! allocation range (10.0.0.1–10.0.255.254: every address, through the third bitmap).

use std::time::{Duration, Instant};

use netconf_cluster::pool::{AddressPool, AllocRange};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let net = "10.0.0.0/16".parse()?;
    let mut fills = Vec::new();
    let mut stores = Vec::new();
    let mut ranged = Vec::new();
    let range = AllocRange::new("10.0.0.1".parse()?, "10.0.255.254".parse()?)
        .ok_or_else(|| anyhow::anyhow!("empty range"))?;
    for _ in 0..9 {
        let t = Instant::now();
        let mut p = AddressPool::initialize(net, Some("10.0.0.1".parse()?))?;
        while p.allocate().is_ok() {}
        fills.push(t.elapsed());
        assert_eq!(p.free_count(), 0);
        let t = Instant::now();
        let (a, b) = p.to_stored();
        let _ = AddressPool::from_stored(net, &a, &b)?;
        stores.push(t.elapsed());
        let t = Instant::now();
        let mut p = AddressPool::initialize(net, Some("10.0.0.1".parse()?))?;
        p.set_ranges(vec![range]);
        while p.allocate().is_ok() {}
        ranged.push(t.elapsed());
        assert_eq!(p.free_count(), 0);
    }
    println!(
        "fill a /16 (65,533 allocations): median {:?}",
        median(fills)
    );
    println!(
        "stored form of a full /16 (encode + decode): median {:?}",
        median(stores)
    );
    println!(
        "fill a /16 inside an allocation range (65,533 allocations): median {:?}",
        median(ranged)
    );
    Ok(())
}
