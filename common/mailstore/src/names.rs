//! What a message's file name says: its unique part (the name up to `:`,
//! which flag changes leave alone), its base (up to the first `,` or `:`,
//! the delivery time first, for ordering) and the UIDL made of it; and
//! finding a message by its unique part once flags renamed it.

use std::io;
use std::path::Path;

/// RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E.
const MAX_UIDL: usize = 70;

/// The file name up to `:` (the unique part with its `,S=`/`,W=`).
pub fn unique_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(unique, _)| unique)
}

/// The file name up to its first `,` or `:`.
pub fn base_of(name: &str) -> &str {
    let unique = unique_of(name);
    unique.split_once(',').map_or(unique, |(base, _)| base)
}

pub fn uidl_of(unique: &str) -> String {
    let printable = unique.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if printable && !unique.is_empty() && unique.len() <= MAX_UIDL {
        return unique.to_string();
    }
    format!("{:016x}", fnv1a(unique.as_bytes()))
}

/// The delivery time a file name starts with, `SECONDS.MMICROSECONDS`,
/// as numbers to sort by (a microsecond part of five digits comes before
/// one of six, which text order would put after), as Dovecot orders new
/// files when it gives them UIDs; names without one sort after all
/// others.
pub fn delivery_time(name: &str) -> (u64, u64) {
    let parsed = || -> Option<(u64, u64)> {
        let (seconds, rest) = name.split_once('.')?;
        let seconds = seconds.parse().ok()?;
        let digits = rest.strip_prefix('M').map_or(0, |rest| {
            rest.bytes().take_while(u8::is_ascii_digit).count()
        });
        let micros = match digits {
            0 => 0,
            _ => rest[1..=digits].parse().ok()?,
        };
        Some((seconds, micros))
    };
    parsed().unwrap_or((u64::MAX, 0))
}

/// FNV-1a: a short stable hash, for names too long for a UIDL and for
/// the index header's checksum (torn writes, not adversaries).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file in `dir` whose unique part is `unique`: a message another
/// reader renamed (flags changed) since it was listed.
pub fn find_by_unique(dir: &Path, unique: &str) -> io::Result<Option<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if unique_of(&name) == unique {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_order_compares_times_as_numbers() {
        use std::cmp::Ordering::*;
        let delivery_order = |a: &str, b: &str| (delivery_time(a), a).cmp(&(delivery_time(b), b));
        assert_eq!(delivery_order("1700.M98765P1.h", "1700.M123456P1.h"), Less);
        assert_eq!(delivery_order("1699.M999999P1.h", "1700.M1P1.h"), Less);
        assert_eq!(delivery_order("1700.M5P2.h", "1700.M5P1.h"), Greater);
        assert_eq!(delivery_order("zzz", "1700.M5P1.h"), Greater);
        assert_eq!(delivery_order("1700.abc", "1700.M5P1.h"), Less);
        assert_eq!(
            delivery_time("1700.M99999999999999999999P1.h"),
            (u64::MAX, 0)
        );
    }
}
