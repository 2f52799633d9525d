//! Per-TAP and per-message counters, rendered into the status file that
//! `nfdhcpd --status` prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Default, Clone)]
pub struct TapCounters {
    pub received: u64,
    pub replied: u64,
    pub dropped: u64,
    pub accepted: u64,
    pub last: &'static str,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub per_message: BTreeMap<&'static str, u64>,
    pub per_tap: BTreeMap<String, TapCounters>,
    pub unknown_interface: u64,
    pub send_errors: u64,
    pub verdict_errors: u64,
}

impl Stats {
    pub fn count(&mut self, tap: &str, what: &'static str, replied: bool, dropped: bool) {
        *self.per_message.entry(what).or_default() += 1;
        let t = match self.per_tap.get_mut(tap) {
            Some(t) => t,
            None => self.per_tap.entry(tap.to_owned()).or_default(),
        };
        t.received += 1;
        t.replied += u64::from(replied);
        t.dropped += u64::from(dropped);
        t.accepted += u64::from(!dropped);
        t.last = what;
    }

    pub fn render(&self, bindings: usize, broken: usize) -> String {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut s = format!(
            "pid {}\nupdated {now}\nbindings {bindings}\nbroken {broken}\nunknown-interface {}\nsend-errors {}\nverdict-errors {}\n\n[messages]\n",
            std::process::id(),
            self.unknown_interface,
            self.send_errors,
            self.verdict_errors
        );
        for (k, v) in &self.per_message {
            s.push_str(&format!("{k:<28} {v}\n"));
        }
        s.push_str("\n[taps]\n");
        s.push_str(&format!(
            "{:<16} {:>10} {:>10} {:>10} {:>10}  last\n",
            "tap", "received", "replied", "dropped", "accepted"
        ));
        for (tap, c) in &self.per_tap {
            s.push_str(&format!(
                "{tap:<16} {:>10} {:>10} {:>10} {:>10}  {}\n",
                c.received, c.replied, c.dropped, c.accepted, c.last
            ));
        }
        s
    }
}

/// The status file as JSON (`nfdhcpd --status --output-format json`): the lines before
/// the first section as `"key": value` (dashes become underscores), `[messages]` as an
/// object of counters, `[taps]` as an array of objects keyed by the table's header.
/// Counts are numbers; an empty `last` is null. Whatever the file holds, the result is
/// an error or a value, never a panic.
pub fn status_json(text: &str) -> Result<serde_json::Value, String> {
    use serde_json::{Map, Value};
    let number = |s: &str| {
        s.parse::<u64>()
            .map_or_else(|_| Value::from(s), Value::from)
    };
    let mut top = Map::new();
    let mut messages = Map::new();
    let mut taps = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut section = "";
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("status file line {}: unexpected {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = match name {
                "messages" => "messages",
                "taps" => "taps",
                _ => return Err(bad()),
            };
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match section {
            "" => match words[..] {
                [key, value] => {
                    top.insert(key.replace('-', "_"), number(value));
                }
                _ => return Err(bad()),
            },
            "messages" => match words[..] {
                [key, count] => {
                    let count: u64 = count.parse().map_err(|_| bad())?;
                    messages.insert(key.to_owned(), count.into());
                }
                _ => return Err(bad()),
            },
            _ => match &columns {
                None => columns = Some(words.iter().map(|w| (*w).to_owned()).collect()),
                Some(cols) => {
                    // The last column (`last`) is empty before a TAP's first message.
                    if words.len() + 1 < cols.len() || words.len() > cols.len() {
                        return Err(bad());
                    }
                    let mut tap = Map::new();
                    for (i, c) in cols.iter().enumerate() {
                        let v = match words.get(i) {
                            None => Value::Null,
                            Some(w) if i == 0 || i + 1 == cols.len() => Value::from(*w),
                            Some(w) => w.parse::<u64>().map_err(|_| bad())?.into(),
                        };
                        tap.insert(c.clone(), v);
                    }
                    taps.push(Value::Object(tap));
                }
            },
        }
    }
    top.insert("messages".into(), Value::Object(messages));
    top.insert("taps".into(), Value::Array(taps));
    Ok(Value::Object(top))
}

