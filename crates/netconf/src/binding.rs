//! The nfdhcpd binding file: the one contract between `snf-ifup` (writer) and `nfdhcpd`
//! (reader). One file per TAP, named after the TAP, with shell-style `KEY=value` lines in
//! snf-network 0.16's order so that the original nfdhcpd reads our files and we read its.
//! See `man 5 nfdhcpd-binding`.

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::ifname::IfName;
use crate::mac::MacAddr;

/// Default directory of binding files (`NFDHCPD_STATE_DIR`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nfdhcpd";

/// A binding is a few hundred bytes; a larger file is not one, and is refused unread.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Mode of binding files, whatever the writer's umask: nfdhcpd may run as another user.
const FILE_MODE: u32 = 0o644;

/// One NIC's binding: what nfdhcpd may answer on that TAP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Device whose MAC is the source of every reply: the TAP (routed) or bridge (bridged).
    pub indev: Option<IfName>,
    /// Address handed out by DHCPv4; none means no DHCPv4 answers.
    pub ip: Option<Ipv4Addr>,
    pub mac: MacAddr,
    /// Instance name: DHCP option 12 and the domain fallback.
    pub hostname: String,
    /// Instance tags, space separated (ignored by nfdhcpd, kept for operators).
    pub tags: String,
    pub gateway: Option<Ipv4Addr>,
    pub subnet: Option<Ipv4Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub subnet6: Option<Ipv6Net>,
    /// Informational: the NIC's SLAAC address.
    pub eui64: Option<Ipv6Addr>,
    pub mtu: Option<u32>,
    /// No router option in DHCP replies.
    pub private: bool,
    /// Skip the check that requests come from `mac`.
    pub macspoof: bool,
}

impl Binding {
    /// A binding with only the required keys set.
    pub fn new(mac: MacAddr, hostname: impl Into<String>) -> Self {
        Binding {
            indev: None,
            ip: None,
            mac,
            hostname: hostname.into(),
            tags: String::new(),
            gateway: None,
            subnet: None,
            gateway6: None,
            subnet6: None,
            eui64: None,
            mtu: None,
            private: false,
            macspoof: false,
        }
    }

    /// The file text. Keys snf-network always writes come first in its order (with empty
    /// values when unset, as it does); the optional extras follow only when set.
    pub fn render(&self) -> String {
        fn opt<T: fmt::Display>(v: Option<&T>) -> String {
            v.map(ToString::to_string).unwrap_or_default()
        }
        let mut s = String::with_capacity(320);
        let mut line = |k: &str, v: &str| {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        };
        line("INDEV", &opt(self.indev.as_ref()));
        line("IP", &opt(self.ip.as_ref()));
        line("MAC", &self.mac.to_string());
        // Unquoted, as snf-network writes it, unless the reader's trimming or unquoting
        // would change it.
        if self.hostname.trim() == self.hostname && unquote(&self.hostname) == self.hostname {
            line("HOSTNAME", &self.hostname);
        } else {
            line("HOSTNAME", &format!("\"{}\"", self.hostname));
        }
        line("TAGS", &format!("\"{}\"", self.tags));
        line("GATEWAY", &opt(self.gateway.as_ref()));
        line("SUBNET", &opt(self.subnet.as_ref()));
        line("GATEWAY6", &opt(self.gateway6.as_ref()));
        line("SUBNET6", &opt(self.subnet6.as_ref()));
        line("EUI64", &opt(self.eui64.as_ref()));
        if let Some(mtu) = self.mtu {
            line("MTU", &mtu.to_string());
        }
        if self.private {
            line("PRIVATE", "1");
        }
        if self.macspoof {
            line("MACSPOOF", "1");
        }
        s
    }

