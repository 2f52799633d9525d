//! Allocation ranges: the parts of a subnet that `ip=pool` may hand out (Ganeti issue
//! #744, "give the cluster .100 to .150 of an existing /24"). A network without ranges
//! allocates from its whole subnet, as in Ganeti.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `FIRST-LAST`, both included, `first <= last`. Whether it fits a subnet is a separate
/// question ([`problems`]): a hand-edited file with a range outside its subnet still parses,
/// and `gnt-cluster verify` names the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocRange {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

/// Why a text is not an allocation range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSyntax(pub String);

impl fmt::Display for RangeSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RangeSyntax {}

impl AllocRange {
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Self> {
        (first <= last).then_some(AllocRange { first, last })
    }

    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last) - u32::from(self.first)) + 1
    }

    /// Never true (a range holds at least one address); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    pub fn overlaps(&self, other: &AllocRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for AllocRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for AllocRange {
    type Err = RangeSyntax;

    fn from_str(s: &str) -> Result<Self, RangeSyntax> {
        let shown = netconf::name::printable(s);
        let (a, b) = s.split_once('-').ok_or_else(|| {
            RangeSyntax(format!(
                "Invalid allocation range '{shown}': expected START-END, two IPv4 addresses"
            ))
        })?;
        let (Ok(first), Ok(last)) = (a.parse::<Ipv4Addr>(), b.parse::<Ipv4Addr>()) else {
            return Err(RangeSyntax(format!(
                "Invalid allocation range '{shown}': expected START-END, two IPv4 addresses"
            )));
        };
        AllocRange::new(first, last).ok_or_else(|| {
            RangeSyntax(format!(
                "Invalid allocation range '{shown}': {first} comes after {last}"
            ))
        })
    }
}

impl Serialize for AllocRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AllocRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What is wrong with `ranges` as the allocation ranges of `net`, in a stable order
/// (empty when nothing is): a range must lie inside the subnet, hold neither its network
/// nor its broadcast address, and overlap no other range. Sentences start in lower case
/// (`gnt-cluster verify` prefixes them; commands capitalise them).
pub fn problems(net: Ipv4Net, ranges: &[AllocRange]) -> Vec<String> {
    let mut out = Vec::new();
    let (network, broadcast) = (net.network(), net.broadcast());
    for r in ranges {
        if !net.contains(&r.first) || !net.contains(&r.last) {
            out.push(format!("allocation range {r} is not inside {net}"));
            continue;
        }
        for (what, ip) in [("network", network), ("broadcast", broadcast)] {
            if r.contains(ip) {
                out.push(format!(
                    "allocation range {r} holds the {what} address {ip} of {net}"
                ));
            }
        }
    }
    let mut sorted = ranges.to_vec();
    sorted.sort();
    // Sorted by first address, a range can only overlap one that starts before it, and the
    // one reaching furthest is the one to compare with.
    let mut reach: Option<AllocRange> = None;
    for r in sorted {
        if let Some(prev) = reach {
            if prev == r {
                out.push(format!("allocation range {r} is given twice"));
            } else if prev.overlaps(&r) {
                out.push(format!("allocation ranges {prev} and {r} overlap"));
            }
            if r.last > prev.last {
                reach = Some(r);
            }
        } else {
            reach = Some(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> AllocRange {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_show() {
        let x = r("198.51.100.100-198.51.100.150");
        assert_eq!(x.to_string(), "198.51.100.100-198.51.100.150");
        assert_eq!(x.len(), 51);
        assert_eq!(r("198.51.100.7-198.51.100.7").len(), 1);
        for bad in [
            "",
            "198.51.100.1",
            "198.51.100.1-",
            "-198.51.100.1",
            "198.51.100.1-x",
            "198.51.100.1 - 198.51.100.2",
            "198.51.100.0/24",
            "2001:db8::1-2001:db8::2",
        ] {
            assert_eq!(
                bad.parse::<AllocRange>().unwrap_err().0,
                format!("Invalid allocation range '{bad}': expected START-END, two IPv4 addresses"),
            );
        }
        assert_eq!(
            "198.51.100.9-198.51.100.2"
                .parse::<AllocRange>()
                .unwrap_err()
                .0,
            "Invalid allocation range '198.51.100.9-198.51.100.2': 198.51.100.9 comes after 198.51.100.2"
        );
        // Control characters of the user's text are shown escaped.
        assert!(
            "a\nb"
                .parse::<AllocRange>()
                .unwrap_err()
                .0
                .contains("'a\\nb'")
        );
    }

    #[test]
    fn problems_name_each_rule() {
        let net: Ipv4Net = "198.51.100.0/24".parse().unwrap();
        assert!(problems(net, &[]).is_empty());
        assert!(
            problems(
                net,
                &[
                    r("198.51.100.1-198.51.100.99"),
                    r("198.51.100.100-198.51.100.254")
                ]
            )
            .is_empty()
        );
        assert_eq!(
            problems(net, &[r("198.51.100.200-198.51.101.10")]),
            ["allocation range 198.51.100.200-198.51.101.10 is not inside 198.51.100.0/24"]
        );
        assert_eq!(
            problems(net, &[r("198.51.100.0-198.51.100.255")]),
            [
                "allocation range 198.51.100.0-198.51.100.255 holds the network address 198.51.100.0 of 198.51.100.0/24",
                "allocation range 198.51.100.0-198.51.100.255 holds the broadcast address 198.51.100.255 of 198.51.100.0/24",
            ]
        );
        assert_eq!(
            problems(
                net,
                &[
                    r("198.51.100.140-198.51.100.160"),
                    r("198.51.100.10-198.51.100.20"),
                    r("198.51.100.100-198.51.100.150"),
                ]
            ),
            [
                "allocation ranges 198.51.100.100-198.51.100.150 and 198.51.100.140-198.51.100.160 overlap"
            ]
        );
        // A long range swallowing two later ones overlaps both.
        assert_eq!(
            problems(
                net,
                &[
                    r("198.51.100.10-198.51.100.100"),
                    r("198.51.100.20-198.51.100.30"),
                    r("198.51.100.50-198.51.100.60"),
                ]
            )
            .len(),
            2
        );
        assert_eq!(
            problems(
                net,
                &[
                    r("198.51.100.5-198.51.100.6"),
                    r("198.51.100.5-198.51.100.6")
                ]
            ),
            ["allocation range 198.51.100.5-198.51.100.6 is given twice"]
        );
    }
}
