//! Aliases, catch-alls and forwards: all entries of the aliases map.
//! `catchall` and `forward` are the same entries under the names customers
//! and helpdesks use.

use std::path::Path;

use anyhow::bail;
use postern_config::edit::{MapKind, MapText};
use postern_config::{Address, DomainKind};

use crate::maps::{at, edit, load, require_domain};

/// A key as the map writes it: `user@domain`, `@domain` or a bare name.
fn key(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if let Some(domain) = text.strip_prefix('@') {
        return Ok(format!("@{}", require_domain(domain)?));
    }
    if text.contains('@') {
        return Ok(Address::parse(text)
            .map_err(|e| anyhow::anyhow!("{text:?}: {e}"))?
            .to_string());
    }
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        bail!("{text:?} is not an alias name");
    }
    Ok(text.to_lowercase())
}

/// The targets already in an entry, as written (quotes kept).
fn targets_of(map: &MapText, range: std::ops::Range<usize>) -> Vec<String> {
    let joined: Vec<String> = map
        .lines(range)
        .iter()
        .map(|l| l.trim().to_string())
        .collect();
    let joined = joined.join(" ");
    let value = joined.split_once(':').map(|(_, v)| v).unwrap_or_default();
    split_targets(value)
}

fn split_targets(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut current).trim().to_string());
            }
            c => current.push(c),
        }
    }
    out.push(current.trim().to_string());
    out.retain(|t| !t.is_empty());
    out
}