    /// Whether every value can be written so that [`Binding::parse`] (and the original
    /// nfdhcpd, which reads line by line) reads back exactly it. Quoting covers edge
    /// white space and quotes; nothing covers a line break or another control character,
    /// which would end the value and start a forged line (`MACSPOOF=1`, `IP=…`). An empty
    /// HOSTNAME would read back as missing.
    pub fn check(&self) -> Result<(), BindingError> {
        for (key, value) in [("HOSTNAME", &self.hostname), ("TAGS", &self.tags)] {
            if let Some(c) = value.chars().find(|&c| unwritable(c)) {
                return Err(BindingError::new(
                    0,
                    format!(
                        "{key}: cannot write a value holding '{}': {}",
                        c.escape_default(),
                        crate::name::printable(value)
                    ),
                ));
            }
        }
        if self.hostname.is_empty() {
            return Err(BindingError::new(0, "HOSTNAME: cannot be empty".into()));
        }
        Ok(())
    }

    /// Parses a binding file's text. Unlike the original reader this strips one pair of
    /// surrounding quotes, keeps `=` inside values and reports the offending line.
    pub fn parse(text: &str) -> Result<Binding, BindingError> {
        let mut indev = None;
        let mut ip = None;
        let mut mac = None;
        let mut hostname = None;
        let mut tags = String::new();
        let mut gateway = None;
        let mut subnet = None;
        let mut gateway6 = None;
        let mut subnet6 = None;
        let mut eui64 = None;
        let mut mtu = None;
        let mut private = false;
        let mut macspoof = false;
        for (idx, raw) in text.lines().enumerate() {
            let lineno = idx + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(BindingError::new(
                    lineno,
                    format!("expected KEY=value, got '{trimmed}'"),
                ));
            };
            let key = key.trim();
            let value = unquote(value.trim());
            let bad =
                |what: &str| BindingError::new(lineno, format!("{key}: invalid {what} '{value}'"));
            // An empty value means "unset" (snf-network writes every key).
            let set = !value.is_empty();
            match key {
                "INDEV" if set => indev = Some(value.parse().map_err(|_| bad("interface name"))?),
                "IP" if set => ip = Some(value.parse().map_err(|_| bad("IPv4 address"))?),
                "MAC" if set => mac = Some(value.parse().map_err(|_| bad("MAC address"))?),
                "HOSTNAME" if set => hostname = Some(value.to_owned()),
                "TAGS" => tags = value.to_owned(),
                "GATEWAY" if set => gateway = Some(value.parse().map_err(|_| bad("IPv4 address"))?),
                "SUBNET" if set => {
                    subnet = Some(parse_net4(value).ok_or_else(|| bad("IPv4 subnet"))?)
                }
                "GATEWAY6" if set => {
                    gateway6 = Some(value.parse().map_err(|_| bad("IPv6 address"))?)
                }
                "SUBNET6" if set => {
                    subnet6 = Some(parse_net6(value).ok_or_else(|| bad("IPv6 subnet"))?)
                }
                "EUI64" if set => eui64 = Some(value.parse().map_err(|_| bad("IPv6 address"))?),
                "MTU" => {
                    mtu = if set {
                        let m: u32 = value.parse().map_err(|_| bad("MTU"))?;
                        if !(68..=65535).contains(&m) {
                            return Err(bad("MTU"));
                        }
                        Some(m)
                    } else {
                        None
                    }
                }
                "PRIVATE" => private = set,
                "MACSPOOF" => macspoof = set,
                // Unset known keys and keys of other writers (gnt-networking extras).
                _ => {}
            }
        }
        let mac = mac.ok_or_else(|| BindingError::new(0, "MAC is missing".into()))?;
        let hostname =
            hostname.ok_or_else(|| BindingError::new(0, "HOSTNAME is missing".into()))?;
        Ok(Binding {
            indev,
            ip,
            mac,
            hostname,
            tags,
            gateway,
            subnet,
            gateway6,
            subnet6,
            eui64,
            mtu,
            private,
            macspoof,
        })
    }

    /// Reads and parses `path` (see [`read_text`]); errors name the file and line.
    pub fn load(path: &Path) -> Result<Binding, BindingError> {
        let text =
            read_text(path).map_err(|e| BindingError::new(0, e.to_string()).in_file(path))?;
        Binding::parse(&text).map_err(|e| e.in_file(path))
    }

    /// Writes the binding for `tap` into `dir` atomically: a temporary file in the same
    /// directory, fsync, then rename, so a reader never sees half a file. A binding that
    /// fails [`Binding::check`] is refused (`InvalidInput`) and nothing is written.
    pub fn write_atomic(&self, dir: &Path, tap: &IfName) -> std::io::Result<PathBuf> {
        self.check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        fs::create_dir_all(dir)?;
        let target = dir.join(tap.as_str());
        // The temporary is a dot-name, which nfdhcpd ignores, and is closed before the
        // rename: a close after it would reach nfdhcpd as a second write (IN_CLOSE_WRITE
        // after IN_MOVED_TO) and load the binding twice.
        crate::textfile::write_atomic(
            &target,
            self.render().as_bytes(),
            FILE_MODE,
            crate::textfile::Durability::File,
        )?;
        Ok(target)
    }
}

