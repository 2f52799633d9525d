//! config.data's store against what an operator or an attacker can leave in its directory:
//! damaged caches, hand edits within the clock's resolution (on a real ext4 with 1-second
//! timestamps), a symbolic link as config.data, FIFOs, directories and planted links in
//! place of its files, non-UTF-8 text and any umask.

#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;

use std::fs;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::*;
use netconf_cluster::config::FileStore;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs a command that must end within 20 s: a command blocked on a file fails the test
/// instead of hanging it.
fn run_bounded(c: &Cluster, bin: &str, args: &[&str]) -> Run {
    let child = c
        .command(bin, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(o) => {
            let o = o.expect("wait");
            Run {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{bin} {args:?} hung (blocked on a file?)");
        }
    }
}

fn bounded_ok(c: &Cluster, bin: &str, args: &[&str]) -> String {
    let r = run_bounded(c, bin, args);
    assert_eq!(r.code, 0, "{bin} {args:?}: {}", r.stderr);
    r.stdout
}

fn mkfifo(p: &Path) {
    let _ = fs::remove_file(p);
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
}

fn hidden(c: &Cluster, suffix: &str) -> PathBuf {
    c.dir.path().join(format!(".config.data{suffix}"))
}

fn cache(c: &Cluster) -> PathBuf {
    c.dir.path().join("config.data.cache")
}

/// A cluster with net1 (MAC prefix aa:00:01) and two instances on it.
fn populated() -> Cluster {
    let c = seeded();
    c.ok(NET, &["modify", "--mac-prefix", "aa:00:01", "net1"]);
    for i in ["vm1", "vm2"] {
        c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", i]);
    }
    c
}

/// What readers print, as a fresh parse of config.data gives it.
fn views(c: &Cluster) -> (String, String) {
    (
        c.ok(INST, &["list", "-o", "name,nic.ips,nic.macs"]),
        c.ok(NET, &["info", "net1"]),
    )
}

#[test]
fn a_damaged_cache_is_treated_as_absent_and_rebuilt() {
    let c = populated();
    fs::remove_file(cache(&c)).unwrap();
    let want = views(&c);
    let good = fs::read(cache(&c)).expect("a reader rebuilt the cache");
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("cut by one byte", good[..good.len() - 1].to_vec()),
        ("cut in half", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("bytes flipped in the middle", {
            let mut b = good.clone();
            let m = b.len() / 2;
            for x in &mut b[m..m + 4] {
                *x ^= 0x5a;
            }
            b
        }),
        ("last byte flipped", {
            let mut b = good.clone();
            *b.last_mut().unwrap() ^= 1;
            b
        }),
        ("one byte longer", {
            let mut b = good.clone();
            b.push(0);
            b
        }),
    ];
    for (what, bytes) in damages {
        fs::write(cache(&c), &bytes).unwrap();
        assert_eq!(views(&c), want, "readers with a cache {what}");
        assert!(
            FileStore::new(c.config()).cache_is_fresh(),
            "a reader rebuilt the cache {what}"
        );
        fs::write(cache(&c), &bytes).unwrap();
        let extra = format!("x{}", what.len());
        c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", &extra]);
        assert_eq!(
            c.parsed().instances.len(),
            3,
            "after an add over a cache {what}"
        );
        assert!(c.ok(INST, &["list", "-o", "name"]).contains(&extra));
        c.ok(INST, &["remove", &extra]);
        assert_eq!(views(&c), want, "after a mutation over a cache {what}");
    }
}

/// A loop device with a fresh ext4 of 128-byte inodes (timestamps in whole seconds),
/// detached on drop.
struct LoopDev {
    dev: String,
    _dir: tempfile::TempDir,
}

impl LoopDev {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("ext4.img");
        fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(&img)
            .status()
            .expect("mkfs.ext4");
        assert!(ok.success(), "mkfs.ext4 failed");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LoopDev {
            dev: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            _dir: dir,
        }
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// A mount in this thread's private mount namespace, unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn same_second_hand_edits_on_a_one_second_ext4_are_seen_and_kept() {
    if !is_root() {
        eprintln!("SKIP same_second_hand_edits_on_a_one_second_ext4_are_seen_and_kept: needs root");
        return;
    }
    let dev = LoopDev::new();
    let c = Cluster::new();
    let mnt = c.dir.path().join("ext4");
    fs::create_dir(&mnt).unwrap();
    let dev_path = dev.dev.clone();
    // The mount lives in a mount namespace of this thread alone; the commands it starts
    // inherit it, and it goes with the thread whatever happens.
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            use nix::mount::{MsFlags, mount};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare");
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make / private");
            mount(
                Some(dev_path.as_str()),
                &mnt,
                Some("ext4"),
                MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount the ext4");
            let _m = Mount(mnt.clone());
            let config = mnt.join("config.data");
            let run = |bin: &str, args: &[&str]| {
                let o = Command::new(bin)
                    .args(args)
                    .env("NETCONF_CONFIG", &config)
                    .env("NETCONF_HOOKS_DIR", c.hooks())
                    .output()
                    .expect("run");
                assert!(
                    o.status.success(),
                    "{bin} {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                String::from_utf8_lossy(&o.stdout).into_owned()
            };
            run(
                NET,
                &[
                    "add",
                    "--network",
                    "10.9.0.0/16",
                    "--mac-prefix",
                    "ac:10:00",
                    "n",
                ],
            );
            let mut same_second = 0;
            for k in 1..=20u32 {
                run(
                    NET,
                    &["modify", "--add-reserved-ips", &format!("10.9.1.{k}"), "n"],
                );
                // In place, same size, right after the write.
                let text = fs::read_to_string(&config).unwrap();
                let (old, new) = (
                    format!("mac_prefix = \"ac:10:{:02x}\"", k - 1),
                    format!("mac_prefix = \"ac:10:{k:02x}\""),
                );
                assert!(text.contains(&old), "run {k}: {old} missing");
                let edited = text.replace(&old, &new);
                let f = fs::OpenOptions::new().write(true).open(&config).unwrap();
                f.write_all_at(edited.as_bytes(), 0).unwrap();
                drop(f);
                let m = fs::metadata(&config).unwrap();
                assert_eq!(m.mtime_nsec(), 0, "not a 1-second-timestamp file system");
                if m.mtime() as u64 == unix_secs() {
                    same_second += 1;
                }
                let info = run(NET, &["info", "n"]);
                assert!(
                    info.contains(&format!("Mac Prefix: ac:10:{k:02x}")),
                    "run {k}: the hand edit is not seen:\n{info}"
                );
                run(
                    NET,
                    &["modify", "--add-reserved-ips", &format!("10.9.2.{k}"), "n"],
                );
                assert!(
                    fs::read_to_string(&config).unwrap().contains(&new),
                    "run {k}: the next mutation wrote the hand edit over"
                );
            }
            same_second
        })
        .join()
    });
    drop(dev);
    let same_second = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(
        same_second >= 5,
        "only {same_second} of 20 edits fell in the second of the write"
    );
}