/// Every target checked as the parser would read it under `key`, so no
/// value can smuggle in a line break or a command where none is allowed.
fn validate(key: &str, targets: &[String]) -> anyhow::Result<()> {
    for target in targets {
        postern_config::validate_target(key, target).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

fn entry_line(key: &str, targets: &[String]) -> String {
    format!("{key}: {}", targets.join(", "))
}

/// `alias add KEY TARGET...`: a new entry, or more targets for one.
pub fn add(dir: &Path, key_text: &str, targets: &[String]) -> anyhow::Result<String> {
    let key = key(key_text)?;
    if targets.is_empty() {
        bail!("no targets for {key}");
    }
    validate(&key, targets)?;
    check_domain(dir, &key)?;
    edit(dir, MapKind::Aliases, |map| match map.find(&key) {
        Some(range) => {
            let mut all = targets_of(map, range.clone());
            let before = all.len();
            for target in targets {
                if !all.iter().any(|t| t.eq_ignore_ascii_case(target)) {
                    all.push(target.clone());
                }
            }
            let line = range.start + 1;
            let added = all.len() - before;
            map.replace(range, vec![entry_line(&key, &all)]);
            Ok(format!(
                "added {added} targets to {key} at {}",
                at(dir, MapKind::Aliases, line)
            ))
        }
        None => {
            let line = map.append(vec![entry_line(&key, targets)]);
            Ok(format!(
                "added {key} at {}",
                at(dir, MapKind::Aliases, line)
            ))
        }
    })
}

/// `alias del KEY [TARGET...]`: the whole entry, or some of its targets
/// (the entry goes when none is left).
pub fn del(dir: &Path, key_text: &str, targets: &[String]) -> anyhow::Result<String> {
    let key = key(key_text)?;
    edit(dir, MapKind::Aliases, |map| {
        let Some(range) = map.find(&key) else {
            bail!(
                "no alias {key} in {}",
                crate::maps::path_of(dir, MapKind::Aliases).display()
            );
        };
        let line = range.start + 1;
        if targets.is_empty() {
            map.remove_all(&key);
            return Ok(format!(
                "removed {key} (was {})",
                at(dir, MapKind::Aliases, line)
            ));
        }
        let all = targets_of(map, range.clone());
        let kept: Vec<String> = all
            .iter()
            .filter(|t| !targets.iter().any(|gone| gone.eq_ignore_ascii_case(t)))
            .cloned()
            .collect();
        if kept.len() == all.len() {
            bail!("{key} has none of those targets");
        }
        if kept.is_empty() {
            map.replace(range, Vec::new());
            return Ok(format!(
                "removed {key} (was {}), its last target gone",
                at(dir, MapKind::Aliases, line)
            ));
        }
        let removed = all.len() - kept.len();
        map.replace(range, vec![entry_line(&key, &kept)]);
        Ok(format!(
            "removed {removed} targets from {key} at {}",
            at(dir, MapKind::Aliases, line)
        ))
    })
}

/// `alias list [DOMAIN]`.
pub fn list(dir: &Path, domain: Option<&str>) -> anyhow::Result<String> {
    let config = load(dir)?;
    let domain = domain.map(require_domain).transpose()?;
    let mut entries: Vec<_> = config
        .maps
        .aliases
        .iter()
        .filter(|e| match &domain {
            Some(d) => e.key.rsplit_once('@').is_some_and(|(_, kd)| kd == d),
            None => true,
        })
        .collect();
    entries.sort_by_key(|e| e.line);
    let path = crate::maps::path_of(dir, MapKind::Aliases);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let map = MapText::new(MapKind::Aliases, &text);
    Ok(entries
        .iter()
        .filter_map(|e| {
            map.find(&e.key)
                .map(|r| entry_line(&e.key, &targets_of(&map, r)))
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A key in a domain needs the domain listed, or its mail goes nowhere.
fn check_domain(dir: &Path, key: &str) -> anyhow::Result<()> {
    let Some((_, domain)) = key.rsplit_once('@') else {
        return Ok(());
    };
    let config = load(dir)?;
    if postern_routing::Resolver::of(&config)
        .domain_kind(domain)
        .is_none()
    {
        bail!(
            "{domain} is neither a local nor a virtual domain here: postern-admin domain add {domain}"
        );
    }
    Ok(())
}

/// `catchall set DOMAIN TARGET...`: the `@domain` entry, replaced whole.
pub fn catchall_set(dir: &Path, domain: &str, targets: &[String]) -> anyhow::Result<String> {
    let domain = require_domain(domain)?;
    let config = load(dir)?;
    if postern_routing::Resolver::of(&config).domain_kind(&domain) != Some(DomainKind::Virtual) {
        bail!("{domain} is not a virtual domain: catch-alls are for virtual domains");
    }
    replace_entry(dir, &format!("@{domain}"), targets)
}

/// `forward set ADDR TARGET... [--keep-copy]`: mail for ADDR goes to the
/// targets, and with `--keep-copy` also stays in ADDR's own mailbox.
pub fn forward_set(
    dir: &Path,
    address: &str,
    targets: &[String],
    keep_copy: bool,
) -> anyhow::Result<String> {
    let address = key(address)?;
    if !address.contains('@') || address.starts_with('@') {
        bail!("{address:?}: forward an address (user@domain); catch-alls have their own verb");
    }
    let mut all = Vec::new();
    if keep_copy {
        all.push(address.clone());
    }
    all.extend(targets.iter().cloned());
    let done = replace_entry(dir, &address, &all)?;
    Ok(match remote_targets(dir, targets) {
        remote if remote.is_empty() => done,
        remote => format!(
            "{done}\nnote: {} is on another host: {}",
            remote.join(", "),
            postern_routing::REMOTE_DELIVERY
        ),
    })
}

/// The targets that are not addresses of this host's domains.
fn remote_targets(dir: &Path, targets: &[String]) -> Vec<String> {
    let Ok(config) = postern_config::Config::load(dir) else {
        return Vec::new();
    };
    let resolver = postern_routing::Resolver::of(&config);
    targets
        .iter()
        .filter(|t| {
            postern_config::Address::parse(t)
                .is_ok_and(|a| resolver.domain_kind(a.domain()).is_none())
        })
        .cloned()
        .collect()
}

fn replace_entry(dir: &Path, key: &str, targets: &[String]) -> anyhow::Result<String> {
    if targets.is_empty() {
        bail!("no targets for {key}");
    }
    validate(key, targets)?;
    check_domain(dir, key)?;
    let key = key.to_string();
    edit(dir, MapKind::Aliases, |map| {
        let line = entry_line(&key, targets);
        match map.find(&key) {
            Some(range) => {
                let number = range.start + 1;
                map.replace(range, vec![line]);
                Ok(format!(
                    "set {key} at {}",
                    at(dir, MapKind::Aliases, number)
                ))
            }
            None => {
                let number = map.append(vec![line]);
                Ok(format!(
                    "set {key} at {}",
                    at(dir, MapKind::Aliases, number)
                ))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_outside_quotes() {
        assert_eq!(
            split_targets(" a@x, \"|cmd a,b\" ,b@x,"),
            ["a@x", "\"|cmd a,b\"", "b@x"]
        );
    }
}