/// Reads a binding file's text without ever blocking or following a link (see
/// [`crate::textfile::read`]): only a regular file of at most [`MAX_FILE_BYTES`] is read.
/// Absence keeps its `NotFound` kind.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    crate::textfile::read(path, MAX_FILE_BYTES)
}

/// Whether a file name in the state directory is a binding (temporaries and hidden files
/// are not).
pub fn is_binding_name(name: &str) -> bool {
    !name.starts_with('.') && name.parse::<IfName>().is_ok()
}

/// Characters no value may hold: control characters (line breaks, NUL, tabs) and the
/// Unicode line and paragraph separators, which some line readers split on.
fn unwritable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

// Bindings carry the network's CIDR; a host-bits form is accepted and masked, as the
// original's IPy did.
fn parse_net4(v: &str) -> Option<Ipv4Net> {
    v.parse::<Ipv4Net>().ok().map(|n| n.trunc())
}

fn parse_net6(v: &str) -> Option<Ipv6Net> {
    v.parse::<Ipv6Net>().ok().map(|n| n.trunc())
}

/// A malformed binding; `line` 0 means the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingError {
    pub file: Option<PathBuf>,
    pub line: usize,
    pub message: String,
}

impl BindingError {
    fn new(line: usize, message: String) -> Self {
        BindingError {
            file: None,
            line,
            message,
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_owned());
        self
    }
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(p), 0) => write!(f, "{}: {}", p.display(), self.message),
            (Some(p), n) => write!(f, "{}:{n}: {}", p.display(), self.message),
            (None, 0) => f.write_str(&self.message),
            (None, n) => write!(f, "line {n}: {}", self.message),
        }
    }
}

