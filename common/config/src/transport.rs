//! Where mail for other hosts goes: the next-hop syntax Postfix uses for
//! `relayhost` and its transport map, and the `transport` map itself —
//! one `domain next-hop` pair a line, to split delivery by domain — with
//! the `tls_policy` map beside it (`destination level`).
//!
//! A next hop is `mx` (the domain's own mail servers, overriding
//! `relayhost`), `host` or `host:port` (the MX hosts of `host`), or
//! `[host]` / `[host]:port` (that host alone, no MX lookup; `host` may be
//! an address).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::address::valid_domain;
use crate::maps::{MapFile, logical_lines};
use crate::{ConfigError, LineError};

pub const TRANSPORT_FILE: &str = "transport";
pub const TLS_POLICY_FILE: &str = "tls_policy";

/// A next hop: the host (or domain) and port to send to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// A domain whose MX hosts are looked up, or a host (or address)
    /// used as it is.
    pub host: String,
    /// Whether `host` is used as it is (`[host]`): no MX lookup.
    pub literal: bool,
    /// `None`: `[remote] port`.
    pub port: Option<u16>,
}

impl NextHop {
    /// `host`, `host:port`, `[host]`, `[host]:port`; IPv6 addresses in
    /// brackets (`[2001:db8::1]:25`, `[IPv6:2001:db8::1]`).
    pub fn parse(text: &str) -> Result<NextHop, String> {
        let bad = || format!("{text:?} is not a next hop (host, host:port, [host] or [host]:port)");
        let (host, literal, rest) = match text.strip_prefix('[') {
            Some(inner) => {
                let (host, rest) = inner.split_once(']').ok_or_else(bad)?;
                let host = host.strip_prefix("IPv6:").unwrap_or(host);
                (host.to_ascii_lowercase(), true, rest)
            }
            None => {
                let end = text.find(':').unwrap_or(text.len());
                (text[..end].to_ascii_lowercase(), false, &text[end..])
            }
        };
        let port = match rest {
            "" => None,
            rest => Some(
                rest.strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|&p| p > 0)
                    .ok_or_else(bad)?,
            ),
        };
        let address = host.parse::<std::net::IpAddr>().is_ok();
        if host.is_empty() || (!address && !valid_domain(&host)) || (address && !literal) {
            return Err(bad());
        }
        Ok(NextHop {
            host,
            literal,
            port,
        })
    }

    /// The host's part, for a policy lookup: `smtp.isp.example`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl std::fmt::Display for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.literal, self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (true, None) => write!(f, "[{}]", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (false, None) => f.write_str(&self.host),
        }
    }
}

/// A transport map entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The domain's own MX hosts, whatever `relayhost` says.
    Mx,
    Via(NextHop),
}

/// The `transport` map.
#[derive(Debug, Default)]
pub struct TransportMap {
    entries: HashMap<String, Transport>,
    broken: HashSet<String>,
    everything_broken: bool,
}

impl TransportMap {
    pub fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> TransportMap {
        let mut map = TransportMap::default();
        let file = MapFile(path);
        for (line, content) in logical_lines(text) {
            let mut words = content.split_whitespace();
            let domain = words.next().unwrap_or_default().to_ascii_lowercase();
            let domain = domain.strip_suffix('.').unwrap_or(&domain).to_string();
            if !valid_domain(&domain) || domain.starts_with('[') {
                errors.push(file.error(line, format!("{domain:?} is not a domain name")));
                continue;
            }
            let entry = match (words.next(), words.next()) {
                (Some("mx"), None) => Ok(Transport::Mx),
                (Some(hop), None) => NextHop::parse(hop).map(Transport::Via),
                (None, _) => Err(format!("no next hop for {domain}")),
                (Some(_), Some(extra)) => Err(format!("unexpected {extra:?} after the next hop")),
            };
            match entry {
                Ok(entry) if !map.entries.contains_key(&domain) => {
                    map.entries.insert(domain, entry);
                }
                Ok(_) => errors.push(file.error(line, format!("{domain} is listed again"))),
                Err(why) => {
                    errors.push(file.error(line, why));
                    map.broken.insert(domain);
                }
            }
        }
        map
    }

    /// The map of `dir`; a missing one is empty.
    pub fn load(dir: &Path) -> Result<TransportMap, ConfigError> {
        Ok(TransportMap::load_checked(dir)?.0)
    }

    /// `load`, with the errors of its bad lines (`postern-admin check`).
    pub fn load_checked(dir: &Path) -> Result<(TransportMap, Vec<LineError>), ConfigError> {
        let (path, text) = crate::maps::read_map(dir, TRANSPORT_FILE)?;
        let mut errors = Vec::new();
        let map = TransportMap::parse(&path, &text, &mut errors);
        Ok((map, errors))
    }

    /// A map that exists but cannot be read: it holds every domain.
    pub fn unreadable() -> TransportMap {
        TransportMap {
            everything_broken: true,
            ..TransportMap::default()
        }
    }

    pub fn get(&self, domain: &str) -> Option<&Transport> {
        self.entries.get(domain)
    }

    /// A domain whose line is bad: its mail is deferred until it is
    /// fixed, never sent where the line did not mean.
    pub fn is_broken(&self, domain: &str) -> bool {
        self.everything_broken || self.broken.contains(domain)
    }
}

