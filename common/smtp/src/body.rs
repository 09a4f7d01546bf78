//! A message body on its way in, by DATA (dot-stuffed, ends at CRLF . CRLF)
//! or by BDAT chunks (counted octets): made LF-only, as the queue keeps
//! messages, and counted against the size limit.

use smtp_proto::request::receiver::DataReceiver;

/// What one transaction's body has received so far; it spans every BDAT
/// chunk of the transaction.
pub(crate) struct Body {
    /// Octets received, as the client sent them (CRLF counted as two).
    pub size: u64,
    /// 0: no limit.
    limit: u64,
    pub too_big: bool,
    /// A CR ended the last piece: whether it starts a CRLF is not known yet.
    pending_cr: bool,
}

/// How the current piece of the body is framed.
pub(crate) enum Framing {
    Data(Box<DataReceiver>),
    Chunk { left: usize, last: bool },
}

impl Framing {
    pub fn data() -> Framing {
        let mut receiver = DataReceiver::new();
        // The receiver recognises "." only after a CRLF it has seen: the
        // DATA line's own CRLF comes first, so a message may be empty and
        // its first line may be dot-stuffed.
        let mut primed = Vec::new();
        receiver.ingest(&mut b"\r\n".iter(), &mut primed);
        Framing::Data(Box::new(receiver))
    }

    /// Whether this piece ends the message.
    pub fn is_last(&self) -> bool {
        match self {
            Framing::Data(_) => true,
            Framing::Chunk { last, .. } => *last,
        }
    }
}

impl Body {
    pub fn new(limit: u64) -> Body {
        Body {
            size: 0,
            limit,
            too_big: false,
            pending_cr: false,
        }
    }

    /// Takes what belongs to the body from the front of `input`. Returns
    /// the data to store (LF line ends; empty once over the limit) and
    /// whether the piece is complete.
    pub fn take(&mut self, framing: &mut Framing, input: &mut Vec<u8>) -> (Vec<u8>, bool) {
        let mut raw = Vec::new();
        let consumed;
        let done = match framing {
            Framing::Data(receiver) => {
                let mut bytes = input.iter();
                let done = receiver.ingest(&mut bytes, &mut raw);
                consumed = input.len() - bytes.as_slice().len();
                done
            }
            Framing::Chunk { left, .. } => {
                let n = (*left).min(input.len());
                raw.extend_from_slice(&input[..n]);
                *left -= n;
                consumed = n;
                *left == 0
            }
        };
        input.drain(..consumed);
        self.size += raw.len() as u64;
        if self.limit > 0 && self.size > self.limit {
            self.too_big = true;
        }
        if self.too_big {
            return (Vec::new(), done);
        }
        let mut out = self.lf_only(&raw);
        if done && framing.is_last() && std::mem::take(&mut self.pending_cr) {
            // In DATA the CR held back is the terminator's, which the
            // receiver takes back when its LF comes in a later read; at
            // the end of the last chunk it is the message's own.
            if matches!(framing, Framing::Chunk { .. }) {
                out.push(b'\r');
            }
        }
        (out, done)
    }

    /// CRLF → LF; a lone CR or LF stays as it is.
    fn lf_only(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(raw.len() + 1);
        for &byte in raw {
            if std::mem::take(&mut self.pending_cr) && byte != b'\n' {
                out.push(b'\r');
            }
            if byte == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(byte);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pieces: &[&[u8]], limit: u64) -> (Vec<u8>, bool, Vec<u8>) {
        let mut body = Body::new(limit);
        let mut framing = Framing::data();
        let mut out = Vec::new();
        let mut input = Vec::new();
        for piece in pieces {
            input.extend_from_slice(piece);
            let (bytes, done) = body.take(&mut framing, &mut input);
            out.extend(bytes);
            if done {
                return (out, body.too_big, input);
            }
        }
        panic!("no end of data in {pieces:?}");
    }

    #[test]
    fn data_ends_only_at_crlf_dot_crlf_and_is_unstuffed() {
        let (out, big, rest) = data(&[b"a\r\n..b\r\n", b"c\n.\r\nd\r", b"\n.\r\nQUIT\r\n"], 0);
        assert_eq!(out, b"a\n.b\nc\n.\nd\n");
        assert!(!big);
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn an_empty_message_and_a_stuffed_first_line() {
        assert_eq!(data(&[b".\r\n"], 0).0, b"");
        assert_eq!(data(&[b"..x\r\n.\r\n"], 0).0, b".x\n");
    }

    #[test]
    fn a_dot_split_across_reads() {
        let (out, _, _) = data(&[b"x\r", b"\n", b".", b"\r", b"\n"], 0);
        assert_eq!(out, b"x\n");
    }

    #[test]
    fn over_the_limit_stores_nothing_more_but_reads_to_the_end() {
        let (out, big, rest) = data(&[b"0123456789\r\n", b"0123456789\r\n.\r\nNOOP\r\n"], 15);
        assert!(big);
        assert_eq!(out, b"0123456789\n");
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn chunks_count_octets_and_keep_a_cr_across_them() {
        let mut body = Body::new(0);
        let mut input = b"ab\r".to_vec();
        let mut first = Framing::Chunk {
            left: 3,
            last: false,
        };
        let (out, done) = body.take(&mut first, &mut input);
        assert_eq!((out.as_slice(), done), (b"ab".as_slice(), true));
        let mut input = b"\ncd\rNOOP".to_vec();
        let mut last = Framing::Chunk {
            left: 4,
            last: true,
        };
        let (out, done) = body.take(&mut last, &mut input);
        assert_eq!((out.as_slice(), done), (b"\ncd\r".as_slice(), true));
        assert_eq!(input, b"NOOP");
        assert_eq!(body.size, 7);
    }
}
