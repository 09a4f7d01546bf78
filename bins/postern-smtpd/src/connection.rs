//! One SMTP session over one connection: postern-smtp's `Session` fed the
//! client's bytes, its actions carried out — replies written, recipients
//! checked, the message written into the queue — with the RFC 5321
//! §4.5.3.2 timeouts and a 421 when the server shuts down.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use postern_auth_protocol::{AsyncClient, Reply as Answer, Request, Service};
use postern_listen::PortKind;
use postern_smtp::{Action, Config, Credentials, Mechanism, RcptTo, Reply, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use crate::Context;
use crate::incoming::Incoming;
use crate::listeners::Kind;
use crate::relay;
use crate::transport::Transport;

pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: IpAddr,
    kind: Kind,
    ctx: Rc<Context>,
) {
    let peer = postern_config::relayers::canonical(peer);
    let settings = &ctx.settings;
    let acceptor = ctx.tls.as_ref().and_then(|tls| {
        let (acceptor, why) = tls.borrow_mut().acceptor();
        if let Some(why) = why {
            warn!("[tls]: {why}");
        }
        acceptor
    });
    let mut transport = Transport::Plain(stream);
    let handshake_limit = Duration::from_secs(settings.smtpd.command_timeout);
    if kind == Kind::Smtps {
        let Some(acceptor) = &acceptor else {
            return;
        };
        if let Err(e) = handshake(&mut transport, acceptor, handshake_limit).await {
            info!("TLS handshake with [{peer}] failed: {e}");
            return;
        }
    }
    let mut config = Config::new(settings.hostname.clone());
    config.max_message_size = settings.smtpd.max_message_size;
    config.max_recipients = settings.smtpd.max_recipients.max(1);
    config.max_errors = settings.smtpd.max_errors.max(1);
    config.tls = kind == Kind::Smtps;
    config.starttls = acceptor.is_some() && kind != Kind::Smtps;
    config.auth_mechanisms = ctx.mechanisms.clone();
    config.plaintext_auth = settings.smtpd.plaintext_auth;
    // RFC 6409: a submission port takes mail only from a client that
    // authenticates, or that may relay anyway.
    config.auth_required = kind.is_submission()
        && ctx
            .rules
            .permits(peer, postern_config::unix_now())
            .is_none();
    config.challenge_seed = postern_server::challenge_seed();
    let mut session = Session::new(config);
    // One connection to postern-auth per session, opened at the first
    // RCPT or AUTH; an answer later than this gets a temporary refusal.
    let mut lookups = AsyncClient::new(&settings.auth.socket, Duration::from_secs(30));
    let mut shutdown = ctx.shutdown.clone();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut message: Option<Incoming> = None;
    info!(
        "connect from [{peer}] to {}{}",
        kind.word(),
        transport
            .tls_description()
            .map(|tls| format!(" ({tls})"))
            .unwrap_or_default()
    );
    loop {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    if transport.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Action::StartTls => {
                    let Some(acceptor) = &acceptor else { return };
                    if let Err(e) = handshake(&mut transport, acceptor, handshake_limit).await {
                        info!("STARTTLS handshake with [{peer}] failed: {e}");
                        return;
                    }
                    info!(
                        "STARTTLS from [{peer}]: {}",
                        transport.tls_description().unwrap_or_default()
                    );
                }
                Action::CheckCredentials {
                    mechanism,
                    credentials,
                } => {
                    let verdict = login(&mut lookups, peer, mechanism, credentials).await;
                    session.credentials_checked(verdict);
                }
                Action::CheckRecipient(rcpt) => {
                    let verdict =
                        check(&ctx, &mut lookups, &rcpt, peer, session.authenticated()).await;
                    if let Err(reply) = &verdict {
                        info!(
                            "NOQUEUE: reject: RCPT from [{peer}]: {} {} {}; from=<{}> to=<{}> helo=<{}>",
                            reply.code,
                            reply.status.as_deref().unwrap_or(""),
                            postern_log::escape(&reply.lines.join(" ")),
                            postern_log::escape(session.sender().unwrap_or("")),
                            postern_log::escape(&rcpt.address),
                            postern_log::escape(session.helo().unwrap_or("")),
                        );
                    }
                    session.recipient_checked(verdict);
                }
                Action::Begin(transaction) => {
                    message = Some(Incoming::begin(
                        &ctx.queue,
                        &settings.hostname,
                        peer,
                        &transaction,
                        transport.tls_description().as_deref(),
                    ));
                }
                Action::Data(bytes) => {
                    if let Some(message) = &mut message {
                        message.write(&bytes);
                    }
                }
                Action::End => {
                    let Some(incoming) = message.take() else {
                        session.message_stored(Err(Reply::new(451, "4.3.0", "Error: no message")));
                        continue;
                    };
                    let size = incoming.size;
                    let result = match incoming.commit(ctx.queue.clone()).await {
                        Ok(id) => {
                            info!(
                                "{id}: client=[{peer}], helo=<{}>, from=<{}>, size={size}",
                                postern_log::escape(session.helo().unwrap_or("")),
                                postern_log::escape(session.sender().unwrap_or("")),
                            );
                            Ok(id)
                        }
                        Err((reply, why)) => {
                            info!(
                                "NOQUEUE: reject: DATA from [{peer}]: {} {}: {}",
                                reply.code,
                                reply.status.as_deref().unwrap_or(""),
                                postern_log::escape(&why)
                            );
                            Err(reply)
                        }
                    };
                    session.message_stored(result);
                }
                Action::Abort => message = None,
                Action::Close => {
                    info!("disconnect from [{peer}]");
                    return;
                }
            }
        }
        let limit = Duration::from_secs(if session.in_data() {
            settings.smtpd.data_timeout
        } else {
            settings.smtpd.command_timeout
        });
        let read = tokio::select! {
            read = tokio::time::timeout(limit, transport.read(&mut buffer)) => read,
            _ = shutdown.changed() => {
                let _ = transport.write_all(
                    format!("421 4.3.2 {} shutting down\r\n", settings.hostname).as_bytes(),
                ).await;
                return;
            }
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {
                info!("lost connection from [{peer}]");
                return;
            }
            Ok(Ok(n)) => session.receive(&buffer[..n]),
            Err(_) => {
                info!("timeout after {limit:?} from [{peer}]");
                let _ = transport
                    .write_all(
                        format!(
                            "421 4.4.2 {} Error: timeout exceeded\r\n",
                            settings.hostname
                        )
                        .as_bytes(),
                    )
                    .await;
                return;
            }
        }
    }
}

