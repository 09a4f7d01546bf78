//! Listening: bind, drop privileges, then accept on every listener in one
//! thread (tokio's current-thread runtime; the queue's fsyncs go to its
//! blocking pool), with the connection limits, until SIGTERM.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::rc::Rc;

use postern_config::Settings;
use postern_queue_format::QueueDir;
use postern_server::{Connections, Crowded};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::listeners::Kind;
use crate::relay::RelayRules;
use crate::{Context, connection};
use postern_listen::{PortKind, Sockets};

pub fn run(settings: Settings, inetd: bool) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            warn!("cannot start: {e}");
            return 71;
        }
    };
    // Sockets are made through tokio, which wants its runtime at hand.
    let _entered = runtime.enter();
    let sockets = match postern_listen::sockets::<Kind>(&settings.smtpd.listen, inetd) {
        Ok(sockets) => sockets,
        Err((code, why)) => {
            error!("{why}; cannot start");
            return code;
        }
    };
    let trusted = settings.smtpd.trusted_networks.clone();
    let mechanisms = settings.smtpd.auth_mechanisms.clone();
    // The certificate is read once as root, before the drop: a key only
    // root may read still serves (without reloads), and a broken pair
    // stops the start rather than the first handshake.
    let tls = match tls(&settings, &sockets) {
        Ok(tls) => tls,
        Err(why) => {
            warn!("{why}");
            return 78;
        }
    };
    if matches!(sockets, Sockets::Listening(_))
        && let Some(warning) = settings.submission_without_tls()
    {
        warn!("{warning}");
    }
    if let Err(code) = drop_privileges(&settings) {
        return code;
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let ctx = Rc::new(Context {
        queue: QueueDir::at(&settings.queue_dir),
        rules: RelayRules {
            trusted,
            relayers_file: settings.smtpd.relayers_file.clone(),
            window: settings.smtpd.relay_window,
            refusal: settings.smtpd.relay_refusal.clone(),
        },
        shutdown,
        settings,
        tls,
        mechanisms,
    });
    let local = tokio::task::LocalSet::new();
    let bound = match sockets {
        Sockets::Listening(bound) => bound,
        Sockets::Connection(stream, kind) => {
            // One session, then exit (inetd, systemd Accept=yes).
            local.block_on(&runtime, async move {
                let peer = stream.peer_addr().map(|a| a.ip());
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(stream));
                match (stream, peer) {
                    (Ok(stream), Ok(peer)) => connection::serve(stream, peer, kind, ctx).await,
                    (Err(e), _) | (_, Err(e)) => warn!("the connection handed over: {e}"),
                }
            });
            return 0;
        }
    };
    local.block_on(&runtime, async move {
        let smtpd = &ctx.settings.smtpd;
        let connections = Connections::new(smtpd.max_connections, smtpd.max_connections_per_ip);
        let connections = Rc::new(RefCell::new(connections));
        for (listen, listener) in bound {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(listener) => listener,
                Err(e) => {
                    warn!("{}: {e}", listen.address);
                    continue;
                }
            };
            info!("listening on {} ({})", listen.address, listen.kind.word());
            tokio::task::spawn_local(accept(
                listener,
                listen,
                Rc::clone(&ctx),
                Rc::clone(&connections),
            ));
        }
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    warn!("SIGTERM: {e}");
                    return;
                }
            };
        terminate.recv().await;
        info!("stopping");
        let _ = stop.send(true);
        // Sessions write their 421 and go.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    });
    0
}

/// `[tls]` loaded, if configured; an implicit-TLS listener needs it.
fn tls(
    settings: &Settings,
    sockets: &Sockets<Kind>,
) -> Result<Option<RefCell<postern_tls::Certificates>>, String> {
    let implicit = match sockets {
        Sockets::Listening(bound) => bound.iter().any(|(listen, _)| listen.kind == Kind::Smtps),
        Sockets::Connection(_, kind) => *kind == Kind::Smtps,
    };
    if !settings.tls.is_configured() {
        if implicit {
            return Err("an smtps listener needs [tls] certificate and key".to_string());
        }
        return Ok(None);
    }
    let mut certificates = postern_tls::Certificates::new(&settings.tls);
    match certificates.acceptor() {
        (Some(_), _) => Ok(Some(RefCell::new(certificates))),
        (None, why) => Err(format!("[tls]: {}", why.unwrap_or_default())),
    }
}

/// SECURITY: root only binds; everything after runs as `[smtpd] user`,
/// with the queue's group (to write `tmp/` and `queue/`) and its own group
/// as the only supplementary one (to read the TLS key again on renewal,
/// `root:postern-smtpd 0640`).
fn drop_privileges(settings: &Settings) -> Result<(), i32> {
    if !postern_privilege::is_root() {
        return Ok(());
    }
    let Some((uid, own_group, _)) = settings.smtpd.user.resolve() else {
        warn!("[smtpd] user \"{}\" is not a user", settings.smtpd.user);
        return Err(71);
    };
    let queue_group = match std::fs::metadata(settings.queue_dir.join("queue")) {
        Ok(meta) => meta.gid(),
        Err(e) => {
            warn!("{}: {e}", settings.queue_dir.join("queue").display());
            return Err(71);
        }
    };
    postern_privilege::become_user_with_groups(uid, queue_group, None, &[own_group]).map_err(|e| {
        warn!("cannot become \"{}\": {e}", settings.smtpd.user);
        71
    })
}

async fn accept(
    listener: TcpListener,
    listen: crate::listeners::Listen,
    ctx: Rc<Context>,
    connections: Rc<RefCell<Connections>>,
) {
    let kind: Kind = listen.kind;
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("accept on {}: {e}", listen.address);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = postern_config::relayers::canonical(peer.ip());
        let admitted = connections.borrow_mut().admit(ip);
        if let Err(crowded) = admitted {
            info!("NOQUEUE: reject: CONNECT from [{ip}]: 421 4.7.0 too many connections");
            let _ = stream
                .write_all(
                    format!(
                        "421 4.7.0 {} Error: too many connections{}\r\n",
                        ctx.settings.hostname,
                        match crowded {
                            Crowded::FromIp => " from your address",
                            Crowded::Total => "",
                        }
                    )
                    .as_bytes(),
                )
                .await;
            continue;
        }
        let ctx = Rc::clone(&ctx);
        let connections = Rc::clone(&connections);
        tokio::task::spawn_local(async move {
            connection::serve(stream, ip, kind, ctx).await;
            connections.borrow_mut().leave(ip);
        });
    }
}
