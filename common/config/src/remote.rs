//! The `[remote]` table of postern.toml: how mail leaves the host —
//! postern-queue's limits for other hosts and postern-remote's settings.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::MailOwner;
use crate::size::duration;

/// `[remote]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteSettings {
    /// Who postern-remote runs as: never root, and not a user that can
    /// read the accounts file.
    pub user: MailOwner,
    /// The DNS servers every lookup of Postern's asks (`"ADDRESS:PORT"`);
    /// empty: those of `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
    /// The SMTP port of the mail hosts found in DNS (25; another only for
    /// a test network).
    pub port: u16,
    /// The name EHLO gives; empty: `hostname`.
    pub helo_name: String,
    /// Connections to other hosts at once, over every destination.
    pub max_connections: usize,
    /// Connections to one destination at first; one more each time a
    /// connection to it goes well, up to the limit (Postfix: 5 and 20).
    pub initial_destination_concurrency: usize,
    pub destination_concurrency_limit: usize,
    /// Recipients in one transaction (RFC 5321 §4.5.3.1.8 asks servers
    /// to take at least 100; 50 is what large receivers like).
    pub max_recipients_per_transaction: usize,
    /// Messages one connection carries before it is closed.
    pub max_messages_per_connection: usize,
    /// A destination whose every connection of a cohort failed gets none
    /// for this long; its mail is deferred without a try.
    #[serde(deserialize_with = "duration")]
    pub dead_destination_time: u64,
    /// The longest wait between two tries of mail for another host (the
    /// first wait is `retry_interval`, doubled each time).
    #[serde(deserialize_with = "duration")]
    pub max_retry_interval: u64,
    /// How long a DNS lookup may take.
    #[serde(deserialize_with = "duration")]
    pub dns_timeout: u64,
}

impl Default for RemoteSettings {
    fn default() -> RemoteSettings {
        RemoteSettings {
            user: MailOwner::Name("postern-remote".into()),
            nameservers: Vec::new(),
            port: 25,
            helo_name: String::new(),
            max_connections: 100,
            initial_destination_concurrency: 5,
            destination_concurrency_limit: 20,
            max_recipients_per_transaction: 50,
            max_messages_per_connection: 100,
            dead_destination_time: 300,
            max_retry_interval: 3600,
            dns_timeout: 10,
        }
    }
}
