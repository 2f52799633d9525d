//! One RFC 2136 UPDATE for one zone: the prerequisites (the RRsets as they were read) and
//! the changes, rendered as an nsupdate-style script or encoded with hickory-proto.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// The record data this hook manages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rd {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Absolute, lower-case target name.
    Ptr(String),
}

/// An RRset as read from the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RrSet {
    pub rds: Vec<Rd>,
    /// The TTL the server gives it (`None` when empty).
    pub ttl: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RType {
    A,
    Aaaa,
    Ptr,
}

impl RType {
    pub fn hickory(self) -> RecordType {
        match self {
            RType::A => RecordType::A,
            RType::Aaaa => RecordType::AAAA,
            RType::Ptr => RecordType::PTR,
        }
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RType::A => "A",
            RType::Aaaa => "AAAA",
            RType::Ptr => "PTR",
        })
    }
}

impl Rd {
    pub fn rtype(&self) -> RType {
        match self {
            Rd::A(_) => RType::A,
            Rd::Aaaa(_) => RType::Aaaa,
            Rd::Ptr(_) => RType::Ptr,
        }
    }

    fn hickory(&self) -> Result<RData> {
        Ok(match self {
            Rd::A(a) => RData::A(A(*a)),
            Rd::Aaaa(a) => RData::AAAA(AAAA(*a)),
            Rd::Ptr(n) => RData::PTR(PTR(name(n)?)),
        })
    }

    /// The data of a received record, if it is of a kind this hook manages.
    pub fn from_hickory(data: &RData) -> Option<Rd> {
        match data {
            RData::A(a) => Some(Rd::A(a.0)),
            RData::AAAA(a) => Some(Rd::Aaaa(a.0)),
            RData::PTR(p) => Some(Rd::Ptr(p.0.to_ascii().to_ascii_lowercase())),
            _ => None,
        }
    }
}

impl fmt::Display for Rd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rd::A(a) => write!(f, "A {a}"),
            Rd::Aaaa(a) => write!(f, "AAAA {a}"),
            Rd::Ptr(n) => write!(f, "PTR {n}"),
        }
    }
}

fn name(s: &str) -> Result<Name> {
    Name::from_ascii(s).with_context(|| format!("invalid DNS name '{s}'"))
}

/// RFC 2136 2.4: the state an RRset must be in for the update to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prereq {
    /// 2.4.3 "RRset does not exist".
    Absent { name: String, rtype: RType },
    /// 2.4.2 "RRset exists (value dependent)": exactly these records.
    Exactly { name: String, rdatas: Vec<Rd> },
}

/// RFC 2136 2.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// 2.5.4 "Delete an RR from an RRset".
    Delete { name: String, rd: Rd },
    /// 2.5.1 "Add to an RRset".
    Add { name: String, ttl: u32, rd: Rd },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneUpdate {
    pub zone: String,
    pub prereqs: Vec<Prereq>,
    pub changes: Vec<Change>,
}

impl ZoneUpdate {
    pub fn counts(&self) -> (usize, usize) {
        let deleted = self
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Delete { .. }))
            .count();
        (deleted, self.changes.len() - deleted)
    }

    /// The UPDATE message (unsigned; TSIG is added to the encoded bytes).
    pub fn to_message(&self, id: u16) -> Result<Message> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Update);
        m.metadata.recursion_desired = false;
        let mut zone = Query::query(name(&self.zone)?, RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        m.add_query(zone);
        for p in &self.prereqs {
            match p {
                Prereq::Absent { name: n, rtype } => {
                    let mut r = Record::update0(name(n)?, 0, rtype.hickory());
                    r.dns_class = DNSClass::NONE;
                    m.add_answer(r);
                }
                Prereq::Exactly { name: n, rdatas } => {
                    for rd in rdatas {
                        // Class = zone class and TTL 0 (2.4.2).
                        m.add_answer(Record::from_rdata(name(n)?, 0, rd.hickory()?));
                    }
                }
            }
        }
        for c in &self.changes {
            match c {
                Change::Delete { name: n, rd } => {
                    let mut r = Record::from_rdata(name(n)?, 0, rd.hickory()?);
                    r.dns_class = DNSClass::NONE;
                    m.add_authority(r);
                }
                Change::Add { name: n, ttl, rd } => {
                    m.add_authority(Record::from_rdata(name(n)?, *ttl, rd.hickory()?));
                }
            }
        }
        Ok(m)
    }
}

