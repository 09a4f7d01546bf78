//! `masquerade`: what the mail a local user submits goes out as. Lines of
//! `KEY: TARGET`; a KEY is a login name (`alice`), an address
//! (`alice@shell.host`) or a domain (`@shell.host`, everyone there); a
//! TARGET is an address, or for a domain key a domain (`@her.example`,
//! which keeps the local part). A login name wins over an address, an
//! address over a domain. `postern-inject` applies it to the envelope
//! sender and the `From:` field of the user's own address.

use std::collections::HashMap;
use std::path::Path;

use crate::maps::{MapFile, logical_lines};
use crate::{Address, ConfigError, LineError};

pub const MASQUERADE_FILE: &str = "masquerade";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Address(Address),
    Domain(String),
}

/// The loaded map; each rule keeps its line number for `explain`.
#[derive(Clone, Debug, Default)]
pub struct Masquerade {
    users: HashMap<String, (Target, usize)>,
    addresses: HashMap<String, (Target, usize)>,
    domains: HashMap<String, (Target, usize)>,
}

impl Masquerade {
    /// Reads `DIR/masquerade`; a missing map is an empty one.
    pub fn load(dir: &Path) -> Result<(Masquerade, Vec<LineError>), ConfigError> {
        let path = dir.join(MASQUERADE_FILE);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ConfigError::read(path, e)),
        };
        let mut errors = Vec::new();
        let map = Masquerade::parse(&path, &text, &mut errors);
        Ok((map, errors))
    }

    pub fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Masquerade {
        let file = MapFile(path);
        let mut map = Masquerade::default();
        for (line, content) in logical_lines(text) {
            match parse_line(content) {
                Ok((Key::User(name), target)) => {
                    map.users.entry(name).or_insert((target, line));
                }
                Ok((Key::Address(address), target)) => {
                    map.addresses.entry(address).or_insert((target, line));
                }
                Ok((Key::Domain(domain), target)) => {
                    map.domains.entry(domain).or_insert((target, line));
                }
                Err(why) => errors.push(file.error(line, why)),
            }
        }
        map
    }

    /// What `address` (the address of login `user`) goes out as, with the
    /// line of the rule; `None` when it stays as it is.
    pub fn lookup(&self, user: &str, address: &Address) -> Option<(Address, usize)> {
        let (target, line) = self
            .users
            .get(&user.to_lowercase())
            .or_else(|| self.addresses.get(&address.to_string()))
            .or_else(|| self.domains.get(address.domain()))?;
        let new = match target {
            Target::Address(new) => new.clone(),
            Target::Domain(domain) => Address::new(address.local(), domain).ok()?,
        };
        Some((new, *line))
    }
}

enum Key {
    User(String),
    Address(String),
    Domain(String),
}

/// A rule as `postern-admin` writes it: the line, and its key as lookups
/// see it (lower case); or what is wrong with it.
pub fn rule_line(key: &str, target: &str) -> Result<(String, String), String> {
    let line = format!("{}: {}", key.trim(), target.trim());
    let key = match parse_line(&line)?.0 {
        Key::User(name) => name,
        Key::Address(address) => address,
        Key::Domain(domain) => format!("@{domain}"),
    };
    Ok((line, key))
}

/// One line's key and target, or what is wrong with it.
fn parse_line(content: &str) -> Result<(Key, Target), String> {
    let (key, target) = content
        .split_once(':')
        .ok_or_else(|| format!("{:?}: expected KEY: TARGET", content.trim()))?;
    let (key, target) = (key.trim(), target.trim());
    let key = if let Some(domain) = key.strip_prefix('@') {
        let probe = Address::new("x", domain).map_err(|e| format!("key {key:?}: {e}"))?;
        Key::Domain(probe.domain().to_string())
    } else if key.contains('@') {
        Key::Address(
            Address::parse(key)
                .map_err(|e| format!("key {key:?}: {e}"))?
                .to_string(),
        )
    } else if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Key::User(key.to_lowercase())
    } else {
        return Err(format!(
            "key {key:?}: expected a login name, an address or @domain"
        ));
    };
    let target = if let Some(domain) = target.strip_prefix('@') {
        if !matches!(key, Key::Domain(_)) {
            return Err(format!(
                "target {target:?}: only a @domain key may name a domain"
            ));
        }
        let probe = Address::new("x", domain).map_err(|e| format!("target {target:?}: {e}"))?;
        Target::Domain(probe.domain().to_string())
    } else {
        Target::Address(Address::parse(target).map_err(|e| format!("target {target:?}: {e}"))?)
    };
    Ok((key, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    #[test]
    fn users_then_addresses_then_domains() {
        let text = "# masquerading\nalice: alice@her-domain.example\nbob@shell.test: robert@example.org\n@shell.test: @members.example\nbad line\n@shell.test: x@y\ncarol: @nowhere.example\n";
        let mut errors = Vec::new();
        let map = Masquerade::parse(Path::new("masquerade"), text, &mut errors);
        assert_eq!(
            map.lookup("alice", &address("alice@shell.test")),
            Some((address("alice@her-domain.example"), 2))
        );
        assert_eq!(
            map.lookup("bob", &address("bob@shell.test")),
            Some((address("robert@example.org"), 3))
        );
        assert_eq!(
            map.lookup("dave", &address("dave@shell.test")),
            Some((address("dave@members.example"), 4))
        );
        assert_eq!(map.lookup("erin", &address("erin@other.test")), None);
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("masquerade:5: "));
        assert!(shown[1].starts_with("masquerade:7: target \"@nowhere.example\""));
    }
}
