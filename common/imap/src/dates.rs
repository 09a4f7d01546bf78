//! IMAP's dates: INTERNALDATE as RFC 3501 writes it (in UTC, so that
//! every session and both servers of a migration agree), and the day a
//! time falls on, which SEARCH's date keys compare.

use chrono::{DateTime, NaiveDate};

/// `"17-Jul-1996 09:23:25 +0000"` for seconds since the epoch.
pub fn internal_date(secs: i64) -> String {
    let time = DateTime::from_timestamp(secs, 0).unwrap_or_default();
    format!("\"{}\"", time.format("%d-%b-%Y %H:%M:%S +0000"))
}

/// The (UTC) day of a time.
pub fn day_of(secs: i64) -> NaiveDate {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates_read_as_rfc_3501_writes_them() {
        assert_eq!(internal_date(837_537_805), "\"16-Jul-1996 17:23:25 +0000\"");
        assert_eq!(internal_date(0), "\"01-Jan-1970 00:00:00 +0000\"");
        assert_eq!(day_of(86_399), NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
    }
}
