//! What every POP3 session gets from the process that starts it: the
//! settings, the users it becomes, the TLS configurations and what
//! proxied sessions share.

use std::sync::Arc;

use postern_config::{Network, Settings};

/// What a POP3 port is for.
pub use postern_listen::Pop3Port as Kind;

/// What every session gets from the listener.
pub struct Context {
    pub settings: Settings,
    pub cleartext_networks: Vec<Network>,
    /// The login user's uid and gid, when started as root.
    pub login_ids: Option<(u32, u32)>,
    /// The TLS configuration as of this connection's accept.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Who a proxied session becomes, when started as root.
    pub proxy_ids: Option<(u32, u32)>,
    /// What proxied sessions share: APOP failures, failed logins.
    pub proxy_memory: Option<crate::proxy::ProxyMemory>,
    /// How proxied logins check the other servers: `None` for plain TCP.
    pub proxy_tls: Option<Arc<rustls::ClientConfig>>,
}
