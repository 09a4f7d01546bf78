//! What the store caches of each message for IMAP (postern-mailstore's
//! `Describe`): ENVELOPE, BODYSTRUCTURE and BODY as sent, and the
//! columns header SEARCH compares, decoded (RFC 2047) and lower-cased,
//! so that none of them opens the message again.

use crate::mime::{envelope, headers, structure};
use postern_mailstore::index::entries::Describe;

pub const ENVELOPE: usize = 0;
pub const BODYSTRUCTURE: usize = 1;
pub const BODY: usize = 2;
pub const SUBJECT: usize = 3;
pub const FROM: usize = 4;
pub const TO: usize = 5;
pub const CC: usize = 6;
pub const BCC: usize = 7;
/// The Date field as seconds since the epoch (decimal), empty when it
/// does not read.
pub const SENT: usize = 8;

/// The store's `Describe` for IMAP. The version goes up with every
/// change to what `fields` makes.
pub const DESCRIBE: Describe = Describe { version: 3, fields };

fn fields(bytes: &[u8]) -> Vec<Vec<u8>> {
    let top = structure::tree(bytes);
    let fields = headers::fields(&bytes[top.header.clone()]);
    let mut envelope_bytes = Vec::new();
    envelope::envelope(&fields, &mut envelope_bytes);
    let mut bodystructure = Vec::new();
    structure::structure(bytes, &top, true, false, &mut bodystructure);
    let mut body = Vec::new();
    structure::structure(bytes, &top, false, false, &mut body);
    let columns = columns(&bytes[top.header.clone()], &fields);
    let mut out = vec![envelope_bytes, bodystructure, body];
    out.extend(columns);
    out
}

/// The header fields the columns are made of: only these go to the
/// parser, which would otherwise read every Received field too.
const COLUMN_FIELDS: [&str; 6] = ["subject", "from", "to", "cc", "bcc", "date"];

/// Subject, From, To, Cc, Bcc decoded and lower-cased, and the sent date,
/// from the header and its `fields`.
fn columns(header: &[u8], fields: &[headers::Field<'_>]) -> Vec<Vec<u8>> {
    let mut wanted = Vec::new();
    for field in fields {
        if COLUMN_FIELDS
            .iter()
            .any(|name| field.name.eq_ignore_ascii_case(name.as_bytes()))
        {
            wanted.extend_from_slice(&header[field.range.clone()]);
        }
    }
    wanted.extend_from_slice(b"\r\n");
    let parsed = std::panic::catch_unwind(|| {
        mail_parser::MessageParser::default().parse_headers(&wanted[..])
    })
    .ok()
    .flatten();
    let Some(message) = parsed else {
        return vec![Vec::new(); 6];
    };
    let lower = |text: String| text.to_lowercase().into_bytes();
    let mut out = vec![lower(message.subject().unwrap_or_default().to_string())];
    for list in [message.from(), message.to(), message.cc(), message.bcc()] {
        out.push(lower(list.map(address_text).unwrap_or_default()));
    }
    let sent = message
        .date()
        .map(|date| date.to_timestamp().to_string())
        .unwrap_or_default();
    out.push(sent.into_bytes());
    out
}

/// An address list as text to search in: `name <address>, ...`.
pub fn address_text(list: &mail_parser::Address<'_>) -> String {
    let mut text = String::new();
    for addr in list.iter() {
        if !text.is_empty() {
            text.push_str(", ");
        }
        if let Some(name) = &addr.name {
            text.push_str(name);
            text.push(' ');
        }
        text.push('<');
        text.push_str(addr.address.as_deref().unwrap_or_default());
        text.push('>');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_decoded_and_lower_cased() {
        let message = postern_maildir::crlf_line_ends(
            b"From: =?utf-8?q?J=C3=9CRGEN?= <J@Example.DE>\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\nDate: Thu, 01 Jan 1970 00:01:00 +0000\n\nbody\n",
        );
        let fields = (DESCRIBE.fields)(&message);
        assert_eq!(fields[SUBJECT], "grüße".as_bytes());
        assert_eq!(fields[FROM], "jürgen <j@example.de>".as_bytes());
        assert_eq!(fields[TO], b"");
        assert_eq!(fields[SENT], b"60");
        assert!(fields[ENVELOPE].starts_with(b"(\"Thu, 01 Jan 1970"));
        assert!(fields[BODY].starts_with(b"(\"text\" \"plain\""));
    }
}
