//! Stage timings of one transaction on a large config (for tuning the store).
use std::time::Instant;
fn main() {
    let p = std::env::args().nth(1).expect("usage: parse-time CONFIG");
    let store = netconf_cluster::config::open(p.as_ref());
    use netconf_cluster::config::Store;
    for _ in 0..5 {
        let t = Instant::now();
        let cfg = store.read().unwrap();
        let r = t.elapsed();
        let t = Instant::now();
        let s = netconf_cluster::config::render(&cfg).unwrap();
        let a = t.elapsed();
        let t = Instant::now();
        let b = postcard::to_allocvec(&cfg).unwrap();
        let bb = t.elapsed();
        let t = Instant::now();
        let c2: netconf_cluster::config::ClusterConfig = postcard::from_bytes(&b).unwrap();
        let dd = t.elapsed();
        let t = Instant::now();
        netconf_cluster::config::transaction(&store, |c| {
            c.cluster.name = "x".into();
            Ok(())
        })
        .unwrap();
        let tx = t.elapsed();
        println!(
            "read {r:?} render {a:?} ({} B) encode {bb:?} decode {dd:?} ({} B) transaction {tx:?}",
            s.len(),
            b.len()
        );
        drop(c2);
    }
}
