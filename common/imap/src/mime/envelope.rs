//! ENVELOPE (RFC 3501 §7.4.2) of a header: date, subject, the six
//! address lists and the two message-id fields, as they were sent
//! (unfolded); Sender and Reply-To default to From.

use super::address::{self, Item};
use super::headers::{Field, first, unfold};
use crate::wire::{nstring, string};

fn text(fields: &[Field<'_>], name: &str, out: &mut Vec<u8>) {
    let value = first(fields, name).map(unfold);
    nstring(value.as_deref().filter(|v| !v.is_empty()), out);
}

fn addresses(items: &[Item], out: &mut Vec<u8>) {
    if items.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for item in items {
        match item {
            Item::Mailbox(mailbox) => {
                out.push(b'(');
                nstring(mailbox.name.as_deref(), out);
                out.push(b' ');
                nstring(mailbox.route.as_deref(), out);
                out.push(b' ');
                string(&mailbox.local, out);
                out.push(b' ');
                nstring(mailbox.domain.as_deref(), out);
                out.push(b')');
            }
            Item::GroupStart(name) => {
                out.extend_from_slice(b"(NIL NIL ");
                string(name, out);
                out.extend_from_slice(b" NIL)");
            }
            Item::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

fn list(fields: &[Field<'_>], name: &str) -> Option<Vec<Item>> {
    first(fields, name).map(address::parse)
}

/// Appends the ENVELOPE of a message whose header fields are `fields`.
pub fn envelope(fields: &[Field<'_>], out: &mut Vec<u8>) {
    out.push(b'(');
    text(fields, "date", out);
    out.push(b' ');
    text(fields, "subject", out);
    let from = list(fields, "from").unwrap_or_default();
    let sender = list(fields, "sender").filter(|l| !l.is_empty());
    let reply_to = list(fields, "reply-to").filter(|l| !l.is_empty());
    for items in [
        &from,
        sender.as_ref().unwrap_or(&from),
        reply_to.as_ref().unwrap_or(&from),
    ] {
        out.push(b' ');
        addresses(items, out);
    }
    for name in ["to", "cc", "bcc"] {
        out.push(b' ');
        addresses(&list(fields, name).unwrap_or_default(), out);
    }
    out.push(b' ');
    text(fields, "in-reply-to", out);
    out.push(b' ');
    text(fields, "message-id", out);
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::headers::fields;

    fn of(header: &[u8]) -> String {
        let mut out = Vec::new();
        envelope(&fields(header), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3501s_example_envelope() {
        // RFC 3501 §8, the FETCH FULL answer.
        let header = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
Subject: IMAP4rev1 WG mtg summary and minutes\r\n\
From: Terry Gray <gray@cac.washington.edu>\r\n\
To: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n\
Message-Id: <B27397-0100000@cac.washington.edu>\r\n\r\n";
        assert_eq!(
            of(header),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
NIL NIL \"<B27397-0100000@cac.washington.edu>\")"
        );
    }

    #[test]
    fn an_empty_header_is_all_nil() {
        assert_eq!(of(b"\r\n"), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    }
}
