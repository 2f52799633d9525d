//! Validated names of instances, nodes, networks and node groups.
//!
//! Names leave this suite in many forms: hook and NIC-script environments, nfdhcpd binding
//! files (`KEY=value` lines), DHCP host names, DNS records, table output. A name that holds
//! a newline or a control character can therefore forge lines or fields elsewhere, so every
//! name is checked once, where it enters (command line, config.data, Ganeti's environment),
//! into a type that cannot hold anything else.
//!
//! - Instance and node names follow Ganeti's host-name rules (`netutils.Hostname`): after
//!   lower-casing and dropping one trailing dot, only `a-z`, `0-9`, `-`, `_` and `.`, no
//!   empty label; and, as DNS requires, labels of at most 63 and names of at most 253
//!   bytes (Ganeti only bounded the whole name, at 255).
//! - Network and group names, where Ganeti only asks for a non-empty string: at most
//!   [`MAX_LABEL_NAME`] bytes, and no white space, no `/`, no control characters and no
//!   invisible formatting characters (bidirectional overrides, zero-width characters).
//!
//! `parse` is for new names (it normalises as Ganeti does); loading config.data only checks,
//! so that the stored bytes stay as they are. A stored name that breaks the rules makes
//! the load fail with a message that names the object (see `man 8 gnt-instance`).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest host name (instance, node), in bytes, as DNS allows in text form.
pub const MAX_HOSTNAME: usize = 253;
/// Longest label of a host name, in bytes.
pub const MAX_HOST_LABEL: usize = 63;
/// Longest network or group name, in bytes.
pub const MAX_LABEL_NAME: usize = 255;

/// What kind of object a name is for (used in messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Instance,
    Node,
    Network,
    Group,
}

impl NameKind {
    fn noun(self) -> &'static str {
        match self {
            NameKind::Instance => "instance",
            NameKind::Node => "node",
            NameKind::Network => "network",
            NameKind::Group => "node group",
        }
    }

    fn host_rules(self) -> bool {
        matches!(self, NameKind::Instance | NameKind::Node)
    }
}

/// Why a name was refused. `shown` is the name made printable (escaped, shortened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    pub kind: NameKind,
    pub shown: String,
    pub reason: String,
    pub empty: bool,
}

impl NameError {
    fn new(kind: NameKind, raw: &str, reason: impl Into<String>) -> Self {
        NameError {
            kind,
            shown: printable(raw),
            reason: reason.into(),
            empty: raw.is_empty(),
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.host_rules() {
            write!(f, "Invalid hostname '{}': {}", self.shown, self.reason)
        } else {
            write!(
                f,
                "Invalid {} name '{}': {}",
                self.kind.noun(),
                self.shown,
                self.reason
            )
        }
    }
}

impl std::error::Error for NameError {}

/// At most 64 characters of `raw`, with control and invisible characters escaped, so that
/// an error about a bad name cannot itself carry the bad bytes to a terminal or log.
pub fn printable(raw: &str) -> String {
    const SHOWN: usize = 64;
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i == SHOWN {
            out.push_str(&format!("… ({} bytes)", raw.len()));
            break;
        }
        push_shown(&mut out, c);
    }
    out
}

