//! The hook's main loop: read, plan, send one UPDATE per zone; when a prerequisite fails
//! because someone changed the records meanwhile, read and plan again.

use std::io::Write;

use anyhow::Result;

use crate::client::{Client, NOTAUTH, NOTZONE, RcodeError};
use crate::config::DnsHookSettings;
use crate::hookenv::{Action, Nic};
use crate::plan::{self, Dns, Learned};
use crate::update::{Change, RType, ZoneUpdate};

/// Rounds of read-plan-update when prerequisites fail because of concurrent changes.
pub const ROUNDS: usize = 3;

/// A server that also takes UPDATEs.
pub trait Server: Dns {
    fn update(&self, u: &ZoneUpdate) -> Result<()>;
}

impl Server for Client {
    fn update(&self, u: &ZoneUpdate) -> Result<()> {
        Client::update(self, u)
    }
}

/// What the hook was asked to do, for which instance and NICs.
pub struct Job<'a> {
    pub instance: &'a str,
    pub action: &'a Action,
    pub nics: &'a [Nic],
}

pub struct Options {
    pub dry_run: bool,
    pub verbose: bool,
}

/// The server refused an UPDATE of a reverse zone the hook derived (not one configured)
/// because it does not serve that zone: asks the server which zone holds each name and
/// learns it. False when that taught nothing new (the error stands).
fn relearn(
    cfg: &DnsHookSettings,
    server: &dyn Server,
    u: &ZoneUpdate,
    e: &anyhow::Error,
    learned: &mut Learned,
) -> Result<bool> {
    // NOTAUTH also carries TSIG failures (BADSIG, BADKEY, BADTIME): not about the zone.
    let not_served = e
        .downcast_ref::<RcodeError>()
        .is_some_and(|r| r.tsig_error.is_none() && (r.rcode == NOTAUTH || r.rcode == NOTZONE));
    let configured = cfg.explicit_reverse_zones().contains(&u.zone.as_str());
    let reverse = u.changes.iter().all(|c| match c {
        Change::Delete { rd, .. } | Change::Add { rd, .. } => rd.rtype() == RType::Ptr,
    });
    if !not_served || configured || !reverse {
        return Ok(false);
    }
    let mut names: Vec<&str> = u
        .changes
        .iter()
        .map(|c| match c {
            Change::Delete { name, .. } | Change::Add { name, .. } => name.as_str(),
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut any = false;
    for name in names {
        if let Some(z) = server.zone_of(name)? {
            any |= learned.learn(name, &u.zone, &z);
        }
    }
    Ok(any)
}

/// Brings the server in line with the NICs. Prints the UPDATEs (dry run) or one line per
/// zone updated to `out`; notes for `--verbose` go to `log`, and so does every reverse zone
/// learned from the server, verbose or not.
pub fn sync(
    cfg: &DnsHookSettings,
    server: &dyn Server,
    job: &Job<'_>,
    opts: &Options,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    let mut learned = Learned::default();
    let mut noted = 0;
    let mut round = 1;
    // Each zone learned re-plans without using up a round; a name is learned at most once
    // per zone the server names, so this ends, but bound it all the same.
    let mut relearned = 0;
    loop {
        let planned = plan::plan_learning(
            cfg,
            server,
            job.instance,
            job.action,
            job.nics,
            &mut learned,
        );
        for n in &learned.notes[noted..] {
            writeln!(log, "snf-dnshook: {}: {n}", job.instance)?;
        }
        noted = learned.notes.len();
        let updates = planned?;
        if updates.is_empty() {
            if opts.verbose {
                writeln!(
                    log,
                    "snf-dnshook: {}: DNS records are up to date",
                    job.instance
                )?;
            }
            return Ok(());
        }
        if opts.dry_run {
            for u in &updates {
                write!(out, "{u}")?;
            }
            return Ok(());
        }
        let mut conflict = None;
        let mut learnt = false;
        for u in &updates {
            plan::check(u)?;
            if opts.verbose {
                write!(log, "{u}")?;
            }
            match server.update(u) {
                Ok(()) => {
                    let (deleted, added) = u.counts();
                    writeln!(
                        out,
                        "zone {}: deleted {deleted}, added {added} record(s)",
                        u.zone
                    )?;
                }
                Err(e)
                    if e.downcast_ref::<RcodeError>()
                        .is_some_and(RcodeError::is_prerequisite_failure) =>
                {
                    conflict = Some(e);
                    break;
                }
                Err(e) => {
                    if relearned < 16 && relearn(cfg, server, u, &e, &mut learned)? {
                        for n in &learned.notes[noted..] {
                            writeln!(log, "snf-dnshook: {}: {n}", job.instance)?;
                        }
                        noted = learned.notes.len();
                        relearned += 1;
                        learnt = true;
                        break;
                    }
                    return Err(e);
                }
            }
        }
        if learnt {
            continue;
        }
        match conflict {
            None => return Ok(()),
            Some(e) if round == ROUNDS => {
                return Err(e.context(format!("the records kept changing during {ROUNDS} rounds")));
            }
            Some(e) => {
                if opts.verbose {
                    writeln!(log, "snf-dnshook: {e:#}; reading the records again")?;
                }
                round += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::update::Rd;
    use std::path::Path;

    fn cfg() -> DnsHookSettings {
        DnsHookSettings::parse(
            "server = \"127.0.0.1\"\nzone = \"example.org\"\nptr = false\n",
            Path::new("/"),
        )
        .unwrap()
    }

    fn nic(ip: &str) -> Nic {
        Nic {
            ip: Some(ip.parse().unwrap()),
            tags: vec!["public".into()],
            ..Nic::default()
        }
    }

    fn run(f: &Fake, nics: &[Nic]) -> Result<String> {
        let mut out = Vec::new();
        let mut log = Vec::new();
        let opts = Options {
            dry_run: false,
            verbose: true,
        };
        let job = Job {
            instance: "web1",
            action: &Action::Modify,
            nics,
        };
        sync(&cfg(), f, &job, &opts, &mut out, &mut log)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_concurrent_change_is_read_again_and_fixed() {
        let f = Fake::default();
        f.set(
            "web1.example.org.",
            &[Rd::A("198.51.100.1".parse().unwrap())],
        );
        // Between our read and our UPDATE someone adds another address.
        *f.before_update.borrow_mut() = Some(Box::new(|f: &Fake| {
            f.set(
                "web1.example.org.",
                &[Rd::A("198.51.100.99".parse().unwrap())],
            );
        }));
        let out = run(&f, &[nic("198.51.100.2")]).unwrap();
        assert_eq!(f.dump(), ["web1.example.org. A 198.51.100.2"]);
        // First UPDATE refused by its prerequisite, the second (after reading again) applied.
        assert_eq!(f.updates.get(), 2);
        assert_eq!(out, "zone example.org.: deleted 2, added 1 record(s)\n");
    }

    #[test]
    fn nothing_to_do_sends_nothing() {
        let f = Fake::default();
        f.set(
            "web1.example.org.",
            &[Rd::A("198.51.100.2".parse().unwrap())],
        );
        assert_eq!(run(&f, &[nic("198.51.100.2")]).unwrap(), "");
        assert_eq!(f.updates.get(), 0);
    }

    #[test]
    fn gives_up_after_the_last_round() {
        struct Flapping(Fake);
        impl Dns for Flapping {
            fn lookup(&self, n: &str, t: RType) -> Result<crate::update::RrSet> {
                self.0.lookup(n, t)
            }
            fn zone_of(&self, n: &str) -> Result<Option<String>> {
                self.0.zone_of(n)
            }
        }
        // Every UPDATE finds the records changed again.
        impl Server for Flapping {
            fn update(&self, u: &ZoneUpdate) -> Result<()> {
                let n = self.0.updates.get();
                self.0.set(
                    "web1.example.org.",
                    &[Rd::A(format!("198.51.100.{}", 100 + n).parse().unwrap())],
                );
                self.0.updates.set(n + 1);
                self.0.apply(u)
            }
        }
        let f = Flapping(Fake::default());
        let mut out = Vec::new();
        let mut log = Vec::new();
        let opts = Options {
            dry_run: false,
            verbose: false,
        };
        let nics = [nic("198.51.100.2")];
        let job = Job {
            instance: "web1",
            action: &Action::Modify,
            nics: &nics,
        };
        let e = sync(&cfg(), &f, &job, &opts, &mut out, &mut log).unwrap_err();
        assert_eq!(f.0.updates.get(), ROUNDS);
        let msg = format!("{e:#}");
        assert!(msg.contains("kept changing during 3 rounds"), "{msg}");
        assert!(msg.contains("NXRRSET"), "{msg}");
    }

    #[test]
    fn a_wider_reverse_zone_is_learned_from_the_server() {
        // The server serves 51.198.in-addr.arpa (a /16), not the /24 derived from the NIC.
        let f = Fake {
            zones: vec!["example.org.".into(), "51.198.in-addr.arpa.".into()],
            only_zones: true,
            ..Fake::default()
        };
        // A stale PTR, whose read shows no SOA: only the UPDATE's NOTAUTH tells.
        f.set(
            "web1.example.org.",
            &[Rd::A("198.51.100.1".parse().unwrap())],
        );
        f.set(
            "1.100.51.198.in-addr.arpa.",
            &[Rd::Ptr("web1.example.org.".into())],
        );
        let cfg = DnsHookSettings::parse(
            "server = \"127.0.0.1\"\nzone = \"example.org\"\n",
            Path::new("/"),
        )
        .unwrap();
        let nics = [Nic {
            subnet: Some("198.51.100.0/24".parse().unwrap()),
            ..nic("198.51.100.2")
        }];
        let job = Job {
            instance: "web1",
            action: &Action::Modify,
            nics: &nics,
        };
        let opts = Options {
            dry_run: false,
            verbose: false,
        };
        let (mut out, mut log) = (Vec::new(), Vec::new());
        sync(&cfg, &f, &job, &opts, &mut out, &mut log).unwrap();
        assert_eq!(
            f.dump(),
            [
                "2.100.51.198.in-addr.arpa. PTR web1.example.org.",
                "web1.example.org. A 198.51.100.2"
            ]
        );
        let log = String::from_utf8(log).unwrap();
        // Learned once from the new PTR's read (SOA), once from the stale one's NOTAUTH.
        assert_eq!(log.matches("is not served").count(), 2, "{log}");
        assert!(
            log.contains(
                "web1: reverse zone 100.51.198.in-addr.arpa. is not served; the server puts \
                 1.100.51.198.in-addr.arpa. in zone 51.198.in-addr.arpa.: using it"
            ),
            "{log}"
        );
    }

    #[test]
    fn only_a_zone_refusal_makes_the_zone_asked_for() {
        let f = Fake {
            zones: vec!["51.198.in-addr.arpa.".into()],
            ..Fake::default()
        };
        let cfg = DnsHookSettings::parse("server = \"127.0.0.1\"\n", Path::new("/")).unwrap();
        let u = ZoneUpdate {
            zone: "100.51.198.in-addr.arpa.".into(),
            prereqs: Vec::new(),
            changes: vec![Change::Delete {
                name: "1.100.51.198.in-addr.arpa.".into(),
                rd: Rd::Ptr("web1.example.org.".into()),
            }],
        };
        let err = |rcode, tsig_error| -> anyhow::Error {
            RcodeError {
                what: "UPDATE".into(),
                server: "127.0.0.1:53".parse().unwrap(),
                rcode,
                tsig_error,
                key: Some("k".into()),
            }
            .into()
        };
        let mut learned = Learned::default();
        // NOTAUTH with BADSIG is the key's fault, REFUSED the server's policy.
        for e in [err(NOTAUTH, Some(16)), err(5, None)] {
            assert!(!relearn(&cfg, &f, &u, &e, &mut learned).unwrap());
        }
        assert!(learned.zones.is_empty());
        assert!(relearn(&cfg, &f, &u, &err(NOTZONE, None), &mut learned).unwrap());
        assert_eq!(
            learned.zones["1.100.51.198.in-addr.arpa."],
            "51.198.in-addr.arpa."
        );
        // Asked again, the server names the same zone: nothing new, the error stands.
        let u2 = ZoneUpdate {
            zone: "51.198.in-addr.arpa.".into(),
            ..u
        };
        assert!(!relearn(&cfg, &f, &u2, &err(NOTAUTH, None), &mut learned).unwrap());
    }
}
