//! One POP3 session, in its own process: the privilege steps, TLS, and
//! postern-pop3's `Session` driven over blocking I/O.

use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use postern_auth_protocol::Service;
use postern_pop3::{Action, Config, Encoder, LoginFailure, Mechanism, Session, retrieve_header};
use postern_server::{LoggedIn, Refusal, Start, Transport, log_in, start_session};
use tracing::{info, warn};

use crate::context::{Context, Kind};
use postern_mailstore::{Cut, LockError, Maildrop, MaildropLock, View, read_head};

/// What the session has once the maildrop is open.
struct Open {
    user: String,
    maildrop: Maildrop,
    lock: MaildropLock,
    retrieved: usize,
    /// Whether RETR and TOP leave out invalid `Message-ID:` fields (the
    /// sizes already do).
    strip_message_id: bool,
}

/// pop3d's `strip_message_id`: invalid `Message-ID:` fields left out of
/// what is sent and counted.
const INVALID_MESSAGE_IDS: Cut = Cut {
    head_limit: postern_pop3::HEAD_LIMIT,
    octets: |head, whole| {
        postern_pop3::invalid_message_ids(head, whole)
            .into_iter()
            .map(|range| postern_pop3::crlf_len(&head[range]))
            .sum()
    },
};

/// Serves one connection; the process's exit code.
pub fn serve(stream: TcpStream, kind: Kind, ctx: &Context) -> i32 {
    let idle = Duration::from_secs(ctx.settings.pop3d.idle_timeout.max(1));
    let implicit_tls = kind == Kind::Pop3s;
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
    config.tls = kind == Kind::Pop3s;
    config.stls = ctx.tls.is_some() && kind != Kind::Pop3s;
    config.cleartext_allowed = ctx.cleartext_networks.iter().any(|n| n.contains(peer));
    config.mechanisms = vec![Mechanism::Plain, Mechanism::Login];
    if ctx.settings.pop3d.cram_md5 {
        config.mechanisms.push(Mechanism::CramMd5);
    }
    let unique = postern_server::challenge_seed();
    config.challenge_seed = unique.clone();
    if ctx.settings.pop3d.apop {
        config.apop_timestamp = Some(format!("<{unique}@{}>", ctx.settings.hostname));
    }
    let mut session = Session::new(config);
    let mut open: Option<Open> = None;
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
                        info!("STLS handshake with [{peer}] failed: {e}");
                        return 0;
                    }
                }
                Action::Login { credentials, .. } => {
                    if let Some(target) =
                        crate::proxy::target_of(&credentials.user, &ctx.settings.pop3d)
                    {
                        match crate::proxied::admit(ctx, peer, &target, &credentials) {
                            Ok(admitted) => {
                                return crate::proxied::proxy(
                                    ctx, peer, admitted, session, transport, idle,
                                );
                            }
                            Err(failure) => {
                                session.login_failed(failure);
                                continue;
                            }
                        }
                    }
                    match login(ctx, peer, credentials) {
                        Ok(opened) => {
                            let listing = opened.maildrop.listing();
                            info!(
                                "login: user=<{}>, ip={peer}, messages={}",
                                postern_log::escape(&opened.user),
                                listing.len()
                            );
                            session.logged_in(listing);
                            open = Some(opened);
                            // What opening the maildrop used and freed goes
                            // back to the system: the session may sit idle
                            // for minutes.
                            // SAFETY: malloc_trim only returns free memory.
                            unsafe { libc::malloc_trim(0) };
                        }
                        Err((failure, spent)) => {
                            session.login_failed(failure);
                            if spent {
                                // Already the owner of one mailbox: this
                                // process cannot log in as anyone else.
                                crate::proxied::flush(&mut session, &mut transport);
                                return 0;
                            }
                        }
                    }
                }
                Action::Retrieve {
                    index,
                    size,
                    body_lines,
                } => {
                    let Some(open) = open.as_mut() else { return 0 };
                    if send_message(&mut transport, open, index, size, body_lines).is_err() {
                        return 0;
                    }
                }
                Action::Update { delete } => {
                    let result = match &open {
                        Some(open) => {
                            let result = open.maildrop.delete(&delete);
                            info!(
                                "logout: user=<{}>, retrieved={}, deleted={}",
                                postern_log::escape(&open.user),
                                open.retrieved,
                                delete.len()
                            );
                            result
                        }
                        None => Ok(()),
                    };
                    session.updated(result);
                }
                Action::Close => {
                    transport.close();
                    return 0;
                }
            }
        }
        match transport.read(&mut buffer) {
            Ok(0) => {
                info!("lost connection from [{peer}]");
                return 0;
            }
            Ok(n) => {
                if let Some(open) = &open {
                    open.lock.touch();
                }
                session.receive(&buffer[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                info!("idle timeout from [{peer}]");
                let _ = transport.write_all(b"-ERR Disconnected for inactivity\r\n");
                return 0;
            }
            Err(_) => return 0,
        }
    }
}

