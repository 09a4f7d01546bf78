//! A header block read as it is: its fields in order, each with its name
//! and raw value (folding kept), and where the field lies, for
//! HEADER.FIELDS and for the values ENVELOPE and BODYSTRUCTURE quote.
//! Lines that are not fields (no colon, a space in the name) are skipped
//! as Dovecot skips them.

use std::ops::Range;

pub struct Field<'a> {
    pub name: &'a [u8],
    /// After the colon, to the end of the last continuation line, without
    /// its line end.
    pub value: &'a [u8],
    /// The whole field with its line ends.
    pub range: Range<usize>,
}

/// The fields of `block` (a header, up to and perhaps including the empty
/// line that ends it).
pub fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let line_end = |from: usize| {
            block[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(block.len(), |p| from + p + 1)
        };
        let start = at;
        let mut end = line_end(at);
        if block[start..end].iter().all(|b| matches!(b, b'\r' | b'\n')) {
            break;
        }
        while end < block.len() && matches!(block[end], b' ' | b'\t') {
            end = line_end(end);
        }
        at = end;
        let line = &block[start..end];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_end(&line[..colon]);
        if name.is_empty() || name.iter().any(|&b| b <= b' ' || b >= 127) {
            continue;
        }
        fields.push(Field {
            name,
            value: trim_line_end(&line[colon + 1..]),
            range: start..end,
        });
    }
    fields
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    &bytes[..end]
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &bytes[..end]
}

/// The value of the first field named `name`.
pub fn first<'a>(fields: &[Field<'a>], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value)
}

/// A value unfolded (line ends removed, the whitespace after them kept)
/// and trimmed, as ENVELOPE quotes it.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let start = out
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(out.len());
    out.drain(..start);
    let end = trim_end(&out).len();
    out.truncate(end);
    out
}

/// Where the header of `message` ends: after the empty line, or the whole
/// of it when there is none.
pub fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    loop {
        if message[at..].starts_with(b"\r\n") {
            return at + 2;
        }
        if message[at..].starts_with(b"\n") {
            return at + 1;
        }
        match message[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at += p + 1,
            None => return message.len(),
        }
        if at >= message.len() {
            return message.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_folding_and_place() {
        let block = b"Subject: a\r\n  b\r\nX-Bad line\r\nTo:x@y\r\n\r\nbody";
        let found = fields(block);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, b"Subject");
        assert_eq!(found[0].value, b" a\r\n  b");
        assert_eq!(&block[found[0].range.clone()], b"Subject: a\r\n  b\r\n");
        assert_eq!(unfold(found[0].value), b"a  b");
        assert_eq!(first(&found, "to"), Some(&b"x@y"[..]));
        assert_eq!(header_end(block), block.len() - 4);
        assert_eq!(header_end(b"no body"), 7);
        assert_eq!(header_end(b"\r\nbody"), 2);
    }
}
