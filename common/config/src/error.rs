//! What goes wrong with the configuration: a map or settings line
//! (`file:line: what is wrong`), or a file that cannot be used at all.

use std::fmt;
use std::path::PathBuf;

/// A problem on one line of a map, reported as `file:line: what is wrong`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            line => write!(f, "{}:{line}: {}", self.file.display(), self.message),
        }
    }
}

/// Why the configuration could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// postern.toml's errors, each with its line (one at least).
    #[error("{}", settings_errors(.0))]
    Settings(Vec<LineError>),
}

fn settings_errors(errors: &[LineError]) -> String {
    match errors {
        [] => "postern.toml does not load".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more errors)", rest.len()),
    }
}

impl ConfigError {
    pub fn read(path: impl Into<PathBuf>, source: std::io::Error) -> ConfigError {
        ConfigError::Read {
            path: path.into(),
            source,
        }
    }
}