/// `[remote] tls` and the `tls_policy` map: what TLS a destination needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsLevel {
    /// Never STARTTLS (a server whose TLS is known broken).
    None,
    /// STARTTLS where offered, any certificate; in cleartext where not,
    /// or where the handshake fails (RFC 7435).
    May,
    /// STARTTLS always, any certificate: a server without it gets no
    /// mail (deferred).
    Encrypt,
    /// STARTTLS always, with a certificate valid for the host's name
    /// under `[remote] ca_file`.
    Verify,
}

impl TlsLevel {
    fn parse(word: &str) -> Option<TlsLevel> {
        Some(match word {
            "none" => TlsLevel::None,
            "may" => TlsLevel::May,
            "encrypt" => TlsLevel::Encrypt,
            "verify" => TlsLevel::Verify,
            _ => return None,
        })
    }
}

/// The `tls_policy` map: `destination level`, the destination as the
/// queue names it (`example.org`, `[smtp.isp.example]:587`) or its host.
#[derive(Debug, Default)]
pub struct TlsPolicies {
    entries: HashMap<String, TlsLevel>,
    broken: HashSet<String>,
}

impl TlsPolicies {
    pub fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> TlsPolicies {
        let mut map = TlsPolicies::default();
        let file = MapFile(path);
        for (line, content) in logical_lines(text) {
            let mut words = content.split_whitespace();
            let key = words.next().unwrap_or_default().to_ascii_lowercase();
            match (words.next().and_then(TlsLevel::parse), words.next()) {
                (Some(level), None) => {
                    map.entries.insert(key, level);
                }
                _ => {
                    errors.push(file.error(
                        line,
                        format!("{key}: expected one level, none, may, encrypt or verify"),
                    ));
                    map.broken.insert(key);
                }
            }
        }
        map
    }

    pub fn load(dir: &Path) -> Result<TlsPolicies, ConfigError> {
        Ok(TlsPolicies::load_checked(dir)?.0)
    }

    /// `load`, with the errors of its bad lines (`postern-admin check`).
    pub fn load_checked(dir: &Path) -> Result<(TlsPolicies, Vec<LineError>), ConfigError> {
        let (path, text) = crate::maps::read_map(dir, TLS_POLICY_FILE)?;
        let mut errors = Vec::new();
        let map = TlsPolicies::parse(&path, &text, &mut errors);
        Ok((map, errors))
    }

    /// Whether a line (good or bad) names `destination` or its host.
    pub fn names(&self, destination: &str, host: &str) -> bool {
        let destination = destination.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        [&destination, &host]
            .iter()
            .any(|key| self.entries.contains_key(*key) || self.broken.contains(*key))
    }

    /// The level for `destination`: its own line, else its host's, else
    /// `default`. A bad line asks for the strictest level, so a typo
    /// never sends mail in cleartext that was meant to be protected.
    pub fn level(&self, destination: &str, host: &str, default: TlsLevel) -> TlsLevel {
        let destination = destination.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        if self.broken.contains(&destination) || self.broken.contains(&host) {
            return TlsLevel::Verify;
        }
        self.entries
            .get(&destination)
            .or_else(|| self.entries.get(&host))
            .copied()
            .unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_as_postfix_writes_them() {
        let hop = |t: &str| NextHop::parse(t).unwrap();
        assert_eq!(
            hop("[smtp.ISP.example]:587"),
            NextHop {
                host: "smtp.isp.example".into(),
                literal: true,
                port: Some(587)
            }
        );
        assert_eq!(hop("mail.example.org").to_string(), "mail.example.org");
        assert_eq!(hop("mail.example.org:2525").port, Some(2525));
        assert!(!hop("mail.example.org:2525").literal);
        assert_eq!(hop("[192.0.2.1]").host, "192.0.2.1");
        assert_eq!(hop("[IPv6:2001:db8::1]:25").host, "2001:db8::1");
        assert_eq!(hop("[2001:db8::1]:25").to_string(), "[2001:db8::1]:25");
        for bad in [
            "",
            "[x",
            "x:0",
            "x:port",
            "[x]587",
            "192.0.2.1",
            "a b",
            "[x]:99999",
        ] {
            assert!(NextHop::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_transport_map_and_its_bad_lines() {
        let mut errors = Vec::new();
        let map = TransportMap::parse(
            Path::new("transport"),
            "# split delivery\npartner.test [mx.partner.test]:2525\nOther.Test mx\nbad.test [x\nlonely.test\n",
            &mut errors,
        );
        assert_eq!(
            map.get("partner.test"),
            Some(&Transport::Via(
                NextHop::parse("[mx.partner.test]:2525").unwrap()
            ))
        );
        assert_eq!(map.get("other.test"), Some(&Transport::Mx));
        assert!(map.is_broken("bad.test") && map.is_broken("lonely.test"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, 4);
    }

    #[test]
    fn tls_levels_by_destination_then_host() {
        let mut errors = Vec::new();
        let map = TlsPolicies::parse(
            Path::new("tls_policy"),
            "bank.test verify\n[smtp.isp.test]:587 encrypt\nbroken.test maybe\n",
            &mut errors,
        );
        assert_eq!(
            map.level("bank.test", "bank.test", TlsLevel::May),
            TlsLevel::Verify
        );
        assert_eq!(
            map.level("[smtp.isp.test]:587", "smtp.isp.test", TlsLevel::May),
            TlsLevel::Encrypt
        );
        assert_eq!(
            map.level("other.test", "other.test", TlsLevel::May),
            TlsLevel::May
        );
        assert_eq!(
            map.level("broken.test", "broken.test", TlsLevel::None),
            TlsLevel::Verify
        );
        assert_eq!(errors.len(), 1);
    }
}
