//! The message on the wire after DATA: every line ended by CRLF (the
//! queue keeps LF), a leading dot doubled (RFC 5321 §4.5.2), and the
//! final `.` line; fed in pieces of any size. Or, with CHUNKING (RFC
//! 3030), one BDAT chunk: the byte count first, CRLF line ends, no dot.

#[derive(Default)]
pub struct DataEncoder {
    /// At the start of a line (true before the first byte).
    started_line: bool,
    /// The last byte fed was a CR not yet known to start a CRLF.
    pending_cr: bool,
    fed_any: bool,
}

impl DataEncoder {
    pub fn new() -> DataEncoder {
        DataEncoder {
            started_line: true,
            pending_cr: false,
            fed_any: false,
        }
    }

    /// Appends `bytes`, encoded, to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        out.reserve(bytes.len() + bytes.len() / 32);
        for &byte in bytes {
            self.fed_any = true;
            if self.pending_cr {
                self.pending_cr = false;
                if byte == b'\n' {
                    out.extend_from_slice(b"\r\n");
                    self.started_line = true;
                    continue;
                }
                // A bare CR ends a line too: SMTP has no other meaning
                // for it, and a lone CR must not reach the wire.
                out.extend_from_slice(b"\r\n");
                self.started_line = true;
            }
            match byte {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.started_line = true;
                }
                _ => {
                    if self.started_line && byte == b'.' {
                        out.push(b'.');
                    }
                    out.push(byte);
                    self.started_line = false;
                }
            }
        }
    }

    /// Ends the data: the last line closed if it was not, then `.`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || (self.fed_any && !self.started_line) {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.started_line = true;
        out.extend_from_slice(b".\r\n");
    }
}

/// `BDAT <n> LAST`, then the message with CRLF line ends (a bare CR or
/// LF made CRLF, as after DATA) and nothing else: BDAT needs no dots.
pub fn bdat_chunk(message: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + message.len() / 32);
    let mut bytes = message.iter().peekable();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\r' => {
                if bytes.peek() == Some(&&b'\n') {
                    bytes.next();
                }
                body.extend_from_slice(b"\r\n");
            }
            b'\n' => body.extend_from_slice(b"\r\n"),
            _ => body.push(byte),
        }
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    let mut out = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bdat_chunk_counts_its_crlf_bytes_and_stuffs_no_dots() {
        assert_eq!(
            bdat_chunk(b"Subject: x\n\n.dot\nlast"),
            b"BDAT 26 LAST\r\nSubject: x\r\n\r\n.dot\r\nlast\r\n".to_vec()
        );
    }

    fn encode(pieces: &[&[u8]]) -> Vec<u8> {
        let mut encoder = DataEncoder::new();
        let mut out = Vec::new();
        for piece in pieces {
            encoder.feed(piece, &mut out);
        }
        encoder.finish(&mut out);
        out
    }

    #[test]
    fn line_ends_dots_and_the_end() {
        assert_eq!(
            encode(&[b"Subject: x\n\n.hidden\n..two\nlast"]),
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nlast\r\n.\r\n"
        );
        assert_eq!(encode(&[b"a\r\nb\r\n"]), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode(&[]), b".\r\n");
        assert_eq!(encode(&[b"."]), b"..\r\n.\r\n");
        assert_eq!(encode(&[b"bare\rcr\n"]), b"bare\r\ncr\r\n.\r\n");
    }

    #[test]
    fn pieces_split_anywhere_encode_the_same() {
        let whole = b"a\r\n.b\n\r\n.\nend\r".to_vec();
        let expected = encode(&[&whole]);
        for cut in 0..whole.len() {
            assert_eq!(
                encode(&[&whole[..cut], &whole[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(encode(&bytes), expected);
    }
}
