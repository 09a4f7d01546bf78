//! pop3d's start: its sockets, users and TLS from the settings, then
//! postern-server's forking listener (or the one handed-over connection)
//! with POP3's session.

use postern_config::Settings;
use postern_listen::Sockets;
use postern_server::{Access, Connections, Refusals};
use tracing::{error, warn};

use crate::context::{Context, Kind};
use crate::session;

const REFUSALS: Refusals = Refusals {
    denied: b"-ERR Access denied\r\n",
    crowded: b"-ERR [SYS/TEMP] Too many connections; try again later\r\n",
    access_setting: "[pop3d] access",
};

pub fn run(settings: Settings, inetd: bool) -> i32 {
    let sockets = match postern_listen::sockets::<Kind>(&settings.pop3d.listen, inetd) {
        Ok(sockets) => sockets,
        Err((code, why)) => {
            error!("{why}; cannot start");
            return code;
        }
    };
    let cleartext_networks = settings.pop3d.cleartext_networks.clone();
    // (max_connections and proxy_separator were checked as postern.toml
    // was loaded.)
    let pop3d = &settings.pop3d;
    let access = Access::new(pop3d.access, &pop3d.allow, &pop3d.lan_networks);
    let connections = Connections::new(pop3d.max_connections, pop3d.max_connections_per_ip);
    let login_ids = if postern_privilege::is_root() {
        match settings.pop3d.login_user.resolve() {
            Some((uid, gid, _)) if uid != 0 => Some((uid, gid)),
            _ => {
                warn!(
                    "[pop3d] login_user \"{}\" is not a user other than root",
                    settings.pop3d.login_user
                );
                return 78;
            }
        }
    } else {
        None
    };
    let proxying = !settings.pop3d.proxy_hosts.is_empty();
    let proxy_ids = if proxying && postern_privilege::is_root() {
        // Its own uid: the login user may ask postern-auth to check
        // passwords, and the mail owner may read every virtual mailbox.
        let taken = [
            Some(0),
            login_ids.map(|(uid, _)| uid),
            settings.mail_owner.resolve().map(|(uid, _, _)| uid),
        ];
        match settings.pop3d.proxy_user.resolve() {
            Some((uid, gid, _)) if !taken.contains(&Some(uid)) => Some((uid, gid)),
            _ => {
                warn!(
                    "[pop3d] proxy_user \"{}\" is not a user of its own (not root, login_user or mail_owner)",
                    settings.pop3d.proxy_user
                );
                return 78;
            }
        }
    } else {
        None
    };
    let proxy_memory = match proxying {
        true => crate::proxy::ProxyMemory::new().ok(),
        false => None,
    };
    let proxy_tls = match proxying {
        true => match crate::proxy::tls_config(&settings.pop3d) {
            Ok(config) => config,
            Err(why) => {
                warn!("[pop3d] {why}");
                return 78;
            }
        },
        false => None,
    };
    let implicit = match &sockets {
        Sockets::Listening(bound) => bound.iter().any(|(l, _)| l.kind == Kind::Pop3s),
        Sockets::Connection(_, kind) => *kind == Kind::Pop3s,
    };
    let mut certificates = settings
        .tls
        .is_configured()
        .then(|| postern_tls::Certificates::new(&settings.tls));
    let mut ctx = Context {
        settings,
        cleartext_networks,
        login_ids,
        tls: None,
        proxy_ids,
        proxy_memory,
        proxy_tls,
    };
    match certificates.as_mut().map(|c| c.config()) {
        Some((Some(config), _)) => ctx.tls = Some(config),
        Some((None, why)) => {
            warn!("[tls]: {}", why.unwrap_or_default());
            return 78;
        }
        None if implicit => {
            warn!("a pop3s listener needs [tls] certificate and key");
            return 78;
        }
        None => {}
    }
    match sockets {
        Sockets::Connection(mut stream, kind) => {
            if let Ok(peer) = stream.peer_addr()
                && !access.admits(peer.ip())
            {
                REFUSALS.deny(&mut stream, peer.ip());
                return 0;
            }
            session::serve(stream, kind, &ctx)
        }
        Sockets::Listening(bound) => {
            let tls = ctx.tls.clone();
            postern_server::serve_forking(
                bound,
                &access,
                connections,
                &REFUSALS,
                tls,
                certificates.as_mut(),
                |accepted| {
                    ctx.tls = accepted.tls;
                    session::serve(accepted.stream, accepted.kind, &ctx)
                },
            )
        }
    }
}
