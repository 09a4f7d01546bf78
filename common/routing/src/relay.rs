//! Who may send to whom, as postern-smtpd decides and `postern-admin
//! explain --relay` shows: the classic open-relay tricks refused outright,
//! and mail for other hosts accepted only from a client that may relay (a
//! trusted network, or a POP3/IMAP login within the window; SMTP AUTH
//! joins next).

use std::net::IpAddr;
use std::path::PathBuf;

use postern_config::{Network, relayers};

/// What the relay rules are made of.
pub struct RelayRules {
    pub trusted: Vec<Network>,
    pub relayers_file: PathBuf,
    pub window: u64,
    pub refusal: String,
}

impl RelayRules {
    /// The rule that lets `ip` relay, in words for the log; `None` if none.
    pub fn permits(&self, ip: IpAddr, now: u64) -> Option<String> {
        if let Some(network) = self.trusted.iter().find(|n| n.contains(ip)) {
            return Some(format!("trusted network {network}"));
        }
        // Read at each use, without a lock: writers replace the file by
        // rename, so a read sees one whole version.
        let text = std::fs::read_to_string(&self.relayers_file).ok()?;
        let entries = relayers::parse(&text);
        relayers::recent_login(&entries, ip, now, self.window).map(|at| {
            format!(
                "login from {} at {}",
                relayers::canonical(ip),
                postern_log::dates::rfc5322_secs(at)
            )
        })
    }
}

/// The tricks that once made servers relay, refused whoever asks: a `%`
/// hack (`user%elsewhere@here`), a bang path (`elsewhere!user@here`), a
/// quoted local part hiding an `@`, `%` or `!`, and a source route
/// (`@a,@b:user@c`). Postern never reads such addresses as routes, but
/// accepting them would invite the next hop to.
/// Returns what the address is, for a `550 5.7.1 <address>: ... is not
/// accepted here`.
pub fn trick(address: &str) -> Option<&'static str> {
    let refuse = |what: &'static str| Some(what);
    if address.starts_with('@') || address.contains(',') {
        return refuse("a source route");
    }
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    if local.starts_with('"') && local[1..].contains(['@', '%', '!']) {
        return refuse("a quoted local part holding a route");
    }
    if local.contains('%') {
        return refuse("a %-hack address");
    }
    if local.contains('!') {
        return refuse("a bang path");
    }
    if local.contains('@') {
        return refuse("an address within an address");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_are_refused_plain_addresses_are_not() {
        for address in [
            "victim%elsewhere.example@mx.test",
            "elsewhere.example!victim@mx.test",
            "\"victim@elsewhere.example\"@mx.test",
            "\"victim%elsewhere\"@mx.test",
            "@mx.test,@relay.example:victim@elsewhere.example",
            "@relay.example:victim@elsewhere.example",
        ] {
            assert!(trick(address).is_some(), "{address} taken");
        }
        for address in [
            "alice@mx.test",
            "alice+tag@mx.test",
            "o'brien@mx.test",
            "postmaster",
        ] {
            assert!(trick(address).is_none(), "{address}");
        }
    }

    #[test]
    fn trusted_networks_and_recent_logins_may_relay() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relayers");
        std::fs::write(&file, "127.0.0.2 1000\n").unwrap();
        let rules = RelayRules {
            trusted: vec!["127.0.0.1/32".parse().unwrap()],
            relayers_file: file,
            window: 1200,
            refusal: "no".into(),
        };
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(
            rules
                .permits(ip("127.0.0.1"), 5000)
                .unwrap()
                .starts_with("trusted")
        );
        assert!(
            rules
                .permits(ip("127.0.0.2"), 2000)
                .unwrap()
                .starts_with("login")
        );
        assert!(rules.permits(ip("127.0.0.2"), 2300).is_none());
        assert!(rules.permits(ip("127.0.0.3"), 2000).is_none());
    }
}
