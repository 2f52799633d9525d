//! Many processes changing one config.data at once: no lost update, no duplicate address
//! or MAC, a valid file, and one cluster serial step per command.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::harness::*;

const WORKERS: usize = 8;
const PER_WORKER: usize = 100;

/// Issue 2: 8 processes × 100 `modify --add-reserved-ips IP` on a /16.
#[test]
fn concurrent_reservations_are_all_kept() {
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "10.128.0.0/16", "big"]);
    let serial0 = c.serial();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let c = &c;
            s.spawn(move || {
                for k in 0..PER_WORKER {
                    // Worker w owns 10.128.(w+1).k+1: distinct across workers.
                    let ip = format!("10.128.{}.{}", w + 1, k + 1);
                    let r = c.cmd(NET, &["modify", "--add-reserved-ips", &ip, "big"]);
                    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{ip}: {}", r.stdout);
                    assert!(
                        feedback(&r.stdout, "WARNING").is_empty(),
                        "{ip}: {}",
                        r.stdout
                    );
                }
            });
        }
    });
    let want: BTreeSet<Ipv4Addr> = (0..WORKERS)
        .flat_map(|w| {
            (0..PER_WORKER).map(move |k| Ipv4Addr::new(10, 128, w as u8 + 1, k as u8 + 1))
        })
        .chain([
            Ipv4Addr::new(10, 128, 0, 0),
            Ipv4Addr::new(10, 128, 255, 255),
        ])
        .collect();
    let listed: BTreeSet<Ipv4Addr> = c
        .net_field("big", "external_reservations")
        .split(", ")
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(listed.len(), WORKERS * PER_WORKER + 2);
    assert_eq!(listed, want);
    assert_eq!(c.net_field("big", "free_count"), (65536 - 802).to_string());
    let cfg = c.parsed();
    assert_eq!(cfg.networks.len(), 1);
    assert_eq!(
        c.serial(),
        serial0 + (WORKERS * PER_WORKER) as u64,
        "one serial step per command"
    );
    let net = cfg.networks.values().next().unwrap();
    assert_eq!(net.serial_no, 1 + (WORKERS * PER_WORKER) as u64);
}

/// Issue 3: 8 processes × 100 `gnt-instance add --net 0:ip=pool,network=N` at once.
#[test]
fn concurrent_pool_allocations_never_collide() {
    let c = Cluster::new();
    c.add_net("N", "10.64.0.0/22", "10.64.0.1");
    c.ok(NET, &["connect", "-N", "link=br0", "N"]);
    let serial0 = c.serial();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let c = &c;
            s.spawn(move || {
                for j in 0..PER_WORKER {
                    let name = format!("inst{w}_{j}");
                    let r = c.cmd(INST, &["add", "--net", "0:ip=pool,network=N", &name]);
                    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{name}: {}", r.stdout);
                }
            });
        }
    });
    let cfg = c.parsed();
    assert_eq!(cfg.instances.len(), WORKERS * PER_WORKER);
    let ips: BTreeSet<Ipv4Addr> = cfg
        .instances
        .all_decoded()
        .values()
        .map(|i| i.nics[0].ipv4().expect("pool address"))
        .collect();
    let macs: BTreeSet<String> = cfg
        .instances
        .all_decoded()
        .values()
        .map(|i| i.nics[0].mac.to_string())
        .collect();
    assert_eq!(ips.len(), WORKERS * PER_WORKER, "distinct IPs");
    assert_eq!(macs.len(), WORKERS * PER_WORKER, "distinct MACs");
    // Lowest-first allocation: exactly .2 up to the 801st host address.
    let first = u32::from(Ipv4Addr::new(10, 64, 0, 2));
    let want: BTreeSet<Ipv4Addr> = (first..first + (WORKERS * PER_WORKER) as u32)
        .map(Ipv4Addr::from)
        .collect();
    assert_eq!(ips, want);
    for m in &macs {
        assert!(m.starts_with("aa:00:00:"), "{m}");
    }
    // The pool agrees with the NICs.
    let net = cfg.networks.values().next().unwrap();
    for ip in &ips {
        assert!(
            net.pool
                .as_ref()
                .unwrap()
                .is_reserved(*ip, netconf_cluster::pool::Kind::Instance)
                .unwrap(),
            "{ip} marked used"
        );
    }
    assert_eq!(c.net_field("N", "free_count"), (1024 - 3 - 800).to_string());
    assert_eq!(c.net_field("N", "inst_cnt"), "800");
    assert_eq!(c.serial(), serial0 + 800);
}

/// With pre hooks the command runs its checks on a snapshot; the hook must still see the
/// values that end up committed, even when other commands commit in between.
#[test]
fn concurrent_adds_with_pre_hooks_show_hooks_the_committed_values() {
    let c = Cluster::new();
    c.ok(NET, &["add", "--network", "10.65.0.0/24", "N"]);
    c.ok(NET, &["connect", "-N", "link=br0", "N"]);
    let seen = c.dir.path().join("seen");
    std::fs::create_dir(&seen).unwrap();
    c.hook(
        "instance-add",
        "pre",
        "10-seen",
        &format!("echo \"$GANETI_INSTANCE_NIC0_IP $GANETI_INSTANCE_NIC0_MAC $GANETI_INSTANCE_NIC0_UUID\" > '{}'/$GANETI_INSTANCE_NAME", seen.display()),
    );
    std::thread::scope(|s| {
        for w in 0..4 {
            let c = &c;
            s.spawn(move || {
                for j in 0..15 {
                    let name = format!("h{w}_{j}");
                    let r = c.cmd(INST, &["add", "--net", "0:ip=pool,network=N", &name]);
                    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{name}");
                }
            });
        }
    });
    let cfg = c.parsed();
    assert_eq!(cfg.instances.len(), 60);
    for i in cfg.instances.all_decoded().values() {
        let nic = &i.nics[0];
        let got = std::fs::read_to_string(seen.join(i.name.as_str())).unwrap();
        assert_eq!(
            got.trim_end(),
            format!("{} {} {}", nic.ip.unwrap(), nic.mac, nic.uuid),
            "{}: the pre hook's values are the committed ones",
            i.name
        );
    }
}
