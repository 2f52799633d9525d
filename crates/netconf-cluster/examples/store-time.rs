//! Timings of the store's steps on a large config.data (for tuning): reading config.data
//! and its cache, their CRCs, a read and a transaction.
use std::time::Instant;

use netconf_cluster::config::{Store, open, transaction};

fn main() {
    let p = std::env::args().nth(1).expect("usage: store-time CONFIG");
    let store = open(p.as_ref());
    let cache = format!("{p}.cache");
    if std::env::args().nth(2).as_deref() == Some("raw") {
        let t = Instant::now();
        let a = std::fs::read(&p).unwrap();
        let ra = t.elapsed();
        let t = Instant::now();
        let h = crc32fast::hash(&a);
        let rc = t.elapsed();
        let t = Instant::now();
        let b = std::fs::read(&cache).unwrap();
        let rb = t.elapsed();
        println!("raw: toml {ra:?} crc {rc:?} cache {rb:?} {h} {}", b.len());
        return;
    }
    let t = Instant::now();
    let cfg = store.read().unwrap();
    let first = t.elapsed();
    std::mem::forget(cfg);
    if std::env::args().nth(2).is_some() {
        println!("first read {first:?}");
        return;
    }
    let min = |f: &mut dyn FnMut()| {
        (0..20)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let mut toml = Vec::new();
    let read_toml = min(&mut || toml = std::fs::read(&p).unwrap());
    let crc_toml = min(&mut || {
        std::hint::black_box(crc32fast::hash(&toml));
    });
    let mut c = Vec::new();
    let read_cache = min(&mut || c = std::fs::read(&cache).unwrap());
    let read = min(&mut || {
        let cfg = store.read().unwrap();
        std::mem::forget(cfg);
    });
    let tx = min(&mut || {
        transaction(&store, |c| {
            c.cluster.name = "x".into();
            Ok(())
        })
        .unwrap()
    });
    println!(
        "first read {first:?}; config.data {} B: read {read_toml:?}, CRC {crc_toml:?}; cache {} B: read {read_cache:?}; store read {read:?}; transaction {tx:?}",
        toml.len(),
        c.len()
    );
}
