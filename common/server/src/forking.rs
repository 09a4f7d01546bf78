//! The forking listener: root, single-threaded, parses nothing a client
//! sends. It accepts on every socket, turns away who the access list or
//! the connection limits refuse, and forks one process per connection,
//! which runs the server's session (and gives up root before its first
//! read, `start_session`); it reaps them, and on SIGTERM ends them all.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use postern_listen::{Listen, PortKind};
use tracing::{info, warn};

use crate::{Access, Connections};

/// A connection handed to its session's process.
pub struct Accepted<K> {
    pub stream: TcpStream,
    pub kind: K,
    /// The TLS configuration as of this accept (certificates reload).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What a server answers the connections it turns away with, in its own
/// protocol, and how its log names the access setting.
pub struct Refusals {
    /// A full reply line, CRLF included: `-ERR Access denied`.
    pub denied: &'static [u8],
    /// A full reply line for a full server.
    pub crowded: &'static [u8],
    /// The setting that refused, for the log: `[pop3d] access`.
    pub access_setting: &'static str,
}

impl Refusals {
    /// Turns away a client the access list does not admit.
    pub fn deny(&self, stream: &mut TcpStream, ip: IpAddr) {
        info!("refused [{ip}]: not allowed by {}", self.access_setting);
        let _ = stream.write_all(self.denied);
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Serves the bound sockets until SIGTERM or SIGINT, running `session`
/// in a process of its own for each admitted connection; 0 when stopped.
pub fn serve_forking<K: PortKind>(
    bound: Vec<(Listen<K>, TcpListener)>,
    access: &Access,
    mut connections: Connections,
    refusals: &Refusals,
    mut tls: Option<Arc<rustls::ServerConfig>>,
    mut certificates: Option<&mut postern_tls::Certificates>,
    mut session: impl FnMut(Accepted<K>) -> i32,
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
        reap(&mut children, &mut connections);
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
            if !access.admits(ip) {
                refusals.deny(&mut stream, ip);
                continue;
            }
            reap(&mut children, &mut connections);
            if connections.admit(ip).is_err() {
                info!("refused [{ip}]: too many connections");
                let _ = stream.write_all(refusals.crowded);
                continue;
            }
            if let Some(certificates) = certificates.as_deref_mut() {
                let (config, why) = certificates.config();
                if let Some(why) = why {
                    warn!("[tls]: {why}");
                }
                tls = config;
            }
            let accepted = Accepted {
                stream,
                kind: listen.kind,
                tls: tls.clone(),
            };
            match fork_session(accepted, &bound, &mut session) {
                Ok(pid) => {
                    children.insert(pid, ip);
                }
                Err(e) => {
                    connections.leave(ip);
                    warn!("fork: {e}");
                }
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

/// One process per connection.
fn fork_session<K>(
    accepted: Accepted<K>,
    bound: &[(Listen<K>, TcpListener)],
    session: &mut impl FnMut(Accepted<K>) -> i32,
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
            let _ = accepted.stream.set_nonblocking(false);
            std::process::exit(session(accepted));
        }
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
    }
}

/// Forgets the sessions that have ended, and their connections.
fn reap(children: &mut HashMap<i32, IpAddr>, connections: &mut Connections) {
    children.retain(|&pid, ip| {
        let mut status = 0;
        // SAFETY: waitpid on our own child, without blocking.
        let running = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 };
        if !running {
            connections.leave(*ip);
        }
        running
    });
}
