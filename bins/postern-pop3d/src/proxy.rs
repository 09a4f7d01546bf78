//! The POP3 proxy: a login as `user#host` goes on to `host`'s POP3 server
//! when the host is on `[pop3d] proxy_hosts`. The session becomes the
//! proxy user for good before it connects out, logs in there as `user`
//! with the password given — APOP when the other server offers it, else
//! USER/PASS — and then passes bytes both ways until either side ends.
//!
//! A proxied login never reaches postern-auth: it records no IP for
//! POP-before-SMTP and opens no local mailbox.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postern_auth_protocol::Proof;
use postern_config::Pop3dSettings;
use postern_pop3::LoginFailure;
use tracing::{info, warn};

/// How long the other server has to connect and answer each line.
const REMOTE_TIME: Duration = Duration::from_secs(30);
/// The longest line taken from the other server before the login.
const MAX_REPLY: u64 = 1024;
const DEFAULT_PORT: u16 = 110;

/// A proxied login's destination, as the client named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `user#host[:port]` with `separator`, if the login is one.
    pub fn of(login: &str, separator: &str) -> Option<Target> {
        if separator.is_empty() {
            return None;
        }
        let (user, host) = login.rsplit_once(separator)?;
        let (host, port) = host_and_port(host)?;
        (!user.is_empty()).then(|| Target {
            user: user.to_string(),
            host,
            port,
        })
    }

    /// Whether `hosts` (entries `host` or `host:port`) lists it.
    pub fn allowed(&self, hosts: &[String]) -> bool {
        hosts
            .iter()
            .filter_map(|entry| host_and_port(entry))
            .any(|(host, port)| host == self.host && port == self.port)
    }

    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `host`, `host:port` or `[v6]:port`, the host in lower case.
fn host_and_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port.parse().ok().filter(|&p| p != 0)?,
    };
    let name_like = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    name_like.then(|| (host.to_ascii_lowercase(), port))
}

/// The hosts whose APOP failed, shared by every session the listener
/// forks and kept until it restarts: a host that fails once is asked with
/// USER/PASS from then on. A fixed table of hashes in memory shared
/// across fork; a full table forgets nothing, it only stops learning.
pub struct ApopMemory {
    slots: &'static [AtomicU64],
}

const SLOTS: usize = 512;

impl ApopMemory {
    pub fn new() -> std::io::Result<ApopMemory> {
        let size = SLOTS * std::mem::size_of::<AtomicU64>();
        // SAFETY: a fresh anonymous mapping, checked; it lives as long as
        // the process (never unmapped), zeroed by the kernel.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if memory == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: page-aligned, zeroed memory of SLOTS u64s, and AtomicU64
        // has the layout of u64.
        let slots = unsafe { std::slice::from_raw_parts(memory.cast::<AtomicU64>(), SLOTS) };
        Ok(ApopMemory { slots })
    }

    fn key(target: &Target) -> u64 {
        let text = target.address();
        let hash = text.bytes().fold(0xcbf29ce484222325u64, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        hash.max(1)
    }

    fn failed(&self, target: &Target) -> bool {
        let key = ApopMemory::key(target);
        self.slots
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == key)
    }

    fn remember(&self, target: &Target) {
        let key = ApopMemory::key(target);
        let start = (key as usize) % SLOTS;
        for i in 0..SLOTS {
            let slot = &self.slots[(start + i) % SLOTS];
            match slot.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(held) if held == key => return,
                Err(_) => {}
            }
        }
    }
}

/// A login on the other server: the connection, and its `+OK` line for
/// the client.
pub struct Remote {
    pub stream: TcpStream,
    pub reply: Vec<u8>,
}

/// Logs in on the other server as `target.user` with `proof`'s password.
pub fn login(
    target: &Target,
    proof: &Proof,
    memory: Option<&ApopMemory>,
) -> Result<Remote, LoginFailure> {
    let Proof::Password(password) = proof else {
        return Err(LoginFailure::Denied(
            "A proxied login needs the password: use USER and PASS, or AUTH PLAIN".into(),
        ));
    };
    let clean = |text: &[u8]| !text.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    if !clean(password) || !clean(target.user.as_bytes()) {
        return Err(LoginFailure::Credentials);
    }
    let (mut connection, greeting) = connect(target)?;
    if let Some(timestamp) = apop_timestamp(&greeting)
        && !memory.is_some_and(|m| m.failed(target))
    {
        let mut text = timestamp.as_bytes().to_vec();
        text.extend_from_slice(password);
        let digest = md5_hex(&text);
        match connection.ask(&format!("APOP {} {digest}\r\n", target.user)) {
            Ok(line) if line.starts_with(b"+OK") => {
                info!("proxy to {}: logged in by APOP", target.address());
                return Ok(connection.into_remote(line));
            }
            _ => {
                info!(
                    "proxy to {}: APOP failed; USER/PASS from now on",
                    target.address()
                );
                if let Some(memory) = memory {
                    memory.remember(target);
                }
                // Some servers hang up after a failed APOP: start afresh.
                let _ = connection.ask("QUIT\r\n");
                connection = connect(target)?.0;
            }
        }
    }
    let user = connection.ask(&format!("USER {}\r\n", target.user))?;
    if !user.starts_with(b"+OK") {
        return Err(refusal(&user));
    }
    let mut command = b"PASS ".to_vec();
    command.extend_from_slice(password);
    command.extend_from_slice(b"\r\n");
    let pass = connection.ask_bytes(&command)?;
    if !pass.starts_with(b"+OK") {
        return Err(refusal(&pass));
    }
    info!("proxy to {}: logged in by USER/PASS", target.address());
    Ok(connection.into_remote(pass))
}