/// A TLS handshake, bounded like a command: a client that starts one and
/// goes quiet must not hold a connection slot for ever.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    transport: &mut Transport<S>,
    acceptor: &tokio_rustls::TlsAcceptor,
    limit: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, transport.start_tls(acceptor))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut)))
}

/// Asks postern-auth about an AUTH login (which answers late when the
/// throttle says so); a failure is logged as Postfix logs it (`SASL LOGIN
/// authentication failed`), for fail2ban.
async fn login(
    lookups: &mut AsyncClient,
    peer: IpAddr,
    mechanism: Mechanism,
    credentials: Credentials,
) -> Result<String, Reply> {
    let user = credentials.user.clone();
    let request = Request::Login {
        service: Service::Smtp,
        ip: peer,
        user: credentials.user,
        proof: credentials.proof,
    };
    let failed = || {
        warn!(
            "unknown[{peer}]: SASL {} authentication failed: authentication failure, sasl_username={}",
            mechanism.name(),
            postern_log::escape(&user)
        );
    };
    if request.encode().is_none() {
        // Longer than postern-auth takes: no password is that long.
        failed();
        return Err(Reply::new(
            535,
            "5.7.8",
            "Error: authentication failed: authentication failure",
        ));
    }
    match lookups.ask(&request).await {
        Ok(Answer::Ok(login)) => {
            info!(
                "client=[{peer}], sasl_method={}, sasl_username={}",
                mechanism.name(),
                postern_log::escape(&login.user)
            );
            Ok(login.user)
        }
        Ok(Answer::Fail { status }) => {
            if status.starts_with("4.") {
                // The throttle refused it unchecked: not a failed password,
                // so not in the words fail2ban counts.
                warn!(
                    "unknown[{peer}]: SASL {} login throttled: too many failed logins, sasl_username={}",
                    mechanism.name(),
                    postern_log::escape(&user)
                );
                Err(Reply::new(
                    454,
                    "4.7.0",
                    "Temporary authentication failure: too many failed logins, try later",
                ))
            } else {
                failed();
                Err(Reply::new(
                    535,
                    "5.7.8",
                    "Error: authentication failed: authentication failure",
                ))
            }
        }
        Ok(other) => {
            warn!("AUTH from [{peer}]: postern-auth answered {other:?}");
            Err(Reply::new(454, "4.7.0", "Temporary authentication failure"))
        }
        Err(why) => {
            warn!("AUTH from [{peer}]: {why}");
            Err(Reply::new(454, "4.7.0", "Temporary authentication failure"))
        }
    }
}