#[test]
fn a_linked_config_data_stays_a_link_and_its_target_gets_every_commit() {
    let c = Cluster::new();
    let real = c.dir.path().join("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink("real/config.data", c.config()).unwrap();
    c.ok(NET, &["add", "--network", "10.8.0.0/16", "n"]);
    for k in 1..=6 {
        c.ok(
            NET,
            &["modify", "--add-reserved-ips", &format!("10.8.0.{k}"), "n"],
        );
        let m = fs::symlink_metadata(c.config()).unwrap();
        assert!(m.file_type().is_symlink(), "commit {k} replaced the link");
        let target = netconf_cluster::config::parse(
            &fs::read_to_string(real.join("config.data")).unwrap(),
            &real.join("config.data"),
        )
        .unwrap();
        assert_eq!(
            target.cluster.serial_no,
            2 + k,
            "commit {k} missed the target"
        );
        let ext = c.net_field("n", "external_reservations");
        assert!(ext.contains(&format!("10.8.0.{k},")), "{ext}");
    }
    assert!(
        real.join(".config.data.spare").is_file(),
        "the spare is beside the target"
    );
    assert!(!hidden(&c, ".spare").exists(), "no spare beside the link");
}

#[test]
fn fifos_in_place_of_the_files_never_hang_a_command() {
    let c = populated();
    let want = views(&c);
    let reserve =
        |c: &Cluster, ip: &str| run_bounded(c, NET, &["modify", "--add-reserved-ips", ip, "net1"]);

    // config.data: refused, naming it; the FIFO stays.
    let saved = c.bytes();
    fs::remove_file(c.config()).unwrap();
    mkfifo(&c.config());
    let msg = format!(
        "Corrupt configuration file: Cannot read {}: not a regular file but a FIFO\nAborting.\n",
        c.config().display()
    );
    for r in [
        run_bounded(&c, NET, &["list"]),
        reserve(&c, "192.168.1.200"),
    ] {
        assert_eq!((r.code, r.stderr.as_str()), (2, msg.as_str()));
    }
    assert!(
        fs::symlink_metadata(c.config())
            .unwrap()
            .file_type()
            .is_fifo()
    );
    fs::remove_file(c.config()).unwrap();
    fs::write(c.config(), &saved).unwrap();

    // The cache: as if absent, and replaced by a regular file.
    mkfifo(&cache(&c));
    assert_eq!(bounded_ok(&c, NET, &["info", "net1"]), want.1);
    mkfifo(&cache(&c));
    let r = reserve(&c, "192.168.1.201");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(fs::symlink_metadata(cache(&c)).unwrap().is_file());
    assert!(FileStore::new(c.config()).cache_is_fresh());

    // The spares: replaced.
    for (k, spare) in [".spare", ".cache.spare", ".old", ".cache.old"]
        .into_iter()
        .enumerate()
    {
        mkfifo(&hidden(&c, spare));
        for j in 0..2 {
            let r = reserve(&c, &format!("192.168.1.{}", 210 + 2 * k + j));
            assert_eq!(r.code, 0, "FIFO at {spare}: {}", r.stderr);
        }
        assert!(FileStore::new(c.config()).cache_is_fresh());
    }
    let ext = c.net_field("net1", "external_reservations");
    for ip in 200..=220 {
        let added = ip == 201 || (210..=217).contains(&ip);
        assert_eq!(
            ext.contains(&format!("192.168.1.{ip},")),
            added,
            "{ip}: {ext}"
        );
    }

    // The lock file: refused, naming it.
    let lock = c.dir.path().join("config.data.lock");
    fs::remove_file(&lock).unwrap();
    mkfifo(&lock);
    let before = c.bytes();
    for r in [
        run_bounded(&c, NET, &["list"]),
        reserve(&c, "192.168.1.250"),
    ] {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "{}: not a regular file but a FIFO",
                lock.display()
            )),
            "{}",
            r.stderr
        );
    }
    assert_eq!(c.bytes(), before);
    // The final verify of the harness would meet the FIFO lock too; the configuration is
    // the one checked above.
    fs::remove_file(&lock).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_get_mode_0644_whatever_the_umask() {
    for umask in ["000", "077", "022"] {
        let c = Cluster::new();
        let under_umask = |args: &[&str]| {
            let script = format!("umask {umask}; exec \"$0\" \"$@\"");
            let mut cmd = c.command("/bin/sh", &["-c", &script, NET]);
            cmd.args(args);
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        under_umask(&["add", "--network", "10.7.0.0/16", "n"]);
        under_umask(&["modify", "--add-reserved-ips", "10.7.0.9", "n"]);
        fs::remove_file(cache(&c)).unwrap();
        under_umask(&["list"]);
        under_umask(&["modify", "--add-reserved-ips", "10.7.0.10", "n"]);
        for f in [
            c.config(),
            cache(&c),
            c.dir.path().join("config.data.lock"),
            hidden(&c, ".spare"),
            hidden(&c, ".cache.spare"),
        ] {
            assert_eq!(mode(&f), 0o644, "umask {umask}: {}", f.display());
        }
    }
    // An operator's narrower mode stays, for the cache too.
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "10.7.0.0/16", "n"]);
    fs::set_permissions(c.config(), fs::Permissions::from_mode(0o600)).unwrap();
    c.ok(NET, &["modify", "--add-reserved-ips", "10.7.0.9", "n"]);
    assert_eq!((mode(&c.config()), mode(&cache(&c))), (0o600, 0o600));
}

