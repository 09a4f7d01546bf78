//! The `[remote]` table of postern.toml: how mail leaves the host —
//! postern-queue's limits for other hosts and postern-remote's settings.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use crate::size::duration;
use crate::{MailOwner, NextHop, TlsLevel};

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
    /// A connection whose batch is done stays open this long for the
    /// next batch to the same destination (0: closed at once).
    #[serde(deserialize_with = "duration")]
    pub connection_cache_time: u64,
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
    /// How long a connection may take to open, a reply to come (and each
    /// block of the message to be taken), and the reply to the message
    /// (RFC 5321 §4.5.3.2 asks at least 5 and 10 minutes for the last
    /// two).
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: u64,
    #[serde(deserialize_with = "duration")]
    pub reply_timeout: u64,
    #[serde(deserialize_with = "duration")]
    pub data_timeout: u64,
    /// Every other host's mail through this one (`[smtp.isp.example]:587`),
    /// but for domains the `transport` map sends elsewhere; empty: each
    /// domain's own MX hosts.
    #[serde(with = "next_hop")]
    pub relayhost: Option<NextHop>,
    /// `NEXTHOP user:password` lines (NEXTHOP as `relayhost` writes it):
    /// the SMTP AUTH login for that next hop, used only over TLS. Readable
    /// by postern-remote alone.
    pub relayhost_credentials: PathBuf,
    /// The TLS a destination needs unless the `tls_policy` map says
    /// otherwise: none, may (opportunistic), encrypt, verify.
    pub tls: TlsLevel,
    /// The certificate authorities `verify` and MTA-STS trust.
    pub ca_file: PathBuf,
    /// Honour the MTA-STS policies domains publish (RFC 8461).
    pub mta_sts: bool,
    /// The HTTPS port MTA-STS policies are fetched from (443; another only
    /// on a test network).
    pub mta_sts_port: u16,
    /// postern-remote's own directory: the MTA-STS policy cache.
    pub state_dir: PathBuf,
    /// A validating resolver ("ADDRESS:PORT") whose AD bit DANE trusts;
    /// empty: no DANE. Only one on a path the admin trusts (loopback).
    #[serde(with = "socket_address")]
    pub dnssec_resolver: Option<SocketAddr>,
}

/// An optional `ADDRESS:PORT` as text, empty for none.
mod socket_address {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "" => Ok(None),
            text => text
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an ADDRESS:PORT"))),
        }
    }

    pub fn serialize<S: Serializer>(address: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&address.map(|a| a.to_string()).unwrap_or_default())
    }
}

/// `relayhost` as text, checked when the file is read.
mod next_hop {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::NextHop;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NextHop>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        NextHop::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(hop: &Option<NextHop>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hop.as_ref().map(ToString::to_string).unwrap_or_default())
    }
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
            connection_cache_time: 2,
            dead_destination_time: 300,
            max_retry_interval: 3600,
            dns_timeout: 10,
            connect_timeout: 30,
            reply_timeout: 300,
            data_timeout: 600,
            relayhost: None,
            relayhost_credentials: PathBuf::new(),
            tls: TlsLevel::May,
            ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
            mta_sts: true,
            mta_sts_port: 443,
            state_dir: "/var/lib/postern/remote".into(),
            dnssec_resolver: None,
        }
    }
}
