//! Failures against a real BIND `named`: each gives a clear message naming the cause (the
//! server's RCODE / TSIG error) and exit status 1. Also every TSIG algorithm BIND supports,
//! and keys read from BIND key files.

mod support;

use std::net::UdpSocket;

use support::*;

const FWD: &str = "example.org";
const REV4: &str = "100.51.198.in-addr.arpa";

const NIC: Nic = Nic {
    ip: Some("198.51.100.10"),
    mac: "aa:00:00:12:34:56",
    network: "pub4",
    subnet: Some("198.51.100.0/24"),
    subnet6: None,
    tags: "public",
};

fn add(name: &str) -> Vec<(String, String)> {
    ganeti_env("OP_INSTANCE_CREATE", "post", name, None, NODE, &[NIC])
}

fn key_config(port: u16, extra: &str, tsig: &str) -> String {
    format!(
        "server = \"127.0.0.1\"\nport = {port}\ntimeout = 2\nzone = \"{FWD}\"\n{extra}\n[tsig]\n{tsig}\n"
    )
}

#[test]
fn wrong_secret_is_badsig() {
    if skip_reason("wrong_secret_is_badsig").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4)], &[KEY]);
    let hook = named.hook("bad.toml",
        &key_config(
            named.port,
            "",
            &format!(
                "name = \"{}\"\nalgorithm = \"{}\"\nsecret = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
                KEY.name, KEY.algorithm
            ),
        ),
    );
    let err = hook.fails(&add("web1"));
    assert!(err.contains("NOTAUTH (BADSIG)"), "{err}");
    assert!(err.contains("wrong secret"), "{err}");
    assert!(named.zone_records(FWD).is_empty());
}

#[test]
fn unknown_key_is_badkey() {
    if skip_reason("unknown_key_is_badkey").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4)], &[KEY]);
    let hook = named.hook(
        "bad.toml",
        &key_config(
            named.port,
            "",
            &format!(
                "name = \"no-such-key\"\nalgorithm = \"{}\"\nsecret = \"{}\"",
                KEY.algorithm, KEY.secret
            ),
        ),
    );
    let err = hook.fails(&add("web1"));
    assert!(err.contains("NOTAUTH (BADKEY)"), "{err}");
    assert!(err.contains("'no-such-key'"), "{err}");
}

#[test]
fn unknown_zone_is_refused() {
    if skip_reason("unknown_zone_is_refused").is_none() {
        return;
    }
    let named = Named::start(&[Zone::new(FWD), Zone::new(REV4)], &[KEY]);
    let hook = named.hook(
        "dnshook.toml",
        &config(named.port, "zone = \"nowhere.test\""),
    );
    let err = hook.fails(&add("web1"));
    assert!(err.contains("web1.nowhere.test."), "{err}");
    assert!(err.contains("REFUSED"), "{err}");
    assert!(err.contains("does not serve this zone"), "{err}");
}

/// The zone exists but does not accept updates from our key: the UPDATE itself fails.
#[test]
fn update_refused_by_policy() {
    if skip_reason("update_refused_by_policy").is_none() {
        return;
    }
    let locked = Zone {
        name: FWD,
        keys: vec![],
    };
    let named = Named::start(&[locked, Zone::new(REV4)], &[KEY]);
    let hook = named.hook(
        "dnshook.toml",
        &config(named.port, &format!("zone = \"{FWD}\"")),
    );
    let err = hook.fails(&add("web1"));
    assert!(err.contains("UPDATE of zone example.org."), "{err}");
    assert!(err.contains("REFUSED"), "{err}");
    // The reverse zone went first and holds the PTR; the next successful run (or a
    // remove) fixes both sides.
    assert!(named.zone_records(FWD).is_empty());
}

/// Without `[tsig]` the hook sends unsigned requests (the server allows by address).
#[test]
fn unsigned_updates_without_a_key() {
    if skip_reason("unsigned_updates_without_a_key").is_none() {
        return;
    }
    let by_address = |name| Zone {
        name,
        keys: vec!["127.0.0.1"],
    };
    let named = Named::start(&[by_address(FWD), by_address(REV4)], &[KEY]);
    let hook = named.hook(
        "dnshook.toml",
        &format!(
            "server = \"127.0.0.1\"\nport = {}\nzone = \"{FWD}\"\ntimeout = 2\n",
            named.port
        ),
    );
    hook.ok(&add("web1"));
    assert_eq!(named.dig("web1.example.org", "A"), ["198.51.100.10"]);
    assert_eq!(
        named.dig("10.100.51.198.in-addr.arpa", "PTR"),
        ["web1.example.org."]
    );
}

#[test]
fn unreachable_server_fails_after_retries() {
    if skip_reason("unreachable_server_fails_after_retries").is_none() {
        return;
    }
    // A namespace of its own: nothing listens on this port of its 127.0.0.1 once the
    // socket is closed.
    let ns = netns();
    let port = ns.run(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    });
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::new(
        &ns,
        dir.path(),
        "dnshook.toml",
        &format!(
            "server = \"127.0.0.1\"\nport = {port}\nzone = \"{FWD}\"\ntimeout = 0.3\n\
             attempts = 3\nbackoff = 0.05\n"
        ),
    );
    let err = hook.fails(&add("web1"));
    assert!(
        err.contains(&format!(
            "no usable answer from 127.0.0.1:{port} after 3 attempt(s)"
        )),
        "{err}"
    );
    assert!(
        err.contains("onnection refused") || err.contains("no answer within"),
        "{err}"
    );
}