/// `c`, escaped if it is not safe to print.
fn push_shown(out: &mut String, c: char) {
    if c.is_control() || c.is_whitespace() && c != ' ' || invisible(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

fn shown_char(c: char) -> String {
    let mut s = String::new();
    push_shown(&mut s, c);
    s
}

/// Formatting characters that change how text is shown without being seen: bidirectional
/// overrides and isolates, zero-width characters, the soft hyphen and the BOM.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// A description of the first character of `s` no name may hold, if any.
fn forbidden_char(s: &str) -> Option<String> {
    let c = s
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || c == '/' || invisible(c))?;
    if c == '/' {
        return Some("contains a '/'".into());
    }
    let what = if c.is_control() {
        "a control character"
    } else if c.is_whitespace() {
        "white space"
    } else {
        "an invisible formatting character"
    };
    Some(format!("contains {what} ('{}')", shown_char(c)))
}

/// The host-name rules in one pass over the bytes: every load checks each instance name
/// of the snapshot cache's index, 10,000 of them within a command's few milliseconds.
fn host_ok(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_HOSTNAME {
        return false;
    }
    let mut label = 0;
    for &b in s.as_bytes() {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label += 1;
            if label > MAX_HOST_LABEL {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0
}

/// Ganeti's host-name rules on an already normalised name.
fn check_host(kind: NameKind, s: &str) -> Result<(), NameError> {
    if host_ok(s) {
        return Ok(());
    }
    let fail = |reason: String| Err(NameError::new(kind, s, reason));
    if s.is_empty() {
        return fail("the name is empty".into());
    }
    if s.len() > MAX_HOSTNAME {
        return fail(format!(
            "longer than {MAX_HOSTNAME} bytes ({} bytes)",
            s.len()
        ));
    }
    if let Some(r) = forbidden_char(s) {
        return fail(r);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return fail(format!(
            "'{}' is not allowed (only letters, digits, '-', '_' and '.')",
            shown_char(c)
        ));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return fail("it has an empty label".into());
        }
        if label.len() > MAX_HOST_LABEL {
            return fail(format!(
                "the label '{}' is longer than {MAX_HOST_LABEL} bytes",
                printable(label)
            ));
        }
    }
    // host_ok and the reasons above must agree; a name neither explains is refused.
    fail("it is not a valid host name".into())
}

/// The rules of network and group names.
fn check_label(kind: NameKind, s: &str) -> Result<(), NameError> {
    let fail = |reason: String| Err(NameError::new(kind, s, reason));
    if s.is_empty() {
        return fail("the name is empty".into());
    }
    if s.len() > MAX_LABEL_NAME {
        return fail(format!(
            "longer than {MAX_LABEL_NAME} bytes ({} bytes)",
            s.len()
        ));
    }
    if let Some(r) = forbidden_char(s) {
        return fail(r);
    }
    // Names end up as path components (hook and log files, Xen NIC directories).
    if s == "." || s == ".." {
        return fail("'.' and '..' are not names".into());
    }
    Ok(())
}

/// Ganeti's `GetNormalizedName`: lower case, one trailing dot dropped.
fn normalize_host(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => lower,
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr, $check:ident, $norm:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            pub const KIND: NameKind = $kind;

            /// A new name from user input: normalised, then checked.
            pub fn parse(s: &str) -> Result<Self, NameError> {
                let norm: fn(&str) -> String = $norm;
                let s = norm(s);
                $check(Self::KIND, &s)?;
                Ok($ty(s))
            }

            /// A name as stored: checked, never changed.
            pub fn check(s: String) -> Result<Self, NameError> {
                $check(Self::KIND, &s)?;
                Ok($ty(s))
            }

            /// Whether `s` would pass [`Self::check`].
            pub fn is_valid(s: &str) -> bool {
                $check(Self::KIND, s).is_ok()
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $ty {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::check(s).map_err(|e| {
                    serde::de::Error::custom(format!("{} name refused: {e}", Self::KIND.noun()))
                })
            }
        }
    };
}

name_type!(
    /// An instance name (Ganeti's host-name rules).
    InstanceName,
    NameKind::Instance,
    check_host,
    normalize_host
);
name_type!(
    /// A node name (Ganeti's host-name rules).
    NodeName,
    NameKind::Node,
    check_host,
    normalize_host
);
name_type!(
    /// A network name.
    NetworkName,
    NameKind::Network,
    check_label,
    str::to_owned
);
name_type!(
    /// A node group name.
    GroupName,
    NameKind::Group,
    check_label,
    str::to_owned
);

impl GroupName {
    /// Ganeti's first group.
    pub fn default_group() -> Self {
        GroupName("default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INJECTION: &str = "vm6\nMACSPOOF=1\nIP=203.0.113.77";

    #[test]
    fn host_names_follow_ganeti() {
        for ok in [
            "vm1",
            "vm1.example.org",
            "a_b-c.d",
            "0",
            "-x",
            &"a".repeat(63),
            &format!("{}.{}", "a".repeat(63), "b".repeat(63)),
        ] {
            assert_eq!(InstanceName::parse(ok).unwrap().as_str(), ok, "{ok:?}");
        }
        // Ganeti's GetNormalizedName: lower case, trailing dot dropped.
        assert_eq!(InstanceName::parse("VM1.Example.").unwrap(), "vm1.example");
        let max = [&"a".repeat(63)[..]; 4].join(".");
        assert_eq!(max.len(), 255);
        assert!(NodeName::parse(&max[..253]).is_ok());
        for bad in [
            "",
            ".",
            ".vm",
            "vm..x",
            "vm 1",
            "vm/1",
            "vm\t1",
            "vm\0",
            "vm\u{7f}",
            "vm\u{202e}1",
            "vm1\n",
            "vmé",
            "vm:1",
            "vm=1",
            "vm\"",
            INJECTION,
            &"a".repeat(64),
            &max[..254],
            &"a".repeat(70_000),
        ] {
            assert!(InstanceName::parse(bad).is_err(), "{bad:?} accepted");
            assert!(NodeName::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Stored names are checked, not normalised.
        assert!(InstanceName::check("VM1".into()).is_ok());
        assert!(InstanceName::check("vm1.".into()).is_err());
    }

    proptest::proptest! {
        /// The one-pass check and the explaining one agree: every refusal has a reason.
        #[test]
        fn every_refused_host_name_has_a_reason(
            s in "([a-zA-Z0-9_-]{0,70}[.]?){0,5}[ /:\n\t.é]?[a-z.]{0,3}"
        ) {
            match check_host(NameKind::Instance, &s) {
                Ok(()) => proptest::prop_assert!(host_ok(&s)),
                Err(e) => proptest::prop_assert_ne!(e.reason, "it is not a valid host name"),
            }
        }
    }

    #[test]
    fn network_and_group_names() {
        for ok in ["net1", "Net_1.x", "réseau", "a-b:c=d", &"n".repeat(255)] {
            assert_eq!(NetworkName::parse(ok).unwrap().as_str(), ok);
            assert_eq!(GroupName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            " ",
            "a b",
            "a/b",
            "a\nb",
            "a\rb",
            "a\0",
            "\u{85}",
            "a\u{2028}b",
            "a\u{a0}b",
            "a\u{200b}",
            "\u{feff}a",
            ".",
            "..",
            INJECTION,
            &"n".repeat(256),
            &"n".repeat(70_000),
        ] {
            assert!(NetworkName::parse(bad).is_err(), "{bad:?} accepted");
            assert!(GroupName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_are_printable() {
        let e = InstanceName::parse(INJECTION).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid hostname 'vm6\\nmacspoof=1\\nip=203.0.113.77': contains a control character ('\\n')"
        );
        let long = NetworkName::parse(&"n".repeat(70_000)).unwrap_err();
        let text = long.to_string();
        assert!(text.len() < 200, "{text}");
        assert!(text.contains("(70000 bytes)"), "{text}");
    }

    #[test]
    fn serde_checks_stored_names() {
        #[derive(Deserialize, Serialize)]
        struct W {
            name: InstanceName,
        }
        let w: W = toml::from_str("name = \"vm1\"").unwrap();
        assert_eq!(toml::to_string(&w).unwrap(), "name = \"vm1\"\n");
        let e = toml::from_str::<W>("name = \"vm6\\nMACSPOOF=1\"")
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("instance name refused: Invalid hostname"),
            "{e}"
        );
    }
}
