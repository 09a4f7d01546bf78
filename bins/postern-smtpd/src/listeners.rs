//! The addresses to listen on (`[smtpd] listen`), bound before the
//! privilege drop.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// What a port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Port 25: mail from other hosts, and relaying for those allowed.
    Mx,
    /// RFC 6409 submission (587): MAIL needs AUTH, unless the client may
    /// relay anyway (a trusted network, a POP-before-SMTP login).
    Submission,
    /// Submission over implicit TLS (RFC 8314, port 465).
    Smtps,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mx => "mx",
            Kind::Submission => "submission",
            Kind::Smtps => "smtps",
        }
    }

    /// Whether MAIL needs AUTH from a client that may not relay.
    pub fn is_submission(self) -> bool {
        matches!(self, Kind::Submission | Kind::Smtps)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub address: SocketAddr,
    pub kind: Kind,
}

/// `ADDRESS:PORT [mx|submission|smtps]`.
pub fn parse(spec: &str) -> Result<Listen, String> {
    let mut words = spec.split_whitespace();
    let address = words
        .next()
        .ok_or_else(|| "an empty listen entry".to_string())?;
    let address: SocketAddr = address
        .parse()
        .map_err(|_| format!("{spec:?}: expected ADDRESS:PORT, like 0.0.0.0:25 or [::]:587"))?;
    let kind = match words.next() {
        None | Some("mx") => Kind::Mx,
        Some("submission") => Kind::Submission,
        Some("smtps") => Kind::Smtps,
        Some(other) => {
            return Err(format!(
                "{spec:?}: kind {other:?}: expected mx, submission or smtps"
            ));
        }
    };
    if words.next().is_some() {
        return Err(format!("{spec:?}: one address and one kind"));
    }
    Ok(Listen { address, kind })
}

/// A listening socket; an IPv6 one takes IPv6 only, so that `0.0.0.0:25`
/// and `[::]:25` can both be listed.
pub fn bind(listen: &Listen) -> std::io::Result<std::net::TcpListener> {
    let socket = match listen.address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => {
            let socket = tokio::net::TcpSocket::new_v6()?;
            let on: libc::c_int = 1;
            // SAFETY: a valid socket and a c_int option of the right size.
            let result = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if result != 0 {
                return Err(std::io::Error::last_os_error());
            }
            socket
        }
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen.address)?;
    let listener = socket.listen(1024)?;
    listener.into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse("0.0.0.0:25").unwrap(),
            Listen {
                address: "0.0.0.0:25".parse().unwrap(),
                kind: Kind::Mx
            }
        );
        assert_eq!(parse("[::]:587 submission").unwrap().kind, Kind::Submission);
        assert!(parse("localhost:25").is_err());
        assert_eq!(parse("[::]:465 smtps").unwrap().kind, Kind::Smtps);
        assert!(parse("127.0.0.1:25 lmtp").is_err());
        assert!(parse("127.0.0.1:25 mx extra").is_err());
    }
}
