//! The client's state machine: greeting, EHLO (or HELO), STARTTLS, then
//! transactions, each with a result per recipient, then QUIT.

use std::collections::VecDeque;

use postern_smtp::Reply;

use crate::{Extensions, ReplyReader};

/// When the session asks for TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Never (a server whose TLS is known broken).
    Never,
    /// When the server offers STARTTLS; in cleartext when it does not, or
    /// when its STARTTLS fails before the handshake (RFC 7435).
    Opportunistic,
    /// Always: a server that does not offer it gets no mail.
    Required,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The name EHLO gives.
    pub helo_name: String,
    pub tls: Tls,
    /// SMTP AUTH (RFC 4954) with these credentials, as a smarthost asks:
    /// PLAIN where offered, else LOGIN, and only over TLS.
    pub login: Option<Login>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

/// A recipient and its RFC 3461 parameters, passed on when the server
/// offers DSN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// `NEVER` or a list of `SUCCESS`, `FAILURE`, `DELAY`.
    pub notify: Option<String>,
    /// `rfc822;user@host`, xtext-encoded.
    pub orcpt: Option<String>,
}

/// One transaction's envelope and what the message needs of the server.
#[derive(Clone, Debug, Default)]
pub struct Message {
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Octets on the wire (CRLF line ends), for SIZE.
    pub size: u64,
    /// The body has octets above 127.
    pub eight_bit: bool,
    /// The driver can send it in 7 bits (RFC 6152 §3 downgrade) when the
    /// server lacks 8BITMIME.
    pub downgradable: bool,
    /// An address needs SMTPUTF8.
    pub needs_smtputf8: bool,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// xtext-encoded.
    pub envid: Option<String>,
}

/// A recipient's result: the reply that decided it, and whether the
/// server sent it or the client decided (a SIZE over the server's limit,
/// a lost connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Result {
    pub reply: Reply,
    pub remote: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    /// Make the TLS handshake, then call `tls_ready`.
    StartTls,
    /// Idle: call `send` with a message, or `quit`.
    Ready,
    /// Send the message (in 7 bits when `downgrade`), then call
    /// `body_sent`: through a `DataEncoder` after DATA, or, when `chunk`,
    /// as one `BDAT n LAST` chunk (`bdat_chunk`, RFC 3030).
    SendBody {
        downgrade: bool,
        chunk: bool,
    },
    /// A transaction's end: a result for each recipient, in order.
    Finished(Vec<Result>),
    /// The session is over: `None` after QUIT, else why it ended (and
    /// whether the server said so). Close the connection.
    Closed(Option<Result>),
}

/// What the next reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt(usize),
    Data,
    Dot,
    Rset,
    Quit,
    /// The reply to AUTH PLAIN, or to LOGIN's password.
    Authenticated,
    /// LOGIN's 334 that asks for the user name, then for the password.
    LoginUser,
    LoginPassword,
}

struct Transaction {
    message: Message,
    results: Vec<Option<Result>>,
    mail_accepted: bool,
    accepted: usize,
    pipelined: bool,
    downgrade: bool,
    /// CHUNKING offered: the message goes as BDAT once the recipients
    /// are answered, instead of after DATA.
    chunking: bool,
}

pub struct Session {
    config: Config,
    reader: ReplyReader,
    actions: VecDeque<Action>,
    expected: VecDeque<Expect>,
    extensions: Extensions,
    tls_active: bool,
    /// Waiting for the handshake or the body: no reply is due.
    paused: bool,
    transaction: Option<Transaction>,
    closed: bool,
}

