//! The relayers file (DESIGN.md): `IP TIMESTAMP` lines, IPv4 or IPv6 and
//! seconds since the epoch, `#` comments; written by postern-auth after a
//! POP3 or IMAP login and by postern-relay, read by postern-smtpd without a
//! lock. Writers serialize on `relayers.lock` beside it and replace the
//! file whole by rename, so a reader always sees one complete version and
//! a crash mid-write leaves the old one.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// The file is read by postern-smtpd and written by postern-auth and
/// postern-relay's group (the directory's set-group-id bit gives new files
/// that group). The login times of IPs are not secret from local users.
const FILE_MODE: u32 = 0o644;
const LOCK_MODE: u32 = 0o664;

/// One entry: an IP and the time of its login (seconds since the epoch).
pub type Entry = (IpAddr, u64);

/// The entries of a relayers file; a line that does not read is skipped.
pub fn parse(text: &str) -> Vec<(IpAddr, u64)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut words = line.split_whitespace();
            let ip: IpAddr = words.next()?.parse().ok()?;
            let stamp: u64 = words.next()?.parse().ok()?;
            Some((canonical(ip), stamp))
        })
        .collect()
}

/// A file's text with every line checked, for `postern-relay load`:
/// the entries, or the first line that is not `IP TIMESTAMP`.
pub fn parse_strict(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse(line).as_slice() {
            [entry] => entries.push(*entry),
            _ => {
                let shown: String = line.chars().take(80).collect();
                return Err((
                    number + 1,
                    format!("expected `IP TIMESTAMP`, found {shown:?}"),
                ));
            }
        }
    }
    Ok(entries)
}

/// The file's text for `entries`, each under a comment with its time in
/// words (vsmtprelay's layout, which `load` reads back).
pub fn format(entries: &[Entry]) -> String {
    let mut text = String::new();
    for (ip, stamp) in entries {
        let when = postern_log::dates::asctime(UNIX_EPOCH + Duration::from_secs(*stamp));
        text.push_str(&format!("# timestamp (UTC): {when}\n{ip} {stamp}\n"));
    }
    text
}

/// Changes the file at `path` under its lock: `change` gets the entries
/// (one per IP, the newest kept) and returns what to report. The file is
/// written again whole, so comments are made anew and lines that do not
/// read are dropped; it is left alone when nothing changed.
pub fn update<T>(path: &Path, change: impl FnOnce(&mut Vec<Entry>) -> T) -> Result<T, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock = crate::edit::lock_file(&path.with_file_name(format!("{name}.lock")), LOCK_MODE)?;
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut entries = newest_per_ip(parse(&current));
    let before = entries.clone();
    let result = change(&mut entries);
    let text = format(&entries);
    if entries != before || text != current {
        crate::edit::replace(path, &text, FILE_MODE, false)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    drop(lock);
    Ok(result)
}

/// One entry per IP, where it first appears, with the newest time.
pub fn newest_per_ip(entries: Vec<Entry>) -> Vec<Entry> {
    let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
    let mut at: std::collections::HashMap<IpAddr, usize> = std::collections::HashMap::new();
    for (ip, stamp) in entries {
        match at.get(&ip) {
            Some(&index) => kept[index].1 = kept[index].1.max(stamp),
            None => {
                at.insert(ip, kept.len());
                kept.push((ip, stamp));
            }
        }
    }
    kept
}

/// Sets `ip`'s time, adding it if it is new.
pub fn set(entries: &mut Vec<Entry>, ip: IpAddr, stamp: u64) {
    let ip = canonical(ip);
    match entries.iter_mut().find(|(k, _)| *k == ip) {
        Some(entry) => entry.1 = stamp,
        None => entries.push((ip, stamp)),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The newest login of `ip` within `window` seconds before `now`, if any.
pub fn recent_login(entries: &[(IpAddr, u64)], ip: IpAddr, now: u64, window: u64) -> Option<u64> {
    let ip = canonical(ip);
    entries
        .iter()
        .filter(|(entry, stamp)| *entry == ip && stamp.saturating_add(window) >= now)
        .map(|(_, stamp)| *stamp)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_format_reads_back() {
        let entries = vec![
            (ip("10.11.12.13"), 906502527),
            (ip("2001:db8::7"), 1795999999),
        ];
        let text = format(&entries);
        assert_eq!(
            text,
            "# timestamp (UTC): Tue Sep 22 22:15:27 1998\n10.11.12.13 906502527\n\
             # timestamp (UTC): Mon Nov 30 00:53:19 2026\n2001:db8::7 1795999999\n"
        );
        assert_eq!(parse_strict(&text), Ok(entries));
        assert_eq!(
            parse_strict("# ok\n10.0.0.1 5\n10.0.0.2 soon\n"),
            Err((
                3,
                "expected `IP TIMESTAMP`, found \"10.0.0.2 soon\"".to_string()
            ))
        );
    }

    #[test]
    fn updates_keep_one_entry_per_ip_and_leave_an_unchanged_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relayers");
        std::fs::write(
            &path,
            "10.0.0.1 5\n::ffff:10.0.0.1 9\nbad line\n10.0.0.2 7\n",
        )
        .unwrap();
        update(&path, |entries| set(entries, ip("10.0.0.3"), 11)).unwrap();
        assert_eq!(
            parse(&std::fs::read_to_string(&path).unwrap()),
            [
                (ip("10.0.0.1"), 9),
                (ip("10.0.0.2"), 7),
                (ip("10.0.0.3"), 11)
            ]
        );
        assert!(dir.path().join("relayers.lock").exists());
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        update(&path, |_| ()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
    }

    #[test]
    fn entries_and_the_window() {
        let text = "# timestamp (UTC): ...\n127.0.0.2 1000\n2001:db8::7 1500\nnonsense\n10.0.0.1 soon\n::ffff:192.0.2.9 1900\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 3);
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert_eq!(
            recent_login(&entries, ip("127.0.0.2"), 2000, 1200),
            Some(1000)
        );
        assert_eq!(recent_login(&entries, ip("127.0.0.2"), 2201, 1200), None);
        assert_eq!(
            recent_login(&entries, ip("2001:db8:0::7"), 2000, 1200),
            Some(1500)
        );
        assert_eq!(
            recent_login(&entries, ip("::ffff:127.0.0.2"), 2000, 1200),
            Some(1000)
        );
        assert_eq!(
            recent_login(&entries, ip("192.0.2.9"), 2000, 1200),
            Some(1900)
        );
        assert_eq!(recent_login(&entries, ip("127.0.0.3"), 2000, 1200), None);
    }
}
