use std::fmt::Write;

/// One recipient as the envelope keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
}

/// What the queue knows of a message besides its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Seconds since the epoch when the message was accepted.
    pub arrival: u64,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
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
        for recipient in &self.recipients {
            let _ = writeln!(out, "rcpt {}", clean(&recipient.address)?);
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
        let mut envelope = Envelope {
            arrival: 0,
            sender: String::new(),
            recipients: Vec::new(),
        };
        for (index, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let number = index + 2;
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "arrival" => {
                    envelope.arrival = value.parse().map_err(|_| {
                        EnvelopeError::Line(number, format!("arrival {value:?} is not a number"))
                    })?
                }
                "sender" => envelope.sender = value.to_string(),
                "rcpt" => envelope.recipients.push(Recipient {
                    address: value.to_string(),
                }),
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
                Recipient {
                    address: "bob@example.test".into(),
                },
                Recipient {
                    address: "carol@example.test".into(),
                },
            ],
        };
        let mut file = envelope.encode().unwrap().into_bytes();
        let header_length = file.len();
        file.extend_from_slice(b"Subject: x\n\nbody\n");
        let (decoded, offset) = Envelope::decode(&file).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(offset, header_length);
        assert_eq!(&file[offset..], b"Subject: x\n\nbody\n");
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
        let bad = Envelope {
            arrival: 1,
            sender: "a\nrcpt evil@x".into(),
            recipients: vec![],
        };
        assert!(matches!(bad.encode(), Err(EnvelopeError::BadValue(_))));
    }
}
