//! SMTP replies as the session sends them: code, enhanced status, text.

use std::fmt::Write;

/// One SMTP reply: a code, an RFC 3463 enhanced status code (sent because
/// the session offers ENHANCEDSTATUSCODES), and one or more lines of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<String>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status.to_string()).filter(|s| !s.is_empty()),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (the greeting and EHLO
    /// carry none, RFC 2034 §4).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The reply on the wire: `250-...` for every line but the last. A
    /// line never carries a bare CR or LF, whatever the text held.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            let clean: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = match &self.status {
                Some(status) => write!(text, "{}{separator}{status} {clean}\r\n", self.code),
                None => write!(text, "{}{separator}{clean}\r\n", self.code),
            };
        }
        if self.lines.is_empty() {
            let _ = write!(text, "{}\r\n", self.code);
        }
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_and_clean_text() {
        let mut out = Vec::new();
        Reply::plain(250, vec!["mx.test".into(), "SIZE 10".into()]).encode(&mut out);
        Reply::new(550, "5.1.1", "no such user\r\nhere").encode(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "250-mx.test\r\n250 SIZE 10\r\n550 5.1.1 no such userhere\r\n"
        );
    }
}
