//! Ganeti's and Python logging's time formats, computed in UTC (no time-zone database is consulted).

/// (year, month, day, hour, minute, second, weekday 0=Sunday) of a Unix time.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as u32;
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
        wd,
    )
}

/// Python's `time.ctime`: `Sat Nov 28 14:00:00 2026`.
pub fn ctime(secs: f64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss, wd) = civil(secs as i64);
    format!(
        "{} {} {d:2} {hh:02}:{mm:02}:{ss:02} {y}",
        WD[wd as usize],
        MON[m as usize - 1]
    )
}

/// Ganeti's `FormatTime`: `2026-11-28 14:00:00`.
pub fn format_time(secs: f64) -> String {
    let (y, m, d, hh, mm, ss, _) = civil(secs as i64);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// Python logging's `asctime`: `2026-11-28 14:00:00,250` (milliseconds after the comma).
pub fn asctime(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (y, m, dd, hh, mm, ss, _) = civil(secs);
    format!(
        "{y:04}-{m:02}-{dd:02} {hh:02}:{mm:02}:{ss:02},{:03}",
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(ctime(0.0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_795_874_400.0), "Sat Nov 28 14:00:00 2026");
        assert_eq!(format_time(951_782_400.0), "2000-02-29 00:00:00");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_874_400_250);
        assert_eq!(asctime(t), "2026-11-28 14:00:00,250");
    }
}
