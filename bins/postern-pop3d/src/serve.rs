//! pop3d's start: its sockets, users and TLS from the settings, then
//! postern-server's forking listener (or the one handed-over connection)
//! with POP3's session.

use postern_config::Settings;
use postern_server::{Access, Connections, Refusals, launch};
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
    let login_ids = match launch::login_ids(&pop3d.login_user, "pop3d") {
        Ok(ids) => ids,
        Err(code) => return code,
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
    let (mut certificates, tls) = match launch::first_tls(&settings.tls, &sockets, Kind::Pop3s) {
        Ok(first) => first,
        Err(code) => return code,
    };
    let mut ctx = Context {
        settings,
        cleartext_networks,
        login_ids,
        tls: tls.clone(),
        proxy_ids,
        proxy_memory,
        proxy_tls,
    };
    launch::serve(
        sockets,
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
