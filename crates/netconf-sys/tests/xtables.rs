//! The xtables runner against the real iptables, inside a network namespace of its own
//! (the test thread enters it, so the tools it starts act on that namespace only).

use std::process::Command;

use netconf_sys::xtables::{self, Family, Wait};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn command_save_and_restore_act_in_the_namespace() {
    if !is_root() {
        println!("SKIP command_save_and_restore_act_in_the_namespace: needs root");
        return;
    }
    if !have("iptables") {
        println!("SKIP command_save_and_restore_act_in_the_namespace: no iptables");
        return;
    }
    let name = format!("ncsys-xt-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip netns add {name}");
    let ns = Netns(name);
    let path = format!("/run/netns/{}", ns.0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&path).unwrap();
            // Only this thread (and the tools it starts) enters the namespace.
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();

            let batch =
                "*filter\n:NCSYS-T - [0:0]\n-A NCSYS-T -s 198.51.100.7/32 -j DROP\nCOMMIT\n";
            xtables::restore(Family::Ip4, Wait::Seconds(5), &["--noflush"], batch)
                .unwrap()
                .check()
                .unwrap();
            let text = xtables::save(Family::Ip4, &["-t", "filter"])
                .unwrap()
                .check()
                .unwrap();
            assert!(
                text.contains("-A NCSYS-T -s 198.51.100.7/32 -j DROP"),
                "{text}"
            );

            xtables::command(Family::Ip4, Wait::Seconds(5), &["-F", "NCSYS-T"])
                .unwrap()
                .check()
                .unwrap();
            xtables::command(Family::Ip4, Wait::Seconds(5), &["-X", "NCSYS-T"])
                .unwrap()
                .check()
                .unwrap();
            let text = xtables::save(Family::Ip4, &["-t", "filter"])
                .unwrap()
                .check()
                .unwrap();
            assert!(!text.contains("NCSYS-T"), "{text}");

            // A refused command is an error naming it, with the tool's complaint.
            let e = xtables::command(Family::Ip4, Wait::Seconds(5), &["-X", "NCSYS-GONE"])
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("`iptables -w 5 -X NCSYS-GONE` failed: "),
                "{e}"
            );
            assert!(
                e.len() > "`iptables -w 5 -X NCSYS-GONE` failed: ".len(),
                "{e}"
            );
        })
        .join()
        .unwrap();
    });
}
