//! The packaged systemd unit is hardened: `systemd-analyze security` rates it at most 3.0
//! (it was 6.6), offline, so no running systemd is needed.

use std::process::Command;

#[test]
fn unit_exposure_is_at_most_3() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/nfdhcpd.service");
    let out = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", unit])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "SKIP unit_exposure_is_at_most_3: systemd-analyze: {e} (scripts/install-test-deps)"
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for nfdhcpd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}\n{err}"));
    assert!(level <= 3.0, "exposure {level}:\n{text}");
    // The binding directory is never the service user's: no StateDirectory= (it would be
    // given to the dynamic user), and the hardening must not lose the capabilities the
    // daemon needs.
    let unit_text = std::fs::read_to_string(unit).unwrap();
    assert!(
        !unit_text.lines().any(|l| l.starts_with("StateDirectory")),
        "{unit_text}"
    );
    assert!(unit_text.contains("AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW"));
}
