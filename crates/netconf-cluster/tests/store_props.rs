//! The store against an operator who edits config.data by hand and damages or deletes the
//! cache between commands: whatever the order, every command answers what a fresh parse of
//! config.data gives, and a mutation keeps every hand edit made before it.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use netconf::MacAddr;
use netconf_cluster::GntError;
use netconf_cluster::config::{
    ClusterConfig, FileStore, Instance, Nic, NicParams, Store, parse, transaction,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Mutation {
    ClusterName(u8),
    Add(u8),
    Remove(u8),
    Rename(u8, u8),
    Tag(u8, u8),
    GroupTag(u8),
}

#[derive(Clone, Debug)]
enum Edit {
    /// The name of the n-th instance (key order), to a name of the same or another length.
    RenameInstance(u8, u8, bool),
    ClusterName(u8),
    /// A comment line after the first line: same configuration, other text.
    Comment,
}

#[derive(Clone, Debug)]
enum Damage {
    CutBy(u16),
    Flip(u16),
    Delete,
    /// A cache left by an earlier version of the file.
    Restore(u8),
}

#[derive(Clone, Debug)]
enum Step {
    Mutate(Mutation),
    HandEdit(Edit, bool),
    Cache(Damage),
    /// A mutation made on a snapshot and committed only if config.data is unchanged,
    /// with a hand edit in between or not.
    Versioned(Mutation, Option<Edit>),
    Read(u8),
}

fn key(k: u8) -> String {
    format!("k{k:03}")
}

fn instance(cfg: &ClusterConfig, k: u8) -> Instance {
    let p = NicParams::ganeti_default();
    Instance {
        name: netconf::InstanceName::parse(&format!("vm-{k:03}")).unwrap(),
        group: cfg.nodegroups.keys().next().cloned().unwrap_or_default(),
        primary_node: None,
        tags: BTreeSet::new(),
        nics: vec![Nic {
            uuid: format!("nic-{k:03}"),
            name: None,
            mac: MacAddr([0xaa, 0, 0, 0x42, 0, k]),
            ip: None,
            network: None,
            mode: p.mode,
            link: p.link,
            vlan: p.vlan,
        }],
        serial_no: 1,
        ctime: 1.5,
        mtime: 1.5,
    }
}

fn name_used(cfg: &ClusterConfig, name: &str) -> bool {
    cfg.instances.key_by_name(name).is_some()
}

/// The mutation, through the same lazy `Instances` calls commands use.
fn apply(m: &Mutation, cfg: &mut ClusterConfig) -> Result<(), GntError> {
    match *m {
        Mutation::ClusterName(n) => cfg.cluster.name = format!("cluster-{n}"),
        Mutation::Add(k) => {
            let i = instance(cfg, k);
            if !cfg.instances.contains_key(&key(k)) && !name_used(cfg, &i.name) {
                cfg.instances.insert(key(k), i);
            }
        }
        Mutation::Remove(k) => {
            cfg.instances.remove(&key(k));
        }
        Mutation::Rename(k, n) => {
            let name = format!("vm-r{n:02}");
            if !name_used(cfg, &name)
                && let Some(i) = cfg.instances.get_mut(&key(k))
            {
                i.name = netconf::InstanceName::parse(&name).unwrap();
            }
        }
        Mutation::Tag(k, t) => {
            if let Some(i) = cfg.instances.get_mut(&key(k)) {
                i.tags.insert(format!("t{t}"));
            }
        }
        Mutation::GroupTag(t) => {
            if let Some(g) = cfg.nodegroups.values_mut().next() {
                g.tags.insert(format!("g{t}"));
            }
        }
    }
    Ok(())
}

fn fresh(path: &Path) -> ClusterConfig {
    parse(&fs::read_to_string(path).unwrap(), path).unwrap()
}

/// The text after `e`, or `None` when it does not apply (no such instance, name taken).
fn edited(text: &str, cfg: &ClusterConfig, e: &Edit) -> Option<String> {
    match *e {
        Edit::RenameInstance(n, to, same_len) => {
            let (_, inst) = cfg
                .instances
                .all_decoded()
                .iter()
                .nth(n as usize % cfg.instances.len().max(1))?;
            let new = if same_len {
                format!("vm-h{to:02}")
            } else {
                format!("vm-hand-{to}")
            };
            if name_used(cfg, &new) {
                return None;
            }
            let old = format!("name = \"{}\"\n", inst.name);
            (text.matches(&old).count() == 1)
                .then(|| text.replace(&old, &format!("name = \"{new}\"\n")))
        }
        Edit::ClusterName(n) => {
            let old = format!("name = \"{}\"\n", cfg.cluster.name);
            let (head, rest) = text.split_once("\n[cluster]\n")?;
            Some(format!(
                "{head}\n[cluster]\n{}",
                rest.replacen(&old, &format!("name = \"hand-{n}\"\n"), 1)
            ))
        }
        Edit::Comment => {
            let (first, rest) = text.split_once('\n')?;
            Some(format!("{first}\n# a note by hand\n{rest}"))
        }
    }
}

/// Writes `text` as an editor would: over the same file, or as a new file renamed in.
fn write_by_hand(path: &Path, text: &str, in_place: bool) {
    if in_place {
        let f = fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(text.as_bytes(), 0).unwrap();
        f.set_len(text.len() as u64).unwrap();
    } else {
        let tmp = path.with_extension("edit");
        let mut f = fs::File::create(&tmp).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        fs::rename(&tmp, path).unwrap();
    }
}

fn hand_edit(path: &Path, e: &Edit, in_place: bool) -> bool {
    let text = fs::read_to_string(path).unwrap();
    match edited(&text, &fresh(path), e) {
        Some(t) if t != text => {
            write_by_hand(path, &t, in_place);
            true
        }
        _ => false,
    }
}

/// What every reader must see: the lazy look-ups and the whole configuration agree with
/// `want`.
fn check_read(store: &FileStore, want: &ClusterConfig, k: u8) -> Result<(), TestCaseError> {
    let got = store.read().unwrap();
    prop_assert_eq!(got.instances.len(), want.instances.len());
    prop_assert_eq!(
        got.instances.get_cloned(&key(k)),
        want.instances.all_decoded().get(&key(k)).cloned()
    );
    if let Some(i) = want
        .instances
        .all_decoded()
        .values()
        .nth(k as usize % want.instances.len().max(1))
    {
        let by_name = want
            .instances
            .all_decoded()
            .iter()
            .find(|(_, j)| j.name == i.name)
            .map(|(k, _)| k.clone());
        prop_assert_eq!(got.instances.key_by_name(&i.name), by_name);
    }
    let mut macs = got.instances.macs();
    macs.sort();
    let mut want_macs: Vec<MacAddr> = want
        .instances
        .all_decoded()
        .values()
        .map(|i| i.nics[0].mac)
        .collect();
    want_macs.sort();
    prop_assert_eq!(macs, want_macs);
    prop_assert_eq!(&got, want);
    Ok(())
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u8>().prop_map(Mutation::ClusterName),
        (0u8..24).prop_map(Mutation::Add),
        (0u8..24).prop_map(Mutation::Remove),
        (0u8..24, 0u8..24).prop_map(|(k, n)| Mutation::Rename(k, n)),
        (0u8..24, 0u8..4).prop_map(|(k, t)| Mutation::Tag(k, t)),
        (0u8..4).prop_map(Mutation::GroupTag),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<u8>(), 0u8..99, any::<bool>()).prop_map(|(n, t, s)| Edit::RenameInstance(n, t, s)),
        any::<u8>().prop_map(Edit::ClusterName),
        Just(Edit::Comment),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => mutation().prop_map(Step::Mutate),
        3 => (edit(), any::<bool>()).prop_map(|(e, p)| Step::HandEdit(e, p)),
        1 => any::<u16>().prop_map(|n| Step::Cache(Damage::CutBy(n))),
        1 => any::<u16>().prop_map(|n| Step::Cache(Damage::Flip(n))),
        1 => Just(Step::Cache(Damage::Delete)),
        1 => any::<u8>().prop_map(|n| Step::Cache(Damage::Restore(n))),
        2 => (mutation(), proptest::option::of(edit())).prop_map(|(m, e)| Step::Versioned(m, e)),
        1 => any::<u8>().prop_map(Step::Read),
    ]
}

