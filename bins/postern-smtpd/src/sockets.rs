//! The three ways to start (DESIGN.md): standalone (bind `[smtpd] listen`),
//! systemd socket activation with `Accept=no` (listening sockets from
//! `LISTEN_FDS`), and one session on a connection handed over — inetd, or
//! systemd `Accept=yes` — on stdin or as the one `LISTEN_FDS` socket.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, RawFd};

use postern_config::Settings;

use crate::listeners::{self, Kind, Listen};

pub enum Sockets {
    Listening(Vec<(Listen, TcpListener)>),
    /// One connection, and the kind of the port it came in on.
    Connection(TcpStream, Kind),
}

/// The sockets to serve; an error names what is wrong and the exit code.
pub fn sockets(settings: &Settings, inetd: bool) -> Result<Sockets, (i32, String)> {
    if inetd {
        let stream = connected(0).ok_or((
            64,
            "--inetd: standard input is not a TCP connection".to_string(),
        ))?;
        let kind = kind_by_port(&stream);
        return Ok(Sockets::Connection(stream, kind));
    }
    let passed: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| (78, format!("LISTEN_FDS: {e}")))?
        .collect();
    if let [(fd, _)] = passed.as_slice()
        && let Some(stream) = connected(*fd)
    {
        let kind = kind_by_port(&stream);
        return Ok(Sockets::Connection(stream, kind));
    }
    if !passed.is_empty() {
        let mut listening = Vec::new();
        for (fd, name) in passed {
            // SAFETY: systemd passed this descriptor to us to own.
            let listener = unsafe { TcpListener::from_raw_fd(fd) };
            let address = listener
                .local_addr()
                .map_err(|e| (78, format!("LISTEN_FDS socket {fd} ({name}): {e}")))?;
            let kind = match name.as_str() {
                "submission" => Kind::Submission,
                "smtps" | "submissions" => Kind::Smtps,
                "smtp" | "mx" => Kind::Mx,
                _ => kind_of_port(address.port()),
            };
            listening.push((Listen { address, kind }, listener));
        }
        return Ok(Sockets::Listening(listening));
    }
    let mut listening = Vec::new();
    for spec in &settings.smtpd.listen {
        let listen =
            listeners::parse(spec).map_err(|why| (78, format!("[smtpd] listen: {why}")))?;
        let listener =
            listeners::bind(&listen).map_err(|e| (71, format!("bind {}: {e}", listen.address)))?;
        listening.push((listen, listener));
    }
    Ok(Sockets::Listening(listening))
}

/// The descriptor as a connected TCP stream, if it is one.
fn connected(fd: RawFd) -> Option<TcpStream> {
    // SAFETY: fstat-like probes on a descriptor we were given; the
    // storage is zeroed and large enough for any address.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let is_peer = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut length,
        )
    } == 0;
    let family = i32::from(storage.ss_family);
    if !is_peer || (family != libc::AF_INET && family != libc::AF_INET6) {
        return None;
    }
    // SAFETY: a connected TCP socket handed to us to own.
    Some(unsafe { TcpStream::from_raw_fd(fd) })
}

fn kind_by_port(stream: &TcpStream) -> Kind {
    stream
        .local_addr()
        .map_or(Kind::Mx, |address| kind_of_port(address.port()))
}

/// What a port is for, when nothing else says: the well-known ports.
fn kind_of_port(port: u16) -> Kind {
    match port {
        587 => Kind::Submission,
        465 => Kind::Smtps,
        _ => Kind::Mx,
    }
}
