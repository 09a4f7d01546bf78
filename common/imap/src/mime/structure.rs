//! A message's MIME tree, with where each part's header and body lie
//! (CRLF offsets), and BODYSTRUCTURE and BODY (RFC 3501 §7.4.2) made
//! from it. The boundaries are found here (`part`); the values are read
//! from the raw header fields, since IMAP quotes them as they were sent.

use std::ops::Range;

use super::envelope::envelope;
use super::headers::{Field, fields, first, header_end, unfold};
use super::params::{self, Value};
use crate::wire::{nstring, string};

#[derive(Debug)]
pub struct Part {
    /// The part's MIME header (the message's header for the top).
    pub header: Range<usize>,
    pub body: Range<usize>,
    pub kind: Kind,
}

impl Part {
    /// Its header and body, without the parts inside.
    pub fn ranges(&self) -> Part {
        Part {
            header: self.header.clone(),
            body: self.body.clone(),
            kind: Kind::Leaf,
        }
    }
}

#[derive(Debug)]
pub enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    /// message/rfc822: the enclosed message, as a part whose header is
    /// the enclosed message's header.
    Message(Box<Part>),
}

/// How deep parts may nest: deeper ones are leaves (a hostile message
/// must not exhaust the stack).
const MAX_DEPTH: usize = 50;

/// The tree of `bytes` (a whole message, CRLF line ends).
pub fn tree(bytes: &[u8]) -> Part {
    part(bytes, 0..bytes.len(), false, 0)
}

/// The part in `range`: its header, its body, and the parts its
/// boundaries (RFC 2046 §5.1.1) or its enclosed message make of it. By
/// hand rather than by mail-parser, which decodes every part's body to
/// find them (a large folder's first FETCH would decode every
/// attachment).
fn part(bytes: &[u8], range: Range<usize>, in_digest: bool, depth: usize) -> Part {
    let header = range.start..range.start + header_end(&bytes[range.clone()]);
    let body = header.end..range.end;
    let leaf = |header, body| Part {
        header,
        body,
        kind: Kind::Leaf,
    };
    if depth >= MAX_DEPTH {
        return leaf(header, body);
    }
    let fields = fields(&bytes[header.clone()]);
    let (kind, _) = content_type(&fields, in_digest);
    match (kind.main.as_str(), kind.sub.as_deref()) {
        ("multipart", sub) => {
            let boundary = kind
                .params
                .iter()
                .find(|(name, _)| name == "boundary")
                .map(|(_, value)| value.as_slice())
                .filter(|boundary| !boundary.is_empty());
            let Some(boundary) = boundary else {
                return leaf(header, body);
            };
            let digest = sub == Some("digest");
            let children = split(bytes, body.clone(), boundary)
                .into_iter()
                .map(|child| part(bytes, child, digest, depth + 1))
                .collect();
            Part {
                header,
                body,
                kind: Kind::Multipart(children),
            }
        }
        ("message", Some("rfc822")) if !encoded(&fields) => {
            let enclosed = part(bytes, body.clone(), false, depth + 1);
            Part {
                header,
                body,
                kind: Kind::Message(Box::new(enclosed)),
            }
        }
        _ => leaf(header, body),
    }
}

