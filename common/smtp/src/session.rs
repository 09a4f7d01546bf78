//! The SMTP server as a sans-I/O state machine (RFC 5321, with
//! PIPELINING, SIZE, 8BITMIME, SMTPUTF8, CHUNKING, DSN, STARTTLS and AUTH):
//! bytes from the client in, replies and actions out (check a recipient,
//! begin, fill and end a message, start TLS, check a login), with no
//! socket inside. smtp-proto reads command syntax; postern-smtpd and
//! `sendmail -bs` drive it; golden transcripts in common/smtp/golden/ and
//! the `smtp_session` fuzz target test it.

use std::collections::VecDeque;

use smtp_proto::{Error as SyntaxError, MailFrom, RcptTo, Request};

use postern_sasl::{Credentials, Exchange, Mechanism};

use crate::Reply;
use crate::body::{Body, Framing};

/// The longest command line taken, CRLF included (longer: 500 5.5.2, as
/// RFC 3463 has no code of its own for it): RFC 5321 §4.5.3.1.4
/// allows 512 octets, and each extension's parameters add to it.
const MAX_COMMAND_LINE: usize = 4096;

/// What a session offers and allows.
#[derive(Clone, Debug)]
pub struct Config {
    /// The name in the greeting, EHLO and QUIT replies.
    pub hostname: String,
    /// SIZE (RFC 1870): the largest message taken, in octets; 0 for none.
    pub max_message_size: u64,
    /// Recipients per transaction; more get 452 4.5.3 (RFC 5321 asks for
    /// at least 100).
    pub max_recipients: usize,
    /// Bad commands before the session is closed with 421.
    pub max_errors: usize,
    /// NOOP, RSET, VRFY and HELP that may come before each further one
    /// counts as an error (as Postfix's junk command limit): a client that
    /// only keeps the connection busy is shown out.
    pub max_junk_commands: usize,
    /// The connection is encrypted from the start (implicit TLS, RFC 8314).
    pub tls: bool,
    /// STARTTLS (RFC 3207) is offered while the connection is plain.
    pub starttls: bool,
    /// SASL mechanisms offered by AUTH (RFC 4954); none: no AUTH.
    pub auth_mechanisms: Vec<Mechanism>,
    /// PLAIN and LOGIN, which send the password itself, are offered and
    /// taken without TLS too.
    pub plaintext_auth: bool,
    /// MAIL needs a successful AUTH first (530 5.7.0): a submission port,
    /// for a client not otherwise allowed to relay.
    pub auth_required: bool,
    /// Makes each CRAM-MD5 challenge unique: `<seed.N@hostname>`.
    pub challenge_seed: String,
}

impl Config {
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            hostname: hostname.into(),
            max_message_size: 0,
            max_recipients: 1000,
            max_errors: 20,
            max_junk_commands: 100,
            tls: false,
            starttls: false,
            auth_mechanisms: Vec::new(),
            plaintext_auth: false,
            auth_required: false,
            challenge_seed: "0".to_string(),
        }
    }
}

/// A transaction as it stands when its data begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO argument, and whether it was EHLO.
    pub helo: String,
    pub esmtp: bool,
    /// MAIL FROM, with its parameters; the address is empty for `<>`.
    pub mail: MailFrom<String>,
    /// The accepted recipients, with their parameters (DSN's NOTIFY and
    /// ORCPT among them).
    pub recipients: Vec<RcptTo<String>>,
    /// Whether the message came over TLS, and from whom by AUTH: for the
    /// `Received:` line's protocol (RFC 3848).
    pub tls: bool,
    pub authenticated: Option<String>,
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// A RCPT: decide, then call [`Session::recipient_checked`].
    CheckRecipient(RcptTo<String>),
    /// A message's data begins (DATA or the first BDAT chunk).
    Begin(Envelope),
    /// More of the message, with LF line ends.
    Data(Vec<u8>),
    /// The message is complete: store it durably, then call
    /// [`Session::message_stored`].
    End,
    /// The message begun is refused (too big): drop what was stored.
    Abort,
    /// Start TLS on the connection now, before reading another byte (the
    /// 220 went out in the `Send` before).
    StartTls,
    /// An AUTH exchange is complete: check the credentials, then call
    /// [`Session::credentials_checked`].
    CheckCredentials {
        mechanism: Mechanism,
        credentials: Credentials,
    },
    /// Close the connection (after the bytes already sent).
    Close,
}

