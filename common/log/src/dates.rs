//! Dates as mail formats write them, in UTC: asctime for an mbox `From `
//! line, RFC 5322 for `Date:` and `Received:`. By hand: two formats of one
//! calendar computation do not earn a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Civil {
    weekday: &'static str,
    month: &'static str,
    day: i64,
    year: i64,
    hour: u64,
    minute: u64,
    second: u64,
}

fn civil(time: SystemTime) -> Civil {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86400;
    // Howard Hinnant's civil-from-days, for days since 1970-01-01.
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        weekday: DAYS[(days % 7) as usize],
        month: MONTHS[(month - 1) as usize],
        day: doy - (153 * mp + 2) / 5 + 1,
        year: yoe + era * 400 + i64::from(month <= 2),
        hour: secs % 86400 / 3600,
        minute: secs % 3600 / 60,
        second: secs % 60,
    }
}

/// `Tue Nov 24 06:31:00 2026`
pub fn asctime(time: SystemTime) -> String {
    let c = civil(time);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        c.weekday, c.month, c.day, c.hour, c.minute, c.second, c.year
    )
}

/// `Tue, 24 Nov 2026 06:31:00 +0000`
pub fn rfc5322(time: SystemTime) -> String {
    let c = civil(time);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        c.weekday, c.day, c.month, c.year, c.hour, c.minute, c.second
    )
}

/// [`rfc5322`] of a time in seconds since the epoch, as the queue and the
/// relayers file keep them.
pub fn rfc5322_secs(secs: u64) -> String {
    rfc5322(UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(asctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(at(1_795_501_860)), "Tue Nov 24 06:31:00 2026");
        assert_eq!(asctime(at(951_782_400)), "Tue Feb 29 00:00:00 2000");
        assert_eq!(
            rfc5322(at(1_795_501_860)),
            "Tue, 24 Nov 2026 06:31:00 +0000"
        );
        assert_eq!(rfc5322(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
    }
}
