//! postern.toml's settings: every key, its type and its default (the
//! sample etc/postern.toml shows them all). Reading it is settings_load.rs.

use std::path::{Path, PathBuf};

use crate::imapd::ImapdSettings;
use crate::pop3d::Pop3dSettings;
use crate::remote::RemoteSettings;
use crate::smtpd::{AuthSettings, SmtpdSettings, TlsSettings};
use crate::srs::SrsSettings;
use serde::{Deserialize, Serialize};

use crate::size::{duration, size};

pub const SETTINGS_FILE: &str = "postern.toml";

/// `postern.toml`. Every key has a default, shown with its meaning in
/// `etc/postern.toml`; an unknown key is an error, so a typo is caught.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub hostname: String,
    #[serde(deserialize_with = "crate::valid::absolute")]
    pub mail_root: PathBuf,
    #[serde(deserialize_with = "crate::valid::absolute")]
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
    pub imapd: ImapdSettings,
    pub remote: RemoteSettings,
    pub srs: SrsSettings,
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
            imapd: ImapdSettings::default(),
            remote: RemoteSettings::default(),
            srs: SrsSettings::default(),
        }
    }
}

pub(crate) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
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
        assert_eq!(
            err,
            "/etc/postern/postern.toml:2: unknown key `mail_rot` (did you mean `mail_root`?)"
        );
        let err = |text: &str| {
            Settings::parse(Path::new("p.toml"), text)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("max_message_size = \"big\"\n"),
            "p.toml:1: \"big\" is not a size (like 512k, 10M, 2G)"
        );
        assert_eq!(
            err("mail_root = \"rel\"\n"),
            "p.toml:1: rel is not an absolute path"
        );
    }

    /// What once passed `check` and then stopped a daemon: each is refused
    /// where it is written, in words a person reads.
    #[test]
    fn values_the_programs_cannot_use_are_refused_at_their_line() {
        let err = |text: &str| {
            Settings::parse(Path::new("p.toml"), text)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("[smtpd]\nlisten = [\"0.0.0.0:25\",\n  \"0.0.0.0:587 submision\"]\n"),
            "p.toml:2: \"0.0.0.0:587 submision\": kind \"submision\": expected mx, submission or smtps"
        );
        assert_eq!(
            err("[smtpd]\ntrusted_networks = [\"127.0.0.1/33\"]\n"),
            "p.toml:2: \"127.0.0.1/33\": prefix length must be 0 to 32"
        );
        assert_eq!(
            err("smtpd.auth_mechanisms = [\"PLAIN\", \"DIGEST-MD5\"]\n"),
            "p.toml:1: mechanism \"DIGEST-MD5\" is not one of PLAIN, LOGIN or CRAM-MD5"
        );
        assert_eq!(
            err("[pop3d]\naccess = \"some\"\n"),
            "p.toml:2: \"some\" is not one of any, allow or allow+lan"
        );
        assert_eq!(
            err("[pop3d]\nproxy_tls = \"yes\"\n"),
            "p.toml:2: \"yes\" is not one of required or none"
        );
        assert_eq!(
            err("[pop3d]\nmax_connections = 0\n"),
            "p.toml:2: 0 is not from 1 to 999"
        );
        assert_eq!(
            err("[auth]\nlocal_networks = [\"localhost\"]\n"),
            "p.toml:2: \"localhost\": not an IP address"
        );
        assert_eq!(
            err("[smtpd]\nrelay_refusal = \"a\\nb\"\n"),
            "p.toml:2: must be one line without control characters"
        );
        assert_eq!(
            err("\n[smtpd]\nlisten = [\"0.0.0.0:465 smtps\"]\n"),
            "p.toml:3: \"0.0.0.0:465 smtps\" is an implicit-TLS listener, which needs [tls] certificate and key"
        );
        assert_eq!(
            err("[pop3d]\nlisten = [\"[::]:pop3s pop3s\"]\n"),
            "p.toml:2: \"[::]:995 pop3s\" is an implicit-TLS listener, which needs [tls] certificate and key"
        );
        assert_eq!(
            err("[pop3d.instances.x]\napop = true\n"),
            "p.toml:1: [pop3d.instances.x] needs its own listen addresses"
        );
    }

    #[test]
    fn a_salvaged_file_keeps_every_good_line_and_names_every_bad_one() {
        let text = "hostname = \"mx.example\"\nqueue_dir = \"/srv/queue\"\nmail_rot = \"/x\"\n\
                    [smtpd]\nlisten = [\"0.0.0.0:25 mxx\"]\nmax_recipients = 5\n[pop3d]\naccess = \"some\"\n";
        let (settings, errors) = Settings::salvage(Path::new("p.toml"), text);
        assert_eq!(settings.queue_dir, Path::new("/srv/queue"));
        assert_eq!(settings.hostname, "mx.example");
        assert_eq!(settings.smtpd.max_recipients, 5);
        assert_eq!(settings.smtpd.listen, SmtpdSettings::default().listen);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5, 8]);
        let err = Settings::parse(Path::new("p.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("(and 2 more errors)"), "{err}");
        // A last line without its line end, blanked, adds no line.
        let (_, errors) = Settings::salvage(Path::new("p.toml"), "log = \"stderr\"\nx = \"\"\"abc");
        assert!(errors.iter().all(|e| e.line <= 2), "{errors:?}");
        // An error whose span ends inside a character (found by the fuzz
        // target, kept as its seed).
        let text = include_str!("../../../fuzz/seeds/settings/span-inside-a-character");
        let (_, errors) = Settings::salvage(Path::new("p.toml"), text);
        assert!(!errors.is_empty());
        // Not even TOML: the defaults, and the error.
        let (settings, errors) = Settings::salvage(Path::new("p.toml"), "[[[\n");
        assert_eq!(settings.queue_dir, Path::new("/var/spool/postern"));
        assert_eq!(errors.len(), 1);
    }
}
