//! A delivery's outcome as RFC 3463 says it: the class (success,
//! temporary, permanent), the subject and detail that say whose fault it
//! is, and a text for people. Every program that delivers or queues
//! reports through it, so no caller reads a failure's kind out of its
//! words ("No space left").

use std::fmt;
use std::io;

/// RFC 3463 §3.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Success,
    /// Persistent transient failure: the sender's MTA tries again.
    Temporary,
    Permanent,
}

/// Who must act for a failure to go away (RFC 3463 §3.2, subjects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// X.0.X, X.5.X: nothing in the code says.
    Unknown,
    /// X.1.X (but X.1.7, X.1.8) and X.2.X: the recipient's address or
    /// mailbox.
    Recipient,
    /// X.1.7, X.1.8: the sender's address.
    Sender,
    /// X.3.X (but X.3.4) and X.4.X: this host, or the network on the way.
    System,
    /// X.3.4 and X.6.X: the message itself (its size, its content).
    Message,
    /// X.7.X: a security or policy rule.
    Policy,
}

/// An enhanced status code, `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub class: Class,
    pub subject: u16,
    pub detail: u16,
}

impl Code {
    /// `X.0.0`: of `class`, and nothing more said.
    pub fn unspecified(class: Class) -> Code {
        Code {
            class,
            subject: 0,
            detail: 0,
        }
    }

    /// `2.0.0`, `4.3.1`, `5.1.1`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Code> {
        let mut parts = text.split('.');
        let class = match parts.next()? {
            "2" => Class::Success,
            "4" => Class::Temporary,
            "5" => Class::Permanent,
            _ => return None,
        };
        let mut number = || -> Option<u16> {
            let part = parts.next()?;
            let valid =
                !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit());
            valid.then(|| part.parse().ok()).flatten()
        };
        let (subject, detail) = (number()?, number()?);
        parts.next().is_none().then_some(Code {
            class,
            subject,
            detail,
        })
    }

    pub fn fault(self) -> Fault {
        match (self.subject, self.detail) {
            (1, 7 | 8) => Fault::Sender,
            (1 | 2, _) => Fault::Recipient,
            (3, 4) | (6, _) => Fault::Message,
            (3 | 4, _) => Fault::System,
            (7, _) => Fault::Policy,
            _ => Fault::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            Class::Success => 2,
            Class::Temporary => 4,
            Class::Permanent => 5,
        };
        write!(f, "{class}.{}.{}", self.subject, self.detail)
    }
}

/// Whether a write failed for want of space: the disk, or the file
/// system's quota.
pub fn storage_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

impl Class {
    /// The class of an SMTP reply code (2xx, 4xx, 5xx); `None` for 1xx
    /// and 3xx, which are not outcomes.
    pub fn of_reply(code: u16) -> Option<Class> {
        match code / 100 {
            2 => Some(Class::Success),
            4 => Some(Class::Temporary),
            5 => Some(Class::Permanent),
            _ => None,
        }
    }
}

/// An outcome: its code and its text, and the other host's reply when
/// one decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub text: String,
    pub remote: Option<Remote>,
}

/// The SMTP server of another host that decided an outcome, and its
/// reply code: with the status's code and text, its reply as it was
/// given (a report's `Remote-MTA:` and `Diagnostic-Code: smtp;`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The server's host name (an address literal when it had none).
    pub mta: String,
    pub reply: u16,
}

/// 4.3.0, for a code that does not parse: the code is the program's own
/// (a literal), so this is a bug made safe, never a bounce.
const FALLBACK: Code = Code {
    class: Class::Temporary,
    subject: 3,
    detail: 0,
};

impl Status {
    /// `code` as RFC 3463 writes it (`4.2.2`).
    pub fn new(code: &str, text: impl Into<String>) -> Status {
        let parsed = Code::parse(code);
        debug_assert!(parsed.is_some(), "status code {code:?}");
        Status {
            code: parsed.unwrap_or(FALLBACK),
            text: text.into(),
            remote: None,
        }
    }

    /// A status line as records, answers and logs write it, `CODE text`;
    /// a line without a code gets `class`'s `X.0.0`.
    pub fn from_line(line: &str, class: Class) -> Status {
        let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
        match Code::parse(first) {
            Some(code) => Status {
                code,
                text: rest.trim().to_string(),
                remote: None,
            },
            None => Status {
                code: Code::unspecified(class),
                text: line.trim().to_string(),
                remote: None,
            },
        }
    }

    /// The reply `reply` (`550`) of another host's server `mta`.
    pub fn from_remote(code: Code, text: impl Into<String>, mta: &str, reply: u16) -> Status {
        Status {
            code,
            text: text.into(),
            remote: Some(Remote {
                mta: mta.to_string(),
                reply,
            }),
        }
    }

    /// As a record and an answer line hold it: `CODE text`, and for a
    /// remote reply a tab, the server's name, a space and its reply code
    /// (the text holds no tab or line end).
    pub fn record(&self) -> String {
        let text = self.text.replace(['\n', '\r', '\t'], " ");
        match &self.remote {
            Some(remote) => format!("{} {text}\t{} {}", self.code, remote.mta, remote.reply),
            None => format!("{} {text}", self.code),
        }
    }

