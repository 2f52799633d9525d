//! Linux interface names (TAPs, bridges, routing-table links).

use std::fmt;
use std::str::FromStr;

use crate::mac::serde_via_str;

/// A kernel interface name: 1 to 15 bytes (IFNAMSIZ − 1), no `/`, whitespace, `:` or NUL.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

/// Why an interface name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfNameError(pub String);

impl fmt::Display for IfNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IfNameError {}

impl IfName {
    pub const MAX_LEN: usize = 15;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = IfNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(IfNameError("interface name is empty".into()));
        }
        if s.len() > Self::MAX_LEN {
            return Err(IfNameError(format!(
                "interface name '{s}' is longer than {} bytes",
                Self::MAX_LEN
            )));
        }
        if s == "." || s == ".." {
            return Err(IfNameError(format!("'{s}' is not a valid interface name")));
        }
        if let Some(c) = s
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(IfNameError(format!(
                "interface name '{s}' contains the invalid character {c:?}"
            )));
        }
        Ok(IfName(s.to_owned()))
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IfName({})", self.0)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

serde_via_str!(IfName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for ok in ["tap0", "prv0", "gnt.com.1", "br-vlan100", "a23456789012345"] {
            assert_eq!(ok.parse::<IfName>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert!("".parse::<IfName>().is_err());
        assert!("a234567890123456".parse::<IfName>().is_err());
        assert!("a/b".parse::<IfName>().is_err());
        assert!("a b".parse::<IfName>().is_err());
        assert!("eth0:1".parse::<IfName>().is_err());
        assert!("..".parse::<IfName>().is_err());
    }
}