pub(crate) enum State {
    Command,
    /// Receiving a message's data.
    Body(Framing),
    /// Consuming a BDAT chunk that has no transaction to go to, then
    /// replying.
    Skip {
        left: usize,
        reply: Reply,
    },
    /// Inside an AUTH exchange: each line is the client's response.
    Auth(Mechanism, Exchange),
    Closed,
}

pub(crate) enum Waiting {
    Recipient(RcptTo<String>),
    Message,
    Credentials,
}

pub(crate) struct Transaction {
    mail: MailFrom<String>,
    recipients: Vec<RcptTo<String>>,
    /// Some once the data has begun.
    body: Option<Body>,
}

/// One SMTP session: feed it the client's bytes with [`Session::receive`],
/// then take [`Action`]s from [`Session::next_action`] until it returns
/// `None` (it needs more input, or an answer to a question it asked).
pub struct Session {
    pub(crate) config: Config,
    pub(crate) input: Vec<u8>,
    out: Vec<u8>,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) state: State,
    pub(crate) waiting: Option<Waiting>,
    pub(crate) helo: Option<(String, bool)>,
    pub(crate) transaction: Option<Transaction>,
    errors: usize,
    junk: usize,
    /// Inside a command line too long to keep: drop input to its end.
    pub(crate) discarding: bool,
    /// Encrypted: from the start, or since STARTTLS.
    pub(crate) tls: bool,
    /// The user a successful AUTH proved.
    pub(crate) authenticated: Option<String>,
    /// AUTH attempts so far, for unique CRAM-MD5 challenges.
    pub(crate) auth_attempts: usize,
}

impl Session {
    /// A session that starts with the 220 greeting.
    pub fn new(config: Config) -> Session {
        let mut session = Session {
            config,
            input: Vec::new(),
            out: Vec::new(),
            actions: VecDeque::new(),
            state: State::Command,
            waiting: None,
            helo: None,
            transaction: None,
            errors: 0,
            junk: 0,
            discarding: false,
            tls: false,
            authenticated: None,
            auth_attempts: 0,
        };
        session.tls = session.config.tls;
        let greeting = format!("{} ESMTP Postern", session.config.hostname);
        session.reply(Reply::plain(220, vec![greeting]));
        session
    }

    /// Bytes from the client.
    pub fn receive(&mut self, mut bytes: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.discarding {
            // The rest of an over-long line, already answered.
            let Some(end) = find_lf(bytes) else { return };
            self.discarding = false;
            bytes = &bytes[end + 1..];
        }
        self.input.extend_from_slice(bytes);
    }

