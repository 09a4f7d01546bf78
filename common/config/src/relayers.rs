//! The relayers file (DESIGN.md): `IP TIMESTAMP` lines, IPv4 or IPv6 and
//! seconds since the epoch, `#` comments; written by postern-auth after a
//! POP3 or IMAP login and by postern-relay, read by postern-smtpd without a
//! lock (writers replace it by rename). This is the reading half.

use std::net::IpAddr;

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
