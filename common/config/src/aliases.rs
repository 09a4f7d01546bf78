//! The aliases map: `/etc/aliases` syntax with `user@domain` keys and
//! `@domain` catch-alls, line by line, bad lines remembered by key.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::address::valid_domain;
use crate::maps::MapFile;
use crate::{Address, LineError};

/// Where an alias sends mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasTarget {
    /// `user@domain`: resolved again, through aliases and mailboxes.
    Address(Address),
    /// A bare name: the local user of that name at the host's name, as in
    /// sendmail's `/etc/aliases`.
    LocalUser(String),
    /// `@other.domain` in a catch-all: the same local part at another domain.
    Domain(String),
    /// `|command` (system aliases only): run by `/bin/sh -c`.
    Pipe(String),
    /// `/path/file` (system aliases only): appended in mbox format.
    File(PathBuf),
    /// `/path/Maildir/` (system aliases only).
    Maildir(PathBuf),
    /// `:include:/path` (system aliases only): more targets from a file.
    Include(PathBuf),
}

/// One alias: `key: target, target, ...`.
#[derive(Clone, Debug)]
pub struct AliasEntry {
    pub key: String,
    pub targets: Vec<AliasTarget>,
    pub line: usize,
}

/// The `aliases` map, in `/etc/aliases` syntax extended with `user@domain`
/// keys and `@domain` catch-alls. A bare key (`postmaster`) applies to the
/// local domains; the bare `postmaster` and `abuse` also back up every
/// virtual domain that has no alias or mailbox of that name.
#[derive(Debug, Default)]
pub struct Aliases {
    entries: HashMap<String, AliasEntry>,
    broken: HashSet<String>,
    /// The owner of the aliases file: its commands and files run as this
    /// user (uid 0 meaning the default user, nobody, as in sendmail).
    pub owner: u32,
    /// Others may write the file: then it runs nothing, since whoever can
    /// write it could run commands as its owner.
    pub writable_by_others: bool,
}

impl std::fmt::Display for AliasTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AliasTarget::Address(address) => write!(f, "{address}"),
            AliasTarget::LocalUser(name) => write!(f, "{name}"),
            AliasTarget::Domain(domain) => write!(f, "@{domain}"),
            AliasTarget::Pipe(command) => write!(f, "|{command}"),
            AliasTarget::File(path) | AliasTarget::Maildir(path) => write!(f, "{}", path.display()),
            AliasTarget::Include(path) => write!(f, ":include:{}", path.display()),
        }
    }
}

impl Aliases {
    pub fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Aliases {
        let mut aliases = Aliases::default();
        let file = MapFile(path);
        for (line, entry) in entries(text) {
            let Some((key, value)) = entry.split_once(':') else {
                errors.push(file.error(line, format!("no ':' after {:?}", entry.trim())));
                continue;
            };
            let key = match parse_key(key.trim()) {
                Ok(key) => key,
                Err(message) => {
                    errors.push(file.error(line, message));
                    continue;
                }
            };
            match parse_targets(&key, value) {
                Ok(targets) => {
                    if let Some(first) = aliases.entries.get(&key) {
                        errors.push(file.error(
                            line,
                            format!(
                                "alias {key} is defined again (first at line {})",
                                first.line
                            ),
                        ));
                        continue;
                    }
                    aliases
                        .entries
                        .insert(key.clone(), AliasEntry { key, targets, line });
                }
                Err(message) => {
                    errors.push(file.error(line, format!("alias {key}: {message}")));
                    aliases.broken.insert(key);
                }
            }
        }
        aliases
    }

    /// The alias for `user@domain`, `@domain` or a bare name, as written in
    /// the map's key column (lower-case).
    pub fn get(&self, key: &str) -> Option<&AliasEntry> {
        self.entries.get(key)
    }

