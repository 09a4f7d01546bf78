//! One message to deliver: its envelope for this destination, and where
//! its bytes are — a queue file lspawn opened (read from the message's
//! offset when its turn comes, so a batch holds one message in memory at
//! a time) or, from the command line, standard input.

use std::fs::File;
use std::os::unix::fs::FileExt;

use postern_queue_format::Status;
use postern_smtp_client::{Message, Recipient};

use crate::requests::Request;

/// The most a message may be: far above any `max_message_size`, so a
/// queue file that is not what it claims cannot take all memory.
const MAX_MESSAGE: u64 = 1 << 31;

pub enum Body {
    /// A queue file, from an offset.
    Queued {
        file: Option<File>,
        offset: u64,
    },
    Bytes(Vec<u8>),
}

pub struct Job {
    pub id: String,
    pub arrival: u64,
    pub sender: String,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub recipients: Vec<Recipient>,
    /// Each recipient's index in the queue file.
    pub indices: Vec<usize>,
    pub body: Body,
}

impl Job {
    /// A batch request's job, with its queue file when lspawn opened it.
    pub fn from_request(request: Request, file: Option<File>) -> Job {
        Job {
            id: request.id,
            arrival: request.arrival,
            sender: request.sender,
            ret: request.ret,
            envid: request.envid,
            indices: request.recipients.iter().map(|r| r.index).collect(),
            recipients: request
                .recipients
                .into_iter()
                .map(|r| Recipient {
                    address: r.address,
                    notify: r.notify,
                    orcpt: r.orcpt.map(|o| xtext(&o)),
                })
                .collect(),
            body: Body::Queued {
                file,
                offset: request.offset,
            },
        }
    }

    pub fn recipients(&self) -> usize {
        self.recipients.len()
    }

    /// The message's bytes, as queued (LF line ends).
    pub fn body(&self) -> Result<Vec<u8>, Status> {
        match &self.body {
            Body::Bytes(bytes) => Ok(bytes.clone()),
            Body::Queued { file: None, .. } => Err(Status::temporary(
                "postern-lspawn could not open the queue file",
            )),
            Body::Queued {
                file: Some(file),
                offset,
            } => read_from(file, *offset)
                .map_err(|e| Status::temporary(format!("read the queue file: {e}"))),
        }
    }

    /// The client core's message for the recipients at `positions`.
    pub fn message(&self, positions: &[usize], body: &[u8]) -> Message {
        let recipients: Vec<Recipient> = positions
            .iter()
            .map(|&p| self.recipients[p].clone())
            .collect();
        let eight_bit = body.iter().any(|&b| b >= 0x80);
        Message {
            needs_smtputf8: !self.sender.is_ascii()
                || recipients.iter().any(|r| !r.address.is_ascii()),
            sender: self.sender.clone(),
            recipients,
            size: postern_maildir::crlf_len(body),
            eight_bit,
            downgradable: eight_bit && postern_smtp_client::downgrade::can_downgrade(body),
            ret: self.ret.clone(),
            envid: self.envid.as_deref().map(xtext),
        }
    }
}

fn read_from(file: &File, offset: u64) -> std::io::Result<Vec<u8>> {
    let length = file.metadata()?.len();
    if length.saturating_sub(offset) > MAX_MESSAGE {
        return Err(std::io::Error::other("the message is too large"));
    }
    let mut bytes = vec![0; length.saturating_sub(offset) as usize];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(bytes)
}

/// RFC 3461 §4: xtext, for ORCPT and ENVID on the wire: `+`, `=`, and
/// what is not printable ASCII as `+HH`.
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (33..=126).contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_what_rfc_3461_asks() {
        assert_eq!(xtext("rfc822;bob@b.test"), "rfc822;bob@b.test");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn a_queue_file_is_read_from_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        std::fs::write(&path, b"envelope\n\nSubject: x\n\nbody\n").unwrap();
        let job = Job {
            body: Body::Queued {
                file: Some(File::open(&path).unwrap()),
                offset: 10,
            },
            ..cli_job()
        };
        assert_eq!(job.body().unwrap(), b"Subject: x\n\nbody\n");
        let closed = Job {
            body: Body::Queued {
                file: None,
                offset: 0,
            },
            ..cli_job()
        };
        assert!(closed.body().unwrap_err().is_temporary());
    }

    fn cli_job() -> Job {
        Job {
            id: "-".into(),
            arrival: 0,
            sender: "a@a.test".into(),
            ret: None,
            envid: None,
            recipients: vec![Recipient {
                address: "b@b.test".into(),
                ..Recipient::default()
            }],
            indices: vec![0],
            body: Body::Bytes(Vec::new()),
        }
    }

    #[test]
    fn the_message_says_what_the_server_must_offer() {
        let job = cli_job();
        let message = job.message(&[0], "Subject: é\n\nx\n".as_bytes());
        assert!(message.eight_bit);
        assert!(!message.needs_smtputf8);
        assert_eq!(message.size, 18);
    }
}
