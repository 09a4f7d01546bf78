//! RFC 6152 §3's downgrade: an 8-bit message for a server without
//! 8BITMIME, made 7-bit by quoted-printable (RFC 2045 §6.7), where that
//! keeps its meaning. A single-part message with 7-bit header fields can
//! be: its body is encoded and its `Content-Transfer-Encoding:` says so. A
//! multipart or `message/*` one would need each part converted, and 8-bit
//! header fields cannot be converted at all (SMTPUTF8's business): those
//! are not downgraded, and the mail fails with 5.6.3 instead.
//!
//! The downgraded bytes differ from the signed ones: a DKIM signature
//! made before does not survive it (as with every MTA that converts).

use crate::header::{field, split};

/// The longest encoded line, before the soft break (RFC 2045: 76).
const MAX_ENCODED: usize = 76;

/// Whether `message` (LF line ends) can be made 7-bit.
pub fn can_downgrade(message: &[u8]) -> bool {
    let (head, _) = split(message);
    if head.iter().any(|&b| b >= 0x80) {
        return false;
    }
    let content_type = field(head, "content-type").unwrap_or_default();
    let kind = content_type.trim_start().to_ascii_lowercase();
    !(kind.starts_with("multipart/") || kind.starts_with("message/"))
}

/// `message` made 7-bit, or `None` when it cannot be.
pub fn to_seven_bit(message: &[u8]) -> Option<Vec<u8>> {
    if !can_downgrade(message) {
        return None;
    }
    let (head, body) = split(message);
    let mut out = Vec::with_capacity(message.len() + message.len() / 8 + 64);
    let text = String::from_utf8_lossy(head);
    let mut skipping = false;
    let mut has_mime_version = false;
    for line in text.split_inclusive('\n') {
        let folded = line.starts_with([' ', '\t']);
        if !folded {
            let name = line.split(':').next().unwrap_or("").trim();
            skipping = name.eq_ignore_ascii_case("content-transfer-encoding");
            has_mime_version |= name.eq_ignore_ascii_case("mime-version");
        }
        if !skipping {
            out.extend_from_slice(line.as_bytes());
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    if !has_mime_version {
        out.extend_from_slice(b"MIME-Version: 1.0\n");
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\n\n");
    encode_body(body, &mut out);
    Some(out)
}

/// Quoted-printable, line by line: each LF a hard break, long lines
/// softly broken, trailing white space and `=` and what is not printable
/// ASCII as `=HH`.
fn encode_body(body: &[u8], out: &mut Vec<u8>) {
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        let mut width = 0;
        for (i, &byte) in line.iter().enumerate() {
            let trailing_space = matches!(byte, b' ' | b'\t') && i + 1 == line.len();
            let plain = (byte == b'\t' || (32..=126).contains(&byte)) && byte != b'=';
            let piece: Vec<u8> = if plain && !trailing_space {
                vec![byte]
            } else {
                format!("={byte:02X}").into_bytes()
            };
            if width + piece.len() > MAX_ENCODED - 1 {
                out.extend_from_slice(b"=\n");
                width = 0;
            }
            out.extend_from_slice(&piece);
            width += piece.len();
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_part_message_becomes_quoted_printable() {
        let message = "Subject: caf\u{e9}s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nCaf\u{e9} = coffee \nplain line\n";
        assert!(!can_downgrade(message.as_bytes()), "8-bit header");
        let message = message.replace("Subject: caf\u{e9}s", "Subject: cafes");
        let out = String::from_utf8(to_seven_bit(message.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            "Subject: cafes\nContent-Type: text/plain; charset=utf-8\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\nCaf=C3=A9 =3D coffee=20\nplain line\n"
        );
        assert!(out.bytes().all(|b| b < 0x80));
    }

    #[test]
    fn long_lines_are_broken_softly_and_multipart_is_left_alone() {
        let message = format!("Subject: x\n\n{}\u{e9}\n", "a".repeat(100));
        let out = String::from_utf8(to_seven_bit(message.as_bytes()).unwrap()).unwrap();
        let body = out.split("\n\n").nth(1).unwrap();
        assert!(body.lines().all(|l| l.len() <= MAX_ENCODED), "{body}");
        assert_eq!(
            body.replace("=\n", ""),
            format!("{}=C3=A9\n", "a".repeat(100))
        );
        let multipart = "Content-Type: multipart/mixed;\n boundary=x\n\n--x\n\u{e9}\n--x--\n";
        assert!(!can_downgrade(multipart.as_bytes()));
        assert!(to_seven_bit(multipart.as_bytes()).is_none());
    }
}
