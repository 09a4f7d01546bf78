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
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why the configuration could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
}

impl ConfigError {
    pub fn read(path: impl Into<PathBuf>, source: std::io::Error) -> ConfigError {
        ConfigError::Read {
            path: path.into(),
            source,
        }
    }
}
