use std::path::{Path, PathBuf};

use crate::pop3d::Pop3dSettings;
use crate::smtpd::{AuthSettings, SmtpdSettings, TlsSettings};
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::size::parse_size;

pub const SETTINGS_FILE: &str = "postern.toml";

/// `postern.toml`. Every key has a default, shown with its meaning in
/// `etc/postern.toml`; an unknown key is an error, so a typo is caught.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub hostname: String,
    pub mail_root: PathBuf,
    pub queue_dir: PathBuf,
    pub mail_owner: MailOwner,
    pub queue_user: MailOwner,
    pub max_deliveries: usize,
    pub max_deliveries_per_domain: usize,
    #[serde(deserialize_with = "duration")]
    pub retry_interval: u64,
    #[serde(deserialize_with = "duration")]
    pub max_retry_interval: u64,
    #[serde(deserialize_with = "duration")]
    pub queue_lifetime: u64,
    #[serde(deserialize_with = "duration")]
    pub delay_warning: u64,
    pub home_maildir: String,
    pub recipient_delimiter: String,
    #[serde(deserialize_with = "size")]
    pub max_message_size: u64,
    #[serde(deserialize_with = "size")]
    pub default_quota: u64,
    pub default_quota_messages: u64,
    pub quota_exceeded: QuotaFailure,
    pub max_delivered_to: usize,
    pub alias_max_depth: usize,
    pub command_time_limit: u64,
    pub log: LogTarget,
    pub alternate_config_directories: Vec<PathBuf>,
    pub smtpd: SmtpdSettings,
    pub auth: AuthSettings,
    pub tls: TlsSettings,
    pub pop3d: Pop3dSettings,
}

/// Who owns virtual mailboxes: a user name looked up in the passwd
/// database, or numeric `uid:gid` (as `postern up` writes, with no passwd
/// entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailOwner {
    Name(String),
    Ids(u32, u32),
}

/// What a full mailbox answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaFailure {
    /// 4.2.2: the message stays queued and is retried.
    Temporary,
    /// 5.2.2: the message bounces.
    Permanent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    Syslog,
    Stderr,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            hostname: String::new(),
            mail_root: PathBuf::from("/var/mail/postern"),
            queue_dir: PathBuf::from("/var/spool/postern"),
            mail_owner: MailOwner::Name("postern-mail".to_string()),
            queue_user: MailOwner::Name("postern".to_string()),
            max_deliveries: 10,
            max_deliveries_per_domain: 0,
            retry_interval: 300,
            max_retry_interval: 4 * 3600,
            queue_lifetime: 5 * 86400,
            delay_warning: 4 * 3600,
            home_maildir: "Maildir".to_string(),
            recipient_delimiter: "+".to_string(),
            max_message_size: 50 << 20,
            default_quota: 0,
            default_quota_messages: 0,
            quota_exceeded: QuotaFailure::Temporary,
            max_delivered_to: 0,
            alias_max_depth: 20,
            command_time_limit: 1000,
            log: LogTarget::Syslog,
            alternate_config_directories: Vec::new(),
            smtpd: SmtpdSettings::default(),
            auth: AuthSettings::default(),
            tls: TlsSettings::default(),
            pop3d: Pop3dSettings::default(),
        }
    }
}

impl Settings {
    /// Reads `DIR/postern.toml`. A missing or unreadable file is an error:
    /// running on defaults by accident would put mail in the wrong place.
    pub fn load(dir: &Path) -> Result<Settings, ConfigError> {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::read(&path, e))?;
        Settings::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        let mut settings: Settings = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: toml_message(text, &e),
        })?;
        if settings.hostname.is_empty() {
            settings.hostname = system_hostname();
        }
        settings.hostname = settings.hostname.to_lowercase();
        for name in settings.pop3d.instances.keys() {
            if let Err(message) = settings.pop3d.instance(name) {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message,
                });
            }
        }
        for (key, dir) in [
            ("mail_root", &settings.mail_root),
            ("queue_dir", &settings.queue_dir),
        ] {
            if !dir.is_absolute() {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: format!("{key} {dir:?} is not an absolute path"),
                });
            }
        }
        Ok(settings)
    }
}

/// `line N: message`, from toml's byte span, in the `file:line:` style of
/// the maps.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

