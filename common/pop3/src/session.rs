//! The POP3 server as a sans-I/O state machine (RFC 1939, RFC 2449
//! CAPA, RFC 2595 STLS, RFC 5034 SASL): bytes from the client in, replies
//! and actions out (check a login, open the maildrop, start TLS, close),
//! with no socket inside. postern-pop3d drives it; golden transcripts in
//! common/pop3/golden/ and the `pop3_session` fuzz target test it.

use postern_mailstore::Listing;
use std::collections::VecDeque;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use postern_sasl::{Credentials, Exchange, Failure, Mechanism, Next};

/// The longest command line taken, CRLF included (RFC 2449 §4 allows
/// 255 octets; some clients send long passwords).
const MAX_COMMAND_LINE: usize = 1024;

/// What a session offers and allows.
#[derive(Clone, Debug)]
pub struct Config {
    /// The connection is encrypted from the start (POP3S, port 995).
    pub tls: bool,
    /// STLS (RFC 2595) is offered while the connection is plain.
    pub stls: bool,
    /// USER/PASS and AUTH PLAIN/LOGIN are allowed without TLS (a client
    /// on a trusted network).
    pub cleartext_allowed: bool,
    /// SASL mechanisms offered by AUTH.
    pub mechanisms: Vec<Mechanism>,
    /// Bad commands before the session is closed.
    pub max_errors: usize,
    /// Makes each CRAM-MD5 challenge unique: `<seed@hostname>`, then
    /// `<seed.N@hostname>` for the Nth attempt.
    pub challenge_seed: String,
    pub hostname: String,
    /// APOP (RFC 1939 §7) is possible: the greeting's timestamp, unique
    /// to this session (`<random.time@hostname>`).
    pub apop_timestamp: Option<String>,
}

impl Config {
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            tls: false,
            stls: false,
            cleartext_allowed: true,
            mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            max_errors: 10,
            challenge_seed: "0".into(),
            hostname: hostname.into(),
            apop_timestamp: None,
        }
    }
}

/// Why a checked login does not open the maildrop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Bad credentials: `-ERR [AUTH]`.
    Credentials,
    /// Another session holds the maildrop: `-ERR [IN-USE]`.
    InUse,
    /// Cannot say now: `-ERR [SYS/TEMP]` with the text.
    Temporary(String),
    /// Refused for a reason the client should read: `-ERR [AUTH]` with
    /// the text, counted as a bad command.
    Denied(String),
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Start TLS now (the `+OK` went out in the `Send` before).
    StartTls,
    /// Check a login, then call [`Session::logged_in`] or
    /// [`Session::login_failed`]. `mechanism` is `USER` for USER/PASS.
    Login {
        mechanism: &'static str,
        credentials: Credentials,
    },
    /// Send message `index` (0-based): [`crate::retrieve_header`] with
    /// `size`, then the message through [`crate::Encoder`] (TOP: with
    /// `body_lines`). If it cannot be read, send `-ERR [SYS/TEMP] ...`.
    Retrieve {
        index: usize,
        size: u64,
        body_lines: Option<usize>,
    },
    /// QUIT in TRANSACTION: remove these messages (0-based), then call
    /// [`Session::updated`].
    Update { delete: Vec<usize> },
    /// Close the connection (after the bytes already sent).
    Close,
}

enum State {
    Authorization { user: Option<String> },
    Auth(Mechanism, Exchange),
    Transaction,
    Closed,
}

enum Waiting {
    Login,
    Update,
}

pub struct Session {
    config: Config,
    input: Vec<u8>,
    out: Vec<u8>,
    actions: VecDeque<Action>,
    state: State,
    waiting: Option<Waiting>,
    tls: bool,
    errors: usize,
    auth_attempts: usize,
    discarding: bool,
    listing: Listing,
    deleted: Vec<bool>,
}