/// May this recipient be taken from this client?
async fn check(
    ctx: &Context,
    lookups: &mut AsyncClient,
    rcpt: &RcptTo<String>,
    peer: IpAddr,
    authenticated: Option<&str>,
) -> Result<(), Reply> {
    let address = &rcpt.address;
    if let Some(reply) = relay::trick(address) {
        return Err(reply);
    }
    let asked = crate::incoming::queue_address(address, &ctx.settings.hostname);
    match lookups
        .ask(&Request::Lookup {
            address: asked.clone(),
        })
        .await
    {
        Ok(Answer::Local) => Ok(()),
        Ok(Answer::Unknown(text)) => {
            let (code, why) = text.split_once(' ').unwrap_or(("5.1.1", &text));
            let code = if code.starts_with("5.") {
                code
            } else {
                "5.1.1"
            };
            Err(Reply::new(
                550,
                code,
                format!("<{address}>: Recipient address rejected: {why}"),
            ))
        }
        Ok(Answer::Remote) if authenticated.is_some() => {
            info!(
                "relay for [{peer}] to <{}>: authenticated as {}",
                postern_log::escape(address),
                postern_log::escape(authenticated.unwrap_or_default())
            );
            Ok(())
        }
        Ok(Answer::Remote) => match ctx.rules.permits(peer, postern_config::unix_now()) {
            Some(rule) => {
                info!(
                    "relay for [{peer}] to <{}>: {rule}",
                    postern_log::escape(address)
                );
                Ok(())
            }
            None => Err(relay::refusal(&ctx.rules, address)),
        },
        Ok(Answer::Defer(text)) => Err(Reply::new(
            450,
            "4.3.5",
            format!("<{address}>: Recipient address lookup failed: {text}"),
        )),
        Ok(
            other @ (Answer::Ok(_)
            | Answer::Fail { .. }
            | Answer::Blocked(_)
            | Answer::Unblocked(_)),
        ) => {
            tracing::warn!(
                "lookup of <{}>: answered {other:?}",
                postern_log::escape(address)
            );
            Err(Reply::new(
                451,
                "4.3.0",
                format!("<{address}>: Temporary lookup failure"),
            ))
        }
        Ok(Answer::Error(why)) | Err(why) => {
            tracing::warn!("lookup of <{}>: {why}", postern_log::escape(address));
            Err(Reply::new(
                451,
                "4.3.0",
                format!("<{address}>: Temporary lookup failure"),
            ))
        }
    }
}
