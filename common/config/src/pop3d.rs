//! The `[pop3d]` table of postern.toml.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::size::duration;
use postern_listen::{Listen, Pop3Port};

use crate::smtpd::networks;
use crate::{MailOwner, Network, valid};

/// `[pop3d] access`: who may connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Any,
    /// The networks of `allow`.
    Allow,
    /// Those and `lan_networks`.
    #[serde(rename = "allow+lan")]
    AllowLan,
}

/// `[pop3d] proxy_tls`: how the proxy reaches the other server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyTls {
    /// STLS, or implicit TLS on port 995, with its certificate checked.
    Required,
    /// Plain TCP, for a network you trust.
    None,
}

/// `[pop3d]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pop3dSettings {
    /// `ADDRESS:PORT`, each optionally followed by `pop3` (the default)
    /// or `pop3s` (implicit TLS, RFC 8314; needs `[tls]`).
    #[serde(with = "valid::pop3d_listen")]
    pub listen: Vec<Listen<Pop3Port>>,
    /// Who a session is until its login: no mailbox, only the right to
    /// become the mailbox's owner.
    pub login_user: MailOwner,
    /// Clients here may log in with a cleartext password without TLS
    /// (USER/PASS, AUTH PLAIN and LOGIN); others must use STLS or POP3S.
    #[serde(with = "valid::networks")]
    pub cleartext_networks: Vec<Network>,
    /// A session quiet this long is closed (RFC 1939 §3 asks for at
    /// least 10 minutes).
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: u64,
    /// A new login takes over the mailbox from a session that has been
    /// quiet this long, so a stale session never locks its owner out.
    #[serde(deserialize_with = "duration")]
    pub lock_takeover: u64,
    /// APOP (RFC 1939 §7): the greeting carries a timestamp. Only accounts
    /// whose password is stored `{PLAIN}` can use it.
    pub apop: bool,
    /// AUTH CRAM-MD5 (RFC 2195): only for `{PLAIN}` or `{CRAM-MD5}`.
    pub cram_md5: bool,
    /// Sessions at once (1–999), and from one IP; more are refused with
    /// `-ERR [SYS/TEMP]`.
    #[serde(deserialize_with = "valid::connections")]
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Who may connect: `any`, `allow` (the networks of `allow`), or
    /// `allow+lan` (those and `lan_networks`). Others are refused at
    /// connect.
    pub access: Access,
    #[serde(with = "valid::networks")]
    pub allow: Vec<Network>,
    #[serde(with = "valid::networks")]
    pub lan_networks: Vec<Network>,
    /// Every folder through POP3 for every account, not only INBOX (an
    /// account may ask for it alone with `postern_pop3_folders=all`).
    pub all_folders: bool,
    /// RETR and TOP leave out a `Message-ID:` field that holds no valid
    /// msg-id, for clients that choke on one; LIST's sizes match (an
    /// account may ask for it alone with `postern_pop3_message_id=strip`).
    pub strip_message_id: bool,
    /// The POP3 proxy: a login as `user#host` (the separator below) goes
    /// on to `host`'s POP3 server when `host` (or `host:port`; port 110
    /// when none is given) is in this list. Empty: no proxy.
    pub proxy_hosts: Vec<String>,
    #[serde(deserialize_with = "valid::separator")]
    pub proxy_separator: String,
    /// Who a proxied session becomes, for good, before it connects out:
    /// no mailbox, no capability, not a login client of postern-auth.
    pub proxy_user: MailOwner,
    /// TLS to the other server: `required` (STLS, or implicit TLS on port
    /// 995, with its certificate checked against `proxy_ca_file`; a
    /// server without it is refused) or `none` (plain TCP, for a network
    /// you trust).
    pub proxy_tls: ProxyTls,
    pub proxy_ca_file: std::path::PathBuf,
    /// `[pop3d.instances.NAME]`: more servers, each with its own listen
    /// addresses and whatever else it sets, the rest as `[pop3d]` has it;
    /// `postern-pop3d --instance NAME` runs one.
    pub instances: BTreeMap<String, toml::Table>,
}

impl Default for Pop3dSettings {
    fn default() -> Pop3dSettings {
        Pop3dSettings {
            listen: ["0.0.0.0:110", "[::]:110"]
                .iter()
                .map(|spec| postern_listen::parse(spec).expect("the defaults parse"))
                .collect(),
            login_user: MailOwner::Name("postern-login".into()),
            cleartext_networks: networks(&["127.0.0.1/32", "::1/128"]),
            idle_timeout: 600,
            lock_takeover: 30,
            apop: false,
            cram_md5: false,
            max_connections: 25,
            max_connections_per_ip: 10,
            access: Access::Any,
            allow: Vec::new(),
            lan_networks: networks(&["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]),
            all_folders: false,
            strip_message_id: false,
            proxy_hosts: Vec::new(),
            proxy_separator: "#".into(),
            proxy_user: MailOwner::Name("postern-proxy".into()),
            proxy_tls: ProxyTls::Required,
            proxy_ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
            instances: BTreeMap::new(),
        }
    }
}

impl Pop3dSettings {
    /// The settings of instance `name`: `[pop3d]`'s with the instance's
    /// own on top.
    pub fn instance(&self, name: &str) -> Result<Pop3dSettings, String> {
        let own = self
            .instances
            .get(name)
            .ok_or_else(|| format!("no [pop3d.instances.{name}]"))?;
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "instance name {name:?}: letters, digits, - and _, at most 32"
            ));
        }
        if own.contains_key("instances") {
            return Err(format!("[pop3d.instances.{name}] cannot hold instances"));
        }
        if !own.contains_key("listen") {
            return Err(format!(
                "[pop3d.instances.{name}] needs its own listen addresses"
            ));
        }
        let base = Pop3dSettings {
            instances: BTreeMap::new(),
            ..self.clone()
        };
        let mut table = toml::Table::try_from(&base).map_err(|e| e.to_string())?;
        table.extend(own.clone());
        table.try_into().map_err(|e: toml::de::Error| {
            format!(
                "[pop3d.instances.{name}]: {}",
                crate::settings_load::readable(e.message().trim_end())
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_takes_what_it_sets_and_inherits_the_rest() {
        let settings: Pop3dSettings = toml::from_str(
            "idle_timeout = \"20m\"\napop = true\n\
             [instances.staff]\nlisten = [\"10.0.0.1:1110\"]\naccess = \"allow\"\n\
             allow = [\"10.0.0.0/8\"]\nidle_timeout = \"1m\"\n\
             [instances.bad]\nlisten = []\nno_such_key = 1\n\
             [instances.deaf]\napop = false\n",
        )
        .unwrap();
        let staff = settings.instance("staff").unwrap();
        assert_eq!(
            staff.listen,
            [postern_listen::parse("10.0.0.1:1110").unwrap()]
        );
        assert_eq!((staff.access, staff.idle_timeout), (Access::Allow, 60));
        assert!(staff.apop, "inherited");
        assert_eq!(staff.login_user, settings.login_user);
        assert!(staff.instances.is_empty());
        assert!(
            settings
                .instance("bad")
                .unwrap_err()
                .contains("no_such_key")
        );
        assert!(settings.instance("deaf").unwrap_err().contains("listen"));
        assert!(settings.instance("none").is_err());
    }
}
