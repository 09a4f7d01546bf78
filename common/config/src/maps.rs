//! The maps of the configuration directory, loaded together, each with
//! its good lines and the errors of its bad ones.

use std::path::{Path, PathBuf};

use crate::{Accounts, Aliases, ConfigError, Domains, LineError};

/// The three maps of a configuration directory, with the problems found on
/// their lines. Each map keeps its good lines (see the crate docs).
#[derive(Debug, Default)]
pub struct Maps {
    pub domains: Domains,
    pub accounts: Accounts,
    pub aliases: Aliases,
    pub errors: Vec<LineError>,
}

pub const DOMAINS_FILE: &str = "domains";
pub const ACCOUNTS_FILE: &str = "accounts";
pub const ALIASES_FILE: &str = "aliases";

impl Maps {
    /// Loads every map in `dir`. A missing map is an empty one; a map that
    /// exists but cannot be read is an error, since running without it
    /// would bounce mail it routes.
    pub fn load(dir: &Path) -> Result<Maps, ConfigError> {
        let mut errors = Vec::new();
        let (path, text) = read_map(dir, DOMAINS_FILE)?;
        let domains = Domains::parse(&path, &text, &mut errors);
        let (path, text) = read_map(dir, ACCOUNTS_FILE)?;
        let accounts = Accounts::parse(&path, &text, &mut errors);
        let (path, text) = read_map(dir, ALIASES_FILE)?;
        let mut aliases = Aliases::parse(&path, &text, &mut errors);
        aliases.owner = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(0);
        Ok(Maps {
            domains,
            accounts,
            aliases,
            errors,
        })
    }
}

impl Domains {
    /// The domains map of `dir` alone, for a program that routes by
    /// domain and reads no other map (the queue manager).
    pub fn load(dir: &Path) -> Result<Domains, ConfigError> {
        let (path, text) = read_map(dir, DOMAINS_FILE)?;
        Ok(Domains::parse(&path, &text, &mut Vec::new()))
    }
}

pub(crate) fn read_map(dir: &Path, name: &str) -> Result<(PathBuf, String), ConfigError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        // Maps are text, but a stray byte must not make the whole map
        // unreadable: it shows up as U+FFFD on the line that has it.
        Ok(bytes) => Ok((path, String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, String::new())),
        Err(e) => Err(ConfigError::read(path, e)),
    }
}

/// Names the file in a map's line errors.
pub(crate) struct MapFile<'a>(pub &'a Path);

impl MapFile<'_> {
    pub fn error(&self, line: usize, message: impl Into<String>) -> LineError {
        LineError {
            file: self.0.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// The lines of a map that carry content, numbered from 1, without comment
/// lines (first non-blank character `#`) and blank lines.
pub(crate) fn logical_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| {
            let trimmed = line.trim_start();
            !trimmed.is_empty() && !trimmed.starts_with('#')
        })
}
