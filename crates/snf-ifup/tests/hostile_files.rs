//! Files snf-ifup reads or locks that something else may have put in place: the settings
//! file, Ganeti's Xen NIC file, the per-TAP state file, the nfdhcpd binding it compares
//! before rewriting, and the state directory's lock. A FIFO at any of them once made the
//! tool (and with it the VM's start) wait for ever; each is now refused at once, or
//! replaced. Every run is bounded: a run that blocks fails the test instead of hanging it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Lab, can_run, nic, refs};

const MAC1: &str = "aa:00:00:00:00:01";

/// Runs `cmd` for at most 30 s (a read that blocks fails the test instead of hanging it):
/// its exit code and stderr.
fn bounded(mut cmd: Command, dir: &Path, what: &str) -> (Option<i32>, String) {
    let run = netconf_test_support::run_within(&mut cmd, dir, Duration::from_secs(30), what);
    (run.code, run.stderr)
}

/// snf-ifup with only what a hypervisor passes, the settings at `settings` and all its
/// directories below `dir`.
fn snf_ifup(dir: &Path, settings: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snf-ifup"));
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SNF_NETWORK_CONFIG", settings)
        .env("SNF_NETWORK_STATE_DIR", dir.join("state"))
        .env("NFDHCPD_STATE_DIR", dir.join("nfdhcpd"))
        .env("GANETI_NIC_DIR", dir.join("nic"));
    c
}

fn fifo(at: &Path) {
    common::ok(&["mkfifo", "-m", "600", at.to_str().unwrap()]);
}

fn remove(at: &Path) {
    if at.is_dir() && !at.is_symlink() {
        std::fs::remove_dir(at).unwrap();
    } else {
        std::fs::remove_file(at).unwrap();
    }
}

/// A sparse file of `len` bytes (the size is what is refused; nothing is read).
fn sized(at: &Path, len: u64) {
    std::fs::File::create(at).unwrap().set_len(len).unwrap();
}

/// Writes a settings file that only turns syslog off; returns its path.
fn quiet_settings(dir: &Path) -> PathBuf {
    let p = dir.join("snf-network.toml");
    std::fs::write(&p, "syslog = false\n").unwrap();
    p
}

/// The settings file (read by every call, before anything else): a FIFO, directly or
/// behind a link, a directory, a device, or a file over 1 MiB is refused at once with
/// exit 1, naming the file and the reason; a link to a real file is followed.
#[test]
fn settings_file_is_regular_bounded_and_never_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = quiet_settings(d);
    let at = d.join("settings");
    let fifo_elsewhere = d.join("fifo");
    fifo(&fifo_elsewhere);
    let make: [(&str, &dyn Fn()); 5] = [
        ("not a regular file", &|| fifo(&at)),
        ("not a regular file", &|| {
            std::os::unix::fs::symlink(&fifo_elsewhere, &at).unwrap()
        }),
        ("not a regular file", &|| std::fs::create_dir(&at).unwrap()),
        ("not a regular file", &|| {
            std::os::unix::fs::symlink("/dev/null", &at).unwrap()
        }),
        ("larger than 1024 KiB", &|| {
            // Comments only: valid TOML but for its size.
            let line = format!("# {}\n", "x".repeat(1021));
            std::fs::write(&at, line.repeat(1025)).unwrap();
        }),
    ];
    for (why, make) in make {
        make();
        let (code, err) = bounded(snf_ifup(d, &at, &["reapply", "tap1"]), d, why);
        assert_eq!(code, Some(1), "{why}: {err}");
        let want = format!("cannot read configuration {}: {why}", at.display());
        assert!(err.contains(&want), "{want:?} not in {err}");
        remove(&at);
    }
    // Followed: the run gets past the settings (to the usage error of a bare reapply).
    std::os::unix::fs::symlink(&real, &at).unwrap();
    let (code, err) = bounded(snf_ifup(d, &at, &["reapply"]), d, "link");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("reapply needs --all or TAP names"), "{err}");
}

