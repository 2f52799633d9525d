//! The lazily loaded instances and the spliced writer against plain models: whatever a
//! transaction does through `Instances`, the file must be byte for byte what a full render
//! of the same configuration gives, and the cache must read back as that configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::fingerprint::Fingerprint;
use super::instance::{Instance, Nic, NicParams};
use super::model::ClusterConfig;
use super::splice::SPLICED;
use super::store::{FileStore, parse, render, transaction};
use super::{Store, cache};
use netconf::mac::MacAddr;

fn inst(name: &str, mac: u8, tag: Option<&str>) -> Instance {
    let p = NicParams::ganeti_default();
    Instance {
        name: netconf::InstanceName::parse(name).unwrap(),
        group: format!("g{}", mac % 3),
        primary_node: (!mac.is_multiple_of(5)).then(|| format!("node-{}", mac % 5)),
        tags: tag
            .map(|t| BTreeSet::from([t.to_owned()]))
            .unwrap_or_default(),
        nics: vec![Nic {
            uuid: format!("nic-{name}"),
            name: None,
            mac: MacAddr([0xaa, 0, 0, 0, 1, mac]),
            ip: mac.is_multiple_of(2).then(|| [198, 51, 100, mac].into()),
            network: (mac % 4 != 3).then(|| format!("net-{}", mac % 4)),
            mode: p.mode,
            link: p.link,
            vlan: p.vlan,
        }],
        serial_no: 1,
        ctime: 1.5,
        mtime: 1.5,
    }
}

fn spliced() -> usize {
    SPLICED.with(|c| c.get())
}

/// The file is canonical (equal to a full render of what it parses to), and the cache
/// reads back as the same configuration.
fn assert_consistent(store: &FileStore) -> ClusterConfig {
    let text = fs::read_to_string(store.path()).unwrap();
    let parsed = parse(&text, store.path()).unwrap();
    assert_eq!(render(&parsed).unwrap(), text, "the file is not canonical");
    assert!(store.cache_is_fresh(), "no cache for the committed file");
    let cached = store.read().unwrap();
    assert_eq!(cached, parsed, "the cache disagrees with the file");
    parsed
}

fn seeded(dir: &Path, n: usize) -> FileStore {
    // These instances point at groups, nodes and networks that do not exist: this
    // thread's commits and reads skip the invariant checks.
    super::verify::skip_checks_in_this_thread();
    let store = FileStore::new(dir.join("config.data"));
    transaction(&store, |c| {
        for k in 0..n {
            c.instances.insert(
                format!("k{:03}", k * 2),
                inst(&format!("i{k}"), k as u8, None),
            );
        }
        Ok(())
    })
    .unwrap();
    store
}

#[test]
fn one_instance_changes_are_spliced_and_equal_a_full_render() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path(), 40);
    // The first write of the seed renders everything (nothing to copy from yet).
    assert_consistent(&store);
    let before = spliced();
    type Step = (&'static str, fn(&mut ClusterConfig));
    let steps: [Step; 6] = [
        ("insert first", |c| {
            c.instances.insert("a".into(), inst("new-a", 200, None))
        }),
        ("insert middle", |c| {
            c.instances.insert("k013".into(), inst("new-m", 201, None))
        }),
        ("insert last", |c| {
            c.instances.insert("z".into(), inst("new-z", 202, None))
        }),
        ("change one", |c| {
            c.instances.get_mut("k010").unwrap().tags.insert("t".into());
        }),
        ("remove one", |c| {
            assert_eq!(c.instances.remove("k020").unwrap().name, "i10");
        }),
        ("instances untouched", |c| c.cluster.name = "renamed".into()),
    ];
    for (what, step) in steps {
        transaction(&store, |c| {
            step(c);
            Ok(())
        })
        .unwrap();
        let cfg = assert_consistent(&store);
        assert!(cfg.instances.len() >= 40, "{what}");
    }
    assert_eq!(spliced() - before, 6, "every step took the spliced path");
    let cfg = assert_consistent(&store);
    assert_eq!(cfg.instances.len(), 42);
    assert!(cfg.instances.all_decoded()["k010"].tags.contains("t"));
    assert!(!cfg.instances.contains_key("k020"));
    assert_eq!(cfg.cluster.name, "renamed");
    // The replaced versions are kept as spares to be overwritten in place.
    assert!(dir.path().join(".config.data.spare").exists());
    assert!(dir.path().join(".config.data.cache.spare").exists());
}