#[test]
fn planted_links_at_working_paths_are_never_followed() {
    let c = populated();
    let victims = tempfile::tempdir().unwrap();
    let mut planted = Vec::new();
    for (k, name) in [
        ".config.data.spare",
        ".config.data.cache.spare",
        ".config.data.old",
        ".config.data.cache.old",
        ".config.data.tmp",
        ".config.cache.tmp1",
    ]
    .into_iter()
    .enumerate()
    {
        let victim = victims.path().join(format!("victim{k}"));
        fs::write(&victim, format!("precious {k}\n")).unwrap();
        let link = c.dir.path().join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        planted.push(victim);
    }
    c.ok(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.201", "net1"],
    );
    fs::remove_file(cache(&c)).unwrap();
    c.ok(NET, &["list"]);
    c.ok(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.202", "net1"],
    );
    for (k, v) in planted.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(v).unwrap(),
            format!("precious {k}\n"),
            "{}",
            v.display()
        );
    }
    let ext = c.net_field("net1", "external_reservations");
    assert!(ext.contains("192.168.1.201, 192.168.1.202"), "{ext}");
}

#[test]
fn non_utf8_config_data_is_a_corrupt_configuration() {
    let c = seeded();
    let mut bytes = c.bytes();
    let at = c.text().find("net1").unwrap() + 3;
    bytes[at] = 0xff;
    fs::write(c.config(), &bytes).unwrap();
    let line = c.bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let msg = format!(
        "Corrupt configuration file: {}:{line}: not UTF-8 text (byte {at})\nAborting.\n",
        c.config().display()
    );
    c.fails(NET, &["list"], 2, &msg);
    c.fails(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
        2,
        &msg,
    );
}