/// The status file is a line per TAP that sent something: 4 MiB holds tens of thousands,
/// far more than a node has; a larger file is not the daemon's and is refused unread.
pub const MAX_STATUS_BYTES: u64 = 4 << 20;

/// The status file's text for `nfdhcpd --status`, read as any file someone else writes
/// (the directory may belong to the daemon's unprivileged user): never blocking on a
/// FIFO, never following a link, only a regular file of at most [`MAX_STATUS_BYTES`].
/// Absence keeps its `NotFound` kind (the daemon is not running).
pub fn read_status(path: &Path) -> std::io::Result<String> {
    netconf::textfile::read(path, MAX_STATUS_BYTES)
}

/// Atomically replaces the status file (readers never see half a file), never through a
/// link planted under its temporary name (see [`netconf::textfile::write_atomic`]). Mode
/// 0644: `nfdhcpd --status` reads it as any user. No fsync: it is rewritten every second
/// and lives in a runtime directory a reboot empties.
pub fn write_status(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    netconf::textfile::write_atomic(
        path,
        text.as_bytes(),
        0o644,
        netconf::textfile::Durability::None,
    )?;
    // A daemon killed while writing left its temporary; the run directory is ours to
    // keep clean (a few entries, read once a second).
    netconf::textfile::remove_stale_temporaries(path, std::time::Duration::from_secs(60));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_tap_and_message() {
        let mut s = Stats::default();
        s.count("tap1", "DHCPDISCOVER", true, true);
        s.count("tap1", "NS-DAD", false, false);
        s.count("tap2", "DHCPDISCOVER", true, true);
        assert_eq!(s.per_message["DHCPDISCOVER"], 2);
        assert_eq!(s.per_tap["tap1"].received, 2);
        assert_eq!(s.per_tap["tap1"].accepted, 1);
        let r = s.render(2, 0);
        assert!(r.contains("DHCPDISCOVER                 2"), "{r}");
        assert!(r.lines().any(|l| l.starts_with("tap2 ")));
        let j = status_json(&r).unwrap();
        assert_eq!(j["bindings"], 2);
        assert_eq!(j["unknown_interface"], 0);
        assert_eq!(j["messages"]["DHCPDISCOVER"], 2);
        assert_eq!(j["taps"][0]["tap"], "tap1");
        assert_eq!(j["taps"][0]["accepted"], 1);
        assert_eq!(j["taps"][1]["last"], "DHCPDISCOVER");
    }

    #[test]
    fn status_json_refuses_what_the_daemon_never_writes() {
        for bad in [
            "pid\n",
            "pid 1 2\n",
            "[other]\n",
            "[messages]\nRS x\n",
            "[taps]\ntap received last\ntap0 x y\n",
            "[taps]\ntap received last\ntap0 1 RS extra\n",
        ] {
            assert!(status_json(bad).is_err(), "{bad:?}");
        }
        let j = status_json("[taps]\ntap received last\ntap0 5\n").unwrap();
        assert!(j["taps"][0]["last"].is_null());
        assert_eq!(j["taps"][0]["received"], 5);
    }

    /// The status directory may belong to the daemon's unprivileged user; a link planted
    /// there under the temporary name (the old `status.tmp`, and the next names used now)
    /// must not make the daemon write through it.
    #[test]
    fn the_status_file_is_never_written_through_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        let path = d.path().join("status");
        let link = |tmp: &Path| std::os::unix::fs::symlink(&victim, tmp).unwrap();
        link(&d.path().join("status.tmp"));
        for seq in 0..256 {
            link(&netconf::textfile::temp_path(&path, seq).unwrap());
        }
        // What a daemon killed while writing left, long ago: swept.
        let dead = netconf::textfile::temp_prefix(&path).unwrap();
        let dead = d.path().join(format!("{}999999.0", dead.to_string_lossy()));
        let f = std::fs::File::create(&dead).unwrap();
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        write_status(&path, "pid 1\n").unwrap();
        assert!(!dead.exists(), "a killed daemon's temporary stays");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        assert_eq!(read_status(&path).unwrap(), "pid 1\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