    /// A key whose line is bad: mail for it is deferred.
    pub fn is_broken(&self, key: &str) -> bool {
        self.broken.contains(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AliasEntry> {
        self.entries.values()
    }
}

/// The entries of an aliases map as line ranges (0-based, end exclusive):
/// a line that starts an entry, then the lines continuing it (starting with
/// a space or tab). A blank or comment line ends an entry, as in sendmail.
/// The editor uses the same ranges, so it changes exactly what the parser
/// reads as one entry.
pub(crate) fn entry_ranges(lines: &[&str]) -> Vec<std::ops::Range<usize>> {
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    let mut continuing = false;
    for (index, raw) in lines.iter().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continuing = false;
        } else if continuing && line.starts_with([' ', '\t']) {
            ranges.last_mut().expect("continuing implies an entry").end = index + 1;
        } else {
            ranges.push(index..index + 1);
            continuing = true;
        }
    }
    ranges
}

/// Each entry joined into one line, with its first line's number.
fn entries(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    entry_ranges(&lines)
        .into_iter()
        .map(|range| {
            let joined: Vec<&str> = lines[range.clone()]
                .iter()
                .map(|l| l.trim_end_matches('\r').trim())
                .collect();
            (range.start + 1, joined.join(" "))
        })
        .collect()
}

/// The key an entry starts with, lower-cased, as `get` expects it.
pub(crate) fn entry_key(first_line: &str) -> Option<String> {
    let (key, _) = first_line.split_once(':')?;
    parse_key(key.trim()).ok()
}

fn parse_key(key: &str) -> Result<String, String> {
    let key = key.trim_matches('"').to_lowercase();
    if key.is_empty() {
        return Err("empty alias name".to_string());
    }
    if let Some(domain) = key.strip_prefix('@') {
        return if valid_domain(domain) {
            Ok(key)
        } else {
            Err(format!("catch-all {key:?}: bad domain"))
        };
    }
    if key.contains('@') {
        return Address::parse(&key)
            .map(|a| a.to_string())
            .map_err(|e| format!("alias name {key:?}: {e}"));
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "alias name {key:?} has a space or control character"
        ));
    }
    Ok(key)
}

fn parse_targets(key: &str, value: &str) -> Result<Vec<AliasTarget>, String> {
    let mut targets = Vec::new();
    for raw in split_targets(value)? {
        let target = raw.trim();
        if target.is_empty() {
            continue;
        }
        let parsed = parse_target(key, target)?;
        if !targets.contains(&parsed) {
            targets.push(parsed);
        }
    }
    if targets.is_empty() {
        return Err("no targets".to_string());
    }
    Ok(targets)
}

/// Whether `target` may stand in the entry for `key`, as `postern-admin`
/// asks before it writes one: no line breaks or other controls, and what
/// the parser would accept.
pub fn validate_target(key: &str, target: &str) -> Result<(), String> {
    if target.chars().any(char::is_control) {
        return Err(format!(
            "target {target:?}: control characters are not allowed"
        ));
    }
    parse_target(key, target).map(drop)
}

/// One target of the entry for `key`. Commands, files and `:include:`
/// belong to the host's own aliases (bare names), which only the admin
/// edits; a `user@domain` or `@domain` entry, which a customer's domain
/// may have, cannot run anything.
pub fn parse_target(key: &str, target: &str) -> Result<AliasTarget, String> {
    let unquoted = match target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.trim(),
        None => target,
    };
    let special = unquoted.starts_with(['|', '/']) || unquoted.starts_with(":include:");
    if special && key.contains('@') {
        return Err(format!(
            "target {target:?}: commands, files and :include: are for the host's bare-name aliases, not {key}"
        ));
    }
    if let Some(command) = unquoted.strip_prefix('|') {
        let command = command.trim();
        if command.is_empty() {
            return Err(format!("target {target:?}: empty command"));
        }
        return Ok(AliasTarget::Pipe(command.to_string()));
    }
    if let Some(path) = unquoted.strip_prefix(":include:") {
        return Ok(AliasTarget::Include(absolute_path(target, path.trim())?));
    }
    if unquoted.starts_with('/') {
        let path = absolute_path(target, unquoted)?;
        return Ok(if unquoted.ends_with('/') {
            AliasTarget::Maildir(path)
        } else {
            AliasTarget::File(path)
        });
    }
    if unquoted.starts_with('\\') {
        return Err(format!(
            "target {target:?}: \\user targets are not supported in aliases"
        ));
    }
    if let Some(domain) = unquoted.strip_prefix('@') {
        if !key.starts_with('@') {
            return Err(format!(
                "target {target:?}: an @domain target needs an @domain key"
            ));
        }
        if !valid_domain(domain) {
            return Err(format!("target {target:?}: bad domain"));
        }
        return Ok(AliasTarget::Domain(domain.to_lowercase()));
    }
    if unquoted.contains('@') {
        return Address::parse(unquoted)
            .map(AliasTarget::Address)
            .map_err(|e| format!("target {target:?}: {e}"));
    }
    // A bare name becomes name@host: it must make a valid local part.
    if Address::new(unquoted, "localhost").is_err() {
        return Err(format!("target {target:?}: not a user name"));
    }
    Ok(AliasTarget::LocalUser(unquoted.to_lowercase()))
}

