//! A message's MIME tree, with where each part's header and body lie
//! (CRLF offsets), and BODYSTRUCTURE and BODY (RFC 3501 §7.4.2) made
//! from it. mail-parser finds the boundaries; the values are read from
//! the raw header fields, since IMAP quotes them as they were sent.

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

#[derive(Debug)]
pub enum Kind {
    Leaf,
    Multipart(Vec<Part>),
    /// message/rfc822: the enclosed message, as a part whose header is
    /// the enclosed message's header.
    Message(Box<Part>),
}

/// The tree of `bytes` (a whole message, CRLF line ends).
pub fn tree(bytes: &[u8]) -> Part {
    let end = header_end(bytes);
    let whole = || Part {
        header: 0..end,
        body: end..bytes.len(),
        kind: Kind::Leaf,
    };
    // Most mail is one part: its tree is its header and body, and needs
    // no parser (which would decode the whole body).
    let compound = match first(&fields(&bytes[..end]), "content-type") {
        Some(value) => {
            let main = params::parse(value, false).main;
            main == "multipart" || main == "message"
        }
        None => false,
    };
    if !compound {
        return whole();
    }
    // mail-parser is outside code fed hostile input: should it ever
    // panic, the message is shown as one text part rather than lost.
    let parsed = std::panic::catch_unwind(|| {
        let message = mail_parser::MessageParser::default().parse(bytes)?;
        Some(build(&message, 0, bytes.len()))
    });
    match parsed {
        Ok(Some(part)) => part,
        _ => whole(),
    }
}

fn build(message: &mail_parser::Message<'_>, id: u32, len: usize) -> Part {
    let Some(part) = message.parts.get(id as usize) else {
        return Part {
            header: 0..0,
            body: 0..0,
            kind: Kind::Leaf,
        };
    };
    let clamp = |at: u32| (at as usize).min(len);
    let header = clamp(part.offset_header)..clamp(part.offset_body);
    let body = header.end..clamp(part.offset_end).max(header.end);
    let kind = match &part.body {
        mail_parser::PartType::Multipart(children) => Kind::Multipart(
            children
                .iter()
                .filter(|&&child| child != id)
                .map(|&child| build(message, child, len))
                .collect(),
        ),
        mail_parser::PartType::Message(inner) => {
            let mut enclosed = build(inner, 0, len);
            enclosed.body.end = enclosed.body.end.max(body.end).min(body.end);
            Kind::Message(Box::new(enclosed))
        }
        _ => Kind::Leaf,
    };
    Part { header, body, kind }
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
            out.extend_from_slice(
                b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0",
            );
            if extended {
                out.extend_from_slice(b" NIL NIL NIL NIL");
            }
            out.push(b')');
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
