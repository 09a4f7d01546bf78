//! A session's login, shared by the POP3 and IMAP servers: one question to
//! postern-auth on a connection of its own (the session is still the login
//! user), then the step to the mailbox's owner for good.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use postern_auth_protocol::{Client, Mailbox, Reply, Request, Service};
use postern_sasl::Credentials;
use tracing::warn;

/// postern-auth waits out its throttle before it answers; more than this
/// means it is stuck.
const ANSWER_TIME: Duration = Duration::from_secs(60);

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bad credentials.
    Credentials,
    /// Cannot say now; the text is for the client.
    Temporary(&'static str),
}

/// An accepted login: the process is the mailbox's owner now (when it
/// started as root).
pub struct LoggedIn {
    pub user: String,
    pub mailbox: Mailbox,
}

/// Asks postern-auth about `credentials` and, when they are good and
/// `step_down` (the listener was root), becomes the mailbox's owner with
/// no capability. On a refusal, also whether the process already gave up
/// the right to become anyone else, after which it must end.
pub fn log_in(
    socket: &Path,
    service: Service,
    peer: IpAddr,
    credentials: Credentials,
    step_down: bool,
) -> Result<LoggedIn, (Refusal, bool)> {
    let temporary = |text| (Refusal::Temporary(text), false);
    let request = Request::Login {
        service,
        ip: peer,
        user: credentials.user,
        proof: credentials.proof,
    };
    if request.encode().is_none() {
        // Longer than postern-auth takes: no password is that long.
        return Err((Refusal::Credentials, false));
    }
    let answer = Client::new(socket, ANSWER_TIME)
        .ask(&request)
        .map_err(|e| {
            warn!("login from [{peer}]: {e}");
            temporary("The login service cannot be reached; try again later")
        })?;
    let login = match answer {
        Reply::Ok(login) => login,
        Reply::Fail { status } if status.starts_with("4.") => {
            return Err(temporary("Too many failed logins; try again later"));
        }
        Reply::Fail { .. } => return Err((Refusal::Credentials, false)),
        other => {
            warn!("login from [{peer}]: postern-auth answered {other:?}");
            return Err(temporary("The login service failed; try again later"));
        }
    };
    let Some(mailbox) = login.mailbox else {
        return Err(temporary("This account has no mailbox"));
    };
    // SECURITY: the mailbox's owner for good, before anything of it is
    // opened; after this, the process can be no one else.
    if step_down {
        if let Err(e) = postern_privilege::become_owner(mailbox.uid, mailbox.gid) {
            warn!(
                "cannot become uid {} for <{}>: {e}",
                mailbox.uid, login.user
            );
            return Err((Refusal::Temporary("Cannot open the mailbox"), true));
        }
    } else if postern_privilege::current_ids().0 != mailbox.uid {
        return Err(temporary("The mailbox belongs to another user"));
    }
    Ok(LoggedIn {
        user: login.user,
        mailbox,
    })
}