impl Session {
    /// A session that starts with the `+OK` greeting.
    pub fn new(config: Config) -> Session {
        let tls = config.tls;
        let mut session = Session {
            config,
            input: Vec::new(),
            out: Vec::new(),
            actions: VecDeque::new(),
            state: State::Authorization { user: None },
            waiting: None,
            tls,
            errors: 0,
            auth_attempts: 0,
            discarding: false,
            listing: Listing::default(),
            deleted: Vec::new(),
        };
        let greeting = match &session.config.apop_timestamp {
            Some(timestamp) => format!("Postern POP3 server ready {timestamp}"),
            None => "Postern POP3 server ready".to_string(),
        };
        session.ok(&greeting);
        session
    }

    pub fn receive(&mut self, mut bytes: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.discarding {
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                return;
            };
            self.discarding = false;
            bytes = &bytes[end + 1..];
        }
        self.input.extend_from_slice(bytes);
    }

    /// Whether the maildrop is open (TRANSACTION), for the driver's
    /// idle timer and lock.
    pub fn in_transaction(&self) -> bool {
        matches!(self.state, State::Transaction)
    }

    pub fn next_action(&mut self) -> Option<Action> {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            if self.waiting.is_some() || matches!(self.state, State::Closed) {
                return self.flush();
            }
            match self.take_line() {
                Some(line) => self.line(&line),
                None => return self.flush(),
            }
        }
    }

    /// The answer to [`Action::Login`]: the maildrop, or why not.
    pub fn logged_in(&mut self, listing: Listing) {
        if !matches!(self.waiting.take(), Some(Waiting::Login)) {
            return;
        }
        self.deleted = vec![false; listing.len()];
        self.listing = listing;
        self.state = State::Transaction;
        let (count, size) = self.totals();
        self.ok(&format!("maildrop has {count} messages ({size} octets)"));
    }

    pub fn login_failed(&mut self, why: LoginFailure) {
        if !matches!(self.waiting.take(), Some(Waiting::Login)) {
            return;
        }
        self.state = State::Authorization { user: None };
        match why {
            LoginFailure::Credentials => self.error("[AUTH] Authentication failed"),
            LoginFailure::InUse => self.err("[IN-USE] Mailbox is locked by another POP3 session"),
            LoginFailure::Temporary(text) => self.err(&format!("[SYS/TEMP] {text}")),
            LoginFailure::Denied(text) => self.error(&format!("[AUTH] {text}")),
        }
    }

    /// The answer to [`Action::Login`] when the login went on to another
    /// server (a proxy): `reply`, that server's answer line, goes to the
    /// client, and the session ends here. What the client sent after its
    /// login is returned, for the driver to pass on; from now on the
    /// driver relays bytes both ways itself.
    pub fn proxied(&mut self, reply: &[u8]) -> Vec<u8> {
        if !matches!(self.waiting.take(), Some(Waiting::Login)) {
            return Vec::new();
        }
        self.out.extend_from_slice(reply);
        self.state = State::Closed;
        self.discarding = false;
        std::mem::take(&mut self.input)
    }

    /// The answer to [`Action::Update`]: whether every removal succeeded.
    pub fn updated(&mut self, result: Result<(), String>) {
        if !matches!(self.waiting.take(), Some(Waiting::Update)) {
            return;
        }
        match result {
            Ok(()) => self.ok("Logging out"),
            Err(why) => self.err(&format!(
                "[SYS/TEMP] Some deleted messages were not removed: {why}"
            )),
        }
        self.close();
    }

    fn ok(&mut self, text: &str) {
        let line = if text.is_empty() {
            "+OK\r\n".to_string()
        } else {
            format!("+OK {text}\r\n")
        };
        self.out.extend_from_slice(line.as_bytes());
    }

    fn err(&mut self, text: &str) {
        self.out
            .extend_from_slice(format!("-ERR {text}\r\n").as_bytes());
    }

    /// A refused command: counted, and the session ends at the limit.
    fn error(&mut self, text: &str) {
        self.err(text);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.err("Too many bad commands");
            self.close();
        }
    }

    fn close(&mut self) {
        if let Some(send) = self.flush() {
            self.actions.push_back(send);
        }
        self.actions.push_back(Action::Close);
        self.state = State::Closed;
        self.input.clear();
    }

    fn flush(&mut self) -> Option<Action> {
        (!self.out.is_empty()).then(|| Action::Send(std::mem::take(&mut self.out)))
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let limit = if matches!(self.state, State::Auth(..)) {
            postern_sasl::MAX_RESPONSE + 2
        } else {
            MAX_COMMAND_LINE
        };
        match self.input.iter().position(|&b| b == b'\n') {
            Some(end) if end < limit => Some(self.input.drain(..=end).collect()),
            Some(end) => {
                self.input.drain(..=end);
                self.too_long();
                None
            }
            None if self.input.len() >= limit => {
                self.input.clear();
                self.discarding = true;
                self.too_long();
                None
            }
            None => None,
        }
    }

    fn too_long(&mut self) {
        if matches!(self.state, State::Auth(..)) {
            self.state = State::Authorization { user: None };
        }
        self.error("Line too long");
    }

    fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches(['\r', '\n']);
        if let State::Auth(..) = self.state {
            return self.auth_response(text);
        }
        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb, Some(argument)),
            None => (text, None),
        };
        let verb = verb.to_ascii_uppercase();
        match &self.state {
            State::Authorization { .. } => self.authorization(&verb, argument),
            State::Transaction => self.transaction(&verb, argument),
            State::Auth(..) | State::Closed => {}
        }
    }

    fn cleartext_ok(&self) -> bool {
        self.tls || self.config.cleartext_allowed
    }

    fn capabilities(&self) -> Vec<String> {
        let mut lines: Vec<String> = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
            .map(str::to_string)
            .to_vec();
        if matches!(self.state, State::Authorization { .. }) {
            if self.cleartext_ok() {
                lines.push("USER".into());
            }
            let mechanisms = self.offered_mechanisms();
            if !mechanisms.is_empty() {
                let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
                lines.push(format!("SASL {}", names.join(" ")));
            }
            if self.config.stls && !self.tls {
                lines.push("STLS".into());
            }
        }
        lines.push("IMPLEMENTATION Postern".into());
        lines
    }

    fn offered_mechanisms(&self) -> Vec<Mechanism> {
        self.config
            .mechanisms
            .iter()
            .copied()
            .filter(|m| !m.sends_password() || self.cleartext_ok())
            .collect()
    }

    fn capa(&mut self) {
        self.ok("Capability list follows");
        for line in self.capabilities() {
            self.out.extend_from_slice(format!("{line}\r\n").as_bytes());
        }
        self.out.extend_from_slice(b".\r\n");
    }

    fn authorization(&mut self, verb: &str, argument: Option<&str>) {
        match (verb, argument) {
            ("CAPA", None) => self.capa(),
            ("QUIT", None) => {
                self.ok("Logging out");
                self.close();
            }
            ("USER", Some(user)) if !user.is_empty() => {
                if !self.cleartext_ok() {
                    return self.error(
                        "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections",
                    );
                }
                self.state = State::Authorization {
                    user: Some(user.to_string()),
                };
                self.ok("Send your password");
            }
            ("PASS", Some(password)) => {
                let State::Authorization { user } = &mut self.state else {
                    return;
                };
                let Some(user) = user.take() else {
                    return self.error("No username given");
                };
                if !self.cleartext_ok() {
                    return self.error(
                        "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections",
                    );
                }
                self.login(
                    "USER",
                    Credentials {
                        user,
                        proof: postern_sasl::Proof::Password(password.as_bytes().to_vec()),
                    },
                );
            }
            ("STLS", None) => self.stls(),
            ("APOP", Some(arguments)) => self.apop(arguments),
            ("AUTH", None) => {
                // The listing some clients ask for before RFC 5034.
                self.ok("");
                for mechanism in self.offered_mechanisms() {
                    self.out
                        .extend_from_slice(format!("{}\r\n", mechanism.name()).as_bytes());
                }
                self.out.extend_from_slice(b".\r\n");
            }
            ("AUTH", Some(arguments)) => self.auth(arguments),
            ("USER" | "PASS" | "CAPA" | "QUIT" | "STLS" | "APOP", _) => {
                self.error("Invalid arguments")
            }
            ("STAT" | "LIST" | "RETR" | "DELE" | "NOOP" | "RSET" | "TOP" | "UIDL", _) => {
                self.error("Command not valid before login")
            }
            _ => self.error("Unknown command"),
        }
    }

    fn stls(&mut self) {
        if self.tls {
            return self.error("Command not permitted when TLS active");
        }
        if !self.config.stls {
            return self.error("STLS is not available");
        }
        self.ok("Begin TLS negotiation");
        if let Some(send) = self.flush() {
            self.actions.push_back(send);
        }
        self.actions.push_back(Action::StartTls);
        // SECURITY: nothing the client sent before the handshake counts
        // (RFC 2595 §4, the CVE-2011-0411 class).
        self.input.clear();
        self.discarding = false;
        self.state = State::Authorization { user: None };
        self.tls = true;
    }

    /// `APOP name digest`: the digest is checked against the greeting's
    /// timestamp; the password never crosses the wire, so APOP needs no
    /// TLS.
    fn apop(&mut self, arguments: &str) {
        let Some(timestamp) = self.config.apop_timestamp.clone() else {
            return self.error("APOP is not available");
        };
        let Some((user, digest)) = arguments.rsplit_once(' ') else {
            return self.error("Invalid arguments: APOP name digest");
        };
        let digest = digest.to_ascii_lowercase();
        if user.is_empty() || digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.error("Invalid arguments: APOP name digest");
        }
        self.login(
            "APOP",
            Credentials {
                user: user.to_string(),
                proof: postern_sasl::Proof::Apop { timestamp, digest },
            },
        );
    }

    fn auth(&mut self, arguments: &str) {
        let words: Vec<&str> = arguments.split(' ').collect();
        let (name, initial) = match words[..] {
            [name] if !name.is_empty() => (name, None),
            [name, initial] if !name.is_empty() && !initial.is_empty() => (name, Some(initial)),
            _ => return self.error("Invalid arguments"),
        };
        let Some(mechanism) = Mechanism::parse(name).filter(|m| self.config.mechanisms.contains(m))
        else {
            return self.error("Unsupported authentication mechanism");
        };
        if !self.offered_mechanisms().contains(&mechanism) {
            return self.error(
                "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections",
            );
        }
        self.auth_attempts += 1;
        let challenge = match self.auth_attempts {
            1 => format!("<{}@{}>", self.config.challenge_seed, self.config.hostname),
            n => format!(
                "<{}.{n}@{}>",
                self.config.challenge_seed, self.config.hostname
            ),
        };
        let (exchange, next) = Exchange::start(mechanism, initial, &challenge);
        self.auth_step(mechanism, exchange, next);
    }

    fn auth_response(&mut self, text: &str) {
        let State::Auth(mechanism, mut exchange) =
            std::mem::replace(&mut self.state, State::Authorization { user: None })
        else {
            return;
        };
        let next = exchange.respond(text);
        self.auth_step(mechanism, exchange, next);
    }

    fn auth_step(&mut self, mechanism: Mechanism, exchange: Exchange, next: Next) {
        match next {
            Next::Challenge(bytes) => {
                self.out
                    .extend_from_slice(format!("+ {}\r\n", BASE64.encode(bytes)).as_bytes());
                self.state = State::Auth(mechanism, exchange);
            }
            Next::Done(credentials) => self.login(mechanism.name(), credentials),
            Next::Failed(Failure::Cancelled) => self.error("Authentication aborted"),
            Next::Failed(Failure::NotBase64) => self.error("Cannot decode response"),
            Next::Failed(Failure::Malformed(why)) => self.error(&format!("[AUTH] {why}")),
        }
    }

    fn login(&mut self, mechanism: &'static str, credentials: Credentials) {
        self.waiting = Some(Waiting::Login);
        if let Some(send) = self.flush() {
            self.actions.push_back(send);
        }
        self.actions.push_back(Action::Login {
            mechanism,
            credentials,
        });
    }

    fn totals(&self) -> (usize, u64) {
        (0..self.listing.len())
            .filter(|&index| !self.deleted[index])
            .fold((0, 0), |(count, size), index| {
                (count + 1, size + self.listing.size(index))
            })
    }

    /// A message number that names a message not marked deleted: its index.
    fn message(&mut self, argument: Option<&str>) -> Option<usize> {
        let number = argument.and_then(|a| a.parse::<usize>().ok());
        match number {
            Some(n) if n >= 1 && n <= self.listing.len() => {
                if self.deleted[n - 1] {
                    self.error(&format!("Message {n} already deleted"));
                    None
                } else {
                    Some(n - 1)
                }
            }
            Some(_) => {
                self.error("No such message");
                None
            }
            None => {
                self.error("Invalid message number");
                None
            }
        }
    }

    fn transaction(&mut self, verb: &str, argument: Option<&str>) {
        match (verb, argument) {
            ("STAT", None) => {
                let (count, size) = self.totals();
                self.ok(&format!("{count} {size}"));
            }
            ("LIST", None) => {
                let (count, size) = self.totals();
                self.ok(&format!("{count} messages ({size} octets)"));
                self.each_message(|n, size, _| format!("{n} {size}"));
            }
            ("LIST", Some(_)) => {
                if let Some(index) = self.message(argument) {
                    let size = self.listing.size(index);
                    self.ok(&format!("{} {size}", index + 1));
                }
            }
            ("UIDL", None) => {
                self.ok("Unique-ID listing follows");
                self.each_message(|n, _, uidl| format!("{n} {uidl}"));
            }
            ("UIDL", Some(_)) => {
                if let Some(index) = self.message(argument) {
                    let uidl = self.listing.uidl(index).to_string();
                    self.ok(&format!("{} {uidl}", index + 1));
                }
            }
            ("RETR", Some(_)) => {
                if let Some(index) = self.message(argument) {
                    self.retrieve(index, None);
                }
            }
            ("TOP", Some(arguments)) => {
                let (number, lines) = arguments.split_once(' ').unwrap_or((arguments, ""));
                let Ok(lines) = lines.parse::<usize>() else {
                    return self.error("Invalid arguments: TOP message lines");
                };
                if let Some(index) = self.message(Some(number)) {
                    self.retrieve(index, Some(lines));
                }
            }
            ("DELE", Some(_)) => {
                if let Some(index) = self.message(argument) {
                    self.deleted[index] = true;
                    self.ok(&format!("Message {} deleted", index + 1));
                }
            }
            ("NOOP", None) => self.ok(""),
            ("RSET", None) => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let (count, size) = self.totals();
                self.ok(&format!("maildrop has {count} messages ({size} octets)"));
            }
            ("CAPA", None) => self.capa(),
            ("QUIT", None) => {
                let delete: Vec<usize> = (0..self.deleted.len())
                    .filter(|&i| self.deleted[i])
                    .collect();
                self.waiting = Some(Waiting::Update);
                if let Some(send) = self.flush() {
                    self.actions.push_back(send);
                }
                self.actions.push_back(Action::Update { delete });
            }
            ("USER" | "PASS" | "AUTH" | "STLS" | "APOP", _) => {
                self.error("Command not valid after login")
            }
            ("STAT" | "RETR" | "TOP" | "DELE" | "NOOP" | "RSET" | "CAPA" | "QUIT", _) => {
                self.error("Invalid arguments")
            }
            _ => self.error("Unknown command"),
        }
    }

    fn each_message(&mut self, line: impl Fn(usize, u64, &str) -> String) {
        for index in 0..self.listing.len() {
            if !self.deleted[index] {
                let text = line(
                    index + 1,
                    self.listing.size(index),
                    self.listing.uidl(index),
                );
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
        }
        self.out.extend_from_slice(b".\r\n");
    }

    fn retrieve(&mut self, index: usize, body_lines: Option<usize>) {
        if let Some(send) = self.flush() {
            self.actions.push_back(send);
        }
        let size = self.listing.size(index);
        self.actions.push_back(Action::Retrieve {
            index,
            size,
            body_lines,
        });
    }
}
