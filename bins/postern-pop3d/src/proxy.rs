//! The POP3 proxy: a login as `user#host` goes on to `host`'s POP3 server
//! when the host is on `[pop3d] proxy_hosts`. The session becomes the
//! proxy user for good before it connects out, logs in there as `user`
//! with the password given — APOP when the other server offers it, else
//! USER/PASS — and then passes bytes both ways until either side ends.
//! The password goes over TLS whose certificate is checked (STLS, or
//! implicit TLS on port 995) unless `[pop3d] proxy_tls` is `none`.
//!
//! A proxied login never reaches postern-auth: it records no IP for
//! POP-before-SMTP and opens no local mailbox.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postern_auth_protocol::Proof;
use postern_config::{AuthSettings, Pop3dSettings, ProxyTls};
use postern_pop3::LoginFailure;
use rustls::ClientConfig;
use tracing::{info, warn};

use postern_server::Transport;

/// How long the other server has to connect and answer each line.
const REMOTE_TIME: Duration = Duration::from_secs(30);
/// The longest line taken from the other server before the login.
const MAX_REPLY: u64 = 1024;
const DEFAULT_PORT: u16 = 110;
/// POP3S (RFC 8314): TLS from the first byte.
const IMPLICIT_TLS_PORT: u16 = 995;

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

/// What the proxied sessions share, in memory the listener maps before
/// it forks them, kept until it restarts:
/// - the hosts where APOP failed though USER/PASS then worked with the
///   same password, asked by USER/PASS from then on;
/// - failed proxied logins per client IP, throttled by `[auth]`'s rules
///   as postern-auth throttles the logins it checks.
///
/// Fixed tables of atomics: a full table only stops learning.
pub struct ProxyMemory {
    apop_failed: &'static [AtomicU64],
    /// Pairs: the client's key, then (window start << 20 | attempts).
    failures: &'static [AtomicU64],
}

const APOP_SLOTS: usize = 512;
const FAILURE_SLOTS: usize = 1024;
const COUNT_BITS: u32 = 20;

impl ProxyMemory {
    pub fn new() -> std::io::Result<ProxyMemory> {
        let slots = APOP_SLOTS + 2 * FAILURE_SLOTS;
        let size = slots * std::mem::size_of::<AtomicU64>();
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
        // SAFETY: page-aligned, zeroed memory of `slots` u64s, and
        // AtomicU64 has the layout of u64.
        let all = unsafe { std::slice::from_raw_parts(memory.cast::<AtomicU64>(), slots) };
        let (apop_failed, failures) = all.split_at(APOP_SLOTS);
        Ok(ProxyMemory {
            apop_failed,
            failures,
        })
    }

