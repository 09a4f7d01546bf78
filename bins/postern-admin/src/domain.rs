//! `domain add`, `del` and `list`.

use std::path::Path;

use anyhow::bail;
use postern_config::DomainKind;
use postern_config::edit::MapKind;

use crate::maps::{at, edit, load, require_domain};

pub fn add(dir: &Path, domain: &str, local: bool) -> anyhow::Result<String> {
    let domain = require_domain(domain)?;
    let kind = if local { "local" } else { "virtual" };
    edit(dir, MapKind::Domains, |map| {
        if let Some(range) = map.find(&domain) {
            bail!(
                "{domain} is already listed at {}",
                at(dir, MapKind::Domains, range.start + 1)
            );
        }
        let line = map.append(vec![format!("{domain} {kind}")]);
        Ok(format!(
            "added {domain} ({kind}) at {}",
            at(dir, MapKind::Domains, line)
        ))
    })
}

/// Refuses while mailboxes or aliases still use the domain: removing it
/// first would make their mail look remote.
pub fn del(dir: &Path, domain: &str) -> anyhow::Result<String> {
    let domain = require_domain(domain)?;
    let config = load(dir)?;
    let mailboxes = config
        .maps
        .accounts
        .iter()
        .filter(|a| a.address.domain() == domain)
        .count();
    let aliases = config
        .maps
        .aliases
        .iter()
        .filter(|a| a.key.rsplit_once('@').is_some_and(|(_, d)| d == domain))
        .count();
    if mailboxes + aliases > 0 {
        bail!("{domain} still has {mailboxes} mailboxes and {aliases} aliases: remove them first");
    }
    edit(dir, MapKind::Domains, |map| {
        let Some(range) = map.find(&domain) else {
            bail!(
                "{domain} is not in {}",
                crate::maps::path_of(dir, MapKind::Domains).display()
            );
        };
        let line = range.start + 1;
        map.remove_all(&domain);
        Ok(format!(
            "removed {domain} (was {})",
            at(dir, MapKind::Domains, line)
        ))
    })
}

pub fn list(dir: &Path) -> anyhow::Result<String> {
    let config = load(dir)?;
    let mut domains: Vec<(String, DomainKind)> = config
        .maps
        .domains
        .iter()
        .map(|(d, k)| (d.to_string(), k))
        .collect();
    if !domains.iter().any(|(d, _)| *d == config.settings.hostname) {
        domains.push((config.settings.hostname.clone(), DomainKind::Local));
    }
    domains.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(domains
        .iter()
        .map(|(domain, kind)| {
            format!(
                "{domain} {}",
                if *kind == DomainKind::Local {
                    "local"
                } else {
                    "virtual"
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}