    /// The client closed its side: nothing more will come.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed) && self.actions.is_empty()
    }

    /// The sender of the transaction under way (`""` for `<>`), for logs.
    pub fn sender(&self) -> Option<&str> {
        self.transaction.as_ref().map(|t| t.mail.address.as_str())
    }

    /// The HELO/EHLO name, once given.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_ref().map(|(host, _)| host.as_str())
    }

    /// The user AUTH proved, once it has.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Whether the session is encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether a message's data is being received (for the driver's
    /// timeouts, which differ for data).
    pub fn in_data(&self) -> bool {
        matches!(self.state, State::Body(_) | State::Skip { .. })
    }

    pub fn next_action(&mut self) -> Option<Action> {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            if self.waiting.is_some() {
                return self.idle();
            }
            match std::mem::replace(&mut self.state, State::Command) {
                State::Closed => {
                    self.state = State::Closed;
                    return None;
                }
                State::Command => match self.take_line() {
                    Some(line) => self.command(&line),
                    None => return self.idle(),
                },
                State::Auth(mechanism, exchange) => {
                    self.state = State::Auth(mechanism, exchange);
                    match self.take_line() {
                        Some(line) => self.auth_response(&line),
                        None => return self.idle(),
                    }
                }
                State::Body(framing) => {
                    let empty_chunk = matches!(framing, Framing::Chunk { left: 0, .. });
                    if self.input.is_empty() && !empty_chunk {
                        self.state = State::Body(framing);
                        return self.idle();
                    }
                    self.body(framing);
                }
                State::Skip { mut left, reply } => {
                    let n = left.min(self.input.len());
                    self.input.drain(..n);
                    left -= n;
                    if left > 0 {
                        self.state = State::Skip { left, reply };
                        return self.idle();
                    }
                    self.error(reply);
                }
            }
        }
    }

    /// The answer to [`Action::CheckRecipient`].
    pub fn recipient_checked(&mut self, verdict: Result<(), Reply>) {
        let Some(Waiting::Recipient(rcpt)) = self.waiting.take() else {
            return;
        };
        match (verdict, self.transaction.as_mut()) {
            (Ok(()), Some(transaction)) => {
                transaction.recipients.push(rcpt);
                self.reply(Reply::new(250, "2.1.5", "Ok"));
            }
            (Ok(()), None) => self.error(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            (Err(reply), _) => self.reply(reply),
        }
    }

    /// The answer to [`Action::End`]: the queue id, or why not.
    pub fn message_stored(&mut self, result: Result<String, Reply>) {
        if !matches!(self.waiting.take(), Some(Waiting::Message)) {
            return;
        }
        self.transaction = None;
        match result {
            Ok(id) => self.reply(Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))),
            Err(reply) => self.reply(reply),
        }
    }

    pub(crate) fn reply(&mut self, reply: Reply) {
        reply.encode(&mut self.out);
    }

    /// A refused command: counted, and the session ends at the limit.
    pub(crate) fn error(&mut self, reply: Reply) {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.close(Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many errors", self.config.hostname),
            ));
        }
    }

    fn close(&mut self, reply: Reply) {
        if self.transaction.as_ref().is_some_and(|t| t.body.is_some()) {
            self.actions.push_back(Action::Abort);
        }
        self.transaction = None;
        self.reply(reply);
        if let Some(send) = self.flush() {
            self.actions.push_back(send);
        }
        self.actions.push_back(Action::Close);
        self.state = State::Closed;
        self.input.clear();
    }

    /// Nothing more to do without input or an answer: what is queued, then
    /// the replies gathered (RFC 2920: replies to a pipelined group may
    /// wait until the server would block on input).
    fn idle(&mut self) -> Option<Action> {
        self.actions.pop_front().or_else(|| self.flush())
    }

    pub(crate) fn flush(&mut self) -> Option<Action> {
        (!self.out.is_empty()).then(|| Action::Send(std::mem::take(&mut self.out)))
    }

    /// The next command line, or `None` until one is complete. An
    /// over-long line is answered once, and dropped to its end.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let limit = self.line_limit();
            match find_lf(&self.input) {
                Some(end) if end < limit => {
                    return Some(self.input.drain(..=end).collect());
                }
                Some(end) => {
                    self.input.drain(..=end);
                    self.too_long();
                    if matches!(self.state, State::Closed) {
                        return None;
                    }
                }
                None if self.input.len() >= limit => {
                    self.input.clear();
                    self.discarding = true;
                    self.too_long();
                    return None;
                }
                None => return None,
            }
        }
    }

    /// How long the next line may be: an AUTH command or response carries
    /// up to 12,288 octets of base64 (RFC 4954 §4), other commands less.
    fn line_limit(&self) -> usize {
        let auth_command = self
            .input
            .get(..5)
            .is_some_and(|head| head.eq_ignore_ascii_case(b"AUTH "));
        if matches!(self.state, State::Auth(..)) {
            postern_sasl::MAX_RESPONSE + 2
        } else if auth_command {
            postern_sasl::MAX_RESPONSE + "AUTH CRAM-MD5 \r\n".len()
        } else {
            MAX_COMMAND_LINE
        }
    }

    /// An over-long line: inside AUTH, RFC 4954's 500 5.5.6, which ends the
    /// exchange; else 500 5.5.2.
    fn too_long(&mut self) {
        if matches!(self.state, State::Auth(..)) {
            self.state = State::Command;
            return self.error(Reply::new(
                500,
                "5.5.6",
                "Error: authentication exchange line is too long",
            ));
        }
        self.error(Reply::new(500, "5.5.2", "Error: line too long"))
    }

    fn command(&mut self, line: &[u8]) {
        // AUTH is read here: smtp-proto refuses a mechanism it does not
        // know with a syntax error, where RFC 4954 wants 504.
        if let Some(arguments) = strip_verb(line, b"AUTH") {
            return self.auth(&String::from_utf8_lossy(arguments));
        }
        let literal = crate::literal::mask(line);
        let parsed = match &literal {
            Some((masked, _)) => Request::parse(&mut masked.iter()).map(Request::into_owned),
            None => Request::parse(&mut line.iter()).map(Request::into_owned),
        };
        let mut request = match parsed {
            Ok(request) => request,
            Err(error) => return self.error(syntax_reply(error)),
        };
        if let Some((_, literal)) = &literal {
            match &mut request {
                Request::Rcpt { to } => crate::literal::unmask(&mut to.address, literal),
                Request::Mail { from } => crate::literal::unmask(&mut from.address, literal),
                _ => {}
            }
        }
        if let Request::Rcpt { to } = &mut request
            && to.address.is_empty()
            && is_rcpt_to_postmaster(line)
        {
            to.address = "postmaster".to_string();
        }
        if matches!(
            request,
            Request::Noop { .. } | Request::Rset | Request::Vrfy { .. } | Request::Help { .. }
        ) {
            self.junk += 1;
            if self.junk > self.config.max_junk_commands {
                self.errors += 1;
                if self.errors >= self.config.max_errors {
                    let text = format!("{} Error: too many errors", self.config.hostname);
                    return self.close(Reply::new(421, "4.7.0", text));
                }
            }
        }
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.abort_transaction();
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Request::Noop { .. } => self.reply(Reply::new(250, "2.0.0", "Ok")),
            Request::Quit => {
                let bye = format!("{} closing connection", self.config.hostname);
                self.close(Reply::new(221, "2.0.0", bye));
            }
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => {
                let mut commands =
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP".to_string();
                for keyword in self.security_keywords() {
                    commands.push(' ');
                    commands.push_str(keyword.split(' ').next().unwrap_or_default());
                }
                self.reply(Reply::new(214, "2.0.0", commands))
            }
            Request::StartTls => self.starttls(),
            other => self.error(Reply::new(
                502,
                "5.5.1",
                format!("Error: {} is not available", other.name()),
            )),
        }
    }

    fn hello(&mut self, host: String, esmtp: bool) {
        self.abort_transaction();
        let name = self.config.hostname.clone();
        self.helo = Some((host, esmtp));
        if !esmtp {
            return self.reply(Reply::plain(250, vec![name]));
        }
        let size = match self.config.max_message_size {
            0 => "SIZE".to_string(),
            n => format!("SIZE {n}"),
        };
        let mut lines: Vec<String> = [
            name.as_str(),
            "PIPELINING",
            &size,
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "CHUNKING",
            "DSN",
        ]
        .map(str::to_string)
        .to_vec();
        lines.extend(self.security_keywords());
        self.reply(Reply::plain(250, lines));
    }

    fn mail(&mut self, from: MailFrom<String>) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.transaction.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
        }
        if self.config.auth_required && self.authenticated.is_none() {
            return self.error(Reply::new(530, "5.7.0", "Error: authentication required"));
        }
        let auth_offered = !self.config.auth_mechanisms.is_empty();
        if let Some(name) = unsupported_mail_parameter(&from, auth_offered) {
            return self.error(Reply::new(
                555,
                "5.5.4",
                format!("Error: {name} is not supported"),
            ));
        }
        let limit = self.config.max_message_size;
        if limit > 0 && from.size as u64 > limit {
            return self.reply(Reply::new(
                552,
                "5.3.4",
                format!("Error: message larger than the limit of {limit} octets"),
            ));
        }
        if !from.address.is_ascii() && from.flags & smtp_proto::MAIL_SMTPUTF8 == 0 {
            return self.error(Reply::new(
                553,
                "5.6.7",
                "Error: a non-ASCII address needs SMTPUTF8",
            ));
        }
        self.transaction = Some(Transaction {
            mail: from,
            recipients: Vec::new(),
            body: None,
        });
        self.reply(Reply::new(250, "2.1.0", "Ok"));
    }

    fn rcpt(&mut self, to: RcptTo<String>) {
        let Some(transaction) = &self.transaction else {
            return self.error(Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        if transaction.body.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Error: RCPT after data began"));
        }
        if to.rrvs != 0
            || to.flags
                & (smtp_proto::RCPT_CONNEG
                    | smtp_proto::RCPT_RRVS_REJECT
                    | smtp_proto::RCPT_RRVS_CONTINUE)
                != 0
        {
            return self.error(Reply::new(555, "5.5.4", "Error: parameter not supported"));
        }
        if transaction.recipients.len() >= self.config.max_recipients {
            return self.reply(Reply::new(452, "4.5.3", "Error: too many recipients"));
        }
        let utf8 = transaction.mail.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !to.address.is_ascii() && !utf8 {
            return self.error(Reply::new(
                553,
                "5.6.7",
                "Error: a non-ASCII address needs SMTPUTF8",
            ));
        }
        if to.address.is_empty() {
            return self.error(Reply::new(501, "5.1.3", "Error: empty recipient address"));
        }
        self.waiting = Some(Waiting::Recipient(to.clone()));
        self.actions.push_back(Action::CheckRecipient(to));
    }

    /// Why DATA or BDAT may not start a message now, if it may not.
    fn refuse_data(&self) -> Option<Reply> {
        if self.helo.is_none() {
            return Some(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        match &self.transaction {
            None => Some(Reply::new(503, "5.5.1", "Error: need MAIL command")),
            Some(t) if t.recipients.is_empty() => {
                Some(Reply::new(554, "5.5.1", "Error: no valid recipients"))
            }
            _ => None,
        }
    }

    fn data(&mut self) {
        if let Some(reply) = self.refuse_data() {
            return self.error(reply);
        }
        if self.transaction.as_ref().is_some_and(|t| t.body.is_some()) {
            return self.error(Reply::new(503, "5.5.1", "Error: DATA after BDAT"));
        }
        self.begin_body();
        self.reply(Reply::plain(
            354,
            vec!["End data with <CR><LF>.<CR><LF>".to_string()],
        ));
        self.state = State::Body(Framing::data());
    }

    fn bdat(&mut self, size: usize, last: bool) {
        if let Some(reply) = self.refuse_data() {
            self.state = State::Skip { left: size, reply };
            return;
        }
        if self.transaction.as_ref().is_some_and(|t| t.body.is_none()) {
            self.begin_body();
        }
        self.state = State::Body(Framing::Chunk { left: size, last });
    }

    fn begin_body(&mut self) {
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let limit = self.config.max_message_size;
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.body = Some(Body::new(limit));
            self.actions.push_back(Action::Begin(Envelope {
                helo,
                esmtp,
                mail: transaction.mail.clone(),
                recipients: transaction.recipients.clone(),
                tls: self.tls,
                authenticated: self.authenticated.clone(),
            }));
        }
    }

    fn body(&mut self, mut framing: Framing) {
        let Some(body) = self.transaction.as_mut().and_then(|t| t.body.as_mut()) else {
            return;
        };
        let (data, done) = body.take(&mut framing, &mut self.input);
        if !data.is_empty() {
            self.actions.push_back(Action::Data(data));
        }
        if !done {
            self.state = State::Body(framing);
            return;
        }
        let (too_big, size) = (body.too_big, body.size);
        if too_big {
            self.abort_transaction();
            let limit = self.config.max_message_size;
            return self.reply(Reply::new(
                552,
                "5.3.4",
                format!("Error: message larger than the limit of {limit} octets"),
            ));
        }
        match framing {
            Framing::Chunk { last: false, .. } => self.reply(Reply::new(
                250,
                "2.0.0",
                format!("Ok: {size} octets received"),
            )),
            _ => {
                self.actions.push_back(Action::End);
                self.waiting = Some(Waiting::Message);
            }
        }
    }

    /// Ends the transaction; a begun message is dropped.
    fn abort_transaction(&mut self) {
        if let Some(transaction) = self.transaction.take()
            && transaction.body.is_some()
        {
            self.actions.push_back(Action::Abort);
        }
    }
}

/// `RCPT TO:<Postmaster>` without a domain, which RFC 5321 §4.5.1 says
/// every server must take (the syntax parser gives no address without a
/// domain).
fn is_rcpt_to_postmaster(line: &[u8]) -> bool {
    let prefix = b"rcpt to:<postmaster>";
    line.len() > prefix.len()
        && line[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(line[prefix.len()], b' ' | b'\r' | b'\n')
}

fn find_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// The rest of `line` after `verb` and a space (or at once its end), the
/// verb in any case.
fn strip_verb<'a>(line: &'a [u8], verb: &[u8]) -> Option<&'a [u8]> {
    let rest = line
        .get(..verb.len())
        .filter(|head| head.eq_ignore_ascii_case(verb))
        .map(|_| &line[verb.len()..])?;
    match rest.first() {
        Some(b' ') => Some(&rest[1..]),
        Some(b'\r' | b'\n') => Some(rest),
        _ => None,
    }
}