#[test]
fn a_directory_at_a_spare_path_is_avoided() {
    let c = seeded();
    for spare in [".spare", ".cache.spare"] {
        let d = hidden(&c, spare);
        let _ = fs::remove_file(&d);
        fs::create_dir(&d).unwrap();
        fs::write(d.join("keep"), "mine").unwrap();
    }
    for k in 1..=3 {
        let r = run_bounded(
            &c,
            NET,
            &[
                "modify",
                "--add-reserved-ips",
                &format!("192.168.1.1{k}"),
                "net1",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(FileStore::new(c.config()).cache_is_fresh());
    }
    let ext = c.net_field("net1", "external_reservations");
    for k in 1..=3 {
        assert!(ext.contains(&format!("192.168.1.1{k},")), "{ext}");
    }
    for spare in [".spare", ".cache.spare"] {
        assert_eq!(
            fs::read_to_string(hidden(&c, spare).join("keep")).unwrap(),
            "mine"
        );
    }
    // Temporaries a killed writer would leave are removed by the next one.
    for t in [".spare.tmp1.0", ".cache.spare.tmp1.0"] {
        fs::write(hidden(&c, t), "left").unwrap();
    }
    c.ok(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.14", "net1"],
    );
    let stray: Vec<_> = fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "temporaries left: {stray:?}");
}