impl Session {
    pub fn new(config: Config) -> Session {
        Session {
            config,
            reader: ReplyReader::default(),
            actions: VecDeque::new(),
            expected: VecDeque::from([Expect::Greeting]),
            extensions: Extensions::default(),
            tls_active: false,
            paused: false,
            transaction: None,
            closed: false,
        }
    }

    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// What the server offered in its last EHLO reply.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Bytes from the server.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.closed || self.paused {
            return;
        }
        self.reader.feed(bytes);
        while !self.closed && !self.paused {
            match self.reader.next_reply() {
                None => return,
                Some(Ok(reply)) => self.reply(reply),
                Some(Err(e)) => {
                    let why = Reply::new(451, "4.5.0", format!("protocol error: {e}"));
                    self.end(why, false);
                }
            }
        }
    }

    /// The handshake is done: the session starts again with EHLO.
    pub fn tls_ready(&mut self) {
        if !self.paused || self.closed {
            return;
        }
        self.paused = false;
        self.tls_active = true;
        self.extensions = Extensions::default();
        self.ehlo();
    }

    /// The handshake failed (a certificate a policy refuses, a broken
    /// TLS stack): the session is over, with `why`, and nothing more is
    /// sent on the connection, which may be in any state.
    pub fn tls_failed(&mut self, why: &str) {
        if !self.paused || self.closed || self.tls_active {
            return;
        }
        self.paused = false;
        let why = Reply::new(451, "4.7.5", format!("TLS handshake failed: {why}"));
        self.end(why, false);
    }

    /// The body and its final `.` line are sent.
    pub fn body_sent(&mut self) {
        if !self.paused || self.closed || self.transaction.is_none() {
            return;
        }
        self.paused = false;
        self.expected.push_back(Expect::Dot);
    }

    /// The connection broke (or timed out): whatever was not answered
    /// is deferred.
    pub fn connection_lost(&mut self) {
        if self.closed {
            return;
        }
        if self.expected.front() == Some(&Expect::Quit) {
            self.closed = true;
            self.actions.push_back(Action::Closed(None));
            return;
        }
        let why = Reply::new(451, "4.4.2", "lost connection with the server");
        self.end(why, false);
    }

    /// Starts a transaction (only when `Ready` was the last word).
    pub fn send(&mut self, message: Message) {
        if self.closed || self.paused || !self.expected.is_empty() || self.transaction.is_some() {
            return;
        }
        let offered = &self.extensions;
        let refused = |code: u16, status: &str, text: String| -> Vec<Result> {
            let reply = Reply::new(code, status, text);
            message
                .recipients
                .iter()
                .map(|_| Result {
                    reply: reply.clone(),
                    remote: false,
                })
                .collect()
        };
        if let Some(limit) = offered
            .size
            .filter(|&limit| limit > 0 && message.size > limit)
        {
            let text = format!(
                "message size {} exceeds the server's limit of {limit} (SIZE)",
                message.size
            );
            self.actions
                .push_back(Action::Finished(refused(552, "5.3.4", text)));
            self.actions.push_back(Action::Ready);
            return;
        }
        if message.needs_smtputf8 && !offered.smtputf8 {
            let text = "an address needs SMTPUTF8, which the server does not offer".to_string();
            self.actions
                .push_back(Action::Finished(refused(553, "5.6.7", text)));
            self.actions.push_back(Action::Ready);
            return;
        }
        if message.eight_bit && !offered.eight_bit_mime && !message.downgradable {
            let text = "an 8-bit message the server cannot take (no 8BITMIME), and it cannot be made 7-bit".to_string();
            self.actions
                .push_back(Action::Finished(refused(554, "5.6.3", text)));
            self.actions.push_back(Action::Ready);
            return;
        }
        if message.recipients.is_empty() {
            self.actions.push_back(Action::Finished(Vec::new()));
            self.actions.push_back(Action::Ready);
            return;
        }
        let pipelined = offered.pipelining;
        let chunking = offered.chunking;
        let mut out = mail_command(&message, offered).into_bytes();
        self.expected.push_back(Expect::Mail);
        if pipelined {
            for (index, recipient) in message.recipients.iter().enumerate() {
                out.extend_from_slice(rcpt_command(recipient, offered).as_bytes());
                self.expected.push_back(Expect::Rcpt(index));
            }
            if !chunking {
                out.extend_from_slice(b"DATA\r\n");
                self.expected.push_back(Expect::Data);
            }
        }
        self.actions.push_back(Action::Send(out));
        self.transaction = Some(Transaction {
            downgrade: message.eight_bit && !offered.eight_bit_mime,
            results: vec![None; message.recipients.len()],
            message,
            mail_accepted: false,
            accepted: 0,
            pipelined,
            chunking,
        });
    }

    /// Ends the session politely.
    pub fn quit(&mut self) {
        if self.closed || self.paused || !self.expected.is_empty() || self.transaction.is_some() {
            return;
        }
        self.actions.push_back(Action::Send(b"QUIT\r\n".to_vec()));
        self.expected.push_back(Expect::Quit);
    }

    fn reply(&mut self, reply: Reply) {
        let Some(expected) = self.expected.pop_front() else {
            // Nothing was asked: a server talking out of turn.
            let why = Reply::new(
                451,
                "4.5.0",
                format!(
                    "protocol error: a reply nothing asked for: {}",
                    first_line(&reply)
                ),
            );
            self.end(why, false);
            return;
        };
        if reply.code == 421 && expected != Expect::Quit {
            self.end(reply, true);
            return;
        }
        match expected {
            Expect::Greeting if reply.code == 220 => self.ehlo(),
            Expect::Ehlo if reply.code == 250 => {
                self.extensions = Extensions::parse(&reply.lines);
                self.after_hello();
            }
            Expect::Ehlo if (500..=504).contains(&reply.code) || reply.code == 550 => {
                self.actions.push_back(Action::Send(
                    format!("HELO {}\r\n", self.config.helo_name).into_bytes(),
                ));
                self.expected.push_back(Expect::Helo);
            }
            Expect::Helo if reply.code == 250 => {
                self.extensions = Extensions::default();
                self.after_hello();
            }
            Expect::Greeting | Expect::Ehlo | Expect::Helo => self.refuse_session(reply),
            Expect::StartTls if reply.code == 220 => {
                // What came after the 220 in the same read is not TLS's
                // and must not be read as the server's words.
                self.reader = ReplyReader::default();
                self.paused = true;
                self.actions.push_back(Action::StartTls);
            }
            Expect::StartTls => match self.config.tls {
                Tls::Required => self.refuse_session(reply),
                _ => self.ready(),
            },
            Expect::Mail => self.mail_reply(reply),
            Expect::Rcpt(index) => self.rcpt_reply(index, reply),
            Expect::Data => self.data_reply(reply),
            Expect::Dot => self.dot_reply(reply),
            Expect::Rset => self.ready(),
            Expect::Authenticated if reply.code == 235 => self.ready(),
            Expect::Authenticated => self.refuse_session(reply),
            Expect::LoginUser => self.login_step(reply, Expect::LoginPassword),
            Expect::LoginPassword => self.login_step(reply, Expect::Authenticated),
            Expect::Quit => {
                self.closed = true;
                self.actions.push_back(Action::Closed(None));
            }
        }
    }

    fn ehlo(&mut self) {
        self.actions.push_back(Action::Send(
            format!("EHLO {}\r\n", self.config.helo_name).into_bytes(),
        ));
        self.expected.push_back(Expect::Ehlo);
    }

    /// After a 250 to EHLO or HELO: STARTTLS, or AUTH, or ready.
    fn after_hello(&mut self) {
        if self.tls_active || self.config.tls == Tls::Never {
            return self.authenticate();
        }
        if self.extensions.starttls {
            self.actions
                .push_back(Action::Send(b"STARTTLS\r\n".to_vec()));
            self.expected.push_back(Expect::StartTls);
            return;
        }
        if self.config.tls == Tls::Required {
            let why = Reply::new(
                451,
                "4.7.4",
                "TLS is required, and the server does not offer STARTTLS",
            );
            return self.refuse_session_locally(why);
        }
        self.authenticate()
    }

    /// AUTH when there are credentials (never in cleartext), else ready.
    fn authenticate(&mut self) {
        let Some(login) = self.config.login.clone() else {
            return self.ready();
        };
        if !self.tls_active {
            let why = Reply::new(
                451,
                "4.7.10",
                "the login is sent over TLS only, and this session has none",
            );
            return self.refuse_session_locally(why);
        }
        let offered = &self.extensions.auth;
        if offered.iter().any(|m| m == "PLAIN") {
            let token = encode(format!("\0{}\0{}", login.user, login.password).as_bytes());
            let line = format!("AUTH PLAIN {token}\r\n");
            self.actions.push_back(Action::Send(line.into_bytes()));
            self.expected.push_back(Expect::Authenticated);
        } else if offered.iter().any(|m| m == "LOGIN") {
            self.actions
                .push_back(Action::Send(b"AUTH LOGIN\r\n".to_vec()));
            self.expected.push_back(Expect::LoginUser);
        } else {
            let why = Reply::new(
                451,
                "4.7.0",
                "the server offers neither AUTH PLAIN nor AUTH LOGIN",
            );
            self.refuse_session_locally(why);
        }
    }

    /// LOGIN's next step, after a 334: the user name, then the password.
    fn login_step(&mut self, reply: Reply, next: Expect) {
        let Some(login) = self.config.login.as_ref().filter(|_| reply.code == 334) else {
            return self.refuse_session(reply);
        };
        let value = match next {
            Expect::LoginPassword => &login.user,
            _ => &login.password,
        };
        let line = format!("{}\r\n", encode(value.as_bytes()));
        self.actions.push_back(Action::Send(line.into_bytes()));
        self.expected.push_back(next);
    }

    fn ready(&mut self) {
        self.actions.push_back(Action::Ready);
    }

    fn mail_reply(&mut self, reply: Reply) {
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if reply.code / 100 != 2 {
            for result in &mut transaction.results {
                *result = Some(Result {
                    reply: reply.clone(),
                    remote: true,
                });
            }
            if !transaction.pipelined {
                self.finish(false);
            }
            return;
        }
        transaction.mail_accepted = true;
        if !transaction.pipelined {
            self.next_rcpt(0);
        }
    }

    /// Without PIPELINING: RCPT `index`, or DATA after the last.
    fn next_rcpt(&mut self, index: usize) {
        let Some(transaction) = self.transaction.as_ref() else {
            return;
        };
        match transaction.message.recipients.get(index) {
            Some(recipient) => {
                let line = rcpt_command(recipient, &self.extensions);
                self.actions.push_back(Action::Send(line.into_bytes()));
                self.expected.push_back(Expect::Rcpt(index));
            }
            None if transaction.accepted > 0 && transaction.chunking => self.chunk_or_reset(),
            None if transaction.accepted > 0 => {
                self.actions.push_back(Action::Send(b"DATA\r\n".to_vec()));
                self.expected.push_back(Expect::Data);
            }
            None => self.finish(true),
        }
    }

    fn rcpt_reply(&mut self, index: usize, reply: Reply) {
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if transaction.mail_accepted {
            if reply.code / 100 == 2 {
                transaction.accepted += 1;
            } else if let Some(slot) = transaction.results.get_mut(index) {
                *slot = Some(Result {
                    reply,
                    remote: true,
                });
            }
        }
        if !transaction.pipelined {
            self.next_rcpt(index + 1);
        } else if transaction.chunking && index + 1 == transaction.results.len() {
            self.chunk_or_reset();
        }
    }

    /// With CHUNKING, once every recipient is answered: the message as
    /// one BDAT chunk if any was accepted, else RSET (nothing to send).
    fn chunk_or_reset(&mut self) {
        let Some(transaction) = self.transaction.as_ref() else {
            return;
        };
        if !transaction.mail_accepted || transaction.accepted == 0 {
            return self.finish(true);
        }
        self.paused = true;
        let downgrade = transaction.downgrade;
        self.actions.push_back(Action::SendBody {
            downgrade,
            chunk: true,
        });
    }

    fn data_reply(&mut self, reply: Reply) {
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        if reply.code == 354 {
            if !transaction.mail_accepted || transaction.accepted == 0 {
                // A server that takes DATA with no recipient gets an
                // empty message, ended at once (RFC 2920 §3.1).
                self.actions.push_back(Action::Send(b".\r\n".to_vec()));
                self.expected.push_back(Expect::Dot);
                return;
            }
            self.paused = true;
            let downgrade = transaction.downgrade;
            self.actions.push_back(Action::SendBody {
                downgrade,
                chunk: false,
            });
            return;
        }
        if !transaction.mail_accepted {
            // The pipelined DATA after a refused MAIL: nothing is open.
            return self.finish(false);
        }
        for result in transaction.results.iter_mut().filter(|r| r.is_none()) {
            *result = Some(Result {
                reply: reply.clone(),
                remote: true,
            });
        }
        self.finish(true);
    }

    fn dot_reply(&mut self, reply: Reply) {
        let Some(transaction) = self.transaction.as_mut() else {
            return;
        };
        for result in transaction.results.iter_mut().filter(|r| r.is_none()) {
            *result = Some(Result {
                reply: reply.clone(),
                remote: true,
            });
        }
        self.finish(false);
    }

    /// Ends the transaction with its results; with `reset`, RSET first
    /// clears what the server may still hold of it.
    fn finish(&mut self, reset: bool) {
        let Some(transaction) = self.transaction.take() else {
            return;
        };
        let results = transaction
            .results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Result {
                    reply: Reply::new(451, "4.5.0", "the server did not answer for this recipient"),
                    remote: false,
                })
            })
            .collect();
        self.actions.push_back(Action::Finished(results));
        if reset {
            self.actions.push_back(Action::Send(b"RSET\r\n".to_vec()));
            self.expected.push_back(Expect::Rset);
        } else {
            self.ready();
        }
    }

    /// The greeting, EHLO or STARTTLS refused: QUIT, and the session ends
    /// with the server's reply.
    fn refuse_session(&mut self, reply: Reply) {
        self.actions.push_back(Action::Send(b"QUIT\r\n".to_vec()));
        self.end(reply, true);
    }

    /// As `refuse_session`, for the client's own reason.
    fn refuse_session_locally(&mut self, why: Reply) {
        self.actions.push_back(Action::Send(b"QUIT\r\n".to_vec()));
        self.end(why, false);
    }

    /// The session ends with `why`: the open transaction's unanswered
    /// recipients get it.
    fn end(&mut self, why: Reply, remote: bool) {
        if let Some(transaction) = self.transaction.take() {
            let results = transaction
                .results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| Result {
                        reply: why.clone(),
                        remote,
                    })
                })
                .collect();
            self.actions.push_back(Action::Finished(results));
        }
        self.expected.clear();
        self.closed = true;
        self.actions
            .push_back(Action::Closed(Some(Result { reply: why, remote })));
    }
}

fn mail_command(message: &Message, offered: &Extensions) -> String {
    let mut line = format!("MAIL FROM:<{}>", message.sender);
    if offered.size.is_some() {
        line.push_str(&format!(" SIZE={}", message.size));
    }
    if message.eight_bit && offered.eight_bit_mime {
        line.push_str(" BODY=8BITMIME");
    }
    if message.needs_smtputf8 && offered.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if offered.dsn {
        if let Some(ret) = &message.ret {
            line.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = &message.envid {
            line.push_str(&format!(" ENVID={envid}"));
        }
    }
    line.push_str("\r\n");
    line
}

fn rcpt_command(recipient: &Recipient, offered: &Extensions) -> String {
    let mut line = format!("RCPT TO:<{}>", recipient.address);
    if offered.dsn {
        if let Some(notify) = &recipient.notify {
            line.push_str(&format!(" NOTIFY={notify}"));
        }
        if let Some(orcpt) = &recipient.orcpt {
            line.push_str(&format!(" ORCPT={orcpt}"));
        }
    }
    line.push_str("\r\n");
    line
}

fn encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn first_line(reply: &Reply) -> String {
    format!(
        "{} {}",
        reply.code,
        reply.lines.first().map(String::as_str).unwrap_or("")
    )
}
