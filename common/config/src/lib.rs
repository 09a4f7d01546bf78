//! Postern's configuration directory: `postern.toml` for settings and the
//! line-oriented maps a person edits by hand — `domains`, `accounts` (in
//! Dovecot's passwd-file format) and `aliases` (the `/etc/aliases` syntax
//! with `user@domain` keys and `@domain` catch-alls).
//!
//! Nothing here is cached across calls: a program loads the maps when it
//! needs them, so an edit takes effect on the next delivery or login.
//!
//! A bad line never stops a map from loading. Each map keeps its good lines
//! and records the problem as `file:line: what is wrong`; when the bad line
//! still names its key (an address, a domain), that key is remembered as
//! broken and mail for it is deferred (4.3.5) rather than bounced, so a typo
//! never turns into lost or bounced mail. Only `postern.toml` refuses to load.

mod accounts;
mod address;
mod advice;
mod aliases;
mod domains;
pub mod edit;
mod error;
mod imapd;
mod maps;
pub mod masquerade;
pub mod network;
mod pop3d;
pub mod relayers;
mod remote;
pub mod services;
mod settings;
mod settings_load;
mod size;
mod smtpd;
mod srs;
mod transport;
mod valid;

pub use accounts::{Account, AccountLine, Accounts, FolderRights, Pop3Scope, Quota};
pub use address::{Address, AddressError};
pub use aliases::{AliasEntry, AliasTarget, Aliases, parse_target, split_list, validate_target};
pub use domains::{DomainKind, Domains};
pub use error::{ConfigError, LineError};
pub use imapd::ImapdSettings;
pub use maps::{ACCOUNTS_FILE, ALIASES_FILE, DOMAINS_FILE, Maps};
pub use masquerade::Masquerade;
pub use network::Network;
pub use pop3d::{Access, Pop3dSettings, ProxyTls};
pub use remote::RemoteSettings;
pub use settings::{LogTarget, MailOwner, QuotaFailure, Settings};
pub use size::{parse_size, span};
pub use smtpd::{AuthSettings, SmtpdSettings, TlsSettings};
pub use srs::SrsSettings;
pub use transport::{
    NextHop, TLS_POLICY_FILE, TRANSPORT_FILE, TlsLevel, TlsPolicies, Transport, TransportMap,
};

use std::path::{Path, PathBuf};

/// The default configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postern";

/// Where the configuration lives: `--config DIR`, else `$POSTERN_CONFIG`,
/// else `/etc/postern`.
pub fn config_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    match std::env::var_os("POSTERN_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_CONFIG_DIR),
    }
}

/// Settings and maps, loaded together from one directory.
#[derive(Debug)]
pub struct Config {
    pub dir: PathBuf,
    pub settings: Settings,
    pub maps: Maps,
}

impl Config {
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let settings = Settings::load(dir)?;
        let maps = Maps::load(dir)?;
        Ok(Config {
            dir: dir.to_path_buf(),
            settings,
            maps,
        })
    }
}

/// Seconds since the epoch at `time`: the clock of queue arrivals, retry
/// schedules and the relayers file. A clock before 1970 reads as 0.
pub fn unix_seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// [`unix_seconds`] of now.
pub fn unix_now() -> u64 {
    unix_seconds(std::time::SystemTime::now())
}
