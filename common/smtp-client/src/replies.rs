//! Reading the server's replies: lines ended by CRLF (a bare LF is taken
//! too), `250-` continued and `250 ` ended, one code throughout, and an
//! RFC 3463 status after the code where the server sends one.

use postern_queue_format::status::{Class, Code};
use postern_smtp::Reply;

/// The longest reply line taken, CRLF included. RFC 5321 §4.5.3.1.5 says
/// 512; servers send longer texts, and a bound is all that matters.
pub const MAX_LINE: usize = 4096;
/// The most lines one reply may have (an EHLO reply has a dozen).
pub const MAX_LINES: usize = 200;

/// Why the server's bytes are not a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    TooLong,
    TooManyLines,
    /// Not `DDD`, `DDD-` or `DDD text` with one code throughout.
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::TooLong => write!(f, "a reply line longer than {MAX_LINE} octets"),
            ReplyError::TooManyLines => write!(f, "a reply of more than {MAX_LINES} lines"),
            ReplyError::Malformed(line) => write!(f, "a malformed reply line: {line:?}"),
        }
    }
}

/// Collects bytes into replies.
#[derive(Default)]
pub struct ReplyReader {
    pending: Vec<u8>,
    /// The lines of the reply being read: its code, and its texts.
    lines: Vec<String>,
    code: Option<u16>,
}

impl ReplyReader {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next whole reply, if the bytes so far hold one. After an
    /// error what was read is dropped: the server's words can no longer
    /// be trusted to line up with the commands.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ReplyError>> {
        let next = self.read();
        if let Some(Err(_)) = next {
            *self = ReplyReader::default();
        }
        next
    }

    fn read(&mut self) -> Option<Result<Reply, ReplyError>> {
        loop {
            let Some(end) = self.pending.iter().position(|&b| b == b'\n') else {
                if self.pending.len() > MAX_LINE {
                    return Some(Err(ReplyError::TooLong));
                }
                return None;
            };
            if end + 1 > MAX_LINE {
                return Some(Err(ReplyError::TooLong));
            }
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..end])
                .trim_end_matches('\r')
                .to_string();
            match self.line(&line) {
                Err(e) => return Some(Err(e)),
                Ok(Some(reply)) => return Some(Ok(reply)),
                Ok(None) => continue,
            }
        }
    }

    /// One line; the reply when it was the last.
    fn line(&mut self, line: &str) -> Result<Option<Reply>, ReplyError> {
        let bytes = line.as_bytes();
        let malformed = || ReplyError::Malformed(line.chars().take(80).collect());
        if bytes.len() < 3
            || !(b'2'..=b'5').contains(&bytes[0])
            || !bytes[1].is_ascii_digit()
            || !bytes[2].is_ascii_digit()
        {
            return Err(malformed());
        }
        let code: u16 = line[..3].parse().map_err(|_| malformed())?;
        if self.code.is_some_and(|c| c != code) {
            return Err(malformed());
        }
        let (last, text) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(malformed()),
        };
        if self.lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.code = Some(code);
        self.lines.push(text.to_string());
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(with_status(code, lines)))
    }
}

/// The reply, its RFC 3463 status taken off the front of every line when
/// the first line starts with one of its class.
fn with_status(code: u16, mut lines: Vec<String>) -> Reply {
    let first = lines.first().map(String::as_str).unwrap_or("");
    let word = first.split(' ').next().unwrap_or("");
    let status = Code::parse(word).filter(|c| Class::of_reply(code) == Some(c.class));
    let Some(status) = status else {
        return Reply::plain(code, lines);
    };
    let status = status.to_string();
    for line in &mut lines {
        if let Some(rest) = line.strip_prefix(&status) {
            *line = rest.trim_start().to_string();
        }
    }
    Reply {
        code,
        status: Some(status),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(bytes: &[u8]) -> Vec<Result<Reply, ReplyError>> {
        let mut reader = ReplyReader::default();
        reader.feed(bytes);
        std::iter::from_fn(|| reader.next_reply()).collect()
    }

    #[test]
    fn single_multi_line_and_status_codes() {
        let got = replies(b"220 mx.example ESMTP\r\n250-mx.example\r\n250-SIZE 100\r\n250 8BITMIME\r\n550 5.1.1 <x@y>: no such user\r\n354\n");
        assert_eq!(
            got[0],
            Ok(Reply::plain(220, vec!["mx.example ESMTP".into()]))
        );
        assert_eq!(
            got[1],
            Ok(Reply::plain(
                250,
                vec!["mx.example".into(), "SIZE 100".into(), "8BITMIME".into()]
            ))
        );
        assert_eq!(got[2], Ok(Reply::new(550, "5.1.1", "<x@y>: no such user")));
        assert_eq!(got[3], Ok(Reply::plain(354, vec!["".into()])));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_reply_split_across_reads_waits_for_its_end() {
        let mut reader = ReplyReader::default();
        reader.feed(b"250-one\r\n25");
        assert_eq!(reader.next_reply(), None);
        reader.feed(b"0 two\r");
        assert_eq!(reader.next_reply(), None);
        reader.feed(b"\n");
        assert_eq!(
            reader.next_reply(),
            Some(Ok(Reply::plain(250, vec!["one".into(), "two".into()])))
        );
    }

    #[test]
    fn junk_long_lines_and_endless_replies_are_errors() {
        assert!(matches!(
            replies(b"hello\r\n")[0],
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            replies(b"250-a\r\n251 b\r\n")[0],
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            replies(b"2500 x\r\n")[0],
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            replies(b"150 x\r\n")[0],
            Err(ReplyError::Malformed(_))
        ));
        let long = vec![b'2'; MAX_LINE + 10];
        assert_eq!(replies(&long)[0], Err(ReplyError::TooLong));
        let endless = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(replies(&endless)[0], Err(ReplyError::TooManyLines));
        // A status of another class is text.
        let mixed = replies(b"250 5.0.0 odd\r\n");
        assert_eq!(mixed[0], Ok(Reply::plain(250, vec!["5.0.0 odd".into()])));
    }
}
