//! The `[imapd]` table of postern.toml.

use serde::{Deserialize, Serialize};

use crate::pop3d::Access;
use crate::size::duration;
use crate::smtpd::networks;
use crate::{MailOwner, Network, valid};
use postern_listen::{ImapPort, Listen};

/// `[imapd]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapdSettings {
    /// `ADDRESS:PORT`, each optionally followed by `imap` (the default)
    /// or `imaps` (implicit TLS, RFC 8314; needs `[tls]`).
    #[serde(with = "valid::imapd_listen")]
    pub listen: Vec<Listen<ImapPort>>,
    /// Who a session is until its login: no mailbox, only the right to
    /// become the mailbox's owner.
    pub login_user: MailOwner,
    /// Clients here may log in with a cleartext password without TLS
    /// (LOGIN, AUTHENTICATE PLAIN and LOGIN); to others the server says
    /// LOGINDISABLED until STARTTLS, or they use IMAPS.
    #[serde(with = "valid::networks")]
    pub cleartext_networks: Vec<Network>,
    /// A session quiet this long is closed (RFC 3501 §5.4 asks for at
    /// least 30 minutes).
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: u64,
    /// AUTHENTICATE CRAM-MD5 (RFC 2195): only for `{PLAIN}` or
    /// `{CRAM-MD5}` accounts.
    pub cram_md5: bool,
    /// Sessions at once (1–999), and from one IP; more are refused with
    /// `* BYE [UNAVAILABLE]`. Phones and desktop clients keep several
    /// connections per account open.
    #[serde(deserialize_with = "valid::connections")]
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Who may connect: `any`, `allow` (the networks of `allow`), or
    /// `allow+lan` (those and `lan_networks`).
    pub access: Access,
    #[serde(with = "valid::networks")]
    pub allow: Vec<Network>,
    #[serde(with = "valid::networks")]
    pub lan_networks: Vec<Network>,
}

impl Default for ImapdSettings {
    fn default() -> ImapdSettings {
        ImapdSettings {
            listen: ["0.0.0.0:143", "[::]:143"]
                .iter()
                .map(|spec| postern_listen::parse(spec).expect("the defaults parse"))
                .collect(),
            login_user: MailOwner::Name("postern-login".into()),
            cleartext_networks: networks(&["127.0.0.1/32", "::1/128"]),
            idle_timeout: 30 * 60,
            cram_md5: false,
            max_connections: 500,
            max_connections_per_ip: 50,
            access: Access::Any,
            allow: Vec::new(),
            lan_networks: networks(&["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]),
        }
    }
}