/// The other server's `-ERR` as the client should see it.
fn refusal(line: &[u8]) -> LoginFailure {
    let text = String::from_utf8_lossy(line);
    if text.contains("[IN-USE]") {
        LoginFailure::InUse
    } else if text.contains("[SYS/TEMP]") {
        LoginFailure::Temporary("The proxied server cannot log you in now".into())
    } else {
        LoginFailure::Credentials
    }
}

/// The other server's connection during the login.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn ask(&mut self, command: &str) -> Result<Vec<u8>, LoginFailure> {
        self.ask_bytes(command.as_bytes())
    }

    fn ask_bytes(&mut self, command: &[u8]) -> Result<Vec<u8>, LoginFailure> {
        self.reader
            .get_mut()
            .write_all(command)
            .map_err(|_| lost())?;
        self.line()
    }

    fn line(&mut self) -> Result<Vec<u8>, LoginFailure> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_REPLY)
            .read_until(b'\n', &mut line)
            .map_err(|_| lost())?;
        if !line.ends_with(b"\n") {
            return Err(lost());
        }
        Ok(line)
    }

    /// The connection for the relay, with the `+OK` line the client gets.
    fn into_remote(self, line: Vec<u8>) -> Remote {
        // Nothing more is buffered: the other server answers one line
        // to each command, and no command was sent after the last.
        let stream = self.reader.into_inner();
        let _ = stream.set_read_timeout(None);
        let mut reply = line;
        if !reply.ends_with(b"\r\n") {
            reply.pop();
            reply.extend_from_slice(b"\r\n");
        }
        Remote { stream, reply }
    }
}

fn lost() -> LoginFailure {
    LoginFailure::Temporary("The proxied server did not answer".into())
}

/// Connects and reads the greeting.
fn connect(target: &Target) -> Result<(Connection, String), LoginFailure> {
    let unreachable = || LoginFailure::Temporary("Cannot reach the proxied server".into());
    let addresses: Vec<_> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| {
            warn!("proxy to {}: {e}", target.address());
            unreachable()
        })?
        .collect();
    let stream = addresses
        .iter()
        .find_map(|address| TcpStream::connect_timeout(address, REMOTE_TIME).ok())
        .ok_or_else(|| {
            warn!("proxy to {}: cannot connect", target.address());
            unreachable()
        })?;
    let _ = stream.set_read_timeout(Some(REMOTE_TIME));
    let _ = stream.set_write_timeout(Some(REMOTE_TIME));
    let mut connection = Connection {
        reader: BufReader::new(stream),
    };
    let greeting = connection.line()?;
    if !greeting.starts_with(b"+OK") {
        return Err(LoginFailure::Temporary(
            "The proxied server refused the connection".into(),
        ));
    }
    Ok((connection, String::from_utf8_lossy(&greeting).into_owned()))
}

/// The `<...>` of an APOP greeting (RFC 1939 §7).
fn apop_timestamp(greeting: &str) -> Option<&str> {
    let start = greeting.find('<')?;
    let end = start + greeting[start..].find('>')?;
    let timestamp = &greeting[start..=end];
    timestamp[1..timestamp.len() - 1]
        .contains('@')
        .then_some(timestamp)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `[pop3d]` proxies this login.
pub fn target_of(login: &str, settings: &Pop3dSettings) -> Option<Target> {
    if settings.proxy_hosts.is_empty() {
        return None;
    }
    Target::of(login, &settings.proxy_separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_the_allowed_list() {
        let hosts = vec!["pop.example.org".to_string(), "[::1]:2110".to_string()];
        let t = Target::of("alice#POP.example.org", "#").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("alice", "pop.example.org", 110)
        );
        assert!(t.allowed(&hosts));
        assert!(
            !Target::of("alice#pop.example.org:995", "#")
                .unwrap()
                .allowed(&hosts)
        );
        assert!(Target::of("bob#[::1]:2110", "#").unwrap().allowed(&hosts));
        assert!(!Target::of("bob#evil.example", "#").unwrap().allowed(&hosts));
        // A user name may hold the separator; the host is after the last.
        assert_eq!(Target::of("a#b#c.example", "#").unwrap().user, "a#b");
        for bad in [
            "alice",
            "#host",
            "alice#",
            "alice#host:0",
            "alice#host:x",
            "a#h/x",
        ] {
            assert_eq!(Target::of(bad, "#"), None, "{bad}");
        }
        assert_eq!(Target::of("alice#host", ""), None);
    }

    #[test]
    fn apop_timestamps_and_digests() {
        let greeting = "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n";
        let timestamp = apop_timestamp(greeting).unwrap();
        // RFC 1939 §7's example.
        let digest = md5_hex(format!("{timestamp}tanstaaf").as_bytes());
        assert_eq!(digest, "c4c9334bac560ecc979e58001b3e22fb");
        assert_eq!(apop_timestamp("+OK ready <no-at-sign>\r\n"), None);
        assert_eq!(apop_timestamp("+OK ready\r\n"), None);
    }

    #[test]
    fn the_apop_memory_is_shared_across_fork() {
        let memory = ApopMemory::new().unwrap();
        let target = Target::of("u#host.example", "#").unwrap();
        let other = Target::of("u#other.example", "#").unwrap();
        // SAFETY: the child only touches the shared table and exits.
        match unsafe { libc::fork() } {
            0 => {
                memory.remember(&target);
                unsafe { libc::_exit(0) };
            }
            child => {
                let mut status = 0;
                unsafe { libc::waitpid(child, &mut status, 0) };
            }
        }
        assert!(memory.failed(&target));
        assert!(!memory.failed(&other));
    }
}
