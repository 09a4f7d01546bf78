//! One IMAP session as a state machine: client bytes in (`receive`),
//! what to do out (`next_action`: bytes to send, the TLS handshake, a
//! login to check, the end). Commands are framed by imap-codec's
//! Fragmentizer (lines and literals, with a size cap) and decoded by its
//! CommandCodec; answers are written here. After login the session reads
//! the account's Maildir through postern-mailstore's folders; a long
//! FETCH is answered a slice at a time, so a large answer never sits in
//! memory whole.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use imap_codec::CommandCodec;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;
use postern_mailstore::folder::Folder;
use postern_sasl::{Credentials, Exchange, Mechanism, Next};

use crate::fetch::{self, Item};
use crate::flags::{self, SetHere, as_known};
use crate::mailboxes;
use crate::sequence::{beyond, by_number, by_uid};
use crate::store::{self, Change};
use crate::wire;

/// The longest command, literals included: far above any command a
/// client sends before APPEND, and small enough for a session to hold.
pub const MAX_COMMAND: u32 = 64 * 1024;
/// Bad commands in a row before the session ends.
const MAX_ERRORS: u32 = 20;
/// What one slice of a FETCH answer holds before it is sent.
const SLICE: usize = 64 * 1024;

pub struct Config {
    pub hostname: String,
    /// The connection is TLS now.
    pub tls: bool,
    /// STARTTLS is offered.
    pub starttls: bool,
    /// Passwords may cross this connection in the clear (a trusted
    /// network).
    pub cleartext_allowed: bool,
    pub mechanisms: Vec<Mechanism>,
    /// Makes CRAM-MD5 challenges unique.
    pub challenge_seed: String,
}

impl Config {
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            hostname: hostname.into(),
            tls: false,
            starttls: false,
            cleartext_allowed: false,
            mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            challenge_seed: String::new(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    StartTls,
    Login(Credentials),
    Close,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoginFailure {
    Credentials,
    Temporary(String),
}

struct Selected {
    folder: Folder,
    read_only: bool,
    recent: BTreeSet<u32>,
    set_here: SetHere,
    keywords: Vec<Option<String>>,
}

impl Selected {
    /// A FLAGS list, `\Recent` included where this session has it.
    fn flag_list(&self, uid: u32, flags: u32, keywords: u32) -> Vec<u8> {
        let mut list = Vec::new();
        let recent = self.recent.contains(&uid);
        flags::list(flags, keywords, &self.keywords, recent, &mut list);
        list
    }

    /// Message `index`'s flags and keywords as this session knows them.
    fn flags(&self, index: usize) -> (u32, u32) {
        as_known(&self.folder.snapshot().record(index), &self.set_here)
    }
}

enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Box<Selected>),
    Logout,
}

/// A FETCH being answered.
struct FetchJob {
    tag: String,
    indexes: Vec<usize>,
    at: usize,
    items: Vec<Item>,
    gone: bool,
}

pub struct Session {
    config: Config,
    fragmentizer: Fragmentizer,
    state: State,
    root: Option<PathBuf>,
    actions: VecDeque<Action>,
    out: Vec<u8>,
    sasl: Option<(String, Exchange)>,
    waiting_login: Option<String>,
    job: Option<FetchJob>,
    errors: u32,
    clock: fn() -> SystemTime,
}

fn ok(tag: &str, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{tag} OK {text}\r\n").as_bytes());
}

fn no(tag: &str, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{tag} NO {text}\r\n").as_bytes());
}

fn bad(tag: &str, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{tag} BAD {text}\r\n").as_bytes());
}

/// The indexes of the messages `set` names, by UID or by number; `None`
/// for a number past the folder's end (RFC 3501 §9: a client error).
fn messages_named(folder: &Folder, set: &SequenceSet, uid: bool) -> Option<Vec<usize>> {
    match uid {
        true => Some(by_uid(set, folder.len(), |i| folder.snapshot().uid(i))),
        false if beyond(set, folder.len()) => None,
        false => Some(by_number(set, folder.len())),
    }
}