/// nsupdate syntax, so an operator can replay a `--dry-run` with `nsupdate -k …`.
impl fmt::Display for ZoneUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "zone {}", self.zone)?;
        for p in &self.prereqs {
            match p {
                Prereq::Absent { name, rtype } => writeln!(f, "prereq nxrrset {name} IN {rtype}")?,
                Prereq::Exactly { name, rdatas } => {
                    for rd in rdatas {
                        writeln!(f, "prereq yxrrset {name} IN {rd}")?;
                    }
                }
            }
        }
        for c in &self.changes {
            match c {
                Change::Delete { name, rd } => writeln!(f, "update delete {name} IN {rd}")?,
                Change::Add { name, ttl, rd } => writeln!(f, "update add {name} {ttl} IN {rd}")?,
            }
        }
        writeln!(f, "send")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ZoneUpdate {
        ZoneUpdate {
            zone: "example.org.".into(),
            prereqs: vec![
                Prereq::Exactly {
                    name: "web1.example.org.".into(),
                    rdatas: vec![Rd::A("198.51.100.10".parse().unwrap())],
                },
                Prereq::Absent {
                    name: "web1.example.org.".into(),
                    rtype: RType::Aaaa,
                },
            ],
            changes: vec![
                Change::Delete {
                    name: "web1.example.org.".into(),
                    rd: Rd::A("198.51.100.10".parse().unwrap()),
                },
                Change::Add {
                    name: "web1.example.org.".into(),
                    ttl: 300,
                    rd: Rd::A("198.51.100.11".parse().unwrap()),
                },
                Change::Add {
                    name: "web1.example.org.".into(),
                    ttl: 300,
                    rd: Rd::Aaaa("2001:db8:1::a800:ff:fe12:3456".parse().unwrap()),
                },
            ],
        }
    }

    #[test]
    fn renders_as_nsupdate_script() {
        assert_eq!(
            sample().to_string(),
            "zone example.org.\n\
             prereq yxrrset web1.example.org. IN A 198.51.100.10\n\
             prereq nxrrset web1.example.org. IN AAAA\n\
             update delete web1.example.org. IN A 198.51.100.10\n\
             update add web1.example.org. 300 IN A 198.51.100.11\n\
             update add web1.example.org. 300 IN AAAA 2001:db8:1:0:a800:ff:fe12:3456\n\
             send\n"
        );
        assert_eq!(sample().counts(), (1, 2));
    }

    /// Encodes, decodes with hickory and checks every section as RFC 2136 lays it out.
    #[test]
    fn encoded_update_has_rfc2136_sections() {
        let bytes = sample().to_message(0x4242).unwrap().to_vec().unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert!(!m.metadata.recursion_desired);
        // Zone section.
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_ascii(), "example.org.");
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        assert_eq!(m.queries[0].query_class(), DNSClass::IN);
        // Prerequisites: value-dependent (IN, TTL 0, data) and "does not exist" (NONE, empty).
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].dns_class, DNSClass::IN);
        assert_eq!(m.answers[0].ttl, 0);
        assert_eq!(
            m.answers[0].data,
            RData::A(A("198.51.100.10".parse().unwrap()))
        );
        assert_eq!(m.answers[1].dns_class, DNSClass::NONE);
        assert_eq!(m.answers[1].record_type(), RecordType::AAAA);
        assert_eq!(m.answers[1].data, RData::Update0(RecordType::AAAA));
        // Updates: delete one RR (NONE, TTL 0), add with TTL in class IN.
        assert_eq!(m.authorities.len(), 3);
        assert_eq!(m.authorities[0].dns_class, DNSClass::NONE);
        assert_eq!(m.authorities[0].ttl, 0);
        assert_eq!(m.authorities[1].dns_class, DNSClass::IN);
        assert_eq!(m.authorities[1].ttl, 300);
        assert_eq!(
            m.authorities[2].data,
            RData::AAAA(AAAA("2001:db8:1::a800:ff:fe12:3456".parse().unwrap()))
        );
        assert!(m.additionals.is_empty());
    }

    #[test]
    fn ptr_records_round_trip() {
        let u = ZoneUpdate {
            zone: "100.51.198.in-addr.arpa.".into(),
            prereqs: vec![],
            changes: vec![Change::Add {
                name: "10.100.51.198.in-addr.arpa.".into(),
                ttl: 60,
                rd: Rd::Ptr("web1.example.org.".into()),
            }],
        };
        let m = Message::from_vec(&u.to_message(1).unwrap().to_vec().unwrap()).unwrap();
        assert_eq!(
            m.authorities[0].name.to_ascii(),
            "10.100.51.198.in-addr.arpa."
        );
        assert_eq!(
            Rd::from_hickory(&m.authorities[0].data),
            Some(Rd::Ptr("web1.example.org.".into()))
        );
    }
}
