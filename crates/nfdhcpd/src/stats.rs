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

/// Atomically replaces the status file (readers never see half a file).
pub fn write_status(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
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
    }
}