/// Whether a part's body is base64 or quoted-printable: an enclosed
/// message so encoded is not read as one.
fn encoded(fields: &[Field<'_>]) -> bool {
    first(fields, "content-transfer-encoding").is_some_and(|value| {
        let value = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
        value == "base64" || value == "quoted-printable"
    })
}

/// The parts of a multipart body: what lies between its delimiter lines
/// (`--boundary`, transport padding allowed after it), the CRLF before
/// each delimiter belonging to the delimiter; the preamble, and what
/// follows the close delimiter (`--boundary--`), left out. Without a close
/// delimiter the last part runs to the end of the body.
fn split(bytes: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let text = &bytes[body.clone()];
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delimiter);
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    while let Some(found) = finder.find(&text[at..]) {
        let start = at + found;
        at = start + delimiter.len();
        let line_start = start == 0 || text[start - 1] == b'\n';
        if !line_start {
            continue;
        }
        let closing = text[at..].starts_with(b"--");
        let rest_end = text[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |p| at + p + 1);
        let after = if closing { at + 2 } else { at };
        let padding_only = text[after..rest_end]
            .iter()
            .all(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        if !padding_only {
            // A longer boundary that starts with this one.
            continue;
        }
        if let Some(from) = open.take() {
            let mut end = start;
            if end > from && text[end - 1] == b'\n' {
                end -= 1;
                if end > from && text[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(body.start + from..body.start + end.max(from));
        }
        if closing {
            return parts;
        }
        open = Some(rest_end);
        at = rest_end;
    }
    if let Some(from) = open {
        parts.push(body.start + from..body.end);
    }
    parts
}

fn content_type(fields: &[Field<'_>], in_digest: bool) -> (Value, bool) {
    match first(fields, "content-type") {
        Some(value) => {
            let parsed = params::parse(value, true);
            if !parsed.main.is_empty() && parsed.sub.as_deref().is_some_and(|s| !s.is_empty()) {
                return (parsed, false);
            }
            (default_type(in_digest), true)
        }
        None => (default_type(in_digest), true),
    }
}

fn default_type(in_digest: bool) -> Value {
    match in_digest {
        true => Value {
            main: "message".into(),
            sub: Some("rfc822".into()),
            params: Vec::new(),
        },
        false => Value {
            main: "text".into(),
            sub: Some("plain".into()),
            params: vec![("charset".into(), b"us-ascii".to_vec())],
        },
    }
}

fn param_list(params: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(name.as_bytes(), out);
        out.push(b' ');
        string(value, out);
    }
    out.push(b')');
}

/// A body's size in lines, as its line ends count them (Dovecot's and
/// Cyrus's count): a last line without one, like a part's last line
/// before a boundary, is not counted.
fn lines(body: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', body).count()
}

fn text_of(fields: &[Field<'_>], name: &str) -> Option<Vec<u8>> {
    first(fields, name).map(unfold).filter(|v| !v.is_empty())
}

/// Disposition, language and location: the extension data every part
/// ends with in BODYSTRUCTURE.
fn extension_tail(fields: &[Field<'_>], out: &mut Vec<u8>) {
    out.push(b' ');
    match first(fields, "content-disposition") {
        Some(value) => {
            let disposition = params::parse(value, false);
            out.push(b'(');
            string(disposition.main.as_bytes(), out);
            out.push(b' ');
            param_list(&disposition.params, out);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match text_of(fields, "content-language") {
        Some(value) => {
            let tags: Vec<&[u8]> = value
                .split(|&b| b == b',')
                .map(|t| t.trim_ascii())
                .filter(|t| !t.is_empty())
                .collect();
            out.push(b'(');
            for (i, tag) in tags.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(tag, out);
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(text_of(fields, "content-location").as_deref(), out);
}

/// Appends BODYSTRUCTURE (`extended`) or BODY of `part`.
pub fn structure(bytes: &[u8], part: &Part, extended: bool, in_digest: bool, out: &mut Vec<u8>) {
    let header = fields(&bytes[part.header.clone()]);
    let (kind, defaulted) = content_type(&header, in_digest);
    out.push(b'(');
    if let Kind::Multipart(children) = &part.kind {
        let digest = kind.sub.as_deref() == Some("digest");
        if children.is_empty() {
            // RFC 3501 has no empty multipart: one empty text part.
            empty_text_part(extended, out);
        }
        for child in children {
            structure(bytes, child, extended, digest, out);
        }
        out.push(b' ');
        string(kind.sub.as_deref().unwrap_or("mixed").as_bytes(), out);
        if extended {
            out.push(b' ');
            param_list(&kind.params, out);
            extension_tail(&header, out);
        }
        out.push(b')');
        return;
    }
    let body = &bytes[part.body.clone()];
    let (main, sub) = match (&part.kind, defaulted) {
        // A declared multipart whose boundary was not found reads as text.
        (Kind::Leaf, false) if kind.main == "multipart" => {
            ("text".to_string(), "plain".to_string())
        }
        _ => (kind.main.clone(), kind.sub.clone().unwrap_or_default()),
    };
    string(main.as_bytes(), out);
    out.push(b' ');
    string(sub.as_bytes(), out);
    out.push(b' ');
    let mut params = kind.params;
    if main == "text" && !params.iter().any(|(name, _)| name == "charset") {
        // RFC 2045 §5.2's default, said, as Dovecot says it.
        params.insert(0, ("charset".into(), b"us-ascii".to_vec()));
    }
    param_list(&params, out);
    out.push(b' ');
    nstring(text_of(&header, "content-id").as_deref(), out);
    out.push(b' ');
    nstring(text_of(&header, "content-description").as_deref(), out);
    out.push(b' ');
    let encoding = text_of(&header, "content-transfer-encoding").unwrap_or(b"7bit".to_vec());
    string(&encoding, out);
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    match &part.kind {
        Kind::Message(enclosed) if main == "message" => {
            out.push(b' ');
            envelope(&fields(&bytes[enclosed.header.clone()]), out);
            out.push(b' ');
            structure(bytes, enclosed, extended, false, out);
            out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
        }
        // An enclosed message that cannot be read as one (encoded, or
        // nested too deep) still needs RFC 3501's form of one: an empty
        // envelope and body, as Dovecot gives.
        _ if main == "message" && sub == "rfc822" => {
            out.extend_from_slice(b" (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ");
            empty_text_part(extended, out);
            out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
        }
        _ if main == "text" => out.extend_from_slice(format!(" {}", lines(body)).as_bytes()),
        _ => {}
    }
    if extended {
        out.push(b' ');
        nstring(text_of(&header, "content-md5").as_deref(), out);
        extension_tail(&header, out);
    }
    out.push(b')');
}

/// An empty text/plain part's structure.
fn empty_text_part(extended: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
    if extended {
        out.extend_from_slice(b" NIL NIL NIL NIL");
    }
    out.push(b')');
}

/// The part a section's numbers name (`[]` the message itself): in a
/// multipart the children by number, in a message/rfc822 part its
/// message's parts, and `1` for the body of a message that is not
/// multipart.
pub fn locate<'a>(top: &'a Part, numbers: &[u32]) -> Option<&'a Part> {
    let mut current = top;
    let mut is_message = true;
    for &number in numbers {
        let index = (number as usize).checked_sub(1)?;
        let container = match (&current.kind, is_message) {
            (Kind::Message(enclosed), false) => enclosed.as_ref(),
            _ => current,
        };
        let entered_message = !is_message && matches!(current.kind, Kind::Message(_));
        current = match &container.kind {
            Kind::Multipart(children) => children.get(index)?,
            _ if (is_message || entered_message) && index == 0 => container,
            _ => return None,
        };
        is_message = false;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodystructure(message: &str, extended: bool) -> String {
        let bytes = postern_maildir::crlf_line_ends(message.as_bytes());
        let mut out = Vec::new();
        structure(&bytes, &tree(&bytes), extended, false, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_plain_message() {
        let message = "Subject: x\n\nline one\nline two\n";
        assert_eq!(
            bodystructure(message, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            bodystructure(message, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2)"
        );
    }

    const MIXED: &str = "Subject: m\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\npreamble\n--b1\nContent-Type: text/plain; charset=utf-8\n\nhello\n--b1\nContent-Type: message/rfc822\nContent-Disposition: attachment; filename=\"f.eml\"\n\nSubject: inner\nFrom: A <a@x.test>\n\ninner body\n--b1--\n";

    #[test]
    fn multipart_with_an_enclosed_message() {
        assert_eq!(
            bodystructure(MIXED, true),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)\
(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 48 \
(NIL \"inner\" ((\"A\" NIL \"a\" \"x.test\")) ((\"A\" NIL \"a\" \"x.test\")) ((\"A\" NIL \"a\" \"x.test\")) NIL NIL NIL NIL NIL) \
(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL) 3 \
NIL (\"attachment\" (\"filename\" \"f.eml\")) NIL NIL) \
\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)"
        );
    }

    #[test]
    fn sections_name_parts() {
        let bytes = postern_maildir::crlf_line_ends(MIXED.as_bytes());
        let top = tree(&bytes);
        let text = locate(&top, &[1]).unwrap();
        assert_eq!(&bytes[text.body.clone()], b"hello");
        let enclosed = locate(&top, &[2]).unwrap();
        let Kind::Message(inner) = &enclosed.kind else {
            panic!("not a message")
        };
        assert_eq!(&bytes[inner.body.clone()], b"inner body");
        assert_eq!(
            &bytes[locate(&top, &[2, 1]).unwrap().body.clone()],
            b"inner body"
        );
        assert!(locate(&top, &[3]).is_none());
        assert!(locate(&top, &[1, 1]).is_none());
        let plain = postern_maildir::crlf_line_ends(b"Subject: x\n\nbody\n");
        let top = tree(&plain);
        assert_eq!(
            &plain[locate(&top, &[1]).unwrap().body.clone()],
            b"body\r\n"
        );
        assert!(locate(&top, &[2]).is_none());
    }
}
