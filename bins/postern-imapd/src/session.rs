//! One IMAP session, in its own process: the privilege steps, TLS, and
//! postern-imap's `Session` driven over blocking I/O.

use std::io::ErrorKind;
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use postern_auth_protocol::Service;
use postern_config::Settings;
use postern_imap::{Action, Config, LoginFailure, Session};
use postern_listen::ImapPort;
use postern_sasl::{Credentials, Mechanism};
use postern_server::{LoggedIn, Refusal, Start, log_in, start_session};
use tracing::info;

/// A client quiet this long is between commands, not in the middle of
/// a burst: the moment to hand freed memory back.
const QUIET: Duration = Duration::from_millis(200);

/// What every session gets from the listener.
pub struct Context {
    pub settings: Settings,
    /// The login user's uid and gid, when started as root.
    pub login_ids: Option<(u32, u32)>,
    /// The TLS configuration as of this connection's accept.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Serves one connection; the process's exit code.
pub fn serve(stream: TcpStream, kind: ImapPort, ctx: &Context) -> i32 {
    let imapd = &ctx.settings.imapd;
    let idle = Duration::from_secs(imapd.idle_timeout.max(1));
    let implicit_tls = kind == ImapPort::Imaps;
    // A FETCH answer goes out in slices: Nagle would hold a slice's tail
    // until the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    let start = start_session(stream, ctx.login_ids, idle, implicit_tls, ctx.tls.as_ref());
    let Start {
        peer,
        mut transport,
    } = match start {
        Ok(start) => start,
        Err(code) => return code,
    };
    info!("connect from [{peer}] ({kind:?})");
    let mut config = Config::new(ctx.settings.hostname.clone());
    config.tls = implicit_tls;
    config.starttls = ctx.tls.is_some() && !implicit_tls;
    config.cleartext_allowed = imapd.cleartext_networks.iter().any(|n| n.contains(peer));
    if imapd.cram_md5 {
        config.mechanisms.push(Mechanism::CramMd5);
    }
    config.challenge_seed = postern_server::challenge_seed();
    let mut session = Session::new(config);
    let mut user: Option<String> = None;
    // Already the owner of one mailbox: this process cannot log in as
    // anyone else.
    let mut spent = false;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    if transport.write_all(&bytes).is_err() {
                        return 0;
                    }
                }
                Action::StartTls => {
                    let Some(config) = &ctx.tls else { return 0 };
                    if let Err(e) = transport.start_tls(config, idle) {
                        info!("STARTTLS handshake with [{peer}] failed: {e}");
                        return 0;
                    }
                    session.tls_started();
                }
                Action::Login(credentials) if spent => {
                    drop(credentials);
                    session.login_failed(LoginFailure::Temporary(
                        "Already logged in once on this connection".into(),
                    ));
                }
                Action::Login(credentials) => match login(ctx, peer, credentials) {
                    Ok(LoggedIn {
                        user: name,
                        mailbox,
                    }) => {
                        info!("login: user=<{}>, ip={peer}", postern_log::escape(&name));
                        session.logged_in(mailbox.maildir);
                        user = Some(name);
                        spent = ctx.login_ids.is_some();
                    }
                    Err((failure, gave_up)) => {
                        session.login_failed(failure);
                        spent |= gave_up;
                    }
                },
                Action::Close => {
                    if let Some(user) = &user {
                        info!("logout: user=<{}>", postern_log::escape(user));
                    }
                    transport.close();
                    return 0;
                }
            }
        }
        let buffered = transport.read_buffered(&mut buffer);
        if buffered > 0 {
            session.receive(&buffer[..buffered]);
            continue;
        }
        if !readable_within(transport.raw_fd(), QUIET) {
            // What the last commands used and freed goes back to the
            // system: a session may sit idle for days.
            // SAFETY: malloc_trim only returns free memory.
            unsafe { libc::malloc_trim(0) };
        }
        match transport.read(&mut buffer) {
            Ok(0) => {
                info!("lost connection from [{peer}]");
                return 0;
            }
            Ok(n) => session.receive(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                info!("idle timeout from [{peer}]");
                let _ = transport.write_all(b"* BYE Autologout; idle for too long\r\n");
                return 0;
            }
            Err(_) => return 0,
        }
    }
}

/// Checks the login with postern-auth and becomes the mailbox's owner.
fn login(
    ctx: &Context,
    peer: IpAddr,
    credentials: Credentials,
) -> Result<LoggedIn, (LoginFailure, bool)> {
    let step_down = ctx.login_ids.is_some();
    let socket = &ctx.settings.auth.socket;
    log_in(socket, Service::Imap, peer, credentials, step_down).map_err(|(refusal, spent)| {
        let failure = match refusal {
            Refusal::Credentials => LoginFailure::Credentials,
            Refusal::Temporary(text) => LoginFailure::Temporary(text.into()),
        };
        (failure, spent)
    })
}

/// Whether the socket has input within `timeout`.
fn readable_within(fd: i32, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the length given.
    let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
    ready != 0
}
