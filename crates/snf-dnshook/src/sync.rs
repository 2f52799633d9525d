//! The hook's main loop: read, plan, send one UPDATE per zone; when a prerequisite fails
//! because someone changed the records meanwhile, read and plan again.

use std::io::Write;

use anyhow::Result;

use crate::client::{Client, RcodeError};
use crate::config::Config;
use crate::hookenv::{Action, Nic};
use crate::plan::{self, Dns};
use crate::update::ZoneUpdate;

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

/// Brings the server in line with the NICs. Prints the UPDATEs (dry run) or one line per
/// zone updated to `out`; notes for `--verbose` go to `log`.
pub fn sync(
    cfg: &Config,
    server: &dyn Server,
    job: &Job<'_>,
    opts: &Options,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    for round in 1..=ROUNDS {
        let updates = plan::plan(cfg, server, job.instance, job.action, job.nics)?;
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
                Err(e) => return Err(e),
            }
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
            }
        }
    }
    unreachable!("the last round returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::update::Rd;
    use std::path::Path;

    fn cfg() -> Config {
        Config::parse(
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
            fn lookup(&self, n: &str, t: crate::update::RType) -> Result<crate::update::RrSet> {
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
}
