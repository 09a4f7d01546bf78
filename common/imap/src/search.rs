//! SEARCH (RFC 3501 §6.4.4): every key, evaluated per message. Flags,
//! sizes, dates and UIDs come from the index; SUBJECT, FROM, TO, CC and
//! BCC from the cache's decoded columns; HEADER, BODY and TEXT read the
//! message (decoded, MIME parts as text). Strings match as
//! case-insensitive substrings of the decoded text.

use std::collections::BTreeSet;

use imap_codec::imap_types::search::SearchKey;
use postern_mailstore::folder::Folder;

use crate::dates::day_of;
use crate::describe;
use crate::flags::{SetHere, as_known, bit};
use crate::sequence::includes;

/// What SEARCH needs besides the folder.
pub struct Context<'a> {
    pub folder: &'a Folder,
    pub recent: &'a BTreeSet<u32>,
    /// Flags this session set since its snapshot.
    pub set_here: &'a SetHere,
    pub keywords: &'a [Option<String>],
}

/// One message's bytes and decoded text, read when a key first needs it.
struct Lazy {
    bytes: Option<Option<Vec<u8>>>,
    text: Option<String>,
}

/// The indexes of the messages that match every key.
pub fn search(context: &Context<'_>, keys: &[SearchKey<'_>]) -> Vec<usize> {
    let count = context.folder.len();
    let mut matched = Vec::new();
    for index in 0..count {
        let mut lazy = Lazy {
            bytes: None,
            text: None,
        };
        if keys.iter().all(|key| test(context, key, index, &mut lazy)) {
            matched.push(index);
        }
    }
    matched
}

/// Whether the keys read a message's size, dates or cached header
/// columns, which need it described.
pub fn needs_description(keys: &[SearchKey<'_>]) -> bool {
    keys.iter().any(key_needs_description)
}

fn key_needs_description(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => needs_description(keys.as_ref()),
        SearchKey::Or(a, b) => key_needs_description(a) || key_needs_description(b),
        SearchKey::Not(key) => key_needs_description(key),
        SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Cc(_)
        | SearchKey::Bcc(_) => true,
        _ => false,
    }
}

fn lower(text: &[u8]) -> String {
    String::from_utf8_lossy(text).to_lowercase()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let needle = lower(needle);
    needle.is_empty() || lower(haystack).contains(&needle)
}

fn message<'l>(context: &Context<'_>, index: usize, lazy: &'l mut Lazy) -> Option<&'l [u8]> {
    lazy.bytes
        .get_or_insert_with(|| context.folder.message(index).ok())
        .as_deref()
}

/// The message's text as BODY and TEXT search it: each text part
/// decoded, after the header (for TEXT).
fn body_text<'l>(context: &Context<'_>, index: usize, lazy: &'l mut Lazy) -> &'l str {
    if lazy.text.is_none() {
        let text = message(context, index, lazy).map(|bytes| {
            std::panic::catch_unwind(|| {
                let message = mail_parser::MessageParser::default().parse(bytes)?;
                let mut text = String::new();
                for part in &message.parts {
                    if let mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) =
                        &part.body
                    {
                        text.push_str(t);
                        text.push('\n');
                    }
                }
                Some(text.to_lowercase())
            })
            .ok()
            .flatten()
            .unwrap_or_default()
        });
        lazy.text = Some(text.unwrap_or_default());
    }
    lazy.text.as_deref().unwrap_or_default()
}