/// Ganeti's Xen NIC file, read on every vif call: a FIFO, a symbolic link (Ganeti writes
/// a regular file; a link is someone else's), a file over 64 KiB are refused at once.
#[test]
fn ganeti_nic_file_is_regular_bounded_and_never_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let settings = quiet_settings(d);
    let inst = d.join("nic").join("vm1.example.org");
    std::fs::create_dir_all(&inst).unwrap();
    let at = inst.join("0");
    let real = d.join("real-nic");
    std::fs::write(&real, "MAC=aa:00:00:00:00:01\nMODE=routed\nLINK=rt1\n").unwrap();
    let make: [(&str, &dyn Fn()); 4] = [
        ("not a regular file", &|| fifo(&at)),
        ("not a regular file", &|| std::fs::create_dir(&at).unwrap()),
        ("a symbolic link: refused", &|| {
            std::os::unix::fs::symlink(&real, &at).unwrap()
        }),
        ("larger than 64 KiB", &|| sized(&at, 64 * 1024 + 1)),
    ];
    for (why, make) in make {
        make();
        let mut c = snf_ifup(d, &settings, &["--dry-run", "xen", "online"]);
        c.env("vif", "vif1.0").env("INSTANCE", "vm1.example.org");
        let (code, err) = bounded(c, d, why);
        assert_eq!(code, Some(1), "{why}: {err}");
        let want = format!("cannot read Ganeti NIC file {}: {why}", at.display());
        assert!(err.contains(&want), "{want:?} not in {err}");
        remove(&at);
    }
}

/// The per-TAP state file, read by `down`, `status`, `reapply` and every `up`: a FIFO, a
/// symbolic link (snf-ifup only renames regular files into place) and a file over the
/// limit are refused at once.
#[test]
fn state_file_is_regular_bounded_and_never_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let settings = quiet_settings(d);
    let state = d.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let at = state.join("tap1.toml");
    let real = d.join("real-state");
    std::fs::write(&real, "").unwrap();
    let make: [(&str, &dyn Fn()); 3] = [
        ("not a regular file", &|| fifo(&at)),
        ("a symbolic link: refused", &|| {
            std::os::unix::fs::symlink(&real, &at).unwrap()
        }),
        ("larger than 16384 KiB", &|| sized(&at, (16 << 20) + 1)),
    ];
    for (why, make) in make {
        make();
        let (code, err) = bounded(
            snf_ifup(d, &settings, &["--dry-run", "down", "tap1"]),
            d,
            why,
        );
        assert_eq!(code, Some(1), "{why}: {err}");
        let want = format!("cannot read {}: {why}", at.display());
        assert!(err.contains(&want), "{want:?} not in {err}");
        remove(&at);
    }
}

/// Against the real thing, as root: a FIFO at the path of the NIC's nfdhcpd binding
/// (which `up` reads to skip an unchanged rewrite) does not stop `up`; the binding
/// replaces it.
#[test]
fn up_replaces_a_fifo_at_the_binding_path() {
    if !can_run("up_replaces_a_fifo_at_the_binding_path") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    std::fs::create_dir_all(lab.nfdhcpd_dir()).unwrap();
    let binding = lab.nfdhcpd_dir().join("tap1");
    fifo(&binding);
    let env = nic(
        "tap1",
        MAC1,
        "198.51.100.11",
        "bridged",
        "br0",
        "nfdhcpd",
        "",
    );
    let (code, err) = bounded(
        lab.ifup_command(&refs(&env), &["ganeti", "up"]),
        lab.dir.path(),
        "up",
    );
    assert_eq!(code, Some(0), "{err}");
    let b = netconf::binding::Binding::load(&binding).unwrap();
    assert_eq!(b.ip, Some("198.51.100.11".parse().unwrap()));
    lab.ifup_ok(&[], &["down", "tap1"]);
    assert!(!binding.exists());
}

/// As root, in a node namespace: a FIFO at the state directory's lock makes `up` and
/// `down` fail at once, naming it, before they change anything.
#[test]
fn a_fifo_at_the_lock_is_refused_at_once() {
    if !can_run("a_fifo_at_the_lock_is_refused_at_once") {
        return;
    }
    let mut lab = Lab::new();
    lab.bridge("br0", 1500);
    lab.guest("tap1", MAC1);
    let (fw0, net0) = (lab.fw_dump(), lab.net_dump());
    std::fs::create_dir_all(lab.state_dir()).unwrap();
    let lock = lab.state_dir().join(".lock");
    fifo(&lock);
    let env = nic("tap1", MAC1, "198.51.100.11", "bridged", "br0", "", "");
    for args in [&["ganeti", "up"][..], &["down", "tap1"][..]] {
        let (code, err) = bounded(lab.ifup_command(&refs(&env), args), lab.dir.path(), "lock");
        assert_eq!(code, Some(1), "{args:?}: {err}");
        let want = format!("cannot lock {}: not a regular file", lock.display());
        assert!(err.contains(&want), "{want:?} not in {err}");
    }
    assert_eq!(lab.fw_dump(), fw0);
    assert_eq!(lab.net_dump(), net0);
    assert!(!lab.state_dir().join("tap1.toml").exists());
}
