//! The `[srs]` table of postern.toml: the Sender Rewriting Scheme for
//! mail forwarded to other hosts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[srs]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SrsSettings {
    /// The host's SRS domain (its MX must be this host); empty: no SRS.
    pub domain: String,
    /// postsrsd's secrets file: one secret a line, the first signs, every
    /// one verifies (key rollover). Readable by root and postern-auth.
    pub secrets_file: PathBuf,
    /// Days an SRS0 address stays valid for a bounce (libsrs2's 21).
    pub max_age: u64,
}

impl Default for SrsSettings {
    fn default() -> SrsSettings {
        SrsSettings {
            domain: String::new(),
            secrets_file: "/etc/postern/srs-secrets".into(),
            max_age: 21,
        }
    }
}
