//! The cost of the invariant checks on a large config (see `scripts/bench-gnt-network`):
//! the check every commit runs after a one-instance change, and a full `verify`.
use std::time::{Duration, Instant};

use netconf_cluster::config::{Store, open, verify};
use netconf_cluster::ops::{Feedback, instance};

/// Median and minimum (the machine's other load only ever adds).
fn median(mut v: Vec<Duration>) -> String {
    v.sort();
    format!("{:?} (min {:?})", v[v.len() / 2], v[0])
}

fn main() {
    let p = std::env::args()
        .nth(1)
        .expect("usage: bench-verify CONFIG NETWORK");
    let net = std::env::args()
        .nth(2)
        .expect("usage: bench-verify CONFIG NETWORK");
    let store = open(p.as_ref());
    let (mut commit, mut full) = (Vec::new(), Vec::new());
    for k in 0..11 {
        // Loaded from the cache, as a command loads it; one instance added from the pool.
        let mut cfg = store.read().expect("readable config");
        let add = instance::AddInstance {
            name: format!("bench-verify-{k}"),
            nics: vec![instance::NicSpec::parse(&format!("ip=pool,network={net}")).expect("spec")],
            conflicts_check: true,
            ..Default::default()
        };
        instance::add(&mut cfg, &add, &mut Feedback::default()).expect("add");
        let t = Instant::now();
        verify::check_commit(&cfg).expect("a clean commit");
        commit.push(t.elapsed());
        let t = Instant::now();
        let n = verify::verify(&cfg).len();
        full.push(t.elapsed());
        std::hint::black_box(n);
    }
    println!(
        "commit check after adding one instance: median {}; full verify: median {}",
        median(commit),
        median(full)
    );
}
