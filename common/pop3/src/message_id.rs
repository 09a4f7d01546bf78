//! Finding the `Message-ID:` fields that hold no valid msg-id (RFC 5322
//! §3.6.4), which a host may remove on RETR and TOP for clients that choke
//! on them. The same function sizes the message for LIST and cuts it for
//! RETR, so the two always agree.
//!
//! Only a message's first [`HEAD_LIMIT`] octets are looked at, and a field
//! is removed only when its end is seen inside them: what is found depends
//! on the file alone, never on how it was read.

use std::ops::Range;

/// How much of a message is searched for its header fields.
pub const HEAD_LIMIT: usize = 64 * 1024;

/// The byte ranges of `head` (a message's first octets; `whole` when that
/// is all of it) that are invalid `Message-ID:` fields, each a whole field
/// with its folded lines and line ends.
pub fn invalid_message_ids(head: &[u8], whole: bool) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut field_start: Option<usize> = None;
    let mut position = 0;
    loop {
        let line_end = head[position..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| position + i + 1);
        let at_end = position == head.len();
        let continues = !at_end && matches!(head[position], b' ' | b'\t');
        // A line that is not a continuation ends the field before it; the
        // end of the head does so only when the head is the whole message.
        if !continues
            && (!at_end || whole)
            && let Some(start) = field_start.take()
            && !is_valid_field(&head[start..position])
        {
            ranges.push(start..position);
        }
        if at_end {
            return ranges;
        }
        let line = &head[position..line_end.unwrap_or(head.len())];
        if line == b"\n" || line == b"\r\n" {
            // The empty line that ends the header.
            return ranges;
        }
        if !continues {
            field_start = is_message_id_name(line).then_some(position);
        }
        match line_end {
            Some(end) => position = end,
            None if whole => {
                // The last line has no line end: it still ends there.
                position = head.len();
            }
            None => return ranges,
        }
    }
}

/// `Message-ID:`, in any case, with the obsolete white space before the
/// colon allowed.
fn is_message_id_name(line: &[u8]) -> bool {
    const NAME: &[u8] = b"message-id";
    line.len() > NAME.len()
        && line[..NAME.len()].eq_ignore_ascii_case(NAME)
        && line[NAME.len()..]
            .iter()
            .find(|&&b| b != b' ' && b != b'\t')
            .is_some_and(|&b| b == b':')
}

/// The whole field, name and folded lines: one msg-id between optional
/// comments and white space.
fn is_valid_field(field: &[u8]) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let value: Vec<u8> = field[colon + 1..]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let mut rest = &value[..];
    let Some(after) = skip_cfws(rest) else {
        return false;
    };
    rest = after;
    let Some(after) = msg_id(rest) else {
        return false;
    };
    skip_cfws(after).is_some_and(|end| end.is_empty())
}

/// `"<" id-left "@" id-right ">"`, the rest after it.
fn msg_id(text: &[u8]) -> Option<&[u8]> {
    let text = text.strip_prefix(b"<")?;
    let text = match text.first()? {
        b'"' => quoted_string(text)?,
        _ => dot_atom_text(text)?,
    };
    let text = text.strip_prefix(b"@")?;
    let text = match text.first()? {
        b'[' => domain_literal(text)?,
        _ => dot_atom_text(text)?,
    };
    text.strip_prefix(b">")
}

fn is_atext(byte: u8) -> bool {
    // RFC 6532 lets UTF-8 in wherever atext is.
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte) || byte >= 0x80
}

/// One or more atoms joined by single dots.
fn dot_atom_text(text: &[u8]) -> Option<&[u8]> {
    let mut rest = text;
    loop {
        let atom = rest.iter().take_while(|&&b| is_atext(b)).count();
        if atom == 0 {
            return None;
        }
        rest = &rest[atom..];
        match rest.strip_prefix(b".") {
            Some(after) => rest = after,
            None => return Some(rest),
        }
    }
}

fn quoted_string(text: &[u8]) -> Option<&[u8]> {
    let mut rest = text.strip_prefix(b"\"")?;
    loop {
        match *rest.first()? {
            b'"' => return Some(&rest[1..]),
            b'\\' => rest = rest.get(2..)?,
            _ => rest = &rest[1..],
        }
    }
}

/// `[` dtext `]`: printable ASCII but `[`, `]` and `\`.
fn domain_literal(text: &[u8]) -> Option<&[u8]> {
    let rest = text.strip_prefix(b"[")?;
    let inside = rest
        .iter()
        .take_while(|&&b| (0x21..=0x7e).contains(&b) && !b"[]\\".contains(&b))
        .count();
    rest[inside..].strip_prefix(b"]")
}

/// White space and comments (nested, with quoted pairs); `None` for a
/// comment that never closes.
fn skip_cfws(text: &[u8]) -> Option<&[u8]> {
    let mut rest = text;
    loop {
        match rest.first() {
            Some(b' ' | b'\t') => rest = &rest[1..],
            Some(b'(') => {
                let mut depth = 0usize;
                loop {
                    match *rest.first()? {
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        b'\\' => rest = rest.get(1..)?,
                        _ => {}
                    }
                    rest = rest.get(1..)?;
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => return Some(rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(message: &str) -> String {
        let bytes = message.as_bytes();
        let mut kept = Vec::new();
        let mut at = 0;
        for range in invalid_message_ids(bytes, true) {
            kept.extend_from_slice(&bytes[at..range.start]);
            at = range.end;
        }
        kept.extend_from_slice(&bytes[at..]);
        String::from_utf8(kept).unwrap()
    }

    #[test]
    fn valid_ids_stay() {
        for value in [
            "<a@b>",
            " <1.2.3@host.example>",
            "<\"quoted @ part\"@example.test>",
            "<x@[192.0.2.1]>",
            "(comment) <x@y> (another (nested))",
            "\r\n <folded@example.test>",
            "<ü@bücher.example>",
        ] {
            let message = format!("Subject: s\nMessage-ID:{value}\n\nbody\n");
            assert_eq!(cut(&message), message, "{value:?}");
        }
        // Not the field: a look-alike name, and the body.
        let message = "Message-IDs: junk\nX-Message-ID: junk\n\nMessage-ID: junk\n";
        assert_eq!(cut(message), message);
    }

    #[test]
    fn invalid_ids_go_whole() {
        for value in [
            "",
            " ",
            " junk",
            " <no-at-sign>",
            " a@b",
            " <a@b",
            " <a b@c>",
            " <a@b> <c@d>",
            " <a..b@c>",
            " <@b>",
            " <a@>",
            " <a@b> (open",
            " <a@b>\r\n\tjunk",
        ] {
            let message = format!("From: f\r\nmessage-id  :{value}\r\nTo: t\r\n\r\nbody\r\n");
            assert_eq!(
                cut(&message),
                "From: f\r\nTo: t\r\n\r\nbody\r\n",
                "{value:?}"
            );
        }
    }

    #[test]
    fn where_the_header_ends_or_is_cut() {
        // Last line of a body-less message, with and without its LF.
        assert_eq!(cut("A: b\nMessage-ID: x\n"), "A: b\n");
        assert_eq!(cut("A: b\nMessage-ID: x"), "A: b\n");
        // A head that is not the whole message: a field not seen to end
        // stays, since the next line might continue it.
        let head = b"A: b\nMessage-ID: x\n";
        assert!(invalid_message_ids(head, false).is_empty());
        let found = invalid_message_ids(b"Message-ID: x\nB: c", false);
        assert_eq!((found.len(), found[0].clone()), (1, 0..14));
        assert!(invalid_message_ids(b"Message-ID: x", false).is_empty());
    }
}
