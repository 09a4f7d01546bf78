//! A proxied session (`user#host`, docs/POP3.md): what is checked while
//! the session is still the login user, then, as the proxy user for good,
//! the login on the other server and the bytes passed both ways.

use std::net::IpAddr;
use std::time::Duration;

use postern_pop3::{Action, Credentials, LoginFailure, Session};
use tracing::{info, warn};

use crate::context::Context;
use crate::proxy::Target;
use postern_server::Transport;

/// The longest a login on the other server may take, end to end.
const LOGIN_TIME: Duration = Duration::from_secs(90);

/// A proxied login that may go ahead.
pub struct Admitted {
    target: Target,
    /// The client's login name, for the log.
    user: String,
    password: Vec<u8>,
    /// Attempts from the client's IP in the window, this one included.
    attempts: u64,
}

/// Checks what can be checked before the session gives anything up: the
/// host is allowed, the login carries a password that can be passed on,
/// and the client's IP has failures left.
pub fn admit(
    ctx: &Context,
    peer: IpAddr,
    target: &Target,
    credentials: &Credentials,
) -> Result<Admitted, LoginFailure> {
    let who = postern_log::escape(&credentials.user);
    if !target.allowed(&ctx.settings.pop3d.proxy_hosts) {
        info!("proxy refused: user=<{who}>, ip={peer}: host not allowed");
        return Err(LoginFailure::Denied(
            "Proxying to that host is not allowed".into(),
        ));
    }
    let password = crate::proxy::password(target, &credentials.proof)?.to_vec();
    let attempts = match &ctx.proxy_memory {
        Some(memory) => memory
            .attempt(peer, postern_config::unix_now(), &ctx.settings.auth)
            .map_err(|()| {
                info!("proxy refused: user=<{who}>, ip={peer}: too many failed logins");
                LoginFailure::Temporary("Too many failed logins; try again later".into())
            })?,
        None => 1,
    };
    Ok(Admitted {
        target: target.clone(),
        user: credentials.user.clone(),
        password,
        attempts,
    })
}

/// The session becomes the proxy user for good, logs in on the other
/// server and relays until either side ends. The process's exit code.
pub fn proxy(
    ctx: &Context,
    peer: IpAddr,
    admitted: Admitted,
    mut session: Session,
    mut transport: Transport,
    idle: Duration,
) -> i32 {
    let who = postern_log::escape(&admitted.user);
    // SECURITY: no capability and no way back before a byte goes out:
    // the other server's answers are parsed by the proxy user alone.
    if let Some((uid, gid)) = ctx.proxy_ids
        && let Err(e) = postern_privilege::become_owner(uid, gid)
    {
        warn!("cannot become the proxy user: {e}");
        session.login_failed(LoginFailure::Temporary("The proxy is not available".into()));
        flush(&mut session, &mut transport);
        return 71;
    }
    let memory = ctx.proxy_memory.as_ref();
    let auth = &ctx.settings.auth;
    let tls = ctx.proxy_tls.as_ref();
    // Each read from the other server waits a limited time, but one that
    // answers a byte at a time could hold the session for hours: the
    // whole login, TLS included, has LOGIN_TIME, and then SIGALRM's
    // default action ends the process.
    // SAFETY: alarm(2) only schedules a signal.
    unsafe { libc::alarm(LOGIN_TIME.as_secs() as u32) };
    let login = crate::proxy::login(&admitted.target, &admitted.password, memory, tls);
    // SAFETY: as above; 0 cancels it.
    unsafe { libc::alarm(0) };
    let remote = match login {
        Ok(remote) => remote,
        Err(failure) => {
            info!("proxy login failed: user=<{who}>, ip={peer}");
            if failure == LoginFailure::Credentials {
                // As postern-auth does: past the first failures, each
                // answer waits, so guessing is slow.
                if admitted.attempts > auth.failure_delay_after as u64 {
                    std::thread::sleep(Duration::from_secs(auth.failure_delay));
                }
            } else if let Some(memory) = memory {
                // Not the client's fault: not counted.
                memory.succeeded(peer, postern_config::unix_now(), auth);
            }
            session.login_failed(failure);
            flush(&mut session, &mut transport);
            return 0;
        }
    };
    if let Some(memory) = memory {
        memory.succeeded(peer, postern_config::unix_now(), auth);
    }
    info!("proxy login: user=<{who}>, ip={peer}");
    let pending = session.proxied(&remote.reply);
    flush(&mut session, &mut transport);
    let mut remote = remote.stream;
    relay(&mut transport, &mut remote, &pending, idle);
    // A TLS peer learns the end was meant, not a cut connection.
    transport.close();
    remote.close();
    info!("proxy ended: user=<{who}>, ip={peer}");
    0
}

/// Bytes both ways between the client and the other server until either
/// closes or both are quiet for `idle`. Each side is read without
/// waiting, so half a TLS record from one never holds up the other.
fn relay(client: &mut Transport, remote: &mut Transport, pending: &[u8], idle: Duration) {
    if remote.write_all(pending).is_err() {
        return;
    }
    let mut buffer = vec![0u8; 16 * 1024];
    let timeout = i32::try_from(idle.as_millis()).unwrap_or(i32::MAX);
    loop {
        // TLS may hold plaintext the socket no longer shows.
        if pass_buffered(client, remote, &mut buffer).is_err()
            || pass_buffered(remote, client, &mut buffer).is_err()
        {
            return;
        }
        let mut fds = [client.raw_fd(), remote.raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two pollfd, the length given.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if ready == 0 {
            let _ = client.write_all(b"-ERR Disconnected for inactivity\r\n");
            return;
        }
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if (fds[0].revents != 0 && pass(client, remote, &mut buffer).is_err())
            || (fds[1].revents != 0 && pass(remote, client, &mut buffer).is_err())
        {
            return;
        }
    }
}

/// The end of a relay: a side closed or failed.
struct Ended;

/// Passes on what `from` has decrypted but not yet given out.
fn pass_buffered(from: &mut Transport, to: &mut Transport, buffer: &mut [u8]) -> Result<(), Ended> {
    loop {
        let n = from.read_buffered(buffer);
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..n]).map_err(|_| Ended)?;
    }
}

/// Passes on what `from` has now, if anything.
fn pass(from: &mut Transport, to: &mut Transport, buffer: &mut [u8]) -> Result<(), Ended> {
    match from.read_now(buffer) {
        Ok(0) => Err(Ended),
        Ok(n) => to.write_all(&buffer[..n]).map_err(|_| Ended),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(_) => Err(Ended),
    }
}

/// Sends what the session has to say before it ends (its last answer).
pub fn flush(session: &mut Session, transport: &mut Transport) {
    while let Some(action) = session.next_action() {
        if let Action::Send(bytes) = action {
            let _ = transport.write_all(&bytes);
        }
    }
}
