//! The three ways a listener starts (DESIGN.md): standalone, binding the
//! `listen` entries of its table; with the listening sockets of systemd
//! socket activation (`Accept=no`, `LISTEN_FDS`); or for one connection
//! handed over — inetd on stdin, or systemd `Accept=yes` as the one
//! `LISTEN_FDS` socket. Shared by postern-smtpd and postern-pop3d, each
//! with its own kinds of port.

mod kinds;

pub use kinds::{ImapPort, Pop3Port, SmtpPort};

use std::fmt::Debug;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// What the ports of one server are for.
pub trait PortKind: Copy + Eq + Debug {
    /// The kind a `listen` entry without one gets.
    const DEFAULT: Self;
    /// The words a `listen` entry may name, for messages: `mx, submission
    /// or smtps`.
    const WORDS: &'static str;
    /// The kind a word names (in a `listen` entry, or a systemd
    /// `FileDescriptorName=`).
    fn named(word: &str) -> Option<Self>;
    /// The word a `listen` entry names the kind by.
    fn word(self) -> &'static str;
    /// The kind of a well-known port, when nothing names it.
    fn of_port(port: u16) -> Self;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen<K> {
    pub address: SocketAddr,
    pub kind: K,
}

/// As a `listen` entry: `ADDRESS:PORT kind`.
impl<K: PortKind> std::fmt::Display for Listen<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.address, self.kind.word())
    }
}

/// `ADDRESS:PORT [kind]`.
pub fn parse<K: PortKind>(spec: &str) -> Result<Listen<K>, String> {
    let mut words = spec.split_whitespace();
    let address = words
        .next()
        .ok_or_else(|| "an empty listen entry".to_string())?;
    let address = socket_address_of(address).ok_or_else(|| {
        format!("{spec:?}: expected ADDRESS:PORT, like 0.0.0.0:25, [::]:587 or 0.0.0.0:pop3")
    })?;
    let kind = match words.next() {
        None => K::DEFAULT,
        Some(word) => K::named(word)
            .ok_or_else(|| format!("{spec:?}: kind {word:?}: expected {}", K::WORDS))?,
    };
    if words.next().is_some() {
        return Err(format!("{spec:?}: one address and one kind"));
    }
    Ok(Listen { address, kind })
}

/// `ADDRESS:PORT`, the port by number or by its name in the services
/// database (`0.0.0.0:pop3s`).
fn socket_address_of(text: &str) -> Option<SocketAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    let (host, service) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, service_port(service)?))
}

/// A TCP service's port from the services database (getservbyname).
fn service_port(name: &str) -> Option<u16> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: NUL-terminated strings; the result, if any, points into
    // libc's static storage and is read at once. The listeners are set up
    // before any thread starts.
    let entry = unsafe { libc::getservbyname(name.as_ptr(), c"tcp".as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: a valid servent; s_port is in network byte order.
    Some(u16::from_be(unsafe { (*entry).s_port } as u16))
}

/// A listening socket; an IPv6 one takes IPv6 only, so that `0.0.0.0:N`
/// and `[::]:N` can both be listed.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let family = match address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    set_option(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, on)?;
    if family == libc::AF_INET6 {
        set_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)?;
    }
    let (storage, length) = socket_address(address);
    // SAFETY: a valid socket and an address of the length given.
    let bound = unsafe {
        libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            (&storage as *const libc::sockaddr_storage).cast(),
            length,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a bound socket.
    if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&socket), 1024) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpListener::from(socket))
}

fn set_option(socket: &OwnedFd, level: i32, name: i32, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid socket and a c_int option of the right size.
    let result = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn socket_address(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match address {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // address type.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

pub enum Sockets<K> {
    Listening(Vec<(Listen<K>, TcpListener)>),
    /// One connection, and the kind of the port it came in on.
    Connection(TcpStream, K),
}

/// The sockets to serve: the `listen` entries, or what systemd or inetd
/// passed. An error names what is wrong and the exit code.
pub fn sockets<K: PortKind>(
    listen: &[Listen<K>],
    inetd: bool,
) -> Result<Sockets<K>, (i32, String)> {
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
            let kind = K::named(&name).unwrap_or_else(|| K::of_port(address.port()));
            listening.push((Listen { address, kind }, listener));
        }
        return Ok(Sockets::Listening(listening));
    }
    let mut listening = Vec::new();
    for listen in listen {
        let listener = bind(listen.address).map_err(|e| (71, bind_error(listen.address, &e)))?;
        listening.push((listen.clone(), listener));
    }
    Ok(Sockets::Listening(listening))
}

/// Why a listening address cannot be had, and what to do: no retry helps
/// while another program holds the port.
fn bind_error(address: SocketAddr, error: &std::io::Error) -> String {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another program listens there: stop it or change `listen` (a sandbox: `postern up --port-offset N`)"
        }
        std::io::ErrorKind::PermissionDenied => "; ports below 1024 need root to bind",
        std::io::ErrorKind::AddrNotAvailable => "; no interface of this host has that address",
        _ => "",
    };
    format!("cannot listen on {address}: {error}{hint}")
}

/// The descriptor as a connected TCP stream, if it is one.
fn connected(fd: RawFd) -> Option<TcpStream> {
    // SAFETY: getpeername on a descriptor we were given; the storage is
    // zeroed and large enough for any address.
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

fn kind_by_port<K: PortKind>(stream: &TcpStream) -> K {
    stream
        .local_addr()
        .map_or(K::DEFAULT, |address| K::of_port(address.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::Pop3Port as Kind;

    #[test]
    fn specs_and_binding() {
        let listen: Listen<Kind> = parse("0.0.0.0:110").unwrap();
        assert_eq!(listen.kind, Kind::Pop3);
        assert_eq!(parse::<Kind>("[::]:995 pop3s").unwrap().kind, Kind::Pop3s);
        assert!(parse::<Kind>("localhost:110").is_err());
        // A port by its name in /etc/services.
        if std::path::Path::new("/etc/services").exists() {
            let named: Listen<Kind> = parse("127.0.0.1:pop3s pop3s").unwrap();
            assert_eq!(named.address, "127.0.0.1:995".parse().unwrap());
            assert_eq!(parse::<Kind>("[::1]:pop3").unwrap().address.port(), 110);
        }
        assert!(parse::<Kind>("127.0.0.1:no-such-service").is_err());
        let why = parse::<Kind>("127.0.0.1:110 lmtp").unwrap_err();
        assert!(why.contains("expected pop3 or pop3s"), "{why}");
        assert!(parse::<Kind>("127.0.0.1:110 pop3s extra").is_err());
        // Written back as a listen entry.
        assert_eq!(
            parse::<Kind>("[::]:995 pop3s").unwrap().to_string(),
            "[::]:995 pop3s"
        );
        // Both families on one port, as "0.0.0.0:N" and "[::]:N" ask.
        let v4 = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = bind(SocketAddr::new("::1".parse().unwrap(), port));
        assert!(v6.is_ok() || v6.unwrap_err().kind() == std::io::ErrorKind::AddrNotAvailable);
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = v4.accept().unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
    }
}
