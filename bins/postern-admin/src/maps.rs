//! Shared steps of the editing verbs: load the configuration, change one
//! map under its lock, and make sure the change parses before it lands.

use std::path::{Path, PathBuf};

use anyhow::bail;
use postern_config::edit::{MapKind, MapText, edit_map};
use postern_config::{Accounts, Aliases, Config, Domains, Masquerade};

pub fn load(dir: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(dir)?)
}

pub fn path_of(dir: &Path, kind: MapKind) -> PathBuf {
    dir.join(match kind {
        MapKind::Domains => "domains",
        MapKind::Accounts => "accounts",
        MapKind::Aliases => "aliases",
        MapKind::Masquerade => postern_config::masquerade::MASQUERADE_FILE,
    })
}

/// Edits one map; `change` returns the message to print. Every line the
/// change adds must parse without an error, or nothing is written.
pub fn edit(
    dir: &Path,
    kind: MapKind,
    change: impl FnOnce(&mut MapText) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let path = path_of(dir, kind);
    edit_map(&path, kind, |map| {
        let before = map.text();
        let message = change(map).map_err(|e| format!("{e:#}"))?;
        let errors_before = line_errors(&path, kind, &before);
        let after = map.text();
        let new_errors: Vec<String> = line_errors(&path, kind, &after)
            .into_iter()
            .filter(|e| !errors_before.iter().any(|old| same_problem(old, e)))
            .collect();
        if !new_errors.is_empty() {
            return Err(new_errors.join("\n"));
        }
        Ok(message)
    })
    .map_err(anyhow::Error::msg)
}

/// A problem that was there before the edit (maybe on another line number
/// now) is not the edit's doing.
fn same_problem(old: &str, new: &str) -> bool {
    let text = |e: &str| e.splitn(3, ':').nth(2).map(str::to_string);
    text(old) == text(new)
}

fn line_errors(path: &Path, kind: MapKind, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    match kind {
        MapKind::Domains => drop(Domains::parse(path, text, &mut errors)),
        MapKind::Accounts => drop(Accounts::parse(path, text, &mut errors)),
        MapKind::Aliases => drop(Aliases::parse(path, text, &mut errors)),
        MapKind::Masquerade => drop(Masquerade::parse(path, text, &mut errors)),
    }
    errors.into_iter().map(|e| e.to_string()).collect()
}

/// `file:line` of a 1-based line, for messages.
pub fn at(dir: &Path, kind: MapKind, line: usize) -> String {
    format!("{}:{line}", path_of(dir, kind).display())
}

pub fn require_domain(domain: &str) -> anyhow::Result<String> {
    let lower = domain.trim().trim_end_matches('.').to_lowercase();
    if lower.is_empty()
        || postern_config::Address::new("x", &lower).is_err()
        || lower.starts_with('[')
    {
        bail!("{domain:?} is not a domain name");
    }
    Ok(lower)
}
