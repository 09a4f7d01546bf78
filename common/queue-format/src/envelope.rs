//! The queue file's envelope (docs/QUEUE.md): `key value` lines before
//! the message, with DSN's requests; encoded and decoded here only.

use std::fmt::Write;

/// DSN's NOTIFY (RFC 3461 §4.1) for one recipient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// `NEVER`, or a comma-separated list of SUCCESS, FAILURE and DELAY
    /// (any case, as `sendmail -N` and SMTP give it).
    pub fn parse(text: &str) -> Option<Notify> {
        let mut notify = Notify::default();
        for word in text.split(',').map(str::trim) {
            match word.to_ascii_uppercase().as_str() {
                "NEVER" if !text.contains(',') => return Some(notify),
                "SUCCESS" => notify.success = true,
                "FAILURE" => notify.failure = true,
                "DELAY" => notify.delay = true,
                _ => return None,
            }
        }
        Some(notify)
    }

    pub fn is_never(&self) -> bool {
        !self.success && !self.failure && !self.delay
    }
}

impl std::fmt::Display for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let words: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, word)| word)
        .collect();
        f.write_str(&words.join(","))
    }
}

/// One recipient as the envelope keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    /// `None`: the sender asked nothing (failures are reported, and delays
    /// when `delay_warning` is on).
    pub notify: Option<Notify>,
    /// DSN's ORCPT: the original address (of type rfc822), decoded.
    pub orcpt: Option<String>,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            ..Recipient::default()
        }
    }
}

/// The kinds of delivery status report: what the queue manager asks
/// `postern-bounce` for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    Failure,
    Delay,
    Success,
    /// To postmaster: a report that could not be delivered.
    Postmaster,
}

impl ReportKind {
    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Failure => "failure",
            ReportKind::Delay => "delay",
            ReportKind::Success => "success",
            ReportKind::Postmaster => "postmaster",
        }
    }

    pub fn parse(text: &str) -> Option<ReportKind> {
        [
            ReportKind::Failure,
            ReportKind::Delay,
            ReportKind::Success,
            ReportKind::Postmaster,
        ]
        .into_iter()
        .find(|kind| kind.name() == text)
    }
}

/// What a failure report returns of the message (DSN's RET).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

/// A message Postern made itself, which its own failure must not bounce
/// back in a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// A delivery status report to a sender.
    Dsn,
    /// The notice to postmaster that a report could not be delivered.
    Postmaster,
}

/// What the queue knows of a message besides its data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Seconds since the epoch when the message was accepted.
    pub arrival: u64,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    /// DSN's ENVID, as given (xtext).
    pub envid: Option<String>,
    pub report: Option<Report>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a Postern queue file")]
    NotAQueueFile,
    #[error("the envelope has no end")]
    Unterminated,
    #[error("line {0}: {1}")]
    Line(usize, String),
    #[error("{0:?} cannot go into an envelope: it holds a control character")]
    BadValue(String),
}

const MAGIC: &str = "POSTERN-QUEUE 1";

impl Envelope {
    /// The envelope's text, ending with the blank line before the data.
    pub fn encode(&self) -> Result<String, EnvelopeError> {
        let mut out = String::new();
        let _ = writeln!(out, "{MAGIC}");
        let _ = writeln!(out, "arrival {}", self.arrival);
        let _ = writeln!(out, "sender {}", clean(&self.sender)?);
        match self.ret {
            Some(Ret::Full) => out.push_str("ret FULL\n"),
            Some(Ret::Headers) => out.push_str("ret HDRS\n"),
            None => {}
        }
        if let Some(envid) = &self.envid {
            let _ = writeln!(out, "envid {}", clean(envid)?);
        }
        match self.report {
            Some(Report::Dsn) => out.push_str("report dsn\n"),
            Some(Report::Postmaster) => out.push_str("report postmaster\n"),
            None => {}
        }
        for recipient in &self.recipients {
            let _ = writeln!(out, "rcpt {}", clean(&recipient.address)?);
            // Recipient parameters follow their recipient's line.
            if let Some(notify) = recipient.notify {
                let _ = writeln!(out, "notify {notify}");
            }
            if let Some(orcpt) = &recipient.orcpt {
                let _ = writeln!(out, "orcpt {}", clean(orcpt)?);
            }
        }
        out.push('\n');
        Ok(out)
    }

