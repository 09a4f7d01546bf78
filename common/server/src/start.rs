//! The start of a session's process, everything before the first byte
//! from the client is read: the privilege step down to the login user,
//! the socket's keepalive and timeouts, and on an implicit-TLS port the
//! handshake.

use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::Transport;

/// A session ready for its protocol.
pub struct Start {
    /// The client, IPv4-mapped addresses as IPv4.
    pub peer: IpAddr,
    pub transport: Transport,
}

/// Starts the session on `stream`: as `login_ids` (when the listener is
/// root) with only CAP_SETUID and CAP_SETGID kept for the login, reads
/// and writes timing out after `idle`, and TLS first when `implicit_tls`.
/// `Err` is the process's exit code: 71 when the privileges cannot be
/// dropped, 0 when the client went before the session could start.
pub fn start_session(
    stream: TcpStream,
    login_ids: Option<(u32, u32)>,
    idle: Duration,
    implicit_tls: bool,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Result<Start, i32> {
    let peer = match stream.peer_addr() {
        Ok(address) => postern_config::relayers::canonical(address.ip()),
        Err(_) => return Err(0),
    };
    // SECURITY: before the first byte from the client is read.
    if let Some((uid, gid)) = login_ids
        && let Err(e) = postern_privilege::become_login_user(uid, gid)
    {
        warn!("cannot become the login user: {e}");
        return Err(71);
    }
    keep_alive(&stream);
    let _ = stream.set_read_timeout(Some(idle));
    // A client that stops reading must not hold its process for ever.
    let _ = stream.set_write_timeout(Some(idle));
    let mut transport = Transport::Plain(stream);
    if implicit_tls {
        let Some(config) = tls else { return Err(0) };
        if let Err(e) = transport.start_tls(config, idle) {
            info!("TLS handshake with [{peer}] failed: {e}");
            return Err(0);
        }
    }
    Ok(Start { peer, transport })
}

/// TCP keepalive finds clients that vanished without closing.
fn keep_alive(stream: &TcpStream) {
    let set = |level: i32, name: i32, value: libc::c_int| {
        // SAFETY: a valid socket and a c_int option of the right size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 20);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn a_plain_session_gets_its_peer_timeouts_and_keepalive() {
        let (mut client, server) = pair();
        let idle = Duration::from_secs(7);
        let Ok(mut start) = start_session(server, None, idle, false, None) else {
            panic!("no start");
        };
        assert_eq!(start.peer, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(start.transport.security(), "plain TCP");
        start.transport.write_all(b"+OK\r\n").unwrap();
        let mut line = [0u8; 5];
        client.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"+OK\r\n");
        client.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(start.transport.read(&mut byte).unwrap(), 1);
        let Transport::Plain(socket) = &start.transport else {
            panic!("not plain");
        };
        assert_eq!(socket.read_timeout().unwrap(), Some(idle));
        assert_eq!(socket.write_timeout().unwrap(), Some(idle));
    }

    #[test]
    fn implicit_tls_without_a_certificate_ends_quietly() {
        let (_client, server) = pair();
        let result = start_session(server, None, Duration::from_secs(1), true, None);
        assert!(matches!(result, Err(0)));
    }

    #[test]
    fn implicit_tls_handshakes_before_the_session_reads() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("postern-server-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let server_config = Arc::new(postern_tls::load(&cert, &key).unwrap());
        let client_config = Arc::new(postern_tls::client_config(&cert).unwrap());
        let (client, server) = pair();
        let handle = std::thread::spawn(move || {
            let mut transport = Transport::Plain(client);
            transport
                .connect_tls(&client_config, "localhost", Duration::from_secs(5))
                .unwrap();
            let mut line = [0u8; 5];
            let mut got = 0;
            while got < line.len() {
                got += transport.read(&mut line[got..]).unwrap();
            }
            line
        });
        let idle = Duration::from_secs(5);
        let Ok(mut start) = start_session(server, None, idle, true, Some(&server_config)) else {
            panic!("no start");
        };
        assert!(start.transport.security().starts_with("TLSv1"));
        start.transport.write_all(b"+OK\r\n").unwrap();
        assert_eq!(&handle.join().unwrap(), b"+OK\r\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
