//! Golden transcripts of the SMTP client core, run by postern-golden's
//! runner (whose header gives the format). Here the roles swap: `C:`
//! lines are what the *server* sends, and `S:` lines what the client
//! sends. Effects: `T: starttls` (the driver makes the handshake at once),
//! `W: ready` (idle; the driver sends the next message, or QUIT when none
//! is left), `B: body` or `B: body downgrade` (the driver sends the body
//! through the DataEncoder, shown as `S:` lines), `O: <address> reply`
//! for each recipient's result (`(local)` when the client decided it),
//! `X: close` and `X: close reply` when the session ends (`(local)` when the client gave the reason).
//!
//! Directives: `# config: helo=NAME tls=never|may|must user=U password=P`
//! (the last two for AUTH); each `# message:`
//! is a transaction, `key=value` words — from, to (a comma list), size,
//! 8bit, downgradable, utf8 (0 or 1), ret, envid, notify (for every
//! recipient), orcpt — and last `body=` with `\n` escapes.

use postern_golden::Transcript;
use postern_smtp_client::{
    Action, Config, DataEncoder, Login, Message, Recipient, Reply, Session, Tls,
};

struct Driver {
    session: Session,
    messages: Vec<(Message, Vec<u8>)>,
    next: usize,
}

fn config(transcript: &Transcript) -> Config {
    let mut config = Config {
        helo_name: "client.example".into(),
        tls: Tls::Never,
        login: None,
    };
    for (key, value) in postern_golden::config(transcript) {
        match key.as_str() {
            "helo" => config.helo_name = value,
            "user" => config.login.get_or_insert_with(Login::default).user = value,
            "password" => config.login.get_or_insert_with(Login::default).password = value,
            "tls" => {
                config.tls = match value.as_str() {
                    "never" => Tls::Never,
                    "may" => Tls::Opportunistic,
                    "must" => Tls::Required,
                    _ => panic!("tls={value}"),
                }
            }
            _ => panic!("unknown config key {key}"),
        }
    }
    config
}

fn message(directive: &str) -> (Message, Vec<u8>) {
    let (words, body) = directive.split_once(" body=").unwrap_or((directive, ""));
    let mut message = Message::default();
    let (mut notify, mut orcpt) = (None, None);
    for word in words.split_whitespace() {
        let (key, value) = word.split_once('=').expect("key=value");
        let flag = value == "1";
        match key {
            "from" => message.sender = value.into(),
            "to" => {
                message.recipients = value
                    .split(',')
                    .map(|address| Recipient {
                        address: address.into(),
                        ..Recipient::default()
                    })
                    .collect()
            }
            "size" => message.size = value.parse().unwrap(),
            "8bit" => message.eight_bit = flag,
            "downgradable" => message.downgradable = flag,
            "utf8" => message.needs_smtputf8 = flag,
            "ret" => message.ret = Some(value.into()),
            "envid" => message.envid = Some(value.into()),
            "notify" => notify = Some(value.to_string()),
            "orcpt" => orcpt = Some(value.to_string()),
            _ => panic!("unknown message key {key}"),
        }
    }
    for recipient in &mut message.recipients {
        recipient.notify = notify.clone();
        recipient.orcpt = orcpt.clone();
    }
    (message, postern_golden::unescape(body))
}

fn shown(reply: &Reply) -> String {
    let mut text = reply.code.to_string();
    if let Some(status) = &reply.status {
        text.push(' ');
        text.push_str(status);
    }
    for line in &reply.lines {
        text.push(' ');
        text.push_str(line);
    }
    text
}

fn push_lines(bytes: &[u8], out: &mut Vec<String>) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    for line in text.split_terminator("\r\n") {
        assert!(!line.contains(['\r', '\n']), "{line:?}");
        out.push(format!("S: {line}"));
    }
}