/// Checks the login with postern-auth, becomes the mailbox's owner, takes
/// the lock and opens the maildrop. On failure, also whether this process
/// already gave up the right to become anyone else.
fn login(
    ctx: &Context,
    peer: IpAddr,
    credentials: postern_pop3::Credentials,
) -> Result<Open, (LoginFailure, bool)> {
    let temporary = |why: &str| LoginFailure::Temporary(why.to_string());
    let step_down = ctx.login_ids.is_some();
    let socket = &ctx.settings.auth.socket;
    let LoggedIn { user, mailbox } = log_in(socket, Service::Pop3, peer, credentials, step_down)
        .map_err(|(refusal, spent)| {
            let failure = match refusal {
                Refusal::Credentials => LoginFailure::Credentials,
                Refusal::Temporary(text) => temporary(text),
            };
            (failure, spent)
        })?;
    let spent = step_down;
    let takeover = Duration::from_secs(ctx.settings.pop3d.lock_takeover);
    let lock = match MaildropLock::acquire(&mailbox.maildir, takeover) {
        Ok(lock) => lock,
        Err(LockError::InUse) => return Err((LoginFailure::InUse, spent)),
        Err(LockError::Io(e)) => {
            warn!("lock {}: {e}", mailbox.maildir.display());
            return Err((temporary("Cannot open the mailbox"), spent));
        }
    };
    let strip_message_id = mailbox.strip_message_id || ctx.settings.pop3d.strip_message_id;
    let view = View {
        all_folders: mailbox.all_folders || ctx.settings.pop3d.all_folders,
        cut: strip_message_id.then_some(INVALID_MESSAGE_IDS),
    };
    let maildrop = Maildrop::open(&mailbox.maildir, view).map_err(|e| {
        warn!("open {}: {e}", mailbox.maildir.display());
        (temporary("Cannot open the mailbox"), spent)
    })?;
    Ok(Open {
        user,
        maildrop,
        lock,
        retrieved: 0,
        strip_message_id,
    })
}

/// RETR or TOP: the `+OK` line, then the message as POP3 sends it.
fn send_message(
    transport: &mut Transport,
    open: &mut Open,
    index: usize,
    size: u64,
    body_lines: Option<usize>,
) -> std::io::Result<()> {
    let mut file = match open.maildrop.open_message(index) {
        Ok(file) => file,
        Err(_) => {
            return transport
                .write_all(b"-ERR [SYS/TEMP] The message is gone from the mailbox\r\n");
        }
    };
    let mut out = retrieve_header(size);
    let mut encoder = Encoder::new(body_lines);
    let mut buffer = vec![0u8; 64 * 1024];
    if open.strip_message_id {
        // The same fields the size left out, found the same way.
        let (length, whole) = read_head(&mut file, &mut buffer, postern_pop3::HEAD_LIMIT)?;
        let head = &buffer[..length];
        let mut at = 0;
        for range in postern_pop3::invalid_message_ids(head, whole) {
            encoder.feed(&head[at..range.start], &mut out);
            at = range.end;
        }
        encoder.feed(&head[at..], &mut out);
    }
    loop {
        if encoder.is_done() {
            break;
        }
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        encoder.feed(&buffer[..n], &mut out);
        if out.len() >= 64 * 1024 {
            transport.write_all(&out)?;
            out.clear();
        }
    }
    encoder.finish(&mut out);
    if body_lines.is_none() {
        open.retrieved += 1;
    }
    transport.write_all(&out)
}