/// FLAGS and PERMANENTFLAGS for a folder with `keywords`: at SELECT, and
/// again when a STORE makes a new keyword.
fn announce_flags(keywords: &[Option<String>], read_only: bool, out: &mut Vec<u8>) {
    let mut names: Vec<&str> = flags::SYSTEM.iter().map(|(name, _)| *name).collect();
    names.extend(keywords.iter().flatten().map(String::as_str));
    let names = names.join(" ");
    out.extend_from_slice(format!("* FLAGS ({names})\r\n").as_bytes());
    match read_only {
        true => out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"),
        false => out.extend_from_slice(
            format!("* OK [PERMANENTFLAGS ({names} \\*)] Flags permitted.\r\n").as_bytes(),
        ),
    }
}

/// `* N FETCH ([UID u ]FLAGS (...))`: flags a STORE set, or others
/// changed.
fn flags_fetch_line(number: usize, uid: Option<u32>, list: &[u8], out: &mut Vec<u8>) {
    let _ = write!(out, "* {number} FETCH (");
    if let Some(uid) = uid {
        let _ = write!(out, "UID {uid} ");
    }
    out.extend_from_slice(b"FLAGS ");
    out.extend_from_slice(list);
    out.extend_from_slice(b")\r\n");
}

impl Session {
    pub fn new(config: Config) -> Session {
        let mut session = Session {
            config,
            fragmentizer: Fragmentizer::new(MAX_COMMAND),
            state: State::NotAuthenticated,
            root: None,
            actions: VecDeque::new(),
            out: Vec::new(),
            sasl: None,
            waiting_login: None,
            job: None,
            errors: 0,
            clock: SystemTime::now,
        };
        let greeting = format!(
            "* OK [CAPABILITY {}] {} IMAP ready.\r\n",
            session.capabilities(),
            session.config.hostname
        );
        session.out.extend_from_slice(greeting.as_bytes());
        session
    }

    /// Sets the clock (tests).
    pub fn set_clock(&mut self, clock: fn() -> SystemTime) {
        self.clock = clock;
    }

    fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "NAMESPACE",
            "UNSELECT",
            "CHILDREN",
        ];
        let mut auth = Vec::new();
        if matches!(self.state, State::NotAuthenticated) {
            if self.config.starttls && !self.config.tls {
                caps.push("STARTTLS");
            }
            if self.cleartext_ok() {
                for mechanism in &self.config.mechanisms {
                    auth.push(format!("AUTH={}", mechanism.name()));
                }
            } else {
                caps.push("LOGINDISABLED");
                for mechanism in &self.config.mechanisms {
                    if !mechanism.sends_password() {
                        auth.push(format!("AUTH={}", mechanism.name()));
                    }
                }
            }
        }
        let mut text = caps.join(" ");
        for a in auth {
            text.push(' ');
            text.push_str(&a);
        }
        text
    }

    fn cleartext_ok(&self) -> bool {
        self.config.tls || self.config.cleartext_allowed
    }

    pub fn receive(&mut self, bytes: &[u8]) {
        self.fragmentizer.enqueue_bytes(bytes);
    }

    /// After the TLS handshake STARTTLS asked for.
    pub fn tls_started(&mut self) {
        self.config.tls = true;
    }

    /// What to do next; `None` when the session waits for the client (or
    /// for the answer to a login).
    pub fn next_action(&mut self) -> Option<Action> {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            if !self.out.is_empty() {
                return Some(Action::Send(std::mem::take(&mut self.out)));
            }
            if self.waiting_login.is_some() || matches!(self.state, State::Logout) {
                return None;
            }
            if self.job.is_some() {
                self.fetch_slice();
                continue;
            }
            if !self.step() {
                return None;
            }
        }
    }

    /// Postern-auth accepted the login: the account's Maildir.
    pub fn logged_in(&mut self, root: PathBuf) {
        let Some(tag) = self.waiting_login.take() else {
            return;
        };
        self.root = Some(root);
        self.state = State::Authenticated;
        let text = format!("[CAPABILITY {}] Logged in", self.capabilities());
        ok(&tag, &text, &mut self.out);
    }

    pub fn login_failed(&mut self, failure: LoginFailure) {
        let Some(tag) = self.waiting_login.take() else {
            return;
        };
        match failure {
            LoginFailure::Credentials => no(
                &tag,
                "[AUTHENTICATIONFAILED] Authentication failed.",
                &mut self.out,
            ),
            LoginFailure::Temporary(why) => {
                no(&tag, &format!("[UNAVAILABLE] {why}"), &mut self.out)
            }
        }
    }

    /// One fragment of input; false when more bytes are needed.
    fn step(&mut self) -> bool {
        let Some(fragment) = self.fragmentizer.progress() else {
            return false;
        };
        if let FragmentInfo::Line {
            announcement: Some(LiteralAnnouncement { mode, length }),
            ..
        } = fragment
        {
            let used = self.fragmentizer.message_bytes().len() as u64;
            let fits = used + u64::from(length) <= u64::from(MAX_COMMAND);
            match (mode, fits) {
                (LiteralMode::Sync, true) => self.out.extend_from_slice(b"+ OK\r\n"),
                (LiteralMode::Sync, false) => {
                    let tag = self.tag();
                    bad(&tag, "Literal too big", &mut self.out);
                    self.fragmentizer.skip_message();
                }
                // Read and dropped: the client sends it whatever we say.
                (LiteralMode::NonSync, false) => self.fragmentizer.poison_message(),
                (LiteralMode::NonSync, true) => {}
            }
            return true;
        }
        if !self.fragmentizer.is_message_complete() {
            return true;
        }
        if self.sasl.is_some() {
            self.sasl_line();
            return true;
        }
        let decoded = self.fragmentizer.decode_message(&CommandCodec::default());
        let command = match decoded {
            Ok(command) => command.into_static(),
            Err(e) => {
                let too_long = matches!(
                    e,
                    imap_codec::fragmentizer::DecodeMessageError::MessageTooLong { .. }
                        | imap_codec::fragmentizer::DecodeMessageError::MessagePoisoned { .. }
                );
                let tag = self.tag();
                let text = if too_long {
                    "Command too long"
                } else {
                    "Error in IMAP command"
                };
                bad(&tag, text, &mut self.out);
                self.errors += 1;
                if self.errors >= MAX_ERRORS {
                    self.out
                        .extend_from_slice(b"* BYE Too many invalid commands.\r\n");
                    self.state = State::Logout;
                    self.flush();
                    self.actions.push_back(Action::Close);
                }
                return true;
            }
        };
        self.errors = 0;
        self.dispatch(command);
        true
    }

    fn tag(&self) -> String {
        self.fragmentizer
            .decode_tag()
            .map_or_else(|| "*".to_string(), |t| t.inner().to_string())
    }

    fn sasl_line(&mut self) {
        let line = String::from_utf8_lossy(self.fragmentizer.message_bytes())
            .trim_end_matches(['\r', '\n'])
            .to_string();
        let Some((tag, mut exchange)) = self.sasl.take() else {
            return;
        };
        let next = exchange.respond(&line);
        self.sasl_next(tag, exchange, next);
    }

    fn sasl_next(&mut self, tag: String, exchange: Exchange, next: Next) {
        match next {
            Next::Challenge(challenge) => {
                self.out.extend_from_slice(b"+ ");
                self.out
                    .extend_from_slice(BASE64.encode(challenge).as_bytes());
                self.out.extend_from_slice(b"\r\n");
                self.sasl = Some((tag, exchange));
            }
            Next::Done(credentials) => self.start_login(tag, credentials),
            Next::Failed(postern_sasl::Failure::Cancelled) => {
                bad(&tag, "Authentication canceled", &mut self.out)
            }
            Next::Failed(_) => bad(&tag, "Invalid authentication data", &mut self.out),
        }
    }

    /// What is written so far goes out before the next action.
    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.actions
                .push_back(Action::Send(std::mem::take(&mut self.out)));
        }
    }

    fn start_login(&mut self, tag: String, credentials: Credentials) {
        self.waiting_login = Some(tag);
        self.flush();
        self.actions.push_back(Action::Login(credentials));
    }

    fn dispatch(&mut self, command: Command<'static>) {
        let tag = command.tag.inner().to_string();
        let authenticated = !matches!(self.state, State::NotAuthenticated);
        let selected = matches!(self.state, State::Selected(_));
        match command.body {
            CommandBody::Capability => {
                let line = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.out.extend_from_slice(line.as_bytes());
                ok(&tag, "Capability completed.", &mut self.out);
            }
            CommandBody::Noop if authenticated => {
                self.report_changes();
                ok(&tag, "NOOP completed.", &mut self.out);
            }
            CommandBody::Check if selected => {
                self.report_changes();
                ok(&tag, "Check completed.", &mut self.out);
            }
            CommandBody::Noop => ok(&tag, "NOOP completed.", &mut self.out),
            CommandBody::Logout => {
                self.out.extend_from_slice(b"* BYE Logging out\r\n");
                ok(&tag, "Logout completed.", &mut self.out);
                self.state = State::Logout;
                self.flush();
                self.actions.push_back(Action::Close);
            }
            CommandBody::Id { .. } => {
                self.out
                    .extend_from_slice(b"* ID (\"name\" \"Postern\")\r\n");
                ok(&tag, "ID completed.", &mut self.out);
            }
            CommandBody::StartTLS if !authenticated => {
                if !self.config.starttls || self.config.tls {
                    bad(&tag, "TLS is not available here", &mut self.out);
                    return;
                }
                ok(&tag, "Begin TLS negotiation now.", &mut self.out);
                // What the client sent after STARTTLS was sent in the
                // clear: it is not taken as protected commands.
                self.fragmentizer = Fragmentizer::new(MAX_COMMAND);
                self.flush();
                self.actions.push_back(Action::StartTls);
            }
            CommandBody::Login { username, password } if !authenticated => {
                if !self.cleartext_ok() {
                    no(
                        &tag,
                        "[PRIVACYREQUIRED] Plaintext authentication is disallowed on non-secure connections.",
                        &mut self.out,
                    );
                    return;
                }
                let credentials = Credentials {
                    user: String::from_utf8_lossy(username.as_ref()).into_owned(),
                    proof: postern_sasl::Proof::Password(password.declassify().as_ref().to_vec()),
                };
                self.start_login(tag, credentials);
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                let mechanism = match mechanism {
                    AuthMechanism::Plain => Some(Mechanism::Plain),
                    AuthMechanism::Login => Some(Mechanism::Login),
                    other => Mechanism::parse(other.as_ref()),
                }
                .filter(|m| self.config.mechanisms.contains(m));
                let Some(mechanism) = mechanism else {
                    no(&tag, "Unsupported authentication mechanism.", &mut self.out);
                    return;
                };
                if mechanism.sends_password() && !self.cleartext_ok() {
                    no(
                        &tag,
                        "[PRIVACYREQUIRED] Plaintext authentication is disallowed on non-secure connections.",
                        &mut self.out,
                    );
                    return;
                }
                let initial = initial_response.map(|r| {
                    let bytes = r.declassify();
                    if bytes.is_empty() {
                        "=".to_string()
                    } else {
                        BASE64.encode(bytes.as_ref())
                    }
                });
                let challenge =
                    format!("<{}@{}>", self.config.challenge_seed, self.config.hostname);
                let (exchange, next) = Exchange::start(mechanism, initial.as_deref(), &challenge);
                self.sasl_next(tag, exchange, next);
            }
            CommandBody::StartTLS
            | CommandBody::Login { .. }
            | CommandBody::Authenticate { .. } => bad(&tag, "Already logged in.", &mut self.out),
            _ if !authenticated => no(&tag, "Please log in first.", &mut self.out),
            CommandBody::Select { mailbox, .. } => self.select(&tag, &mailbox, false),
            CommandBody::Examine { mailbox, .. } => self.select(&tag, &mailbox, true),
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(&tag, &reference, &mailbox_wildcard, "LIST"),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&tag, &reference, &mailbox_wildcard, "LSUB"),
            CommandBody::Namespace => {
                self.out
                    .extend_from_slice(b"* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                ok(&tag, "Namespace completed.", &mut self.out);
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(&tag, &mailbox, &item_names),
            CommandBody::Close if selected => {
                // RFC 3501 §6.4.2: \Deleted messages go, told to no one.
                if let Err(why) = self.expunge_deleted() {
                    return no(&tag, why, &mut self.out);
                }
                self.state = State::Authenticated;
                ok(&tag, "Closed.", &mut self.out);
            }
            CommandBody::Unselect if selected => {
                self.state = State::Authenticated;
                ok(&tag, "Closed.", &mut self.out);
            }
            CommandBody::Expunge if selected => {
                let read_only = matches!(&self.state, State::Selected(s) if s.read_only);
                if read_only {
                    return no(&tag, "[READ-ONLY] The mailbox is read-only.", &mut self.out);
                }
                if let Err(why) = self.expunge_deleted() {
                    return no(&tag, why, &mut self.out);
                }
                // The EXPUNGE answers, each numbered as the client sees
                // the folder then (RFC 3501 §7.4.1).
                self.report_changes();
                ok(&tag, "Expunge completed.", &mut self.out);
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } if selected => self.fetch(tag, &sequence_set, &macro_or_item_names, uid),
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } if selected => self.search(
                &tag,
                charset.as_ref().map(|c| c.as_ref()),
                criteria.as_ref(),
                uid,
            ),
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } if selected => self.store(&tag, &sequence_set, kind, &response, &flags, uid),
            CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Expunge
            | CommandBody::Store { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Search { .. }
            | CommandBody::Check => bad(&tag, "No mailbox selected.", &mut self.out),
            _ => {
                no(
                    &tag,
                    "[CANNOT] Not supported by this server yet.",
                    &mut self.out,
                );
            }
        }
    }

    fn mailbox_name(mailbox: &Mailbox<'_>) -> Vec<u8> {
        match mailbox {
            Mailbox::Inbox => b"INBOX".to_vec(),
            Mailbox::Other(other) => other.inner().as_ref().to_vec(),
        }
    }

    fn open(&self, name: &[u8], claim: bool) -> Result<(Folder, Vec<u32>, String), &'static str> {
        let root = self.root.as_ref().ok_or("[UNAVAILABLE] No mailbox")?;
        let path = mailboxes::path_of(root, name).ok_or("[NONEXISTENT] Mailbox doesn't exist.")?;
        if !path.join("cur").is_dir() {
            return Err("[NONEXISTENT] Mailbox doesn't exist.");
        }
        let (folder, recent) =
            Folder::open(&path, crate::describe::DESCRIBE, claim, (self.clock)())
                .map_err(|_| "[SERVERBUG] The mailbox cannot be read now.")?;
        let shown = if name.eq_ignore_ascii_case(b"INBOX") {
            "INBOX".to_string()
        } else {
            String::from_utf8_lossy(name).into_owned()
        };
        Ok((folder, recent, shown))
    }

    fn select(&mut self, tag: &str, mailbox: &Mailbox<'_>, read_only: bool) {
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.state = State::Authenticated;
        let (folder, recent, _) = match self.open(&Self::mailbox_name(mailbox), !read_only) {
            Ok(opened) => opened,
            Err(why) => return no(tag, why, &mut self.out),
        };
        let keywords = flags::keywords(folder.path());
        announce_flags(&keywords, read_only, &mut self.out);
        let out = &mut self.out;
        out.extend_from_slice(format!("* {} EXISTS\r\n", folder.len()).as_bytes());
        out.extend_from_slice(format!("* {} RECENT\r\n", recent.len()).as_bytes());
        let snapshot = folder.snapshot();
        if let Some(first) =
            (0..folder.len()).find(|&i| snapshot.record(i).flags & flags::bit(b'S') == 0)
        {
            out.extend_from_slice(
                format!("* OK [UNSEEN {}] First unseen.\r\n", first + 1).as_bytes(),
            );
        }
        out.extend_from_slice(
            format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", folder.validity()).as_bytes(),
        );
        out.extend_from_slice(
            format!(
                "* OK [UIDNEXT {}] Predicted next UID\r\n",
                folder.next_uid()
            )
            .as_bytes(),
        );
        let mode = if read_only {
            "[READ-ONLY] Examine"
        } else {
            "[READ-WRITE] Select"
        };
        ok(tag, &format!("{mode} completed."), out);
        self.state = State::Selected(Box::new(Selected {
            folder,
            read_only,
            recent: recent.into_iter().collect(),
            set_here: SetHere::new(),
            keywords,
        }));
    }

    fn list(&mut self, tag: &str, reference: &Mailbox<'_>, pattern: &ListMailbox<'_>, kind: &str) {
        let pattern: Vec<u8> = match pattern {
            ListMailbox::Token(t) => t.as_ref().to_vec(),
            ListMailbox::String(s) => s.as_ref().to_vec(),
        };
        let reference = Self::mailbox_name(reference);
        if pattern.is_empty() {
            // RFC 3501 §6.3.8: the delimiter and the root.
            self.out
                .extend_from_slice(format!("* {kind} (\\Noselect) \".\" \"\"\r\n").as_bytes());
            return ok(tag, &format!("{kind} completed."), &mut self.out);
        }
        let mut full = reference;
        if !full.is_empty() && !full.ends_with(b".") && !pattern.starts_with(b".") {
            full.push(b'.');
        }
        full.extend_from_slice(&pattern);
        let Some(root) = self.root.clone() else {
            return;
        };
        let listed = match mailboxes::list(&root) {
            Ok(listed) => listed,
            Err(_) => {
                return no(
                    tag,
                    "[SERVERBUG] The mailboxes cannot be listed now.",
                    &mut self.out,
                );
            }
        };
        for entry in listed {
            if !mailboxes::matches(&full, entry.name.as_bytes()) {
                continue;
            }
            let mut attributes = Vec::new();
            if !entry.selectable {
                attributes.push("\\Noselect");
            }
            attributes.push(if entry.has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            let mut line = format!("* {kind} ({}) \".\" ", attributes.join(" ")).into_bytes();
            wire::mailbox(&entry.name, &mut line);
            line.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(&line);
        }
        ok(tag, &format!("{kind} completed."), &mut self.out);
    }

    fn status(&mut self, tag: &str, mailbox: &Mailbox<'_>, items: &[StatusDataItemName]) {
        let (folder, _, name) = match self.open(&Self::mailbox_name(mailbox), false) {
            Ok(opened) => opened,
            Err(why) => return no(tag, why, &mut self.out),
        };
        let snapshot = folder.snapshot();
        let mut answers = Vec::new();
        for item in items {
            let answer = match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", folder.len()),
                StatusDataItemName::Recent => {
                    let first = snapshot.header.first_recent;
                    let recent = (0..folder.len())
                        .filter(|&i| snapshot.uid(i) >= first)
                        .count();
                    format!("RECENT {recent}")
                }
                StatusDataItemName::UidNext => format!("UIDNEXT {}", folder.next_uid()),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", folder.validity()),
                StatusDataItemName::Unseen => {
                    let unseen = (0..folder.len())
                        .filter(|&i| snapshot.record(i).flags & flags::bit(b'S') == 0)
                        .count();
                    format!("UNSEEN {unseen}")
                }
                _ => continue,
            };
            answers.push(answer);
        }
        let mut line = b"* STATUS ".to_vec();
        wire::mailbox(&name, &mut line);
        line.extend_from_slice(format!(" ({})\r\n", answers.join(" ")).as_bytes());
        self.out.extend_from_slice(&line);
        ok(tag, "Status completed.", &mut self.out);
    }

    fn fetch(
        &mut self,
        tag: String,
        set: &SequenceSet,
        asked: &imap_codec::imap_types::fetch::MacroOrMessageDataItemNames<'_>,
        uid: bool,
    ) {
        let State::Selected(selected) = &mut self.state else {
            return;
        };
        let Some(indexes) = messages_named(&selected.folder, set, uid) else {
            return bad(&tag, "Invalid message sequence number.", &mut self.out);
        };
        let mut items = fetch::items(asked);
        if uid && !items.contains(&Item::Uid) {
            items.insert(0, Item::Uid);
        }
        if fetch::needs_description(&items) && selected.folder.describe(&indexes).is_err() {
            return no(
                &tag,
                "[SERVERBUG] The mailbox cannot be read now.",
                &mut self.out,
            );
        }
        self.job = Some(FetchJob {
            tag,
            indexes,
            at: 0,
            items,
            gone: false,
        });
    }

    /// Answers the next messages of the FETCH under way, up to a slice.
    fn fetch_slice(&mut self) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        let State::Selected(selected) = &mut self.state else {
            return;
        };
        let reads_file = fetch::reads_file(&job.items);
        let needs_description = fetch::needs_description(&job.items);
        let sets_seen = !selected.read_only
            && job.items.iter().any(|i| {
                matches!(
                    i,
                    Item::Section {
                        sets_seen: true,
                        ..
                    }
                )
            });
        let mut lists: Option<((u32, u32, bool), Vec<u8>)> = None;
        while job.at < job.indexes.len() && self.out.len() < SLICE {
            let index = job.indexes[job.at];
            job.at += 1;
            let folder = &selected.folder;
            if needs_description && !folder.described(index) {
                // Gone before it could be read.
                job.gone = true;
                continue;
            }
            let read = match reads_file {
                true => match folder.message(index) {
                    Ok(bytes) => Some(fetch::Read::new(bytes)),
                    Err(_) => {
                        job.gone = true;
                        continue;
                    }
                },
                false => None,
            };
            let record = folder.snapshot().record(index);
            let (mut flags, mut keywords) = selected.flags(index);
            let mut seen_now = false;
            if sets_seen && flags & flags::bit(b'S') == 0 {
                let add_seen = |flags, keywords| (flags | flags::bit(b'S'), keywords);
                if let Ok(Some(now)) = folder.change_flags(index, add_seen) {
                    (flags, keywords) = now;
                    seen_now = true;
                }
            }
            // Most messages share their flags: their list is made once.
            let key = (flags, keywords, selected.recent.contains(&record.uid));
            if lists.as_ref().is_none_or(|(last, _)| *last != key) {
                lists = Some((key, selected.flag_list(record.uid, flags, keywords)));
            }
            let flag_list = &lists.as_ref().expect("made above").1;
            let start = self.out.len();
            let line = &mut self.out;
            let _ = write!(line, "* {} FETCH (", index + 1);
            let answered = job.items.iter().enumerate().try_for_each(|(n, item)| {
                if n > 0 {
                    line.push(b' ');
                }
                fetch::answer(folder, index, item, flag_list, read.as_ref(), line)
            });
            if answered.is_err() {
                self.out.truncate(start);
                job.gone = true;
                continue;
            }
            if seen_now {
                selected.set_here.insert(record.uid, (flags, keywords));
                // RFC 3501 §6.4.5: the \Seen a fetch set is told with it.
                if !job.items.contains(&Item::Flags) {
                    line.extend_from_slice(b" FLAGS ");
                    line.extend_from_slice(flag_list);
                }
            }
            line.extend_from_slice(b")\r\n");
        }
        if job.at < job.indexes.len() {
            self.job = Some(job);
            return;
        }
        match job.gone {
            true => no(
                &job.tag,
                "[EXPUNGEISSUED] Some of the requested messages no longer exist.",
                &mut self.out,
            ),
            false => ok(&job.tag, "Fetch completed.", &mut self.out),
        }
    }

    /// Removes the selected folder's `\Deleted` messages (as this session
    /// knows their flags), when it may write.
    fn expunge_deleted(&mut self) -> Result<(), &'static str> {
        let State::Selected(selected) = &self.state else {
            return Ok(());
        };
        if selected.read_only {
            return Ok(());
        }
        let deleted: Vec<usize> = (0..selected.folder.len())
            .filter(|&i| selected.flags(i).0 & flags::bit(b'T') != 0)
            .collect();
        selected
            .folder
            .expunge(&deleted)
            .map_err(|_| "[SERVERBUG] The messages cannot be removed now.")
    }

    /// STORE: each message's flags changed from what its file has now,
    /// and, unless .SILENT, told back (RFC 3501 §6.4.6).
    fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: &StoreResponse,
        named: &[Flag<'_>],
        uid: bool,
    ) {
        let State::Selected(selected) = &mut self.state else {
            return;
        };
        if selected.read_only {
            return no(tag, "[READ-ONLY] The mailbox is read-only.", &mut self.out);
        }
        let known = selected.keywords.iter().flatten().count();
        let path = selected.folder.path().to_path_buf();
        let change = match Change::new(kind, named, &path, &mut selected.keywords) {
            Ok(change) => change,
            Err(store::Refused::Bad(why)) => return bad(tag, why, &mut self.out),
            Err(store::Refused::No(why)) => return no(tag, why, &mut self.out),
        };
        if selected.keywords.iter().flatten().count() != known {
            // A new keyword: the client learns it may be used (§7.2.6).
            announce_flags(&selected.keywords, false, &mut self.out);
        }
        let Some(indexes) = messages_named(&selected.folder, set, uid) else {
            return bad(tag, "Invalid message sequence number.", &mut self.out);
        };
        let mut gone = false;
        for index in indexes {
            let record = selected.folder.snapshot().record(index);
            let now = match selected
                .folder
                .change_flags(index, |f, k| change.apply(f, k))
            {
                Ok(Some(now)) => now,
                Ok(None) => {
                    gone = true;
                    continue;
                }
                Err(_) => {
                    return no(
                        tag,
                        "[SERVERBUG] Flags cannot be changed now.",
                        &mut self.out,
                    );
                }
            };
            selected.set_here.insert(record.uid, now);
            if *response == StoreResponse::Answer {
                let list = selected.flag_list(record.uid, now.0, now.1);
                let told_uid = uid.then_some(record.uid);
                flags_fetch_line(index + 1, told_uid, &list, &mut self.out);
            }
        }
        if uid {
            self.report_changes();
        }
        match gone {
            true => no(
                tag,
                "[EXPUNGEISSUED] Some of the messages no longer exist.",
                &mut self.out,
            ),
            false => ok(tag, "Store completed.", &mut self.out),
        }
    }

    fn search(
        &mut self,
        tag: &str,
        charset: Option<&str>,
        keys: &[imap_codec::imap_types::search::SearchKey<'_>],
        uid: bool,
    ) {
        if let Some(charset) = charset
            && !charset.eq_ignore_ascii_case("UTF-8")
            && !charset.eq_ignore_ascii_case("US-ASCII")
        {
            return no(
                tag,
                "[BADCHARSET (US-ASCII UTF-8)] Unknown charset.",
                &mut self.out,
            );
        }
        let State::Selected(selected) = &mut self.state else {
            return;
        };
        if crate::search::needs_description(keys) {
            let all: Vec<usize> = (0..selected.folder.len()).collect();
            if selected.folder.describe(&all).is_err() {
                return no(
                    tag,
                    "[SERVERBUG] The mailbox cannot be read now.",
                    &mut self.out,
                );
            }
        }
        let context = crate::search::Context {
            folder: &selected.folder,
            recent: &selected.recent,
            set_here: &selected.set_here,
            keywords: &selected.keywords,
        };
        let found = crate::search::search(&context, keys);
        let mut line = b"* SEARCH".to_vec();
        for index in found {
            let n = if uid {
                selected.folder.snapshot().uid(index)
            } else {
                index as u32 + 1
            };
            line.extend_from_slice(format!(" {n}").as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&line);
        if uid {
            self.report_changes();
        }
        ok(tag, "Search completed.", &mut self.out);
    }

    /// Tells the client what others changed in the selected mailbox:
    /// EXPUNGE (in the order RFC 3501 §7.4.1 numbers them), EXISTS,
    /// RECENT, and FETCH FLAGS for messages whose flags changed.
    fn report_changes(&mut self) {
        let now = (self.clock)();
        let State::Selected(selected) = &mut self.state else {
            return;
        };
        let Ok(refreshed) = selected.folder.refresh(!selected.read_only, now) else {
            return;
        };
        selected.recent.extend(refreshed.recent);
        let Some(previous) = refreshed.previous else {
            return;
        };
        let current = selected.folder.snapshot();
        let mut kept = 0usize;
        let mut at = 0usize;
        let mut changed_flags = Vec::new();
        for i in 0..previous.len() {
            let uid = previous.uid(i);
            while at < current.len() && current.uid(at) < uid {
                at += 1;
            }
            if at < current.len() && current.uid(at) == uid {
                kept += 1;
                let (mut old, new) = (previous.record(i), current.record(at));
                if let Some((flags, keywords)) = selected.set_here.remove(&uid) {
                    (old.flags, old.keywords) = (flags, keywords);
                }
                if (old.flags, old.keywords) != (new.flags, new.keywords) {
                    changed_flags.push(at);
                }
            } else {
                self.out
                    .extend_from_slice(format!("* {} EXPUNGE\r\n", kept + 1).as_bytes());
            }
        }
        selected.recent.retain(|uid| current.search(*uid).is_ok());
        if current.len() != kept || current.len() != previous.len() {
            self.out
                .extend_from_slice(format!("* {} EXISTS\r\n", current.len()).as_bytes());
            self.out
                .extend_from_slice(format!("* {} RECENT\r\n", selected.recent.len()).as_bytes());
        }
        for at in changed_flags {
            let record = current.record(at);
            let list = selected.flag_list(record.uid, record.flags, record.keywords);
            flags_fetch_line(at + 1, Some(record.uid), &list, &mut self.out);
        }
    }
}
