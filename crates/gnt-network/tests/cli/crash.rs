//! Crash safety: writers killed with SIGKILL at random moments leave a config.data that
//! parses and equals one committed state; a corrupt or truncated config.data is reported
//! with its path and line (exit 2) and never overwritten.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::*;

/// xorshift64*: enough randomness for kill delays, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("crash test seed: {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn reserved(c: &Cluster) -> BTreeSet<Ipv4Addr> {
    c.net_field("n", "external_reservations")
        .split(", ")
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn sigkilled_writers_leave_one_committed_state() {
    const ATTEMPTS: usize = 200;
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "10.200.0.0/16", "n"]);
    // Some bulk, so that writes take a while.
    for i in 0..20 {
        c.ok(INST, &["add", "--net", "0:link=br0", &format!("bulk{i}")]);
    }
    let base = reserved(&c);
    let serial0 = c.serial();
    let mut rng = Rng::from_clock();
    let mut committed: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let (mut acked, mut killed, mut killed_but_committed) = (0, 0, 0);
    for k in 0..ATTEMPTS {
        let ip = Ipv4Addr::new(10, 200, 1 + (k / 250) as u8, 1 + (k % 250) as u8);
        let mut child = c
            .command(NET, &["modify", "--add-reserved-ips", &ip.to_string(), "n"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Debug binaries take a few milliseconds; kill anywhere in that span.
        let deadline = Instant::now() + Duration::from_micros(rng.below(12_000));
        let mut acknowledged = false;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{ip}: {status}");
                acknowledged = true;
                break;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Whatever happened, the file parses and holds every acknowledged change plus at
        // most the one in flight.
        let now = reserved(&c);
        let mut expected = base.clone();
        expected.extend(&committed);
        if acknowledged {
            acked += 1;
            expected.insert(ip);
            assert_eq!(
                now, expected,
                "attempt {k}: acknowledged {ip} missing or extra state"
            );
            committed.insert(ip);
        } else {
            killed += 1;
            let with = {
                let mut e = expected.clone();
                e.insert(ip);
                e
            };
            assert!(
                now == expected || now == with,
                "attempt {k}: not a committed state"
            );
            if now == with {
                killed_but_committed += 1;
                committed.insert(ip);
            }
        }
        assert_eq!(
            c.serial(),
            serial0 + committed.len() as u64,
            "attempt {k}: serial counts committed changes"
        );
    }
    eprintln!(
        "crash test: {acked} acknowledged, {killed} killed ({killed_but_committed} of them had committed)"
    );
    c.parsed();
    let leftovers = std::fs::read_dir(c.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")
        })
        .count();
    eprintln!("crash test: {leftovers} temporary files left behind by killed writers");
    assert!(killed > 0, "the random delays never hit a running writer");
    // A killed writer's lock is gone with it: the next command proceeds, and clears the
    // temporaries the killed writers left.
    c.ok(NET, &["modify", "--add-reserved-ips", "10.200.9.9", "n"]);
    let left: Vec<String> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(
        left.is_empty(),
        "temporaries left after a clean commit: {left:?}"
    );
}

/// A config.data whose end marker is gone, cut at `frac` of its length.
fn truncate(c: &Cluster, frac: f64) -> String {
    let text = c.text();
    let cut = &text[..(text.len() as f64 * frac) as usize];
    std::fs::write(c.config(), cut).unwrap();
    cut.to_owned()
}

#[test]
fn truncated_config_is_reported_and_never_overwritten() {
    // Edits config.data by hand.
    if !file_only("truncated_config_is_reported_and_never_overwritten") {
        return;
    }
    let c = seeded();
    c.ok(INST, &["add", "--net", "0:ip=pool,network=net1", "inst1"]);
    let path = c.config().display().to_string();
    for frac in [0.0, 0.3, 0.9] {
        let cut = truncate(&c, frac);
        let lines = cut.lines().count();
        let msg = format!(
            "Corrupt configuration file: {path}:{lines}: the file is truncated (its last line should be '# end of config.data')\nAborting.\n"
        );
        for (bin, args) in [
            (NET, vec!["list"]),
            (NET, vec!["info", "net1"]),
            (
                NET,
                vec!["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
            ),
            (NET, vec!["add", "--network", "198.51.100.0/24", "n2"]),
            (
                INST,
                vec!["add", "--net", "0:ip=pool,network=net1", "inst2"],
            ),
            (INST, vec!["remove", "inst1"]),
            (GROUP, vec!["add", "g2"]),
            (NODE, vec!["list"]),
        ] {
            c.fails(bin, &args, 2, &msg);
        }
        assert_eq!(c.text(), cut, "never overwritten");
    }
}

#[test]
fn corrupt_config_names_path_and_line() {
    // Edits config.data by hand.
    if !file_only("corrupt_config_names_path_and_line") {
        return;
    }
    let c = seeded();
    let good = c.text();
    let path = c.config().display().to_string();
    // A syntax error on the `network = ...` line of net1.
    let line = good
        .lines()
        .position(|l| l.starts_with("network = "))
        .unwrap()
        + 1;
    let bad = good.replacen(
        "network = \"192.168.1.0/24\"",
        "network = = \"192.168.1.0/24\"",
        1,
    );
    std::fs::write(c.config(), &bad).unwrap();
    let r = c.cmd(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with(&format!("Corrupt configuration file: {path}:{line}: "))
            && r.stderr.ends_with("\nAborting.\n"),
        "{}",
        r.stderr
    );
    assert_eq!(c.text(), bad);
    // A semantically invalid value (host bits in a stored subnet).
    let bad = good.replacen(
        "network = \"192.168.1.0/24\"",
        "network = \"192.168.1.7/24\"",
        1,
    );
    std::fs::write(c.config(), &bad).unwrap();
    let r = c.cmd(NET, &["list"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with(&format!("Corrupt configuration file: {path}:")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("192.168.1.7/24 has host bits set"),
        "{}",
        r.stderr
    );
    let r = c.cmd(INST, &["add", "i9"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(c.text(), bad);
    // A file from a newer format version.
    let newer = good.replacen("version = 1", "version = 9", 1);
    std::fs::write(c.config(), &newer).unwrap();
    c.fails(
        NET,
        &["add", "--network", "198.51.100.0/24", "n2"],
        2,
        &format!("Corrupt configuration file: {path}: written by a newer version (format 9; this build reads up to 1); refusing to read or overwrite it\nAborting.\n"),
    );
    // Restoring the good text makes everything work again (no stale cache is trusted).
    std::fs::write(c.config(), &good).unwrap();
    c.ok(
        NET,
        &["modify", "--add-reserved-ips", "192.168.1.9", "net1"],
    );
}