#[test]
fn a_configuration_loaded_before_another_commit_is_written_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path(), 10);
    transaction(&store, |_| Ok(())).unwrap();
    let mut stale = store.read().unwrap();
    stale
        .instances
        .insert("k001".into(), inst("from-stale", 99, None));
    // Two commits later the files `stale` was read from have been reused as spares.
    transaction(&store, |_| Ok(())).unwrap();
    transaction(&store, |_| Ok(())).unwrap();
    let before = spliced();
    transaction(&store, |c| {
        *c = stale.clone();
        Ok(())
    })
    .unwrap();
    assert_eq!(spliced(), before, "spliced from files it did not load");
    let cfg = assert_consistent(&store);
    assert_eq!(cfg.instances.all_decoded()["k001"].name, "from-stale");
    assert_eq!(cfg.instances.len(), 11);
}

#[test]
fn a_loaded_configuration_still_reads_its_instances_after_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path(), 30);
    transaction(&store, |_| Ok(())).unwrap();
    let old = store.read().unwrap();
    let want = parse(&fs::read_to_string(store.path()).unwrap(), store.path()).unwrap();
    // Enough commits that every file `old` was loaded from would have been reused.
    for k in 0..4 {
        transaction(&store, |c| {
            for i in c
                .instances
                .all_decoded()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
            {
                c.instances.get_mut(&i).unwrap().name =
                    netconf::InstanceName::parse(&format!("gen{k}-{i}")).unwrap();
            }
            c.instances
                .insert(format!("new{k}"), inst(&format!("x{k}"), k, None));
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(
        old.instances.get_cloned("k004"),
        want.instances.all_decoded().get("k004").cloned()
    );
    assert_eq!(*old.instances.all_decoded(), *want.instances.all_decoded());
    assert_consistent(&store);
}

#[test]
fn an_unusable_spare_is_replaced_by_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path(), 3);
    transaction(&store, |_| Ok(())).unwrap();
    let spare = dir.path().join(".config.data.spare");
    fs::remove_file(&spare).unwrap();
    // Cannot be opened for writing, whoever runs the test (root included).
    std::os::unix::fs::symlink(dir.path().join("missing/dir"), &spare).unwrap();
    transaction(&store, |c| {
        c.cluster.name = "after".into();
        Ok(())
    })
    .unwrap();
    assert_eq!(assert_consistent(&store).cluster.name, "after");
    assert!(!fs::symlink_metadata(&spare).unwrap().is_symlink());
}

#[test]
fn a_cache_is_checked_encoding_by_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path(), 5);
    transaction(&store, |_| Ok(())).unwrap();
    let cache_path = dir.path().join("config.data.cache");
    let bytes = fs::read(&cache_path).unwrap();
    assert!(bytes.starts_with(b"NCCACHE7"));
    let toml = fs::read(store.path()).unwrap();
    let check = |cache: &[u8], toml: &[u8]| {
        let d = tempfile::tempdir().unwrap();
        let (c, t) = (d.path().join("c"), d.path().join("t"));
        fs::write(&c, cache).unwrap();
        fs::write(&t, toml).unwrap();
        let fp = Fingerprint::of(toml);
        let (c, t) = (fs::File::open(&c).unwrap(), fs::File::open(&t).unwrap());
        cache::load(c, &fp, t, store.path()).is_some()
    };
    assert!(check(&bytes, &toml));
    // Damage the last byte of the last encoding: only the per-encoding check sees it.
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() ^= 0xff;
    assert!(
        !check(&bad, &toml),
        "a cache with a damaged encoding was accepted"
    );
    // Every cut and every flipped byte is refused.
    for n in 0..bytes.len() {
        assert!(!check(&bytes[..n], &toml), "cut to {n}");
        let mut bad = bytes.clone();
        bad[n] ^= 0x10;
        assert!(!check(&bad, &toml), "byte {n} flipped");
    }
    // A cache of other bytes of the same length is refused.
    let mut edited = toml;
    let at = edited.len() / 2;
    edited[at] ^= 1;
    assert!(!check(&bytes, &edited));
}

