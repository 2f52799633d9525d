//! The protocol pieces against a real BIND `named`: prerequisites as BIND enforces them,
//! signed answers verified, and an UPDATE too large for a 512-octet datagram (sent over TCP).

mod support;

use std::time::Duration;

use snf_dnshook::client::{Client, RcodeError};
use snf_dnshook::keyfile::decode_secret;
use snf_dnshook::tsig::Key;
use snf_dnshook::update::{Change, Prereq, RType, Rd, ZoneUpdate};
use support::*;

const FWD: &str = "example.org";

fn client(port: u16) -> Client {
    Client {
        servers: vec![format!("127.0.0.1:{port}").parse().unwrap()],
        key: Some(Key {
            name: KEY.name.into(),
            algorithm: KEY.algorithm.parse().unwrap(),
            secret: decode_secret(KEY.secret).unwrap(),
            fudge: 300,
        }),
        timeout: Duration::from_secs(2),
        attempts: 2,
        backoff: Duration::from_millis(50),
    }
}

fn a(ip: &str) -> Rd {
    Rd::A(ip.parse().unwrap())
}

fn rcode_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<RcodeError>()
        .unwrap_or_else(|| panic!("not an RCODE error: {e:#}"))
        .rcode
}

#[test]
fn bind_enforces_the_prerequisites_we_send() {
    if skip_reason("bind_enforces_the_prerequisites_we_send").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD)], &[KEY]);
    // The client's sockets must live in the server's namespace.
    named.run(|| prerequisites(&named));
}

fn prerequisites(named: &Named) {
    let c = client(named.port);
    let name = "web1.example.org.";
    let add = |prereqs: Vec<Prereq>, rd: Rd| ZoneUpdate {
        zone: "example.org.".into(),
        prereqs,
        changes: vec![Change::Add {
            name: name.into(),
            ttl: 300,
            rd,
        }],
    };
    // "Exactly {198.51.100.1}" on an empty name: NXRRSET, nothing added.
    let e = c
        .update(&add(
            vec![Prereq::Exactly {
                name: name.into(),
                rdatas: vec![a("198.51.100.1")],
            }],
            a("198.51.100.2"),
        ))
        .unwrap_err();
    assert_eq!(rcode_of(&e), 8, "{e:#}");
    assert!(
        e.downcast_ref::<RcodeError>()
            .unwrap()
            .is_prerequisite_failure()
    );
    assert!(format!("{e}").contains("NXRRSET"), "{e}");
    assert!(named.dig(name, "A").is_empty());

    // "Absent" holds: applied.
    let absent = || Prereq::Absent {
        name: name.into(),
        rtype: RType::A,
    };
    c.update(&add(vec![absent()], a("198.51.100.1"))).unwrap();
    assert_eq!(named.dig(name, "A"), ["198.51.100.1"]);
    // Now it does not: YXRRSET.
    let e = c
        .update(&add(vec![absent()], a("198.51.100.3")))
        .unwrap_err();
    assert_eq!(rcode_of(&e), 7, "{e:#}");

    // Value-dependent: a superset or subset of the RRset does not match.
    c.update(&add(vec![], a("198.51.100.4"))).unwrap();
    let e = c
        .update(&add(
            vec![Prereq::Exactly {
                name: name.into(),
                rdatas: vec![a("198.51.100.1")],
            }],
            a("198.51.100.5"),
        ))
        .unwrap_err();
    assert_eq!(rcode_of(&e), 8, "{e:#}");
    c.update(&add(
        vec![Prereq::Exactly {
            name: name.into(),
            rdatas: vec![a("198.51.100.1"), a("198.51.100.4")],
        }],
        a("198.51.100.5"),
    ))
    .unwrap();
    assert_eq!(
        named.dig(name, "A"),
        ["198.51.100.1", "198.51.100.4", "198.51.100.5"]
    );
    // Queries read the same thing back (signed, answer signature verified).
    let got = c.lookup(name, RType::A).unwrap();
    assert_eq!(got.ttl, Some(300));
    let mut got = got.rds;
    got.sort();
    assert_eq!(
        got,
        [a("198.51.100.1"), a("198.51.100.4"), a("198.51.100.5")]
    );
    assert_eq!(
        c.zone_of("x.y.example.org.").unwrap().as_deref(),
        Some("example.org.")
    );
    assert_eq!(c.zone_of("other.test.").unwrap(), None);
}

/// 40 addresses: the UPDATE is well over 512 octets and goes over TCP.
#[test]
fn large_update_over_tcp() {
    if skip_reason("large_update_over_tcp").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD)], &[KEY]);
    named.run(|| large_update(&named));
}

fn large_update(named: &Named) {
    let c = client(named.port);
    let changes: Vec<Change> = (1..=40)
        .map(|i| Change::Add {
            name: "big.example.org.".into(),
            ttl: 300,
            rd: a(&format!("198.51.100.{i}")),
        })
        .collect();
    let u = ZoneUpdate {
        zone: "example.org.".into(),
        prereqs: vec![Prereq::Absent {
            name: "big.example.org.".into(),
            rtype: RType::A,
        }],
        changes,
    };
    assert!(u.to_message(0).unwrap().to_vec().unwrap().len() > 512);
    c.update(&u).unwrap();
    assert_eq!(named.dig("big.example.org", "A").len(), 40);
    // The answer (about 700 octets) does not fit a 512-octet datagram: BIND sets TC and
    // the client asks again over TCP.
    assert_eq!(
        c.lookup("big.example.org.", RType::A).unwrap().rds.len(),
        40
    );
}
