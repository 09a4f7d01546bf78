//! A message as RETR and TOP send it (RFC 1939 §3): every line end CRLF,
//! a line starting with `.` stuffed with another, and `.` CRLF after the
//! last line; TOP stops after the header and n lines of the body. Fed in
//! pieces, so a large message never sits whole in memory.

/// The `+OK` line before a message of `size` octets (as LIST counts).
pub fn retrieve_header(size: u64) -> Vec<u8> {
    format!("+OK {size} octets\r\n").into_bytes()
}

pub struct Encoder {
    /// Body lines still to send for TOP; `None` for RETR.
    lines_left: Option<usize>,
    in_body: bool,
    at_line_start: bool,
    /// A CR whose LF may come in the next piece.
    pending_cr: bool,
    done: bool,
}

impl Encoder {
    /// For RETR (`None`) or TOP with `body_lines`.
    pub fn new(body_lines: Option<usize>) -> Encoder {
        Encoder {
            lines_left: body_lines,
            in_body: false,
            at_line_start: true,
            pending_cr: false,
            done: false,
        }
    }

    /// Whether TOP has sent all it should: the rest need not be read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &byte in data {
            if self.done {
                return;
            }
            if self.pending_cr {
                self.pending_cr = false;
                if byte == b'\n' {
                    self.end_line(out);
                    continue;
                }
                // A CR on its own is kept as text.
                self.text(b'\r', out);
            }
            match byte {
                b'\r' => self.pending_cr = true,
                b'\n' => self.end_line(out),
                _ => self.text(byte, out),
            }
        }
    }

    /// Ends the message: a last line without its line end gets one, then
    /// the terminating `.`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.pending_cr && !self.done {
            self.text(b'\r', out);
        }
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }

    fn text(&mut self, byte: u8, out: &mut Vec<u8>) {
        if self.at_line_start && byte == b'.' {
            out.push(b'.');
        }
        self.at_line_start = false;
        out.push(byte);
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        let empty = self.at_line_start;
        out.extend_from_slice(b"\r\n");
        self.at_line_start = true;
        if self.in_body {
            if let Some(left) = self.lines_left.as_mut() {
                *left = left.saturating_sub(1);
                self.done = *left == 0;
            }
        } else if empty {
            // The empty line that ends the header.
            self.in_body = true;
            self.done = self.lines_left == Some(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(message: &[u8], lines: Option<usize>, piece: usize) -> String {
        let mut encoder = Encoder::new(lines);
        let mut out = Vec::new();
        for chunk in message.chunks(piece) {
            encoder.feed(chunk, &mut out);
        }
        encoder.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn line_ends_stuffing_and_top() {
        let message = b"Subject: x\n.hidden: y\n\n.one\r\ntwo\n..three\nfour";
        for piece in [1, 2, 3, 100] {
            assert_eq!(
                encode(message, None, piece),
                "Subject: x\r\n..hidden: y\r\n\r\n..one\r\ntwo\r\n...three\r\nfour\r\n.\r\n"
            );
            assert_eq!(
                encode(message, Some(0), piece),
                "Subject: x\r\n..hidden: y\r\n\r\n.\r\n"
            );
            assert_eq!(
                encode(message, Some(2), piece),
                "Subject: x\r\n..hidden: y\r\n\r\n..one\r\ntwo\r\n.\r\n"
            );
            assert_eq!(
                encode(message, Some(99), piece),
                encode(message, None, piece)
            );
        }
        // A lone CR stays text; an empty message is just the end.
        assert_eq!(encode(b"a\rb\n", None, 1), "a\rb\r\n.\r\n");
        assert_eq!(encode(b"", None, 1), ".\r\n");
        assert_eq!(encode(b"x\r", None, 1), "x\r\r\n.\r\n");
    }
}
