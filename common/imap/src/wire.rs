//! How values go on the wire: quoted strings where they may be, literals
//! for the rest (line ends, NUL, 8-bit bytes, long values), NIL for what
//! is absent.

/// Appends `bytes` as an IMAP string.
pub fn string(bytes: &[u8], out: &mut Vec<u8>) {
    let quotable = bytes.len() <= 1024
        && bytes
            .iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && b < 0x80);
    if quotable {
        out.push(b'"');
        for &byte in bytes {
            if byte == b'"' || byte == b'\\' {
                out.push(b'\\');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        literal(bytes, out);
    }
}

/// Appends `bytes` as a literal, `{n}` CRLF and the bytes.
pub fn literal(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// Appends an nstring: NIL, or the string.
pub fn nstring(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        Some(bytes) => string(bytes, out),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name as LIST and STATUS give it: modified UTF-7 already,
/// quoted (INBOX and atoms too, as Dovecot does, which every client
/// reads).
pub fn mailbox(name: &str, out: &mut Vec<u8>) {
    string(name.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        string(bytes, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn strings_are_quoted_unless_they_cannot_be() {
        assert_eq!(encoded(b"plain"), "\"plain\"");
        assert_eq!(encoded(b"a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(encoded(b"two\r\nlines"), "{10}\r\ntwo\r\nlines");
        assert_eq!(encoded("caf\u{e9}".as_bytes()), "{5}\r\ncaf\u{e9}");
        let mut out = Vec::new();
        nstring(None, &mut out);
        assert_eq!(out, b"NIL");
    }
}
