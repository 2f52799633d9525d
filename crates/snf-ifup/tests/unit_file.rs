//! The systemd unit the package ships for `snf-ifup watch`: what it runs, and its
//! hardening as `systemd-analyze security` rates it (offline, on the file: no running
//! systemd needed). Skips when systemd-analyze is not installed.

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/snf-ifup-watch.service");

/// The figure of "Overall exposure level for UNIT: 2.0 OK".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    line.rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn exposure_figure_parses() {
    assert_eq!(
        overall_exposure("x\n→ Overall exposure level for a.service: 2.0 OK 🙂\n"),
        Some(2.0)
    );
    assert_eq!(overall_exposure("nothing"), None);
}

#[test]
fn watch_unit_runs_the_watcher_and_is_enabled_by_default() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"ExecStart=/usr/sbin/snf-ifup watch"));
    assert!(lines.contains(&"WantedBy=multi-user.target"));
    assert!(lines.contains(&"Restart=always"));
}

#[test]
fn watch_unit_rates_at_most_3_0() {
    let has = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!(
            "SKIP watch_unit_rates_at_most_3_0: systemd-analyze is not installed (scripts/install-test-deps)"
        );
        return;
    }
    assert!(Path::new(UNIT).exists());
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", UNIT])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let level = overall_exposure(&out).unwrap_or_else(|| panic!("no overall rating in: {out}"));
    eprintln!("snf-ifup-watch.service: exposure {level}");
    assert!(level <= 3.0, "exposure {level} > 3.0:\n{out}");
}