#[test]
fn instances_that_do_not_decode_fall_back_to_the_text_the_cache_was_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path(), 12);
    transaction(&store, |_| Ok(())).unwrap();
    let want = parse(&fs::read_to_string(store.path()).unwrap(), store.path()).unwrap();
    let want = want.instances.all_decoded();
    let cache_path = dir.path().join("config.data.cache");
    let good = fs::read(&cache_path).unwrap();
    // Loaded from the good cache, which is then damaged in place under the command.
    let fresh = || {
        fs::write(&cache_path, &good).unwrap();
        let c = store.read().unwrap();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&cache_path)
            .unwrap();
        let half = good.len() / 2;
        let damaged: Vec<u8> = good[half..].iter().map(|b| b ^ 0x55).collect();
        std::os::unix::fs::FileExt::write_all_at(&f, &damaged, half as u64).unwrap();
        c
    };
    assert_eq!(
        fresh().instances.get_cloned("k022"),
        want.get("k022").cloned()
    );
    assert_eq!(fresh().instances.all_decoded(), want);
    let on = |m: &BTreeMap<String, Instance>| {
        m.iter()
            .filter(|(_, i)| i.nics[0].network.as_deref() == Some("net-1"))
            .map(|(k, i)| (k.clone(), i.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(fresh().instances.on_network("net-1"), on(want));
    // Changes made before and after the fall-back are kept, and the file is written in full.
    let mut c = fresh();
    let added = inst("added", 99, None);
    c.instances.insert("k001".into(), added.clone());
    c.instances.get_mut("k022").unwrap().name = netconf::InstanceName::parse("renamed").unwrap();
    assert_eq!(c.instances.remove("k020").as_ref(), want.get("k020"));
    let mut model = want.clone();
    model.insert("k001".into(), added);
    model.get_mut("k022").unwrap().name = netconf::InstanceName::parse("renamed").unwrap();
    model.remove("k020");
    assert_eq!(c.instances.all_decoded(), &model);
    store
        .transact(&mut |cur| {
            *cur = c.clone();
            Ok(())
        })
        .unwrap();
    assert_eq!(assert_consistent(&store).instances.all_decoded(), &model);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u8),
    Remove(u8),
    Tag(u8),
    Rename(u8, u8),
    /// Another group, node and address, as from the instance with MAC byte m.
    Move(u8, u8),
    Lookups(u8),
}

/// `pred`'s instances of `model`, as the `Instances` queries return them.
fn filtered(
    model: &BTreeMap<String, Instance>,
    pred: impl Fn(&Instance) -> bool,
) -> Vec<(String, Instance)> {
    model
        .iter()
        .filter(|(_, i)| pred(i))
        .map(|(k, i)| (k.clone(), i.clone()))
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..60, any::<u8>()).prop_map(|(k, m)| Op::Insert(k, m)),
        (0u8..60).prop_map(Op::Remove),
        (0u8..60).prop_map(Op::Tag),
        (0u8..60, 0u8..60).prop_map(|(k, n)| Op::Rename(k, n)),
        (0u8..60, any::<u8>()).prop_map(|(k, m)| Op::Move(k, m)),
        (0u8..60).prop_map(Op::Lookups),
    ]
}