pub(crate) fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Number(n) => Ok(n),
        Size::Text(text) => parse_size(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a size (like 512k, 10M, 2G)"))
        }),
    }
}

pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Duration {
        Number(u64),
        Text(String),
    }
    match Duration::deserialize(deserializer)? {
        Duration::Number(n) => Ok(n),
        Duration::Text(text) => crate::size::parse_duration(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration (like 300, 90s, 20m, 4h, 5d)"
            ))
        }),
    }
}

impl Settings {
    /// `load` for a daemon's start: on failure it says why, as `program:
    /// ...` on stderr, and exits 78 (EX_CONFIG).
    pub fn load_or_exit(dir: &Path, program: &str) -> Settings {
        Settings::load(dir).unwrap_or_else(|e| {
            eprintln!("{program}: {e}");
            std::process::exit(78)
        })
    }

    /// Starts the process's logging where `log` says.
    pub fn init_log(&self, program: &'static str) {
        let target = match self.log {
            LogTarget::Syslog => postern_log::Target::Syslog,
            LogTarget::Stderr => postern_log::Target::Stderr,
        };
        postern_log::init(program, target);
    }
}

impl MailOwner {
    /// The owner's uid and gid, and its name when it has one (for its
    /// supplementary groups); `None` if the named user does not exist.
    pub fn resolve(&self) -> Option<(u32, u32, Option<String>)> {
        match self {
            MailOwner::Ids(uid, gid) => Some((*uid, *gid, None)),
            MailOwner::Name(name) => {
                postern_privilege::lookup_user(name).map(|u| (u.uid, u.gid, Some(u.name)))
            }
        }
    }
}

/// As postern.toml spells it: a name, or `uid:gid`.
impl std::fmt::Display for MailOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailOwner::Name(name) => f.write_str(name),
            MailOwner::Ids(uid, gid) => write!(f, "{uid}:{gid}"),
        }
    }
}

impl Serialize for MailOwner {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MailOwner {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MailOwner, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Some((uid, gid)) = text.split_once(':') {
            return match (uid.parse(), gid.parse()) {
                (Ok(uid), Ok(gid)) => Ok(MailOwner::Ids(uid, gid)),
                _ => Err(serde::de::Error::custom(format!(
                    "mail_owner {text:?}: expected a user name or uid:gid"
                ))),
            };
        }
        if text.is_empty() {
            return Err(serde::de::Error::custom("mail_owner is empty"));
        }
        Ok(MailOwner::Name(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::parse(
            Path::new("p.toml"),
            "hostname = \"MX.Example\"\nmax_message_size = \"10M\"\nmail_owner = \"5000:5001\"\n",
        )
        .unwrap();
        assert_eq!(s.hostname, "mx.example");
        assert_eq!(s.max_message_size, 10 << 20);
        assert_eq!(s.mail_owner, MailOwner::Ids(5000, 5001));
        assert_eq!(s.quota_exceeded, QuotaFailure::Temporary);
        let s = Settings::parse(Path::new("p.toml"), "default_quota = 1000\n").unwrap();
        assert_eq!(s.default_quota, 1000);
        assert!(!s.hostname.is_empty());
    }

    /// etc/postern.toml shows every key, each with its default.
    #[test]
    fn sample_file_has_every_key_at_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/postern.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let sample = Settings::parse(&path, &text).unwrap();
        let defaults = Settings::parse(&path, "").unwrap();
        assert_eq!(sample, defaults);
        let shown: toml::Table = toml::from_str(&text).unwrap();
        let all: toml::Table = toml::Table::try_from(Settings::default()).unwrap();
        let mut shown: Vec<&String> = shown.keys().collect();
        let mut all: Vec<&String> = all.keys().collect();
        shown.sort();
        all.sort();
        assert_eq!(shown, all);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = Settings::parse(
            Path::new("/etc/postern/postern.toml"),
            "hostname = \"a\"\nmail_rot = \"/x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/etc/postern/postern.toml: line 2: unknown field `mail_rot`"),
            "{err}"
        );
        let err = Settings::parse(Path::new("p.toml"), "max_message_size = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("\"big\" is not a size"),
            "{err}"
        );
        let err = Settings::parse(Path::new("p.toml"), "mail_root = \"rel\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an absolute path"), "{err}");
    }
}