impl std::error::Error for BindingError {}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of snf-network 0.16 (reference A7.2), byte for byte.
    const ORIGINAL: &str = "INDEV=tap10\nIP=192.0.2.100\nMAC=aa:6b:39:22:33:44\nHOSTNAME=testing-vm\nTAGS=\"\"\nGATEWAY=192.0.2.1\nSUBNET=192.0.2.0/24\nGATEWAY6=2001:db8:aaaa:bbbb::1\nSUBNET6=2001:db8:aaaa:bbbb::/64\nEUI64=2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344\n";

    #[test]
    fn original_example_round_trips() {
        let b = Binding::parse(ORIGINAL).unwrap();
        assert_eq!(b.indev.as_ref().unwrap().as_str(), "tap10");
        assert_eq!(b.ip, Some(Ipv4Addr::new(192, 0, 2, 100)));
        assert_eq!(b.hostname, "testing-vm");
        assert_eq!(b.subnet6.unwrap().prefix_len(), 64);
        assert_eq!(b.render(), ORIGINAL);
    }

    #[test]
    fn extras_quotes_and_empty_values() {
        let text = "MAC=\"aa:00:00:00:00:01\"\nHOSTNAME='vm1'\nIP=\nMTU=1450\nPRIVATE=yes\nMACSPOOF=\nFOO=bar\n";
        let b = Binding::parse(text).unwrap();
        assert_eq!(b.mac.to_string(), "aa:00:00:00:00:01");
        assert_eq!(b.hostname, "vm1");
        assert_eq!(b.ip, None);
        assert_eq!(b.mtu, Some(1450));
        assert!(b.private);
        assert!(!b.macspoof);
        assert_eq!(Binding::parse(&b.render()).unwrap(), b);
    }

    /// Found by the fuzzer: a quoted hostname with edge white space lost it on rewrite.
    #[test]
    fn hostnames_with_edge_white_space_round_trip() {
        let b = Binding::parse("MAC=aa:00:00:00:00:01\nHOSTNAME=\"\0\0\t\"\n").unwrap();
        assert_eq!(b.hostname, "\0\0\t");
        assert!(b.render().contains("HOSTNAME=\"\0\0\t\"\n"));
        assert_eq!(Binding::parse(&b.render()).unwrap(), b);
        let plain = Binding::parse("MAC=aa:00:00:00:00:01\nHOSTNAME=vm 1\n").unwrap();
        assert!(plain.render().contains("HOSTNAME=vm 1\n"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = Binding::parse("MAC=aa:00:00:00:00:01\nHOSTNAME=x\nIP=300.1.1.1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: IP: invalid IPv4 address '300.1.1.1'"
        );
        let e = Binding::parse("HOSTNAME=x\n").unwrap_err();
        assert_eq!(e.to_string(), "MAC is missing");
        let e = Binding::parse("MAC=aa:00:00:00:00:01\nHOSTNAME=x\nMTU=abc\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(Binding::parse("garbage\n").is_err());
    }

    /// Defence in depth for issue 11/12: whatever a caller puts into a binding, the writer
    /// never produces a file that reads back as something else.
    #[test]
    fn writer_refuses_values_it_cannot_write_unambiguously() {
        let dir = tempfile::tempdir().unwrap();
        let tap: IfName = "tap3".parse().unwrap();
        let mac: MacAddr = "aa:00:00:00:00:03".parse().unwrap();
        let injection = "vm6\nMACSPOOF=1\nIP=203.0.113.77";
        for (host, tags) in [
            (injection, ""),
            ("vm6", "a\nMACSPOOF=1"),
            ("vm\r", ""),
            ("vm\0", ""),
            ("vm\t1", ""),
            ("vm\u{1b}[2J", ""),
            ("vm\u{85}", ""),
            ("vm\u{2028}IP=1.2.3.4", ""),
            ("vm6", "x\u{2029}y"),
            ("", ""),
        ] {
            let mut b = Binding::new(mac, host);
            b.tags = tags.to_owned();
            assert!(b.check().is_err(), "{host:?} {tags:?}");
            let e = b.write_atomic(dir.path(), &tap).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(!e.to_string().contains('\n'), "{e}");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{host:?}");
        }
        let e = Binding::new(mac, injection).check().unwrap_err();
        assert_eq!(
            e.to_string(),
            "HOSTNAME: cannot write a value holding '\\n': vm6\\nMACSPOOF=1\\nIP=203.0.113.77"
        );
        // What quoting can carry is written and reads back exactly.
        for (host, tags) in [
            ("'vm'", "\"a\" b"),
            ("\"vm\"", "'"),
            (" vm ", " x y "),
            ("vm 1", "\""),
            ("réseau=1", "a=b c#d"),
        ] {
            let mut b = Binding::new(mac, host);
            b.tags = tags.to_owned();
            let path = b.write_atomic(dir.path(), &tap).unwrap();
            assert_eq!(Binding::load(&path).unwrap(), b, "{host:?} {tags:?}");
        }
    }

    #[test]
    fn atomic_write_leaves_only_the_binding() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Binding::new("aa:00:00:00:00:02".parse().unwrap(), "vm2");
        b.ip = Some(Ipv4Addr::new(198, 51, 100, 2));
        let tap: IfName = "tap2".parse().unwrap();
        let path = b.write_atomic(dir.path(), &tap).unwrap();
        assert_eq!(Binding::load(&path).unwrap(), b);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["tap2"]);
        assert!(is_binding_name("tap2"));
        assert!(!is_binding_name(".tap2.tmp1"));
    }
}
