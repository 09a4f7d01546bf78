//! Golden transcripts: each file in `golden/` is a session, client lines
//! in, server lines and effects out, run by postern-golden's runner (whose
//! header gives the format and the common letters). SMTP's effects: `Q: from=<..> to=<..>`
//! when a message begins; `D: ` its data lines (LF line ends, as stored)
//! when it is complete; `A: aborted`; `X: close`; `T: starttls` when the
//! session asks for the TLS handshake; `L: MECHANISM user proof` when it
//! asks for a login check. A `# config: key=value` line sets
//! max_message_size, max_recipients, max_errors, max_junk_commands, tls,
//! starttls, plaintext_auth, auth_required (0 or 1) or auth (a comma list
//! of mechanisms).
//!
//! The driver in this file rejects recipients whose local part starts
//! with `green` or `unknown` (550 5.1.1) and queues every message as
//! `QID1`, `QID2`, ... — except one holding `TEMPFAIL`, which gets
//! 451 4.3.0. It takes the logins of RFC 2195's and RFC 4616's examples
//! (tim / tanstaaftanstaaf; CRAM-MD5 challenges are `<1.N@mx.test>`), answers 454 4.7.0 for user `down`, and 535
//! 5.7.8 for anything else.

use postern_auth_protocol::Proof;
use postern_golden::{Transcript, Trickled};
use postern_smtp::{Action, Config, Mechanism, Reply, Session};

fn config(transcript: &Transcript) -> Config {
    let mut config = Config::new("mx.test");
    config.challenge_seed = "1".into();
    for (key, value) in postern_golden::config(transcript) {
        if key == "auth" {
            config.auth_mechanisms = value
                .split(',')
                .map(|m| Mechanism::parse(m).unwrap())
                .collect();
            continue;
        }
        let value: usize = value.parse().unwrap();
        match key.as_str() {
            "tls" => config.tls = value == 1,
            "starttls" => config.starttls = value == 1,
            "plaintext_auth" => config.plaintext_auth = value == 1,
            "auth_required" => config.auth_required = value == 1,
            "max_message_size" => config.max_message_size = value as u64,
            "max_recipients" => config.max_recipients = value,
            "max_errors" => config.max_errors = value,
            "max_junk_commands" => config.max_junk_commands = value,
            _ => panic!("unknown config key {key}"),
        }
    }
    config
}

/// The driver: answers the session's questions, records what it does.
struct Driver {
    session: Session,
    data: Vec<u8>,
    queued: usize,
}

impl postern_golden::Driver for Driver {
    const TRICKLED: Trickled = Trickled::RepliesApart;

    fn start(transcript: &Transcript, out: &mut Vec<String>) -> Driver {
        let mut driver = Driver {
            session: Session::new(config(transcript)),
            data: Vec::new(),
            queued: 0,
        };
        driver.run(out);
        driver
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.session.receive(bytes);
        self.run(out);
    }
}

impl Driver {
    fn run(&mut self, out: &mut Vec<String>) {
        let session = &mut self.session;
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    let text = String::from_utf8(bytes).unwrap();
                    assert!(text.ends_with("\r\n"), "{text:?}");
                    for line in text.split_terminator("\r\n") {
                        assert!(!line.contains(['\r', '\n']), "{line:?}");
                        out.push(format!("S: {line}"));
                    }
                }
                Action::CheckRecipient(rcpt) => {
                    let local = rcpt.address.to_ascii_lowercase();
                    if local.starts_with("green") || local.starts_with("unknown") {
                        session.recipient_checked(Err(Reply::new(
                            550,
                            "5.1.1",
                            format!(
                                "<{}>: Recipient address rejected: User unknown",
                                rcpt.address
                            ),
                        )));
                    } else {
                        session.recipient_checked(Ok(()));
                    }
                }
                Action::Begin(envelope) => {
                    self.data.clear();
                    let to: Vec<String> = envelope
                        .recipients
                        .iter()
                        .map(|r| format!("<{}>", r.address))
                        .collect();
                    out.push(format!(
                        "Q: from=<{}> to={} helo={}{}{}{}",
                        envelope.mail.address,
                        to.join(","),
                        envelope.helo,
                        if envelope.esmtp { " esmtp" } else { "" },
                        if envelope.tls { " tls" } else { "" },
                        envelope
                            .authenticated
                            .map(|user| format!(" auth={user}"))
                            .unwrap_or_default()
                    ));
                }
                Action::Data(bytes) => self.data.extend(bytes),
                Action::End => {
                    let text = String::from_utf8_lossy(&self.data).into_owned();
                    for line in text.split_inclusive('\n') {
                        out.push(format!("D: {}", line.escape_debug()));
                    }
                    if text.contains("TEMPFAIL") {
                        session.message_stored(Err(Reply::new(
                            451,
                            "4.3.0",
                            "Error: queue file write error",
                        )));
                    } else {
                        self.queued += 1;
                        session.message_stored(Ok(format!("QID{}", self.queued)));
                    }
                }
                Action::Abort => out.push("A: aborted".into()),
                Action::Close => out.push("X: close".into()),
                Action::StartTls => {
                    out.push("T: starttls".into());
                }
                Action::CheckCredentials {
                    mechanism,
                    credentials,
                } => {
                    let (shown, good) = match &credentials.proof {
                        Proof::Password(password) => {
                            let password = String::from_utf8_lossy(password).into_owned();
                            let good = password == "tanstaaftanstaaf";
                            (password, good)
                        }
                        Proof::CramMd5 { challenge, digest } => {
                            let good =
                                postern_password::StoredPassword::parse("{PLAIN}tanstaaftanstaaf")
                                    .verify_cram_md5(challenge.as_bytes(), digest);
                            (format!("{challenge} {digest}"), good)
                        }
                        Proof::Apop { .. } => unreachable!("no APOP in SMTP"),
                    };
                    out.push(format!(
                        "L: {} {} {shown}",
                        mechanism.name(),
                        credentials.user
                    ));
                    session.credentials_checked(if credentials.user == "down" {
                        Err(Reply::new(454, "4.7.0", "Temporary authentication failure"))
                    } else if good && credentials.user == "tim" {
                        Ok(credentials.user)
                    } else {
                        Err(Reply::new(
                            535,
                            "5.7.8",
                            "Error: authentication failed: authentication failure",
                        ))
                    });
                }
            }
        }
    }
}

#[test]
fn golden_transcripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    postern_golden::check_directory::<Driver>(&dir, 10);
}