    /// What `record` wrote; a line without a code gets `class`'s `X.0.0`.
    pub fn from_record(line: &str, class: Class) -> Status {
        let (status, remote) = line.split_once('\t').unwrap_or((line, ""));
        let mut parsed = Status::from_line(status, class);
        parsed.remote = remote.split_once(' ').and_then(|(mta, reply)| {
            let reply = reply
                .trim()
                .parse()
                .ok()
                .filter(|r| (200..600).contains(r))?;
            (!mta.is_empty()).then(|| Remote {
                mta: mta.to_string(),
                reply,
            })
        });
        parsed
    }

    /// The reply as the other host gave it (`550 5.1.1 text`), when one
    /// decided this outcome.
    pub fn smtp_reply(&self) -> Option<String> {
        let remote = self.remote.as_ref()?;
        Some(format!("{} {} {}", remote.reply, self.code, self.text))
    }

    /// For people (mailq, a report's text): `mx.example.org said: 550
    /// 5.1.1 text` for another host's reply, else `CODE text`.
    pub fn said(&self) -> String {
        match (&self.remote, self.smtp_reply()) {
            (Some(remote), Some(reply)) => format!("{} said: {reply}", remote.mta),
            _ => self.to_string(),
        }
    }

    pub fn delivered(text: impl Into<String>) -> Status {
        Status::new("2.0.0", text)
    }

    /// 4.3.0: this host failed, and will try again.
    pub fn temporary(text: impl Into<String>) -> Status {
        Status::new("4.3.0", text)
    }

    /// A file system's refusal while writing mail: 4.3.1 (insufficient
    /// system storage) for a full disk or file-system quota, else 4.3.0.
    pub fn of_write_error(error: &io::Error, text: impl Into<String>) -> Status {
        let code = if storage_full(error) {
            "4.3.1"
        } else {
            "4.3.0"
        };
        Status::new(code, text)
    }

    pub fn class(&self) -> Class {
        self.code.class
    }

    pub fn fault(&self) -> Fault {
        self.code.fault()
    }

    pub fn is_success(&self) -> bool {
        self.code.class == Class::Success
    }

    pub fn is_temporary(&self) -> bool {
        self.code.class == Class::Temporary
    }

    /// Whether it says the disk or quota of this host is full (4.3.1).
    pub fn is_storage_full(&self) -> bool {
        self.code.class == Class::Temporary && (self.code.subject, self.code.detail) == (3, 1)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_and_print_as_written() {
        for text in ["2.0.0", "4.3.1", "5.1.1", "5.7.26", "4.4.7"] {
            assert_eq!(Code::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "", "3.0.0", "5.1", "5.1.1.1", "5.a.1", "5..1", "5.1.1234", "4.3.0 x",
        ] {
            assert_eq!(Code::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_with_and_without_a_code() {
        let coded = Status::from_line("4.2.2 mailbox full", Class::Permanent);
        assert_eq!(coded, Status::new("4.2.2", "mailbox full"));
        let bare = Status::from_line("something broke", Class::Permanent);
        assert_eq!(bare.to_string(), "5.0.0 something broke");
        assert_eq!(
            Status::from_line("", Class::Temporary).to_string(),
            "4.0.0 "
        );
    }

    #[test]
    fn a_remote_reply_survives_its_record() {
        let status = Status::from_remote(
            Code::parse("5.1.1").unwrap(),
            "<bob@x.test>: user\tunknown",
            "mx.x.test",
            550,
        );
        let line = status.record();
        assert_eq!(line, "5.1.1 <bob@x.test>: user unknown\tmx.x.test 550");
        let read = Status::from_record(&line, Class::Temporary);
        assert_eq!(read.remote, status.remote);
        assert_eq!(
            read.smtp_reply().unwrap(),
            "550 5.1.1 <bob@x.test>: user unknown"
        );
        // A local outcome has no remote part; junk after a tab is none.
        let local = Status::new("4.2.2", "mailbox full");
        assert_eq!(
            Status::from_record(&local.record(), Class::Permanent),
            local
        );
        assert_eq!(
            Status::from_record("4.4.1 x\tjunk", Class::Temporary).remote,
            None
        );
    }

    #[test]
    fn the_subject_says_whose_fault() {
        let fault = |text: &str| Code::parse(text).unwrap().fault();
        assert_eq!(fault("5.1.1"), Fault::Recipient);
        assert_eq!(fault("4.2.2"), Fault::Recipient);
        assert_eq!(fault("5.1.7"), Fault::Sender);
        assert_eq!(fault("4.3.1"), Fault::System);
        assert_eq!(fault("4.4.1"), Fault::System);
        assert_eq!(fault("5.3.4"), Fault::Message);
        assert_eq!(fault("5.6.0"), Fault::Message);
        assert_eq!(fault("5.7.1"), Fault::Policy);
        assert_eq!(fault("5.5.2"), Fault::Unknown);
    }

    #[test]
    fn a_full_disk_is_4_3_1_and_other_write_errors_4_3_0() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        let quota = io::Error::from_raw_os_error(libc::EDQUOT);
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert!(Status::of_write_error(&full, "x").is_storage_full());
        assert!(Status::of_write_error(&quota, "x").is_storage_full());
        let other = Status::of_write_error(&denied, "x");
        assert_eq!(other.to_string(), "4.3.0 x");
        assert!(!other.is_storage_full());
        assert_eq!(other.class(), Class::Temporary);
    }
}
