//! The socket: bound (as root, before the privilege drop), then one thread
//! per connection, at most `MAX_CONNECTIONS` at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_auth_protocol::{MAX_LINE, Reply, Request};
use postern_config::{Config, Settings};
use tracing::{error, info, warn};

use crate::login::{Attempt, login};
use crate::lookup::lookup;

const MAX_CONNECTIONS: usize = 256;
/// A client that sends nothing for this long is dropped.
const IDLE: Duration = Duration::from_secs(300);

pub fn run(settings: &Settings, dir: &Path) -> i32 {
    let socket = &settings.auth.socket;
    if let Some(parent) = socket.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // A socket left by an earlier run would make bind fail.
    if std::fs::symlink_metadata(socket).is_ok_and(|m| !m.is_dir()) {
        let _ = std::fs::remove_file(socket);
    }
    let listener = match UnixListener::bind(socket) {
        Ok(listener) => listener,
        Err(e) => {
            warn!("bind {}: {e}", socket.display());
            return 71;
        }
    };
    // Every program of the suite may ask (smtpd, and pop3d/imapd sessions
    // that run as mailbox owners); what it answers is what SMTP's RCPT
    // tells anyone.
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666));
    if postern_privilege::is_root() {
        let Some((uid, gid, name)) = settings.auth.user.resolve() else {
            warn!("[auth] user \"{}\" is not a user", settings.auth.user);
            return 71;
        };
        let extra: Vec<u32> = settings
            .auth
            .groups
            .iter()
            .filter_map(|group| {
                let gid = postern_privilege::lookup_group(group);
                if gid.is_none() {
                    info!("[auth] groups: {group:?} is not a group here; skipped");
                }
                gid
            })
            .collect();
        // SECURITY: for good, before the first request is read.
        if let Err(e) =
            postern_privilege::become_user_with_groups(uid, gid, name.as_deref(), &extra)
        {
            warn!("cannot become \"{}\": {e}", settings.auth.user);
            return 71;
        }
    }
    // Loaded now, so that a change that does not load later finds a last
    // good configuration to keep answering with.
    if let Err(e) = config(dir) {
        error!("{e}");
        return 78;
    }
    info!("answering on {}", socket.display());
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.write_all(
                Reply::Error("4.3.2 too many connections".into())
                    .encode()
                    .as_bytes(),
            );
            continue;
        }
        let active = Arc::clone(&active);
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            serve(stream, &dir);
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    0
}

/// The uid of the process at the other end of the socket (SO_PEERCRED).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: ucred is plain data; zeroed is a valid value.
    let mut credentials: libc::ucred = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket, and a buffer of the size passed.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut length,
        )
    };
    (result == 0).then_some(credentials.uid)
}

/// SECURITY: anyone may ask LOOKUP (what SMTP's RCPT tells anyone), but
/// only the suite's login clients may check passwords: root, this
/// service's own user, and `[auth] login_clients` (smtpd, and the POP3 and
/// IMAP sessions before their login). Else any local user would have an
/// oracle for every password, and could write any IP into the relayers
/// file with a POP3 "login".
fn may_check_logins(config: &Config, uid: Option<u32>) -> bool {
    let Some(uid) = uid else { return false };
    is_admin(Some(uid))
        || config.settings.auth.login_clients.iter().any(|client| {
            client
                .parse::<u32>()
                .ok()
                .or_else(|| postern_privilege::lookup_user(client).map(|user| user.uid))
                == Some(uid)
        })
}

/// Root, or this service's own user (the sandbox's invoker): who may see
/// and lift the throttle, and check passwords besides the login clients.
fn is_admin(uid: Option<u32>) -> bool {
    uid.is_some_and(|uid| uid == 0 || uid == postern_privilege::current_ids().0)
}

/// Answers one connection's requests in turn.
fn serve(stream: UnixStream, dir: &Path) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let peer = peer_uid(&stream);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            let _ = writer.write_all(Reply::Error("line too long".into()).encode().as_bytes());
            return;
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let reply = match Request::parse(text) {
            Ok(Request::Lookup { address }) => match config(dir) {
                Ok(config) => lookup(&config, &address),
                Err(e) => {
                    warn!("{e}");
                    Reply::Defer("4.3.0 configuration unreadable".into())
                }
            },
            Ok(Request::Login {
                service,
                ip,
                user,
                proof,
            }) => match config(dir) {
                Ok(config) if !may_check_logins(&config, peer) => {
                    warn!("refused a login check from uid {peer:?}: not a login client");
                    Reply::Error("not a login client".into())
                }
                Ok(config) => {
                    let attempt = Attempt {
                        service,
                        ip,
                        user: &user,
                        proof: &proof,
                    };
                    let (reply, delay) = login(&config, &attempt, postern_config::unix_now());
                    // The throttle's wait, here: the caller cannot skip it.
                    std::thread::sleep(Duration::from_secs(delay));
                    reply
                }
                Err(e) => {
                    warn!("{e}");
                    Reply::Defer("4.3.0 configuration unreadable".into())
                }
            },
            Ok(Request::Blocked) if is_admin(peer) => {
                crate::login::blocked(postern_config::unix_now())
            }
            Ok(Request::Unblock { key }) if is_admin(peer) => {
                let reply = crate::login::unblock(&key);
                info!("unblocked {}: {reply:?}", postern_log::escape(&key));
                reply
            }
            Ok(Request::Blocked | Request::Unblock { .. }) => {
                warn!("refused a throttle request from uid {peer:?}: root's only");
                Reply::Error("root only".into())
            }
            Err(why) => Reply::Error(why),
        };
        if writer.write_all(reply.encode().as_bytes()).is_err() {
            return;
        }
    }
}

/// The configuration, loaded again only when one of its files changed (its
/// modification time, size or inode; a change that does not load keeps the
/// last good one): an edit counts at the next request,
/// and the many lookups of a busy listener do not each parse every map.
/// Shared by every connection; the lock is held only to compare and swap.
static CACHE: Mutex<Option<(Stamps, Arc<Config>)>> = Mutex::new(None);

type Stamps = Vec<Option<(i64, i64, u64, u64)>>;

fn config(dir: &Path) -> Result<Arc<Config>, postern_config::ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let stamps: Stamps = ["postern.toml", "domains", "accounts", "aliases"]
        .iter()
        .map(|name| {
            std::fs::metadata(dir.join(name))
                .ok()
                .map(|m| (m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
        })
        .collect();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((old, config)) = cache.as_ref()
        && *old == stamps
    {
        return Ok(Arc::clone(config));
    }
    let config = match (Config::load(dir), cache.take()) {
        (Ok(config), _) => Arc::new(config),
        // A postern.toml that does not load (a typo being edited) must not
        // take every lookup and login down: its last good settings answer,
        // with the maps as they are now, so that an account removed or a
        // password changed in the same edit counts at once. A map that
        // cannot be read keeps the last good one.
        (Err(e), Some((_, last_good))) => {
            let maps = postern_config::Maps::load(dir);
            error!(
                "{e}; answering with the last settings that loaded{} until it is fixed",
                if maps.is_ok() {
                    " and the maps as they are"
                } else {
                    " and maps"
                }
            );
            match maps {
                Ok(maps) => Arc::new(Config {
                    dir: dir.to_path_buf(),
                    settings: last_good.settings.clone(),
                    maps,
                }),
                Err(_) => last_good,
            }
        }
        (Err(e), None) => return Err(e),
    };
    *cache = Some((stamps, Arc::clone(&config)));
    Ok(config)
}
