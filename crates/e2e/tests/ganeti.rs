//! Under a real Ganeti 3.0: Debian's `ganeti` package runs a single-node cluster (KVM
//! hypervisor, QEMU's TCG where KVM is unusable, a diskless instance booting a tiny
//! initramfs guest) with our snf-ifup as its NIC script, our snf-dnshook as an instance
//! hook, our nfdhcpd on the node's bridge and `snf-ifup watch`. The cluster lives in a
//! network, mount and UTS namespace of its own; `scripts/e2e-ganeti` builds and removes it
//! and prints one `ok   [KEY] …` / `FAIL [KEY] …` line per check, which this test asserts.
//!
//! Needs root and apt (it installs `ganeti`, `qemu-system-x86` from bookworm-backports and
//! downloads a guest kernel into /var/cache/netconf-test, see
//! scripts/install-ganeti-e2e-deps). The binaries come from the directory of this test
//! executable (target/<profile>/, built by `cargo test --workspace`).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use netconf_test_support::{need_root, on_path, skip, workspace_bins};

const TOOLS: [&str; 3] = ["snf-ifup", "nfdhcpd", "snf-dnshook"];

/// What the run must show, by the keys of scripts/e2e-ganeti's check lines.
const CHECKS: [(&str, &str); 10] = [
    (
        "dns-add",
        "instance add: A, AAAA and PTR records in the namespace's BIND",
    ),
    (
        "nic-script",
        "Ganeti's kvm-ifup runs our snf-ifup as kvm-vif-bridge",
    ),
    ("nic-binding", "snf-ifup writes the NIC's nfdhcpd binding"),
    (
        "lease",
        "the guest's udhcpc leases its pool address from nfdhcpd",
    ),
    ("slaac", "the guest forms its EUI-64 SLAAC address"),
    (
        "bridge-mac",
        "the bridge MAC does not change when the TAP joins",
    ),
    (
        "watch",
        "after shutdown, snf-ifup watch removes binding, state and rules",
    ),
    ("dns-rename", "instance rename moves the records"),
    ("dns-remove", "instance remove deletes the records"),
    (
        "isolation",
        "nothing of the machine changed; namespace and mounts gone",
    ),
];

/// The check lines `(passed, key, text)` of the script's output.
fn check_lines(out: &str) -> Vec<(bool, String, String)> {
    out.lines()
        .filter_map(|l| {
            let (passed, rest) = if let Some(r) = l.strip_prefix("ok   [") {
                (true, r)
            } else {
                (false, l.strip_prefix("FAIL [")?)
            };
            let (key, text) = rest.split_once("] ")?;
            Some((passed, key.to_owned(), text.to_owned()))
        })
        .collect()
}

#[test]
fn real_ganeti_runs_snf_ifup_nfdhcpd_snf_dnshook_and_watch() {
    let test = "real_ganeti_runs_snf_ifup_nfdhcpd_snf_dnshook_and_watch";
    if !need_root(test, "installs ganeti and QEMU, network/mount namespaces") {
        return;
    }
    if !on_path("apt-get") || !on_path("dpkg") {
        return skip(
            test,
            "needs a Debian system (apt-get, dpkg) to install ganeti",
        );
    }
    let Some(bin) = workspace_bins(&TOOLS) else {
        return skip(
            test,
            &format!(
                "{} not all built next to the test executable (run `cargo test --workspace`)",
                TOOLS.join(", ")
            ),
        );
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e-ganeti");
    let t0 = Instant::now();
    let mut child = Command::new(&script)
        .arg(&bin)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    // Shown as it comes (with --nocapture), and in full when the test fails.
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            out.push_str(&line);
            out.push('\n');
        }
    }
    let status = child.wait().expect("wait for scripts/e2e-ganeti");
    eprintln!(
        "scripts/e2e-ganeti: {status} after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let lines = check_lines(&out);
    let mut missing = Vec::new();
    for (key, what) in CHECKS {
        let mine: Vec<_> = lines.iter().filter(|(_, k, _)| k == key).collect();
        if mine.is_empty() {
            missing.push(format!("[{key}] {what}: not reached"));
        } else if let Some((_, _, text)) = mine.iter().find(|(passed, _, _)| !passed) {
            missing.push(format!("[{key}] {what}: {text}"));
        }
    }
    let others: Vec<_> = lines
        .iter()
        .filter(|(passed, k, _)| !passed && !CHECKS.iter().any(|(c, _)| c == k))
        .map(|(_, k, t)| format!("[{k}] {t}"))
        .collect();
    assert!(
        missing.is_empty() && others.is_empty() && status.success(),
        "under a real Ganeti these failed:\n  {}\n(exit status {status})",
        missing
            .iter()
            .chain(&others)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
