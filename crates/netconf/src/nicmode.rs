//! The NIC modes a network connection or a NIC can have.

use std::fmt;
use std::str::FromStr;

/// Ganeti's NIC modes. Ganeti also accepted `pool` here by accident; it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NicMode {
    Bridged,
    Routed,
    OpenVSwitch,
}

impl NicMode {
    pub const ALL: [NicMode; 3] = [NicMode::Bridged, NicMode::Routed, NicMode::OpenVSwitch];

    pub fn as_str(self) -> &'static str {
        match self {
            NicMode::Bridged => "bridged",
            NicMode::Routed => "routed",
            NicMode::OpenVSwitch => "openvswitch",
        }
    }
}

/// The text is Ganeti's `NIC.CheckParameterSyntax` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicModeError(pub String);

impl fmt::Display for NicModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid NIC mode '{}'", self.0)
    }
}

impl std::error::Error for NicModeError {}

impl FromStr for NicMode {
    type Err = NicModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NicMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| NicModeError(s.to_owned()))
    }
}

impl fmt::Display for NicMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Text in config.data, one byte in the binary snapshot cache.
impl serde::Serialize for NicMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.as_str())
        } else {
            s.serialize_u8(*self as u8)
        }
    }
}

impl<'de> serde::Deserialize<'de> for NicMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <String as serde::Deserialize>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b = <u8 as serde::Deserialize>::deserialize(d)?;
            NicMode::ALL
                .get(usize::from(b))
                .copied()
                .ok_or_else(|| serde::de::Error::custom("invalid NIC mode"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_pool_refused() {
        for m in NicMode::ALL {
            assert_eq!(m.as_str().parse::<NicMode>().unwrap(), m);
        }
        assert_eq!(
            "pool".parse::<NicMode>().unwrap_err().to_string(),
            "Invalid NIC mode 'pool'"
        );
        assert!("000invalid".parse::<NicMode>().is_err());
    }
}
