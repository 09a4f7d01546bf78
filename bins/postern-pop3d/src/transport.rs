//! The client's connection: plain TCP, or TLS from the start (POP3S) or
//! after STLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ServerConnection, StreamOwned};

/// How long a client has for the TLS handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(60);

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

impl Transport {
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
        tls.sock.set_read_timeout(Some(HANDSHAKE_TIME))?;
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        tls.sock.set_read_timeout(Some(idle))?;
        *self = Transport::Tls(Box::new(tls));
        Ok(())
    }

    pub fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buffer),
            Transport::Tls(stream) => stream.read(buffer),
            Transport::Gone => Ok(0),
        }
    }

    /// Plaintext TLS already decrypted but not yet read (0 for plain
    /// TCP): a poll of the socket cannot see it.
    pub fn read_buffered(&mut self, buffer: &mut [u8]) -> usize {
        match self {
            Transport::Tls(stream) => stream.conn.reader().read(buffer).unwrap_or(0),
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
            Transport::Gone => None,
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.socket().map_or(-1, |socket| socket.as_raw_fd())
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.write_all(bytes),
            Transport::Tls(stream) => stream.write_all(bytes).and_then(|()| stream.flush()),
            Transport::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}