impl Driver {
    fn run(&mut self, out: &mut Vec<String>) {
        while let Some(action) = self.session.next_action() {
            match action {
                Action::Send(bytes) => push_lines(&bytes, out),
                Action::StartTls => {
                    out.push("T: starttls".into());
                    self.session.tls_ready();
                }
                Action::Ready => {
                    out.push("W: ready".into());
                    match self.messages.get(self.next).cloned() {
                        Some((message, _)) => self.session.send(message),
                        None => self.session.quit(),
                    }
                }
                Action::SendBody { downgrade, chunk } => {
                    out.push(
                        match (downgrade, chunk) {
                            (true, _) => "B: body downgrade",
                            (false, true) => "B: body chunk",
                            (false, false) => "B: body",
                        }
                        .into(),
                    );
                    let body = &self.messages[self.next].1;
                    let bytes = if chunk {
                        postern_smtp_client::bdat_chunk(body)
                    } else {
                        let mut bytes = Vec::new();
                        let mut encoder = DataEncoder::new();
                        encoder.feed(body, &mut bytes);
                        encoder.finish(&mut bytes);
                        bytes
                    };
                    push_lines(&bytes, out);
                    self.session.body_sent();
                }
                Action::Finished(results) => {
                    let (message, _) = &self.messages[self.next];
                    for (recipient, result) in message.recipients.iter().zip(&results) {
                        out.push(format!(
                            "O: <{}> {}{}",
                            recipient.address,
                            shown(&result.reply),
                            if result.remote { "" } else { " (local)" }
                        ));
                    }
                    assert_eq!(results.len(), message.recipients.len());
                    self.next += 1;
                }
                Action::Closed(None) => out.push("X: close".into()),
                Action::Closed(Some(why)) => out.push(format!(
                    "X: close {}{}",
                    shown(&why.reply),
                    if why.remote { "" } else { " (local)" }
                )),
            }
        }
    }
}

impl postern_golden::Driver for Driver {
    fn start(transcript: &Transcript, out: &mut Vec<String>) -> Driver {
        let messages = postern_golden::directives(transcript, "message")
            .map(message)
            .collect();
        let mut driver = Driver {
            session: Session::new(config(transcript)),
            messages,
            next: 0,
        };
        driver.run(out);
        driver
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.session.receive(bytes);
        self.run(out);
    }
}

#[test]
fn golden_transcripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    postern_golden::check_directory::<Driver>(&dir, 10);
}

/// What no transcript can show: the connection breaking.
#[test]
fn a_lost_connection_defers_what_was_not_answered() {
    let mut session = Session::new(Config {
        helo_name: "client.example".into(),
        tls: Tls::Never,
        login: None,
    });
    session.receive(b"220 mx ESMTP\r\n250-mx\r\n250 PIPELINING\r\n");
    let mut actions: Vec<Action> = std::iter::from_fn(|| session.next_action()).collect();
    assert_eq!(actions.last(), Some(&Action::Ready));
    session.send(Message {
        sender: "a@b.example".into(),
        recipients: vec![
            Recipient {
                address: "x@y.example".into(),
                ..Recipient::default()
            },
            Recipient {
                address: "z@y.example".into(),
                ..Recipient::default()
            },
        ],
        size: 10,
        ..Message::default()
    });
    session.receive(b"250 ok\r\n550 5.1.1 no\r\n");
    session.connection_lost();
    actions = std::iter::from_fn(|| session.next_action()).collect();
    let Some(Action::Finished(results)) = actions.iter().find(|a| matches!(a, Action::Finished(_)))
    else {
        panic!("{actions:?}");
    };
    assert_eq!(results[0].reply.code, 550);
    assert!(results[0].remote);
    assert_eq!(results[1].reply.status.as_deref(), Some("4.4.2"));
    assert!(!results[1].remote);
    assert!(matches!(actions.last(), Some(Action::Closed(Some(_)))));
}

/// A handshake that fails ends the session with the reason, and nothing
/// more is said on the connection.
#[test]
fn a_failed_handshake_ends_the_session_with_its_reason() {
    let mut session = Session::new(Config {
        helo_name: "client.example".into(),
        tls: Tls::Required,
        login: None,
    });
    session.receive(b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n");
    let actions: Vec<Action> = std::iter::from_fn(|| session.next_action()).collect();
    assert_eq!(actions.last(), Some(&Action::StartTls));
    session.tls_failed("invalid peer certificate: UnknownIssuer");
    let actions: Vec<Action> = std::iter::from_fn(|| session.next_action()).collect();
    let [Action::Closed(Some(why))] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(why.reply.status.as_deref(), Some("4.7.5"));
    assert_eq!(
        why.reply.lines,
        ["TLS handshake failed: invalid peer certificate: UnknownIssuer"]
    );
    assert!(!why.remote);
}