    fn apop_failed(&self, target: &Target) -> bool {
        let key = hash(target.address().as_bytes());
        self.apop_failed
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == key)
    }

    fn remember_apop_failed(&self, target: &Target) {
        let key = hash(target.address().as_bytes());
        let start = (key as usize) % APOP_SLOTS;
        for i in 0..APOP_SLOTS {
            let slot = &self.apop_failed[(start + i) % APOP_SLOTS];
            match slot.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(held) if held == key => return,
                Err(_) => {}
            }
        }
    }

    /// Counts an attempt from `ip` as it starts (so parallel attempts
    /// cannot slip under the limit): `Err` when the IP has used up its
    /// failures, else how many it has in the window, this one included.
    pub fn attempt(&self, ip: IpAddr, now: u64, auth: &AuthSettings) -> Result<u64, ()> {
        let Some(slot) = self.failure_slot(ip, now, auth.failure_window) else {
            return Ok(1);
        };
        let value = slot.load(Ordering::Relaxed);
        let count = value & ((1 << COUNT_BITS) - 1);
        if count >= auth.max_failures_per_ip as u64 {
            return Err(());
        }
        slot.fetch_add(1, Ordering::Relaxed);
        Ok(count + 1)
    }

    /// The attempt worked: it is not a failure after all.
    pub fn succeeded(&self, ip: IpAddr, now: u64, auth: &AuthSettings) {
        if let Some(slot) = self.failure_slot(ip, now, auth.failure_window) {
            let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
                (value & ((1 << COUNT_BITS) - 1) > 0).then(|| value - 1)
            });
        }
    }

    /// `ip`'s count, started afresh when its window has passed; an IPv6
    /// client counts by its /64.
    fn failure_slot(&self, ip: IpAddr, now: u64, window: u64) -> Option<&AtomicU64> {
        let key = match ip {
            IpAddr::V4(v4) => hash(&v4.octets()),
            IpAddr::V6(v6) => hash(&v6.octets()[..8]),
        };
        let start = (key as usize) % FAILURE_SLOTS;
        for i in 0..FAILURE_SLOTS {
            let index = 2 * ((start + i) % FAILURE_SLOTS);
            let (held, value) = (&self.failures[index], &self.failures[index + 1]);
            let current = held.load(Ordering::Relaxed);
            let stale = (value.load(Ordering::Relaxed) >> COUNT_BITS) + window < now;
            let ours = current == key
                || ((current == 0 || stale)
                    && held
                        .compare_exchange(current, key, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok());
            if !ours {
                continue;
            }
            if current != key || stale {
                value.store(now << COUNT_BITS, Ordering::Relaxed);
            }
            return Some(value);
        }
        None
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let hash = bytes.iter().fold(0xcbf29ce484222325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    hash.max(1)
}

/// The TLS with which proxied logins reach other servers, by `[pop3d]
/// proxy_tls`; `None` for plain TCP. The CA file is read once, at start.
pub fn tls_config(pop3d: &Pop3dSettings) -> Result<Option<Arc<ClientConfig>>, String> {
    match pop3d.proxy_tls {
        ProxyTls::None => Ok(None),
        ProxyTls::Required => postern_tls::client_config(&pop3d.proxy_ca_file)
            .map(|config| Some(Arc::new(config)))
            .map_err(|why| format!("proxy_ca_file: {why}")),
    }
}

/// A login on the other server: the connection, and what the client
/// gets first: its `+OK` line, and anything it sent after.
pub struct Remote {
    pub stream: Transport,
    pub reply: Vec<u8>,
}

/// The password a proxied login can pass on, checked before the session
/// gives anything up: a cleartext one, with no line end or NUL in it or
/// in the user name.
pub fn password<'a>(target: &Target, proof: &'a Proof) -> Result<&'a [u8], LoginFailure> {
    let Proof::Password(password) = proof else {
        return Err(LoginFailure::Denied(
            "A proxied login needs the password: use USER and PASS, or AUTH PLAIN".into(),
        ));
    };
    let clean = |text: &[u8]| !text.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    if !clean(password) || !clean(target.user.as_bytes()) {
        return Err(LoginFailure::Credentials);
    }
    Ok(password)
}