/// MAIL parameters this server does not offer (RFC 5321 §4.1.1.11: 555).
/// AUTH= (RFC 4954 §5) is taken, and ignored, where AUTH is offered.
fn unsupported_mail_parameter(from: &MailFrom<String>, auth: bool) -> Option<&'static str> {
    use smtp_proto::*;
    let checks = [
        (from.flags & MAIL_BODY_BINARYMIME != 0, "BODY=BINARYMIME"),
        (from.flags & MAIL_REQUIRETLS != 0, "REQUIRETLS"),
        (from.flags & MAIL_CONPERM != 0, "CONPERM"),
        (
            from.flags & (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE) != 0 || from.by != 0,
            "BY",
        ),
        (from.mtrk.is_some(), "MTRK"),
        (from.hold_for != 0 || from.hold_until != 0, "FUTURERELEASE"),
        (from.mt_priority != 0, "MT-PRIORITY"),
        (from.trans_id.is_some(), "TRANSID"),
        (from.solicit.is_some(), "SOLICIT"),
        (from.auth.is_some() && !auth, "AUTH"),
    ];
    checks
        .into_iter()
        .find(|(used, _)| *used)
        .map(|(_, name)| name)
}

fn syntax_reply(error: SyntaxError) -> Reply {
    match error {
        SyntaxError::UnknownCommand => Reply::new(500, "5.5.2", "Error: command not recognized"),
        SyntaxError::SyntaxError { syntax } => {
            Reply::new(501, "5.5.4", format!("Syntax: {syntax}"))
        }
        SyntaxError::InvalidSenderAddress => {
            Reply::new(501, "5.1.7", "Error: bad sender address syntax")
        }
        SyntaxError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Error: bad recipient address syntax")
        }
        SyntaxError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Error: bad value for {param}"))
        }
        SyntaxError::UnsupportedParameter { param } => Reply::new(
            555,
            "5.5.4",
            format!(
                "Error: {} is not supported",
                param.chars().take(64).collect::<String>()
            ),
        ),
        _ => Reply::new(500, "5.5.2", "Error: command not recognized"),
    }
}
