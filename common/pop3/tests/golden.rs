//! Golden transcripts: each file in `golden/` is a POP3 session, client
//! lines in, server lines and effects out, run by postern-golden's runner
//! (whose header gives the format and the common letters). Here: `S: `
//! server lines (a message a RETR or TOP sends shows as
//! the lines the driver writes); `L: MECHANISM user password` when the
//! session asks for a login check; `U: 1,3` when QUIT removes messages;
//! `T: stls` at the TLS handshake; `X: close`; `P: text` for each line
//! passed on to another server after a proxied login. `# message: text` lines
//! (with `\n` escapes) fill the maildrop in order, uids `uid-1`, ...;
//! `# config: key=value` sets tls, stls, cleartext (0 or 1) or max_errors.
//!
//! The driver takes the logins of RFC 1939 (mrose / tanstaaf) and RFC
//! 2195 (tim / tanstaaftanstaaf), by any mechanism; `locked` finds the
//! maildrop in use, `broken` cannot be opened; a `user#host` login is
//! proxied (refused for `denied.example`); anything else is a bad
//! password. More config keys: `apop=TIMESTAMP` (APOP possible),
//! `hostname=`, `seed=` (of CRAM-MD5 challenges), `cram=1` (offered).

use postern_auth_protocol::Proof;
use postern_golden::Transcript;
use postern_pop3::{Action, Config, Encoder, Listing, LoginFailure, Session, retrieve_header};

fn config(transcript: &Transcript) -> Config {
    let mut config = Config::new("pop.test");
    config.challenge_seed = "1".into();
    for (key, value) in postern_golden::config(transcript) {
        match key.as_str() {
            "apop" => config.apop_timestamp = Some(value),
            "hostname" => config.hostname = value,
            "seed" => config.challenge_seed = value,
            "cram" => config.mechanisms.push(postern_pop3::Mechanism::CramMd5),
            "tls" => config.tls = value == "1",
            "stls" => config.stls = value == "1",
            "cleartext" => config.cleartext_allowed = value == "1",
            "max_errors" => config.max_errors = value.parse().unwrap(),
            _ => panic!("unknown config key {key}"),
        }
    }
    config
}

/// Octets with CRLF line ends, as LIST counts them (the fixtures have LF
/// line ends only).
fn pop_size(message: &[u8]) -> u64 {
    (message.len() + message.iter().filter(|&&b| b == b'\n').count()) as u64
}

struct Driver {
    session: Session,
    messages: Vec<Vec<u8>>,
    /// After a proxied login: what goes to the other server.
    relayed: Option<Vec<u8>>,
}

impl postern_golden::Driver for Driver {
    fn start(transcript: &Transcript, out: &mut Vec<String>) -> Driver {
        let messages = postern_golden::directives(transcript, "message")
            .map(postern_golden::unescape)
            .collect();
        let mut driver = Driver {
            session: Session::new(config(transcript)),
            messages,
            relayed: None,
        };
        driver.run(out);
        driver
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        match self.relayed.as_mut() {
            Some(relayed) => relayed.extend_from_slice(bytes),
            None => {
                self.session.receive(bytes);
                self.run(out);
            }
        }
    }

    fn end_of_write(&mut self, out: &mut Vec<String>) {
        if let Some(relayed) = self.relayed.as_mut() {
            let text = String::from_utf8(std::mem::take(relayed)).unwrap();
            out.extend(text.split_terminator("\r\n").map(|l| format!("P: {l}")));
        }
    }
}

impl Driver {
    fn run(&mut self, out: &mut Vec<String>) {
        let session = &mut self.session;
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => push_lines(&bytes, out),
                Action::StartTls => {
                    out.push("T: stls".into());
                }
                Action::Login {
                    mechanism,
                    credentials,
                } => {
                    // RFC 1939's mrose (tanstaaf) and RFC 2195's tim
                    // (tanstaaftanstaaf).
                    let stored = match credentials.user.as_str() {
                        "mrose" => postern_password::StoredPassword::parse("{PLAIN}tanstaaf"),
                        "tim" => postern_password::StoredPassword::parse("{PLAIN}tanstaaftanstaaf"),
                        _ => postern_password::StoredPassword::parse("{PLAIN}-"),
                    };
                    let (shown, good) = match &credentials.proof {
                        Proof::Password(password) => (
                            String::from_utf8_lossy(password).into_owned(),
                            stored.verify(password),
                        ),
                        Proof::Apop { timestamp, digest } => (
                            digest.clone(),
                            stored.verify_apop(timestamp.as_bytes(), digest),
                        ),
                        Proof::CramMd5 { challenge, digest } => (
                            format!("{challenge} {digest}"),
                            stored.verify_cram_md5(challenge.as_bytes(), digest),
                        ),
                    };
                    out.push(format!("L: {mechanism} {} {shown}", credentials.user));
                    if let Some((_, host)) = credentials.user.split_once('#') {
                        if host == "denied.example" {
                            session.login_failed(LoginFailure::Denied(
                                "Proxying to that host is not allowed".into(),
                            ));
                        } else {
                            let pending = session.proxied(b"+OK remote: logged in\r\n");
                            self.relayed = Some(pending);
                        }
                        continue;
                    }
                    match (credentials.user.as_str(), good) {
                        ("mrose" | "tim", true) => {
                            let mut listing = Listing::default();
                            for (i, message) in self.messages.iter().enumerate() {
                                listing.push(pop_size(message), &format!("uid-{}", i + 1));
                            }
                            session.logged_in(listing)
                        }
                        ("locked", _) => session.login_failed(LoginFailure::InUse),
                        ("broken", _) => session.login_failed(LoginFailure::Temporary(
                            "cannot open the maildrop".into(),
                        )),
                        _ => session.login_failed(LoginFailure::Credentials),
                    }
                }
                Action::Retrieve {
                    index,
                    size,
                    body_lines,
                } => {
                    let mut bytes = retrieve_header(size);
                    let mut encoder = Encoder::new(body_lines);
                    encoder.feed(&self.messages[index], &mut bytes);
                    encoder.finish(&mut bytes);
                    push_lines(&bytes, out);
                }
                Action::Update { delete } => {
                    let numbers: Vec<String> = delete.iter().map(|i| (i + 1).to_string()).collect();
                    out.push(format!("U: {}", numbers.join(",")));
                    session.updated(Ok(()));
                }
                Action::Close => out.push("X: close".into()),
            }
        }
    }
}

fn push_lines(bytes: &[u8], out: &mut Vec<String>) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    for line in text.split_terminator("\r\n") {
        assert!(!line.contains('\n'), "{line:?}");
        out.push(format!("S: {line}"));
    }
}

#[test]
fn golden_transcripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    postern_golden::check_directory::<Driver>(&dir, 5);
}