/// Logs in on the other server as `target.user` with `password`, over
/// TLS when `tls` is given.
pub fn login(
    target: &Target,
    password: &[u8],
    memory: Option<&ProxyMemory>,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Remote, LoginFailure> {
    let (mut connection, greeting) = connect(target, tls)?;
    let mut apop_refused = false;
    if let Some(timestamp) = apop_timestamp(&greeting)
        && !memory.is_some_and(|m| m.apop_failed(target))
    {
        let mut text = timestamp.as_bytes().to_vec();
        text.extend_from_slice(password);
        let digest = md5_hex(&text);
        match connection.ask(&format!("APOP {} {digest}\r\n", target.user)) {
            Ok(line) if line.starts_with(b"+OK") => {
                info!(
                    "proxy to {}: logged in by APOP over {}",
                    target.address(),
                    connection.security()
                );
                return Ok(connection.into_remote(line));
            }
            Ok(line) if line.starts_with(b"-ERR") && !is_temporary(&line) => {
                // Some servers hang up after a failed APOP: start afresh.
                apop_refused = true;
                let _ = connection.ask("QUIT\r\n");
                connection = connect(target, tls)?.0;
            }
            Ok(line) => return Err(refusal(&line)),
            Err(failure) => return Err(failure),
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
    if apop_refused {
        // The same password worked: APOP itself is what fails there, not
        // the client. Remembered only now, so a wrong password cannot
        // turn APOP off for everyone.
        info!(
            "proxy to {}: APOP failed; USER/PASS from now on",
            target.address()
        );
        if let Some(memory) = memory {
            memory.remember_apop_failed(target);
        }
    }
    info!(
        "proxy to {}: logged in by USER/PASS over {}",
        target.address(),
        connection.security()
    );
    Ok(connection.into_remote(pass))
}

fn is_temporary(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    text.contains("[IN-USE]") || text.contains("[SYS/TEMP]")
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
    reader: BufReader<Transport>,
}

impl Connection {
    fn security(&self) -> String {
        self.reader.get_ref().security()
    }

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

    /// The connection for the relay, with the `+OK` line the client gets
    /// and whatever the other server sent after it.
    fn into_remote(self, line: Vec<u8>) -> Remote {
        let mut reply = line;
        if !reply.ends_with(b"\r\n") {
            reply.pop();
            reply.extend_from_slice(b"\r\n");
        }
        reply.extend_from_slice(self.reader.buffer());
        Remote {
            stream: self.reader.into_inner(),
            reply,
        }
    }
}

fn lost() -> LoginFailure {
    LoginFailure::Temporary("The proxied server did not answer".into())
}

/// Connects and reads the greeting; with `tls`, TLS first on port 995,
/// else STLS after the greeting, the server's certificate checked either
/// way. A greeting read before STLS may have been forged, but its APOP
/// timestamp is still safe to use: the digest goes only to the verified
/// server, inside TLS, and a forged timestamp can only make APOP fail
/// there, after which USER/PASS goes inside TLS too.
fn connect(
    target: &Target,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Connection, String), LoginFailure> {
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
    let no_tls = |e: std::io::Error| {
        warn!("proxy to {}: TLS: {e}", target.address());
        LoginFailure::Temporary("No trusted TLS with the proxied server".into())
    };
    let mut transport = Transport::Plain(stream);
    let implicit = tls.is_some() && target.port == IMPLICIT_TLS_PORT;
    if let Some(config) = tls
        && implicit
    {
        transport
            .connect_tls(config, &target.host, REMOTE_TIME)
            .map_err(no_tls)?;
    }
    let mut connection = Connection {
        reader: BufReader::new(transport),
    };
    let greeting = connection.line()?;
    if !greeting.starts_with(b"+OK") {
        return Err(LoginFailure::Temporary(
            "The proxied server refused the connection".into(),
        ));
    }
    if let Some(config) = tls
        && !implicit
    {
        let answer = connection.ask("STLS\r\n")?;
        // Bytes after the +OK came before TLS: injected, as in the STLS
        // and STARTTLS attacks, so the server is not used.
        if !answer.starts_with(b"+OK") || !connection.reader.buffer().is_empty() {
            warn!("proxy to {}: no STLS", target.address());
            return Err(LoginFailure::Temporary(
                "The proxied server offers no TLS".into(),
            ));
        }
        let mut transport = connection.reader.into_inner();
        transport
            .connect_tls(config, &target.host, REMOTE_TIME)
            .map_err(no_tls)?;
        connection = Connection {
            reader: BufReader::new(transport),
        };
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
        let memory = ProxyMemory::new().unwrap();
        let target = Target::of("u#host.example", "#").unwrap();
        let other = Target::of("u#other.example", "#").unwrap();
        // SAFETY: the child only touches the shared table and exits.
        match unsafe { libc::fork() } {
            0 => {
                memory.remember_apop_failed(&target);
                unsafe { libc::_exit(0) };
            }
            child => {
                let mut status = 0;
                unsafe { libc::waitpid(child, &mut status, 0) };
            }
        }
        assert!(memory.apop_failed(&target));
        assert!(!memory.apop_failed(&other));
    }

    #[test]
    fn failures_are_counted_per_ip_within_the_window() {
        let memory = ProxyMemory::new().unwrap();
        let auth = AuthSettings {
            max_failures_per_ip: 3,
            failure_window: 60,
            ..AuthSettings::default()
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(memory.attempt(ip, 1000, &auth), Ok(1));
        memory.succeeded(ip, 1000, &auth);
        assert_eq!(memory.attempt(ip, 1000, &auth), Ok(1));
        assert_eq!(memory.attempt(ip, 1001, &auth), Ok(2));
        assert_eq!(memory.attempt(ip, 1002, &auth), Ok(3));
        assert_eq!(memory.attempt(ip, 1003, &auth), Err(()));
        assert_eq!(memory.attempt(other, 1003, &auth), Ok(1));
        // An IPv6 client counts by its /64.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        memory.attempt(a, 1000, &auth).unwrap();
        assert_eq!(memory.attempt(b, 1000, &auth), Ok(2));
        // After the window, afresh.
        assert_eq!(memory.attempt(ip, 1100, &auth), Ok(1));
    }
}
