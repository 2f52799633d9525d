//! MAC addresses and the three-octet prefixes that networks and the cluster hand out.

use std::fmt;
use std::str::FromStr;

/// Why a MAC or MAC prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacParseError(pub String);

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MacParseError {}

/// Parses `N` colon-separated two-digit hex octets (Ganeti accepts exactly that form).
fn parse_octets<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut parts = s.split(':');
    for slot in &mut out {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A 48-bit Ethernet address, always shown in lower case (`aa:00:00:12:34:56`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The address made of `prefix` and three low bytes.
    pub fn from_prefix(prefix: MacPrefix, low: [u8; 3]) -> Self {
        let p = prefix.0;
        MacAddr([p[0], p[1], p[2], low[0], low[1], low[2]])
    }

    /// The first three octets.
    pub fn prefix(self) -> MacPrefix {
        MacPrefix([self.0[0], self.0[1], self.0[2]])
    }

    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_octets::<6>(s)
            .map(MacAddr)
            .ok_or_else(|| MacParseError(format!("Invalid MAC address '{s}'")))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// The MAC of a VM's NIC: a unicast, non-zero address. Broadcast, multicast and all-zero
/// MACs are refused here, once, so that nothing downstream (firewall rules, bindings, the
/// EUI-64 address) is ever built from one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnicastMac(MacAddr);

impl UnicastMac {
    pub const fn get(self) -> MacAddr {
        self.0
    }
}

impl TryFrom<MacAddr> for UnicastMac {
    type Error = MacParseError;
    fn try_from(m: MacAddr) -> Result<Self, Self::Error> {
        let why = if m.0 == [0xff; 6] {
            "the broadcast address"
        } else if m.is_multicast() {
            "a multicast address"
        } else if m.0 == [0; 6] {
            "all zeros"
        } else {
            return Ok(UnicastMac(m));
        };
        Err(MacParseError(format!(
            "{m} is {why}; a NIC needs a unicast MAC"
        )))
    }
}

impl FromStr for UnicastMac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<MacAddr>()?.try_into()
    }
}

impl fmt::Display for UnicastMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for UnicastMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnicastMac({})", self.0)
    }
}

/// The first three octets of generated MACs (`aa:00:00`), per network or cluster-wide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacPrefix(pub [u8; 3]);

impl MacPrefix {
    /// Ganeti's cluster default.
    pub const DEFAULT: MacPrefix = MacPrefix([0xaa, 0x00, 0x00]);
}

impl FromStr for MacPrefix {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_octets::<3>(s)
            .map(MacPrefix)
            .ok_or_else(|| MacParseError(format!("Invalid MAC address prefix '{s}'")))
    }
}

impl fmt::Display for MacPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}", o[0], o[1], o[2])
    }
}

impl fmt::Debug for MacPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacPrefix({self})")
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_str;

// Text in config.data, six raw bytes in the binary snapshot cache (formatting a MAC as
// text cost a third of the cache's encoding time).
impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            serde::Serialize::serialize(&self.0, s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <String as serde::Deserialize>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 6] as serde::Deserialize>::deserialize(d).map(MacAddr)
        }
    }
}

serde_via_str!(MacPrefix);

#[cfg(test)]
mod tests {
    use super::*;

    // Cases of Ganeti's TestNormalizeAndValidateMac.
    #[test]
    fn mac_rejects_what_ganeti_rejects() {
        for bad in [
            "xxx",
            "00:11:22:33:44:55:66",
            "zz:zz:zz:zz:zz:zz",
            "",
            "0:1:2:3:4:5",
            "00-11-22-33-44-55",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>().unwrap_err().to_string(),
                format!("Invalid MAC address '{bad}'")
            );
        }
    }

    #[test]
    fn nic_macs_are_unicast() {
        for (bad, why) in [
            ("ff:ff:ff:ff:ff:ff", "the broadcast address"),
            ("01:00:5e:00:00:01", "a multicast address"),
            ("33:33:00:00:00:01", "a multicast address"),
            ("00:00:00:00:00:00", "all zeros"),
        ] {
            assert_eq!(
                bad.parse::<UnicastMac>().unwrap_err().to_string(),
                format!("{bad} is {why}; a NIC needs a unicast MAC")
            );
        }
        let m: UnicastMac = "AA:00:00:12:34:56".parse().unwrap();
        assert_eq!(m.to_string(), "aa:00:00:12:34:56");
        assert_eq!(m.get(), "aa:00:00:12:34:56".parse::<MacAddr>().unwrap());
        assert!("zz".parse::<UnicastMac>().is_err());
    }

    #[test]
    fn mac_is_lower_cased() {
        let m: MacAddr = "AA:bb:0C:dd:EE:ff".parse().unwrap();
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:ff");
        assert_eq!(m.prefix().to_string(), "aa:bb:0c");
    }

    // Cases of Ganeti's TestNormalizeAndValidateThreeOctetMacPrefix.
    #[test]
    fn prefix_cases() {
        for bad in [
            "xxx",
            "00:11:22:33:44:55:66",
            "zz:zz:zz",
            "00:11:22:33:44:55",
            "00:11:",
        ] {
            assert_eq!(
                bad.parse::<MacPrefix>().unwrap_err().to_string(),
                format!("Invalid MAC address prefix '{bad}'")
            );
        }
        assert_eq!(
            "aa:bb:cc".parse::<MacPrefix>().unwrap().to_string(),
            "aa:bb:cc"
        );
        assert_eq!(
            "00:AA:11".parse::<MacPrefix>().unwrap().to_string(),
            "00:aa:11"
        );
    }

    #[test]
    fn from_prefix_joins() {
        let m = MacAddr::from_prefix(MacPrefix::DEFAULT, [1, 2, 0xff]);
        assert_eq!(m.to_string(), "aa:00:00:01:02:ff");
        assert!(!m.is_multicast());
    }
}
