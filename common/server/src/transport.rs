//! A connection of a session: to its client (plain TCP, or TLS from the
//! start, POP3S, or after STLS), or, for a proxied login, to the other
//! server (plain, or TLS as that server's client).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection, StreamOwned};

/// How long the other side has for the TLS handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(60);

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    TlsClient(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

impl Transport {
    /// TLS as the server, then reads time out after `idle`.
    pub fn start_tls(
        &mut self,
        config: &Arc<rustls::ServerConfig>,
        idle: Duration,
    ) -> std::io::Result<()> {
        let Transport::Plain(stream) = std::mem::replace(self, Transport::Gone) else {
            return Err(std::io::Error::other("TLS is already on"));
        };
        let connection =
            ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
        let mut tls = StreamOwned::new(connection, stream);
        handshake(&mut tls.conn, &mut tls.sock, idle)?;
        *self = Transport::Tls(Box::new(tls));
        Ok(())
    }

    /// TLS as the client of `name`, whose certificate `config` checks.
    pub fn connect_tls(
        &mut self,
        config: &Arc<rustls::ClientConfig>,
        name: &str,
        idle: Duration,
    ) -> std::io::Result<()> {
        let Transport::Plain(stream) = std::mem::replace(self, Transport::Gone) else {
            return Err(std::io::Error::other("TLS is already on"));
        };
        let name = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
        let connection =
            ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
        let mut tls = StreamOwned::new(connection, stream);
        handshake(&mut tls.conn, &mut tls.sock, idle)?;
        *self = Transport::TlsClient(Box::new(tls));
        Ok(())
    }

    /// How the connection is carried, for the log: `TLSv1_3`, `plain TCP`.
    pub fn security(&self) -> String {
        let version = match self {
            Transport::Tls(stream) => stream.conn.protocol_version(),
            Transport::TlsClient(stream) => stream.conn.protocol_version(),
            _ => None,
        };
        version.map_or_else(|| "plain TCP".into(), |v| format!("{v:?}"))
    }

    pub fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buffer),
            Transport::Tls(stream) => stream.read(buffer),
            Transport::TlsClient(stream) => stream.read(buffer),
            Transport::Gone => Ok(0),
        }
    }

    /// Plaintext TLS already decrypted but not yet read (0 for plain
    /// TCP): a poll of the socket cannot see it.
    pub fn read_buffered(&mut self, buffer: &mut [u8]) -> usize {
        match self {
            Transport::Tls(stream) => stream.conn.reader().read(buffer).unwrap_or(0),
            Transport::TlsClient(stream) => stream.conn.reader().read(buffer).unwrap_or(0),
            _ => 0,
        }
    }

    /// Reads without waiting: `WouldBlock` when a whole TLS record or
    /// any byte has yet to come.
    pub fn read_now(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let Some(socket) = self.socket() else {
            return Ok(0);
        };
        socket.set_nonblocking(true)?;
        let result = self.read(buffer);
        if let Some(socket) = self.socket() {
            socket.set_nonblocking(false)?;
        }
        result
    }

    fn socket(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(stream) => Some(stream),
            Transport::Tls(stream) => Some(&stream.sock),
            Transport::TlsClient(stream) => Some(&stream.sock),
            Transport::Gone => None,
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.socket().map_or(-1, |socket| socket.as_raw_fd())
    }

    /// Says goodbye in TLS (close_notify), as far as the peer takes it
    /// without waiting; nothing for plain TCP.
    pub fn close(&mut self) {
        if let Some(socket) = self.socket() {
            let _ = socket.set_nonblocking(true);
        }
        match self {
            Transport::Tls(stream) => goodbye(&mut stream.conn, &mut stream.sock),
            Transport::TlsClient(stream) => goodbye(&mut stream.conn, &mut stream.sock),
            _ => {}
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.write_all(bytes),
            Transport::Tls(stream) => stream.write_all(bytes).and_then(|()| stream.flush()),
            Transport::TlsClient(stream) => stream.write_all(bytes).and_then(|()| stream.flush()),
            Transport::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// Completes a handshake, each read waiting at most HANDSHAKE_TIME, then
/// lets reads wait `idle`.
fn handshake<C, D>(conn: &mut C, sock: &mut TcpStream, idle: Duration) -> std::io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    sock.set_read_timeout(Some(HANDSHAKE_TIME))?;
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    sock.set_read_timeout(Some(idle))
}

/// Queues close_notify and sends what the socket takes now.
fn goodbye<C, D>(conn: &mut C, sock: &mut TcpStream)
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    conn.send_close_notify();
    let _ = conn.write_tls(sock);
}

/// For a `BufReader` over the connection during a proxied login.
impl Read for Transport {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        Transport::read(self, buffer)
    }
}
