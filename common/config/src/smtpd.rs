//! The `[smtpd]`, `[auth]` and `[tls]` tables of postern.toml: what the
//! SMTP listener, the login service and every TLS listener use.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::size::{duration, size};
use postern_listen::{Listen, SmtpPort};
use postern_sasl::Mechanism;

use crate::{MailOwner, Network, valid};

/// Networks written as postern.toml has them, for the defaults.
pub(crate) fn networks(list: &[&str]) -> Vec<Network> {
    list.iter()
        .map(|network| network.parse().expect("the defaults parse"))
        .collect()
}

/// `[smtpd]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpdSettings {
    /// `ADDRESS:PORT`, each optionally followed by a space and its kind:
    /// `mx` (the default) or `submission` (RFC 6409).
    #[serde(with = "valid::smtpd_listen")]
    pub listen: Vec<Listen<SmtpPort>>,
    /// Who the listener becomes after binding; it writes the queue as the
    /// group that owns the queue's directories.
    pub user: MailOwner,
    /// Clients here may relay (CIDR).
    #[serde(with = "valid::networks")]
    pub trusted_networks: Vec<Network>,
    /// POP-before-SMTP: `IP TIMESTAMP` lines written by postern-auth.
    pub relayers_file: PathBuf,
    /// How long after a POP3/IMAP login its IP may relay.
    #[serde(deserialize_with = "duration")]
    pub relay_window: u64,
    /// The text of `550 5.7.1` for a refused relay.
    #[serde(deserialize_with = "valid::one_line")]
    pub relay_refusal: String,
    /// SMTP AUTH (RFC 4954) mechanisms offered: PLAIN, LOGIN, CRAM-MD5
    /// (only for accounts whose stored scheme allows it, docs/AUTH.md);
    /// none turns AUTH off.
    #[serde(with = "valid::mechanisms")]
    pub auth_mechanisms: Vec<Mechanism>,
    /// PLAIN and LOGIN without TLS too (they send the password itself).
    pub plaintext_auth: bool,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    #[serde(deserialize_with = "size")]
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Bad commands before the session is closed.
    pub max_errors: usize,
    /// RFC 5321 §4.5.3.2: at least 5 minutes for a command...
    #[serde(deserialize_with = "duration")]
    pub command_timeout: u64,
    /// ...and 10 for a block of data.
    #[serde(deserialize_with = "duration")]
    pub data_timeout: u64,
}

impl Default for SmtpdSettings {
    fn default() -> SmtpdSettings {
        SmtpdSettings {
            listen: [
                "0.0.0.0:25",
                "[::]:25",
                "0.0.0.0:587 submission",
                "[::]:587 submission",
            ]
            .iter()
            .map(|spec| postern_listen::parse(spec).expect("the defaults parse"))
            .collect(),
            user: MailOwner::Name("postern-smtpd".into()),
            trusted_networks: networks(&["127.0.0.1/32", "::1/128"]),
            relayers_file: PathBuf::from("/var/lib/postern/relay/relayers"),
            relay_window: 20 * 60,
            relay_refusal: "Relaying denied: check your mail (POP3 or IMAP) first, or authenticate"
                .into(),
            auth_mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            plaintext_auth: false,
            max_connections: 100,
            max_connections_per_ip: 20,
            max_message_size: 50 << 20,
            max_recipients: 1000,
            max_errors: 20,
            command_timeout: 5 * 60,
            data_timeout: 10 * 60,
        }
    }
}

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The Unix socket postern-auth answers on.
    pub socket: PathBuf,
    /// Who postern-auth runs as; it reads the accounts file.
    pub user: MailOwner,
    /// Groups (names or numbers) kept as supplementary groups: the one
    /// that may write the relayers file's directory, to record logins,
    /// and `shadow`, to check system users' passwords. Missing ones are
    /// skipped.
    pub groups: Vec<String>,
    /// Failed logins are counted over this long...
    #[serde(deserialize_with = "duration")]
    pub failure_window: u64,
    /// ...and from this many failures of one IP or one account on, each
    /// further failure is answered only after `failure_delay`...
    pub failure_delay_after: usize,
    #[serde(deserialize_with = "duration")]
    pub failure_delay: u64,
    /// ...and from this many of one IP on, every login from it is refused
    /// (4.7.0) until its failures leave the window. An account is only
    /// ever delayed, never locked: a lock would let anyone shut its owner
    /// out.
    pub max_failures_per_ip: usize,
    /// Proxies whose users all log in from the proxy's address (a POP3
    /// proxy, a webmail): logins from these networks are throttled by
    /// account only, never delayed or refused for the address, and record
    /// no POP-before-SMTP entry, since the address is not the user's. The
    /// proxy must throttle its clients itself, as Postern's POP3 proxy
    /// does.
    #[serde(with = "valid::networks")]
    pub proxy_networks: Vec<Network>,
    /// Networks whose one address many users share (loopback: mutt and
    /// fetchmail on the host, a local webmail): failures from there are
    /// counted per address and account together, so one user's wrong
    /// password delays and refuses that user from there, not everyone.
    #[serde(with = "valid::networks")]
    pub local_networks: Vec<Network>,
    /// System users below this uid (root, daemons) may not log in.
    pub min_system_uid: u32,
    /// Who may ask for login checks (user names or uids), besides root and
    /// postern-auth's own user: the SMTP listener, and POP3 and IMAP
    /// sessions before their login.
    pub login_clients: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> AuthSettings {
        AuthSettings {
            socket: PathBuf::from("/run/postern/auth.sock"),
            user: MailOwner::Name("postern-auth".into()),
            groups: vec!["postern-relay".into(), "shadow".into()],
            failure_window: 15 * 60,
            failure_delay_after: 3,
            failure_delay: 2,
            max_failures_per_ip: 10,
            proxy_networks: Vec::new(),
            local_networks: networks(&["127.0.0.0/8", "::1/128"]),
            min_system_uid: 1000,
            login_clients: vec!["postern-smtpd".into(), "postern-login".into()],
        }
    }
}

/// `[tls]`: the certificate chain and key of every TLS listener (PEM),
/// read again when either file changes. Empty: no TLS (no STARTTLS, and
/// no implicit-TLS listener may be configured).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl TlsSettings {
    pub fn is_configured(&self) -> bool {
        !self.certificate.as_os_str().is_empty()
    }
}