fn cache_path(dir: &Path) -> PathBuf {
    dir.join("config.data.cache")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn hand_edits_and_damaged_caches_never_change_an_answer_or_get_lost(
        seed in proptest::collection::vec(0u8..24, 0..12),
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.data");
        let store = FileStore::new(&path);
        transaction(&store, |c| {
            for k in &seed {
                apply(&Mutation::Add(*k), c)?;
            }
            Ok(())
        })
        .unwrap();
        let mut want = fresh(&path);
        let mut old_caches: Vec<Vec<u8>> = Vec::new();
        for step in &steps {
            if let Ok(c) = fs::read(cache_path(dir.path())) {
                old_caches.push(c);
            }
            match step {
                Step::Mutate(m) => {
                    transaction(&store, |c| apply(m, c)).unwrap();
                    apply(m, &mut want).unwrap();
                    want.cluster.serial_no += 1;
                    let got = fresh(&path);
                    want.cluster.mtime = got.cluster.mtime;
                    prop_assert_eq!(&got, &want, "the mutation lost a hand edit or went wrong");
                }
                Step::HandEdit(e, in_place) => {
                    if hand_edit(&path, e, *in_place) {
                        want = fresh(&path);
                    }
                }
                Step::Cache(d) => {
                    let p = cache_path(dir.path());
                    match *d {
                        Damage::CutBy(n) => {
                            if let Ok(m) = fs::metadata(&p) {
                                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                                f.set_len(m.len().saturating_sub(1 + u64::from(n) % m.len().max(1))).unwrap();
                            }
                        }
                        Damage::Flip(n) => {
                            if let Ok(mut b) = fs::read(&p)
                                && !b.is_empty()
                            {
                                let at = usize::from(n) % b.len();
                                b[at] ^= 0x20;
                                fs::write(&p, b).unwrap();
                            }
                        }
                        Damage::Delete => {
                            let _ = fs::remove_file(&p);
                        }
                        Damage::Restore(n) => {
                            if !old_caches.is_empty() {
                                fs::write(&p, &old_caches[usize::from(n) % old_caches.len()]).unwrap();
                            }
                        }
                    }
                }
                Step::Versioned(m, e) => {
                    let (mut next, version) = store.read_versioned().unwrap();
                    apply(m, &mut next).unwrap();
                    let edited = e.as_ref().is_some_and(|e| hand_edit(&path, e, true));
                    let before = fs::read(&path).unwrap();
                    let committed = store.commit_if_unchanged(next, version).unwrap();
                    prop_assert_eq!(committed, !edited, "committed over a changed file, or refused an unchanged one");
                    if committed {
                        apply(m, &mut want).unwrap();
                        want.cluster.serial_no += 1;
                        want.cluster.mtime = fresh(&path).cluster.mtime;
                    } else {
                        prop_assert_eq!(fs::read(&path).unwrap(), before);
                        want = fresh(&path);
                    }
                    prop_assert_eq!(&fresh(&path), &want);
                }
                Step::Read(k) => check_read(&store, &want, *k)?,
            }
            check_read(&store, &want, 0)?;
        }
    }
}