fn test(context: &Context<'_>, key: &SearchKey<'_>, index: usize, lazy: &mut Lazy) -> bool {
    let folder = context.folder;
    let record = folder.snapshot().record(index);
    let (flags, keywords) = as_known(&record, context.set_here);
    let flag = |letter: u8| flags & bit(letter) != 0;
    let recent = || context.recent.contains(&record.uid);
    let column = |n: usize, needle: &[u8]| {
        // The columns were written lower-cased as UTF-8: bytes compare.
        let value = folder.field(index, n).unwrap_or_default();
        let needle = lower(needle);
        memchr::memmem::find(&value, needle.as_bytes()).is_some()
    };
    let internal_day = || day_of(record.internal_date);
    let sent_day = || {
        let sent = folder.field(index, describe::SENT).unwrap_or_default();
        let secs = std::str::from_utf8(&sent)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(record.internal_date);
        day_of(secs)
    };
    let keyword = |name: &str| {
        context
            .keywords
            .iter()
            .position(|k| k.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            .is_some_and(|n| keywords & (1 << n) != 0)
    };
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| test(context, k, index, lazy)),
        SearchKey::Or(a, b) => test(context, a, index, lazy) || test(context, b, index, lazy),
        SearchKey::Not(k) => !test(context, k, index, lazy),
        SearchKey::SequenceSet(set) => includes(set, index as u32 + 1, folder.len() as u32),
        SearchKey::Uid(set) => {
            let last = folder.snapshot().uid(folder.len() - 1);
            includes(set, record.uid, last)
        }
        SearchKey::All => true,
        SearchKey::Answered => flag(b'R'),
        SearchKey::Unanswered => !flag(b'R'),
        SearchKey::Deleted => flag(b'T'),
        SearchKey::Undeleted => !flag(b'T'),
        SearchKey::Draft => flag(b'D'),
        SearchKey::Undraft => !flag(b'D'),
        SearchKey::Flagged => flag(b'F'),
        SearchKey::Unflagged => !flag(b'F'),
        SearchKey::Seen => flag(b'S'),
        SearchKey::Unseen => !flag(b'S'),
        SearchKey::Recent => recent(),
        SearchKey::New => recent() && !flag(b'S'),
        SearchKey::Old => !recent(),
        SearchKey::Keyword(name) => keyword(name.inner()),
        SearchKey::Unkeyword(name) => !keyword(name.inner()),
        SearchKey::Larger(n) => record.size > *n,
        SearchKey::Smaller(n) => record.size < *n,
        SearchKey::Before(date) => internal_day() < *date.as_ref(),
        SearchKey::On(date) => internal_day() == *date.as_ref(),
        SearchKey::Since(date) => internal_day() >= *date.as_ref(),
        SearchKey::SentBefore(date) => sent_day() < *date.as_ref(),
        SearchKey::SentOn(date) => sent_day() == *date.as_ref(),
        SearchKey::SentSince(date) => sent_day() >= *date.as_ref(),
        SearchKey::Subject(s) => column(describe::SUBJECT, s.as_ref()),
        SearchKey::From(s) => column(describe::FROM, s.as_ref()),
        SearchKey::To(s) => column(describe::TO, s.as_ref()),
        SearchKey::Cc(s) => column(describe::CC, s.as_ref()),
        SearchKey::Bcc(s) => column(describe::BCC, s.as_ref()),
        SearchKey::Header(name, value) => {
            let Some(bytes) = message(context, index, lazy) else {
                return false;
            };
            let header = &bytes[..crate::mime::headers::header_end(bytes)];
            crate::mime::headers::fields(header)
                .iter()
                .filter(|f| f.name.eq_ignore_ascii_case(name.as_ref()))
                .any(|f| contains(&decode_words(f.value), value.as_ref()))
        }
        SearchKey::Body(s) => {
            let needle = lower(s.as_ref());
            body_text(context, index, lazy).contains(&needle)
        }
        SearchKey::Text(s) => {
            let needle = lower(s.as_ref());
            let in_header = message(context, index, lazy).is_some_and(|bytes| {
                let header = &bytes[..crate::mime::headers::header_end(bytes)];
                lower(&decode_words(header)).contains(&needle)
            });
            in_header || body_text(context, index, lazy).contains(&needle)
        }
    }
}

/// A header value with its RFC 2047 encoded words decoded.
fn decode_words(value: &[u8]) -> Vec<u8> {
    let mut field = b"X: ".to_vec();
    field.extend_from_slice(value);
    field.extend_from_slice(b"\r\n\r\n");
    let decoded = std::panic::catch_unwind(|| {
        let message = mail_parser::MessageParser::default().parse_headers(&field[..])?;
        message.headers().first().map(|h| match &h.value {
            mail_parser::HeaderValue::Text(t) => t.to_string(),
            mail_parser::HeaderValue::TextList(l) => l.join(" "),
            _ => String::new(),
        })
    });
    match decoded.ok().flatten() {
        Some(text) if !text.is_empty() => text.into_bytes(),
        _ => value.to_vec(),
    }
}