    /// Reads the envelope at the start of `bytes`; returns it with the
    /// offset where the data begins.
    pub fn decode(bytes: &[u8]) -> Result<(Envelope, usize), EnvelopeError> {
        let end = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or(EnvelopeError::Unterminated)?
            + 2;
        let text = std::str::from_utf8(&bytes[..end])
            .map_err(|_| EnvelopeError::Line(0, "not UTF-8".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(EnvelopeError::NotAQueueFile);
        }
        let mut envelope = Envelope::default();
        for (index, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let number = index + 2;
            let bad = |what: &str| EnvelopeError::Line(number, what.to_string());
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "arrival" => {
                    envelope.arrival = value
                        .parse()
                        .map_err(|_| bad(&format!("arrival {value:?} is not a number")))?
                }
                "sender" => envelope.sender = value.to_string(),
                "rcpt" => envelope.recipients.push(Recipient::new(value)),
                "ret" => {
                    envelope.ret = match value {
                        "FULL" => Some(Ret::Full),
                        "HDRS" => Some(Ret::Headers),
                        _ => return Err(bad(&format!("ret {value:?}"))),
                    }
                }
                "envid" => envelope.envid = Some(value.to_string()),
                "report" => {
                    envelope.report = match value {
                        "dsn" => Some(Report::Dsn),
                        "postmaster" => Some(Report::Postmaster),
                        _ => return Err(bad(&format!("report {value:?}"))),
                    }
                }
                "notify" | "orcpt" => {
                    let recipient = envelope
                        .recipients
                        .last_mut()
                        .ok_or_else(|| bad(&format!("{key} before any rcpt")))?;
                    if key == "notify" {
                        recipient.notify = Some(
                            Notify::parse(value)
                                .ok_or_else(|| bad(&format!("notify {value:?}")))?,
                        );
                    } else {
                        recipient.orcpt = Some(value.to_string());
                    }
                }
                // Later versions may add keys; this one has no use for them.
                _ => {}
            }
        }
        Ok((envelope, end))
    }
}

fn clean(value: &str) -> Result<&str, EnvelopeError> {
    if value.chars().any(char::is_control) {
        return Err(EnvelopeError::BadValue(value.to_string()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offset() {
        let envelope = Envelope {
            arrival: 1795499282,
            sender: String::new(),
            recipients: vec![
                Recipient::new("bob@example.test"),
                Recipient {
                    address: "carol@example.test".into(),
                    notify: Notify::parse("success,Delay"),
                    orcpt: Some("rfc822;carol@example.org".into()),
                },
                Recipient {
                    address: "dave@example.test".into(),
                    notify: Notify::parse("NEVER"),
                    orcpt: None,
                },
            ],
            ret: Some(Ret::Headers),
            envid: Some("QQ314159".into()),
            report: Some(Report::Dsn),
        };
        let mut file = envelope.encode().unwrap().into_bytes();
        let header_length = file.len();
        file.extend_from_slice(b"Subject: x\n\nbody\n");
        let (decoded, offset) = Envelope::decode(&file).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(offset, header_length);
        assert_eq!(&file[offset..], b"Subject: x\n\nbody\n");
        assert!(decoded.recipients[2].notify.unwrap().is_never());
    }

    #[test]
    fn notify_words() {
        assert_eq!(Notify::parse("never").map(|n| n.is_never()), Some(true));
        assert_eq!(Notify::parse("NEVER,SUCCESS"), None);
        assert_eq!(Notify::parse("sometimes"), None);
        assert_eq!(
            Notify::parse("failure,success").unwrap().to_string(),
            "SUCCESS,FAILURE"
        );
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        assert_eq!(
            Envelope::decode(b"From x\n\n"),
            Err(EnvelopeError::NotAQueueFile)
        );
        assert_eq!(
            Envelope::decode(b"POSTERN-QUEUE 1\nsender a\n"),
            Err(EnvelopeError::Unterminated)
        );
        assert!(matches!(
            Envelope::decode(b"POSTERN-QUEUE 1\narrival soon\n\n"),
            Err(EnvelopeError::Line(2, _))
        ));
        assert!(matches!(
            Envelope::decode(b"POSTERN-QUEUE 1\nnotify NEVER\nrcpt a@b\n\n"),
            Err(EnvelopeError::Line(2, _))
        ));
        let bad = Envelope {
            arrival: 1,
            sender: "a\nrcpt evil@x".into(),
            ..Envelope::default()
        };
        assert!(matches!(bad.encode(), Err(EnvelopeError::BadValue(_))));
    }
}