fn key(k: u8) -> String {
    format!("k{k:03}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random changes through `Instances` on a stored set agree with a plain map, both in
    /// the transaction and in what it leaves on disk.
    #[test]
    fn lazy_instances_agree_with_a_map(initial in 0usize..30, ops in proptest::collection::vec(op(), 0..25)) {
        let dir = tempfile::tempdir().unwrap();
        let store = seeded(dir.path(), initial);
        transaction(&store, |_| Ok(())).unwrap();
        let mut model: BTreeMap<String, Instance> = store.read().unwrap().instances.all_decoded().clone();
        let before = spliced();
        transaction(&store, |c| {
            for op in &ops {
                match *op {
                    Op::Insert(k, m) => {
                        let i = inst(&format!("n{k}-{m}"), m, None);
                        c.instances.insert(key(k), i.clone());
                        model.insert(key(k), i);
                    }
                    Op::Remove(k) => {
                        assert_eq!(c.instances.remove(&key(k)), model.remove(&key(k)));
                    }
                    Op::Tag(k) => {
                        let got = c.instances.get_mut(&key(k)).map(|i| {
                            i.tags.insert("x".into());
                            i.clone()
                        });
                        let want = model.get_mut(&key(k)).map(|i| {
                            i.tags.insert("x".into());
                            i.clone()
                        });
                        assert_eq!(got, want);
                    }
                    Op::Rename(k, n) => {
                        if let Some(i) = c.instances.get_mut(&key(k)) {
                            i.name = netconf::InstanceName::parse(&format!("r{n}-{k}")).unwrap();
                        }
                        if let Some(i) = model.get_mut(&key(k)) {
                            i.name = netconf::InstanceName::parse(&format!("r{n}-{k}")).unwrap();
                        }
                    }
                    Op::Move(k, m) => {
                        let from = inst("x", m, None);
                        let apply = |i: &mut Instance| {
                            i.group.clone_from(&from.group);
                            i.primary_node.clone_from(&from.primary_node);
                            i.nics[0].ip = from.nics[0].ip;
                        };
                        if let Some(i) = c.instances.get_mut(&key(k)) {
                            apply(i);
                        }
                        if let Some(i) = model.get_mut(&key(k)) {
                            apply(i);
                        }
                    }
                    Op::Lookups(k) => {
                        let name = model.get(&key(k)).map(|i| i.name.to_string()).unwrap_or_default();
                        let by_name = model.iter().find(|(_, i)| i.name == name).map(|(k, _)| k.clone());
                        assert_eq!(c.instances.key_by_name(&name), by_name);
                        assert_eq!(c.instances.contains_key(&key(k)), model.contains_key(&key(k)));
                        assert_eq!(c.instances.get_cloned(&key(k)), model.get(&key(k)).cloned());
                        assert_eq!(c.instances.len(), model.len());
                        let net = format!("net-{}", k % 4);
                        let on = filtered(&model, |i| i.nics.iter().any(|n| n.network.as_ref() == Some(&net)));
                        assert_eq!(c.instances.on_network(&net), on);
                        let group = format!("g{}", k % 3);
                        assert_eq!(c.instances.in_group(&group), filtered(&model, |i| i.group == group));
                        let node = format!("node-{}", k % 5);
                        assert_eq!(
                            c.instances.on_node(&node),
                            filtered(&model, |i| i.primary_node.as_ref() == Some(&node))
                        );
                        let v4: ipnet::Ipv4Net = format!("198.51.100.{}/26", k % 4 * 64).parse().unwrap();
                        assert_eq!(
                            c.instances.with_ipv4_in(v4),
                            filtered(&model, |i| i.nics.iter().any(|n| n.ipv4().is_some_and(|ip| v4.contains(&ip))))
                        );
                        let mut macs = c.instances.macs();
                        macs.sort();
                        let mut want: Vec<MacAddr> = model.values().flat_map(|i| i.nics.iter().map(|n| n.mac)).collect();
                        want.sort();
                        assert_eq!(macs, want);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
        prop_assert_eq!(spliced() - before, 1);
        let cfg = assert_consistent(&store);
        prop_assert_eq!(cfg.instances.all_decoded(), &model);
    }
}