fn absolute_path(target: &str, path: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
        return Err(format!(
            "target {target:?}: needs an absolute path without '..'"
        ));
    }
    Ok(PathBuf::from(path))
}

/// Splits on commas outside double quotes.
fn split_targets(value: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unbalanced '\"'".to_string());
    }
    parts.push(&value[start..]);
    Ok(parts)
}

/// The items of an `:include:` line, split on commas outside quotes.
pub fn split_list(line: &str) -> Vec<String> {
    split_targets(line)
        .unwrap_or_else(|_| vec![line])
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Aliases, Vec<String>) {
        let mut errors = Vec::new();
        let aliases = Aliases::parse(Path::new("aliases"), text, &mut errors);
        (aliases, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn sendmail_syntax_with_extensions() {
        let (aliases, errors) = parse(concat!(
            "# system aliases\n",
            "postmaster: root\n",
            "Team@Example.Test: a@example.test, b@example.test,\n",
            "\tc@example.test\n",
            "\n",
            "@example.test: catch@example.test\n",
            "@old.test: @example.test\n",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            aliases.get("postmaster").unwrap().targets,
            [AliasTarget::LocalUser("root".into())]
        );
        let team = aliases.get("team@example.test").unwrap();
        assert_eq!(team.targets.len(), 3);
        assert_eq!(team.line, 3);
        assert_eq!(
            aliases.get("@old.test").unwrap().targets,
            [AliasTarget::Domain("example.test".into())]
        );
    }

    #[test]
    fn system_aliases_may_run_commands_and_write_files() {
        let (aliases, errors) = parse(
            "log: \"|/usr/bin/logger -t mail\", /var/log/mail.mbox, /srv/archive/\nstaff: :include:/etc/postern/staff\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            aliases.get("log").unwrap().targets,
            [
                AliasTarget::Pipe("/usr/bin/logger -t mail".into()),
                AliasTarget::File("/var/log/mail.mbox".into()),
                AliasTarget::Maildir("/srv/archive/".into()),
            ]
        );
        assert_eq!(
            aliases.get("staff").unwrap().targets,
            [AliasTarget::Include("/etc/postern/staff".into())]
        );
        let (_, errors) =
            parse("a: /x/../etc/passwd\nb: :include:relative\n@example.test: |cmd\nc: na:me\n");
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn bad_lines() {
        let (aliases, errors) = parse(concat!(
            "postmaster root\n",
            "pipe@example.test: \"|/usr/bin/vacation bob\"\n",
            "a@example.test: x@@\n",
            "b@example.test:\n",
            "c@example.test: @other.test\n",
            "d@example.test: \"unbalanced\n",
            "e@example.test: ok@example.test\n",
            "E@example.test: again@example.test\n",
        ));
        assert_eq!(
            errors,
            [
                "aliases:1: no ':' after \"postmaster root\"",
                "aliases:2: alias pipe@example.test: target \"\\\"|/usr/bin/vacation bob\\\"\": commands, files and :include: are for the host's bare-name aliases, not pipe@example.test",
                "aliases:3: alias a@example.test: target \"x@@\": empty domain",
                "aliases:4: alias b@example.test: no targets",
                "aliases:5: alias c@example.test: target \"@other.test\": an @domain target needs an @domain key",
                "aliases:6: alias d@example.test: unbalanced '\"'",
                "aliases:8: alias e@example.test is defined again (first at line 7)",
            ]
        );
        assert!(aliases.is_broken("a@example.test"));
        assert!(aliases.get("e@example.test").is_some());
    }
}
