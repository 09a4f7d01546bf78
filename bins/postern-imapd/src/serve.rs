//! imapd's start: its sockets, login user and TLS from the settings, then
//! postern-server's forking listener (or the one handed-over connection)
//! with IMAP's session.

use postern_config::Settings;
use postern_listen::ImapPort;
use postern_server::{Access, Connections, Refusals, launch};
use tracing::error;

use crate::session::{self, Context};

const REFUSALS: Refusals = Refusals {
    denied: b"* BYE Access denied\r\n",
    crowded: b"* BYE [UNAVAILABLE] Too many connections; try again later\r\n",
    access_setting: "[imapd] access",
};

pub fn run(settings: Settings, inetd: bool) -> i32 {
    let imapd = &settings.imapd;
    let sockets = match postern_listen::sockets::<ImapPort>(&imapd.listen, inetd) {
        Ok(sockets) => sockets,
        Err((code, why)) => {
            error!("{why}; cannot start");
            return code;
        }
    };
    let access = Access::new(imapd.access, &imapd.allow, &imapd.lan_networks);
    // (max_connections was checked as postern.toml was loaded.)
    let connections = Connections::new(imapd.max_connections, imapd.max_connections_per_ip);
    let login_ids = match launch::login_ids(&imapd.login_user, "imapd") {
        Ok(ids) => ids,
        Err(code) => return code,
    };
    let (mut certificates, tls) = match launch::first_tls(&settings.tls, &sockets, ImapPort::Imaps)
    {
        Ok(first) => first,
        Err(code) => return code,
    };
    let mut ctx = Context {
        settings,
        login_ids,
        tls: tls.clone(),
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
