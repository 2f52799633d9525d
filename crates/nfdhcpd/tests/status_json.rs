//! `nfdhcpd --status --output-format json` (issue 15.3) against the text form: the JSON
//! parses and, rendered by the rules of nfdhcpd(8)'s JSON OUTPUT, gives the text.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value as J;

fn nfdhcpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
        .args(args)
        .output()
        .expect("run nfdhcpd")
}

/// nfdhcpd(8)'s rendering of the JSON: the keys before `messages` as `key-name value`
/// lines, `[messages]` with the counters, `[taps]` as the aligned table. `running` is
/// not in the text (it is the exit status).
fn text_of(j: &J) -> String {
    let o = j.as_object().expect("an object");
    let mut t = String::new();
    for (k, v) in o {
        if ["messages", "taps", "running"].contains(&k.as_str()) {
            continue;
        }
        let v = v
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {v} is not a count"));
        t += &format!("{} {v}\n", k.replace('_', "-"));
    }
    t += "\n[messages]\n";
    for (k, v) in o["messages"].as_object().expect("messages object") {
        t += &format!("{k:<28} {}\n", v.as_u64().expect("a count"));
    }
    t += "\n[taps]\n";
    t += &format!(
        "{:<16} {:>10} {:>10} {:>10} {:>10}  last\n",
        "tap", "received", "replied", "dropped", "accepted"
    );
    for tap in o["taps"].as_array().expect("taps array") {
        let keys: Vec<&String> = tap.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["tap", "received", "replied", "dropped", "accepted", "last"]
        );
        let n = |k: &str| tap[k].as_u64().expect("a count");
        t += &format!(
            "{:<16} {:>10} {:>10} {:>10} {:>10}  {}\n",
            tap["tap"].as_str().expect("a name"),
            n("received"),
            n("replied"),
            n("dropped"),
            n("accepted"),
            tap["last"].as_str().unwrap_or("")
        );
    }
    t
}

fn both(cfg: &str) -> (Output, Output) {
    (
        nfdhcpd(&["-c", cfg, "--status"]),
        nfdhcpd(&["-c", cfg, "--status", "--output-format", "json"]),
    )
}

fn parse(o: &Output) -> J {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A status file as the daemon writes it (two TAPs, one without a message yet), for a
/// live and for a dead PID: same document, `running` and the exit status differ.
#[test]
fn status_json_matches_a_status_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let status = dir.path().join("status");
    std::fs::write(
        &cfg,
        format!("[general]\nstatus_file = \"{}\"\n", status.display()),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let file = |pid: u32| {
        format!(
            "pid {pid}\nupdated 1796443935\nbindings 3\nbroken 1\nunknown-interface 4\nsend-errors 0\nverdict-errors 2\n\n\
             [messages]\n{:<28} 7\n{:<28} 1\n\n[taps]\n\
             {:<16} {:>10} {:>10} {:>10} {:>10}  last\n\
             {:<16} {:>10} {:>10} {:>10} {:>10}  DHCPREQUEST\n\
             {:<16} {:>10} {:>10} {:>10} {:>10}  \n",
            "DHCPDISCOVER",
            "RS",
            "tap",
            "received",
            "replied",
            "dropped",
            "accepted",
            "tap0",
            7,
            6,
            1,
            6,
            "tap1",
            0,
            0,
            0,
            0
        )
    };
    // This test's own PID is alive.
    std::fs::write(&status, file(std::process::id())).unwrap();
    let (text, json) = both(cfg);
    assert_eq!(text.status.code(), Some(0));
    assert_eq!(json.status.code(), Some(0));
    let j = parse(&json);
    assert_eq!(j["running"], true);
    assert_eq!(j["broken"], 1);
    assert_eq!(j["unknown_interface"], 4);
    assert!(j["taps"][1]["last"].is_null());
    assert_eq!(text_of(&j), String::from_utf8(text.stdout).unwrap());

    // A PID that is no process: stale, exit 3 in both forms.
    std::fs::write(&status, file(u32::MAX - 1)).unwrap();
    let (text, json) = both(cfg);
    assert_eq!((text.status.code(), json.status.code()), (Some(3), Some(3)));
    let j = parse(&json);
    assert_eq!(j["running"], false);
    assert_eq!(text_of(&j), String::from_utf8(text.stdout).unwrap());

    // Not running: nothing on stdout, exit 3, as in text.
    std::fs::remove_file(&status).unwrap();
    let (_, json) = both(cfg);
    assert_eq!(json.status.code(), Some(3));
    assert!(json.stdout.is_empty());

    // A status file the daemon never writes is an error, not a panic or garbage.
    std::fs::write(&status, "pid 1\n[bogus]\n").unwrap();
    let (_, json) = both(cfg);
    assert_eq!(json.status.code(), Some(1));
    assert!(json.stdout.is_empty());
    assert!(String::from_utf8_lossy(&json.stderr).contains("line 2"));

    // The option belongs to --status.
    assert_eq!(
        nfdhcpd(&["-c", cfg, "--output-format", "json"])
            .status
            .code(),
        Some(2)
    );
}

/// The real daemon after a real DHCP exchange.
#[test]
fn status_json_of_a_running_daemon_matches_its_text() {
    if !need_root("status_json_of_a_running_daemon_matches_its_text") {
        return;
    }
    let mut tb = Testbed::new(Mode::Routed, 1);
    tb.bind(0);
    tb.start_daemon(&tb.config_text(""));
    assert!(tb.udhcpc_once(0).is_some(), "{}", tb.daemon_log());
    wait_for("the exchange in the status", Duration::from_secs(5), || {
        tb.counter("DHCPREQUEST") >= 1
    });
    let cfg = tb.path("nfdhcpd.toml");
    let cfg = cfg.to_str().unwrap();
    // The daemon rewrites the file every second: compare a text and a JSON read from
    // the same version of it (same `updated`).
    wait_for(
        "text and JSON of one status file",
        Duration::from_secs(10),
        || {
            let (text, json) = both(cfg);
            assert_eq!(text.status.code(), Some(0));
            assert_eq!(json.status.code(), Some(0));
            let j = parse(&json);
            assert_eq!(j["running"], true);
            let t = String::from_utf8(text.stdout).unwrap();
            if t.lines().nth(1) != Some(&format!("updated {}", j["updated"])[..]) {
                return false;
            }
            assert_eq!(text_of(&j), t);
            assert!(j["messages"]["DHCPREQUEST"].as_u64() >= Some(1));
            let tap = &j["taps"][0];
            assert!(tap["received"].as_u64() >= Some(2), "{tap}");
            assert!(tap["last"].is_string());
            true
        },
    );
}
