//! The listener: root, single-threaded, parses nothing a client sends. It
//! accepts on every socket and forks one process per connection, which
//! gives up root before its first read (session.rs); it reaps them, and
//! on SIGTERM ends them all.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use postern_config::{Access, Network, Settings};
use postern_listen::Sockets;
use tracing::{error, info, warn};

use crate::session;

/// What a POP3 port is for.
pub use postern_listen::Pop3Port as Kind;

/// What every session gets from the listener.
pub struct Context {
    pub settings: Settings,
    pub cleartext_networks: Vec<Network>,
    /// Who may connect: `None` for anyone.
    pub allowed: Option<Vec<Network>>,
    /// The login user's uid and gid, when started as root.
    pub login_ids: Option<(u32, u32)>,
    /// The TLS configuration as of this connection's accept.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Who a proxied session becomes, when started as root.
    pub proxy_ids: Option<(u32, u32)>,
    /// What proxied sessions share: APOP failures, failed logins.
    pub proxy_memory: Option<crate::proxy::ProxyMemory>,
    /// How proxied logins check the other servers: `None` for plain TCP.
    pub proxy_tls: Option<Arc<rustls::ClientConfig>>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

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
    let allowed = access(&settings);
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
        allowed,
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
                && !admitted(&ctx, peer.ip())
            {
                refuse_access(&mut stream, peer.ip());
                return 0;
            }
            session::serve(stream, kind, &ctx)
        }
        Sockets::Listening(bound) => listen(bound, &mut ctx, certificates.as_mut()),
    }
}

fn listen(
    bound: Vec<(postern_listen::Listen<Kind>, TcpListener)>,
    ctx: &mut Context,
    mut certificates: Option<&mut postern_tls::Certificates>,
) -> i32 {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let stop = SigAction::new(
        SigHandler::Handler(on_terminate),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: a handler that only stores to an atomic.
        let _ = unsafe { sigaction(signal, &stop) };
    }
    for (listen, listener) in &bound {
        let _ = listener.set_nonblocking(true);
        info!("listening on {} ({:?})", listen.address, listen.kind);
    }
    // Each session's process, and the client it serves.
    let mut children: HashMap<i32, IpAddr> = HashMap::new();
    let mut fds: Vec<libc::pollfd> = bound
        .iter()
        .map(|(_, l)| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !STOP.load(Ordering::SeqCst) {
        reap(&mut children);
        // SAFETY: an array of pollfd of the length given.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if ready <= 0 {
            continue;
        }
        for (index, (listen, listener)) in bound.iter().enumerate() {
            if fds[index].revents == 0 {
                continue;
            }
            let Ok((mut stream, peer)) = listener.accept() else {
                continue;
            };
            let ip = postern_config::relayers::canonical(peer.ip());
            if !admitted(ctx, ip) {
                refuse_access(&mut stream, ip);
                continue;
            }
            reap(&mut children);
            let from_ip = children.values().filter(|&&c| c == ip).count();
            let limits = &ctx.settings.pop3d;
            if children.len() >= limits.max_connections || from_ip >= limits.max_connections_per_ip
            {
                info!("refused [{ip}]: too many connections");
                let _ =
                    stream.write_all(b"-ERR [SYS/TEMP] Too many connections; try again later\r\n");
                continue;
            }
            if let Some(certificates) = certificates.as_deref_mut() {
                let (config, why) = certificates.config();
                if let Some(why) = why {
                    warn!("[tls]: {why}");
                }
                ctx.tls = config;
            }
            match fork_session(stream, listen.kind, ctx, &bound) {
                Ok(pid) => {
                    children.insert(pid, ip);
                }
                Err(e) => warn!("fork: {e}"),
            }
        }
    }
    info!("stopping");
    for &pid in children.keys() {
        // SAFETY: kill(2) on our own children.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    0
}

/// `[pop3d] access`: who may connect (`None`: anyone).
fn access(settings: &Settings) -> Option<Vec<Network>> {
    let pop3d = &settings.pop3d;
    match pop3d.access {
        Access::Any => None,
        Access::Allow => Some(pop3d.allow.clone()),
        Access::AllowLan => Some([&pop3d.allow[..], &pop3d.lan_networks[..]].concat()),
    }
}

fn admitted(ctx: &Context, ip: IpAddr) -> bool {
    ctx.allowed
        .as_ref()
        .is_none_or(|allowed| allowed.iter().any(|n| n.contains(ip)))
}

fn refuse_access(stream: &mut TcpStream, ip: IpAddr) {
    info!("refused [{ip}]: not allowed by [pop3d] access");
    let _ = stream.write_all(b"-ERR Access denied\r\n");
}

/// One process per connection.
fn fork_session(
    stream: TcpStream,
    kind: Kind,
    ctx: &Context,
    bound: &[(postern_listen::Listen<Kind>, TcpListener)],
) -> std::io::Result<i32> {
    // SAFETY: this process is single-threaded, so the child may run any
    // code after the fork.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            // The child serves one client and holds no listening socket.
            for (_, listener) in bound {
                // SAFETY: closing our own copies of the listeners.
                unsafe { libc::close(listener.as_raw_fd()) };
            }
            // SAFETY: back to the default for the session's process.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::signal(libc::SIGINT, libc::SIG_DFL);
            }
            let _ = stream.set_nonblocking(false);
            std::process::exit(session::serve(stream, kind, ctx));
        }
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
    }
}

fn reap(children: &mut HashMap<i32, IpAddr>) {
    children.retain(|&pid, _| {
        let mut status = 0;
        // SAFETY: waitpid on our own child, without blocking.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 }
    });
}
