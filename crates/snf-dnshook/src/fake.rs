//! An in-memory DNS server for unit tests: records by (name, type), the zones it serves,
//! UPDATEs applied with their prerequisites checked as a server checks them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use crate::client::RcodeError;
use crate::names;
use crate::plan::Dns;
use crate::sync::Server;
use crate::update::{Change, Prereq, RType, Rd, RrSet, ZoneUpdate};

type Hook = Box<dyn Fn(&Fake)>;

#[derive(Default)]
pub struct Fake {
    pub rrs: RefCell<BTreeMap<(String, RType), BTreeSet<Rd>>>,
    pub ttls: RefCell<BTreeMap<(String, RType), u32>>,
    pub zones: Vec<String>,
    /// Refuse UPDATEs of zones not in `zones` with NOTAUTH, as a server does.
    pub only_zones: bool,
    pub updates: Cell<usize>,
    /// Runs before the next UPDATE is applied (a concurrent writer), then is dropped.
    pub before_update: RefCell<Option<Hook>>,
}

impl Dns for Fake {
    fn lookup(&self, name: &str, rtype: RType) -> Result<RrSet> {
        let rds: Vec<Rd> = self.rrset(name, rtype).into_iter().collect();
        let ttl = if rds.is_empty() {
            None
        } else {
            Some(
                self.ttls
                    .borrow()
                    .get(&(name.to_string(), rtype))
                    .copied()
                    .unwrap_or(300),
            )
        };
        Ok(RrSet { rds, ttl })
    }

    fn lookup_in_zone(&self, name: &str, rtype: RType) -> Result<(RrSet, Option<String>)> {
        let rrs = self.lookup(name, rtype)?;
        // A server names the zone (SOA in the authority section) only in empty answers.
        let zone = if rrs.rds.is_empty() {
            self.zone_of(name)?
        } else {
            None
        };
        Ok((rrs, zone))
    }

    fn zone_of(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .zones
            .iter()
            .filter(|z| names::in_zone(name, z))
            .max_by_key(|z| z.len())
            .cloned())
    }
}

impl Server for Fake {
    fn update(&self, u: &ZoneUpdate) -> Result<()> {
        if let Some(h) = self.before_update.borrow_mut().take() {
            h(self);
        }
        self.updates.set(self.updates.get() + 1);
        self.apply(u)
    }
}

impl Fake {
    pub fn set(&self, name: &str, rds: &[Rd]) {
        let mut rrs = self.rrs.borrow_mut();
        for rd in rds {
            rrs.entry((name.to_string(), rd.rtype()))
                .or_default()
                .insert(rd.clone());
        }
    }

    fn rrset(&self, name: &str, rtype: RType) -> BTreeSet<Rd> {
        self.rrs
            .borrow()
            .get(&(name.to_string(), rtype))
            .cloned()
            .unwrap_or_default()
    }

    /// Applies an update as a server would: all prerequisites first, else NXRRSET/YXRRSET.
    pub fn apply(&self, u: &ZoneUpdate) -> Result<()> {
        let fail = |rcode| RcodeError {
            what: format!("UPDATE of zone {}", u.zone),
            server: "127.0.0.1:53".parse().expect("constant"),
            rcode,
            tsig_error: None,
            key: None,
        };
        if self.only_zones && !self.zones.contains(&u.zone) {
            return Err(fail(9).into());
        }
        for p in &u.prereqs {
            match p {
                Prereq::Absent { name, rtype } => {
                    if !self.rrset(name, *rtype).is_empty() {
                        return Err(fail(7).into());
                    }
                }
                Prereq::Exactly { name, rdatas } => {
                    let want: BTreeSet<Rd> = rdatas.iter().cloned().collect();
                    if self.rrset(name, rdatas[0].rtype()) != want {
                        return Err(fail(8).into());
                    }
                }
            }
        }
        let mut rrs = self.rrs.borrow_mut();
        for c in &u.changes {
            match c {
                Change::Delete { name, rd } => {
                    rrs.entry((name.clone(), rd.rtype()))
                        .or_default()
                        .remove(rd);
                }
                Change::Add { name, rd, ttl } => {
                    rrs.entry((name.clone(), rd.rtype()))
                        .or_default()
                        .insert(rd.clone());
                    self.ttls
                        .borrow_mut()
                        .insert((name.clone(), rd.rtype()), *ttl);
                }
            }
        }
        rrs.retain(|_, s| !s.is_empty());
        Ok(())
    }

    pub fn dump(&self) -> Vec<String> {
        self.rrs
            .borrow()
            .iter()
            .flat_map(|((n, _), s)| s.iter().map(move |rd| format!("{n} {rd}")))
            .collect()
    }
}
