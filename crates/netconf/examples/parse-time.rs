use std::time::Instant;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let store = netconf::config::FileStore::new(&p);
    use netconf::config::Store;
    let cfg = store.read().unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let cfg2 = store.read().unwrap();
        let r = t.elapsed();
        let t = Instant::now();
        let s = netconf::config::render(&cfg2).unwrap();
        let a = t.elapsed();
        let t = Instant::now();
        let b = postcard::to_allocvec(&cfg2).unwrap();
        let bb = t.elapsed();
        let t = Instant::now();
        {
            use std::io::Write;
            let mut f = std::fs::File::create("/tmp/w.tmp").unwrap();
            f.write_all(s.as_bytes()).unwrap();
            f.sync_all().unwrap();
        }
        let c = t.elapsed();
        let t = Instant::now();
        std::fs::write("/tmp/w2.tmp", &b).unwrap();
        let d = t.elapsed();
        println!(
            "read {r:?} render {a:?} ({} B) postcard {bb:?} ({} B) write+fsync {c:?} cachewrite {d:?}",
            s.len(),
            b.len()
        );
    }
    drop(cfg);
}