/// A server that never answers (a bound socket nobody reads): timeouts, then failure.
#[test]
fn silent_server_times_out() {
    if skip_reason("silent_server_times_out").is_none() {
        return;
    }
    // Bound in the namespace the hook runs in: only the hook's datagrams can reach it.
    let ns = netns();
    let sink = ns.run(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    let port = sink.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::new(
        &ns,
        dir.path(),
        "dnshook.toml",
        &format!(
            "server = \"127.0.0.1\"\nport = {port}\nzone = \"{FWD}\"\ntimeout = 0.2\n\
             attempts = 2\nbackoff = 0.05\n"
        ),
    );
    let err = hook.fails(&add("web1"));
    assert!(err.contains("after 2 attempt(s)"), "{err}");
    assert!(err.contains("no answer within 200ms"), "{err}");
    // Both attempts reached the "server".
    let mut buf = [0u8; 512];
    sink.set_nonblocking(true).unwrap();
    let mut got = 0;
    while sink.recv(&mut buf).is_ok() {
        got += 1;
    }
    assert_eq!(got, 2, "datagrams received by the silent server");
}

const ALG_KEYS: [TestKey; 5] = [
    TestKey {
        name: "k-md5",
        algorithm: "hmac-md5",
        secret: "c2VjcmV0LW1kNS1rZXktZm9yLXRlc3Rz",
    },
    TestKey {
        name: "k-sha1",
        algorithm: "hmac-sha1",
        secret: "c2VjcmV0LXNoYTEta2V5LWZvci10ZXN0cw==",
    },
    TestKey {
        name: "k-sha224",
        algorithm: "hmac-sha224",
        secret: "c2VjcmV0LXNoYTIyNC1rZXktZm9yLXRlc3Rz",
    },
    TestKey {
        name: "k-sha384",
        algorithm: "hmac-sha384",
        secret: "c2VjcmV0LXNoYTM4NC1rZXktZm9yLXRlc3RzLXRoYXQtaXMtbG9uZ2Vy",
    },
    TestKey {
        name: "k-sha512",
        algorithm: "hmac-sha512",
        secret: "c2VjcmV0LXNoYTUxMi1rZXktZm9yLXRlc3RzLXRoYXQtaXMtZXZlbi1sb25nZXItc3RpbGw=",
    },
];

/// Every HMAC algorithm BIND offers, from the config file, a `tsig-keygen` key file and a
/// `dnssec-keygen` .private file.
#[test]
fn every_bind_tsig_algorithm_and_key_files() {
    if skip_reason("every_bind_tsig_algorithm_and_key_files").is_none() {
        return;
    }
    let mut fwd = Zone::new(FWD);
    let mut rev = Zone::new(REV4);
    for k in &ALG_KEYS {
        fwd.keys.push(k.name);
        rev.keys.push(k.name);
    }
    let keys = [
        KEY,
        ALG_KEYS[0].clone(),
        ALG_KEYS[1].clone(),
        ALG_KEYS[2].clone(),
        ALG_KEYS[3].clone(),
        ALG_KEYS[4].clone(),
    ];
    let named = Named::start(&[fwd, rev], &keys);
    let dir = named.dir.path();
    let mut expected = Vec::new();
    for (i, k) in ALG_KEYS.iter().enumerate() {
        let tsig = match i {
            // tsig-keygen output, referenced relative to the config file.
            0 => {
                std::fs::write(
                    dir.join("md5.key"),
                    format!(
                        "key \"{}\" {{\n\talgorithm {};\n\tsecret \"{}\";\n}};\n",
                        k.name, k.algorithm, k.secret
                    ),
                )
                .unwrap();
                "key_file = \"md5.key\"".to_string()
            }
            // dnssec-keygen's private file: the name comes from the file name.
            1 => {
                let path = dir.join(format!("K{}.+161+01234.private", k.name));
                std::fs::write(
                    &path,
                    format!(
                        "Private-key-format: v1.3\nAlgorithm: 161 (HMAC_SHA1)\nKey: {}\nBits: AAA=\n",
                        k.secret
                    ),
                )
                .unwrap();
                format!("key_file = \"{}\"", path.display())
            }
            _ => format!(
                "name = \"{}\"\nalgorithm = \"{}\"\nsecret = \"{}\"",
                k.name, k.algorithm, k.secret
            ),
        };
        let hook = named.hook(&format!("alg{i}.toml"), &key_config(named.port, "", &tsig));
        let name = format!("alg{i}");
        let ip = [
            "198.51.100.100",
            "198.51.100.101",
            "198.51.100.102",
            "198.51.100.103",
            "198.51.100.104",
        ][i];
        let nic = Nic {
            ip: Some(ip),
            ..NIC
        };
        hook.ok(&ganeti_env(
            "OP_INSTANCE_CREATE",
            "post",
            &name,
            None,
            NODE,
            &[nic],
        ));
        assert_eq!(
            named.dig(&format!("{name}.{FWD}"), "A"),
            [ip],
            "key {} ({})",
            k.name,
            k.algorithm
        );
        expected.push(format!("{name}.{FWD}. A {ip}"));
    }
    assert_eq!(
        named.zone_records(FWD),
        strings(&expected.iter().map(String::as_str).collect::<Vec<_>>())
    );
    assert_eq!(named.zone_records(REV4).len(), 5);
}
