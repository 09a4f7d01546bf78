//! A forking server's start, between its settings and its sessions: the
//! login user it steps down to, its first TLS configuration, and the
//! sockets it serves (listening, or the one connection inetd or systemd
//! handed over).

use std::net::TcpStream;
use std::sync::Arc;

use postern_config::{MailOwner, TlsSettings};
use postern_listen::{PortKind, Sockets};
use postern_tls::Certificates;
use tracing::warn;

use crate::{Accepted, Access, Connections, Refusals, serve_forking};

/// The uid and gid of `login_user` when the server runs as root (`None`
/// otherwise: a sandbox serves as the user who started it); `Err` is exit
/// code 78 when it names no user other than root.
pub fn login_ids(login_user: &MailOwner, table: &str) -> Result<Option<(u32, u32)>, i32> {
    if !postern_privilege::is_root() {
        return Ok(None);
    }
    match login_user.resolve() {
        Some((uid, gid, _)) if uid != 0 => Ok(Some((uid, gid))),
        _ => {
            warn!("[{table}] login_user \"{login_user}\" is not a user other than root");
            Err(78)
        }
    }
}

/// The certificates and the first TLS configuration, when `[tls]` is set;
/// `Err` is exit code 78 when they cannot be read, or when an
/// implicit-TLS port (`implicit`) has none.
pub fn first_tls<K: PortKind>(
    settings: &TlsSettings,
    sockets: &Sockets<K>,
    implicit: K,
) -> Result<(Option<Certificates>, Option<Arc<rustls::ServerConfig>>), i32> {
    let has_implicit = match sockets {
        Sockets::Listening(bound) => bound.iter().any(|(l, _)| l.kind == implicit),
        Sockets::Connection(_, kind) => *kind == implicit,
    };
    if !settings.is_configured() {
        if has_implicit {
            warn!(
                "a {} listener needs [tls] certificate and key",
                implicit.word()
            );
            return Err(78);
        }
        return Ok((None, None));
    }
    let mut certificates = Certificates::new(settings);
    match certificates.config() {
        (Some(config), _) => Ok((Some(certificates), Some(config))),
        (None, why) => {
            warn!("[tls]: {}", why.unwrap_or_default());
            Err(78)
        }
    }
}

/// Serves `sockets`: the one handed-over connection in this process, or
/// every connection of the listening sockets in a forked process of its
/// own. `session` serves one connection and returns its exit code.
pub fn serve<K: PortKind>(
    sockets: Sockets<K>,
    access: &Access,
    connections: Connections,
    refusals: &Refusals,
    tls: Option<Arc<rustls::ServerConfig>>,
    certificates: Option<&mut Certificates>,
    mut session: impl FnMut(Accepted<K>) -> i32,
) -> i32 {
    match sockets {
        Sockets::Connection(mut stream, kind) => {
            if let Some(refused) = refused(&mut stream, access, refusals) {
                return refused;
            }
            session(Accepted { stream, kind, tls })
        }
        Sockets::Listening(bound) => serve_forking(
            bound,
            access,
            connections,
            refusals,
            tls,
            certificates,
            session,
        ),
    }
}

fn refused(stream: &mut TcpStream, access: &Access, refusals: &Refusals) -> Option<i32> {
    let peer = stream.peer_addr().ok()?;
    if access.admits(peer.ip()) {
        return None;
    }
    refusals.deny(stream, peer.ip());
    Some(0)
}
