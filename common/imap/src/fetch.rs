//! FETCH (RFC 3501 §6.4.5): the items a client asked for, taken out of
//! the command's borrowed form, and each message's answer. What the index
//! and cache hold (UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY,
//! BODYSTRUCTURE) is copied from them; only body sections read the file.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::io::Write;

use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};
use postern_mailstore::folder::Folder;

use crate::describe;
use crate::mime::headers::{fields, header_end};
use crate::mime::structure::{Kind, Part, locate, tree};
use crate::wire::literal;

/// Which bytes of a message a BODY[section] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// The part's content (the whole message for no numbers).
    Whole,
    Header,
    Fields(Vec<Vec<u8>>),
    FieldsNot(Vec<Vec<u8>>),
    Text,
    Mime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    Body,
    BodyStructure,
    Section {
        /// The name the answer gives, `BODY[1.HEADER]<0>`.
        label: String,
        numbers: Vec<u32>,
        spec: Spec,
        partial: Option<(u32, u32)>,
        /// Whether fetching it sets \Seen.
        sets_seen: bool,
    },
}

fn section_text(numbers: &[u32], spec: &Spec) -> String {
    let mut text: Vec<String> = numbers.iter().map(u32::to_string).collect();
    let names = |names: &[Vec<u8>]| {
        names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match spec {
        Spec::Whole => {}
        Spec::Header => text.push("HEADER".into()),
        Spec::Fields(n) => text.push(format!("HEADER.FIELDS ({})", names(n))),
        Spec::FieldsNot(n) => text.push(format!("HEADER.FIELDS.NOT ({})", names(n))),
        Spec::Text => text.push("TEXT".into()),
        Spec::Mime => text.push("MIME".into()),
    }
    text.join(".")
}

/// The items of a FETCH, macros expanded.
pub fn items(asked: &MacroOrMessageDataItemNames<'_>) -> Vec<Item> {
    let names: Vec<MessageDataItemName<'_>> = match asked {
        MacroOrMessageDataItemNames::Macro(m) => {
            let mut names = vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
            ];
            match m {
                Macro::All => names.push(MessageDataItemName::Envelope),
                Macro::Full => {
                    names.push(MessageDataItemName::Envelope);
                    names.push(MessageDataItemName::Body);
                }
                _ => {}
            }
            names
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
    };
    let mut out = Vec::new();
    for name in names {
        let item = match name {
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::Body => Item::Body,
            MessageDataItemName::BodyStructure => Item::BodyStructure,
            MessageDataItemName::Rfc822 => Item::Section {
                label: "RFC822".into(),
                numbers: Vec::new(),
                spec: Spec::Whole,
                partial: None,
                sets_seen: true,
            },
            MessageDataItemName::Rfc822Header => Item::Section {
                label: "RFC822.HEADER".into(),
                numbers: Vec::new(),
                spec: Spec::Header,
                partial: None,
                sets_seen: false,
            },
            MessageDataItemName::Rfc822Text => Item::Section {
                label: "RFC822.TEXT".into(),
                numbers: Vec::new(),
                spec: Spec::Text,
                partial: None,
                sets_seen: true,
            },
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                let part_numbers = |part: &Option<imap_codec::imap_types::fetch::Part>| {
                    part.as_ref()
                        .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
                        .unwrap_or_default()
                };
                let upper = |names: &[imap_codec::imap_types::core::AString<'_>]| {
                    names
                        .iter()
                        .map(|n| n.as_ref().to_ascii_uppercase())
                        .collect()
                };
                let (numbers, spec) = match &section {
                    None => (Vec::new(), Spec::Whole),
                    Some(Section::Part(part)) => (
                        part.0.as_ref().iter().map(|n| n.get()).collect(),
                        Spec::Whole,
                    ),
                    Some(Section::Header(part)) => (part_numbers(part), Spec::Header),
                    Some(Section::HeaderFields(part, names)) => {
                        (part_numbers(part), Spec::Fields(upper(names.as_ref())))
                    }
                    Some(Section::HeaderFieldsNot(part, names)) => {
                        (part_numbers(part), Spec::FieldsNot(upper(names.as_ref())))
                    }
                    Some(Section::Text(part)) => (part_numbers(part), Spec::Text),
                    Some(Section::Mime(part)) => (
                        part.0.as_ref().iter().map(|n| n.get()).collect(),
                        Spec::Mime,
                    ),
                };
                let partial = partial.map(|(origin, count)| (origin, count.get()));
                let mut label = format!("BODY[{}]", section_text(&numbers, &spec));
                if let Some((origin, _)) = partial {
                    label.push_str(&format!("<{origin}>"));
                }
                Item::Section {
                    label,
                    numbers,
                    spec,
                    partial,
                    sets_seen: !peek,
                }
            }
            _ => continue,
        };
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The bytes a section names in the message `read`, `None` when it names
/// no part. The message's own header and text need no MIME tree; only a
/// numbered part does.
pub fn section<'a>(read: &'a Read, numbers: &[u32], spec: &Spec) -> Option<Cow<'a, [u8]>> {
    let message = &read.bytes[..];
    let slice = |range: std::ops::Range<usize>| Cow::Borrowed(&message[range]);
    // The part named, and the message whose HEADER and TEXT it has (a
    // numbered part's are its enclosed message's).
    let (part, message_part) = match numbers.is_empty() {
        true if !matches!(spec, Spec::Mime) => {
            let end = header_end(message);
            let whole = Part {
                header: 0..end,
                body: end..message.len(),
                kind: Kind::Leaf,
            };
            if matches!(spec, Spec::Whole) {
                return Some(Cow::Borrowed(message));
            }
            (whole.ranges(), Some(whole))
        }
        _ => {
            let part = locate(read.top(), numbers)?;
            let message_part = match (&part.kind, numbers.is_empty()) {
                (_, true) => Some(part.ranges()),
                (Kind::Message(enclosed), false) => Some(enclosed.ranges()),
                _ => None,
            };
            (part.ranges(), message_part)
        }
    };
    Some(match spec {
        Spec::Whole => slice(part.body.clone()),
        Spec::Mime => slice(part.header.clone()),
        Spec::Header => slice(message_part?.header.clone()),
        Spec::Text => slice(message_part?.body.clone()),
        Spec::Fields(names) | Spec::FieldsNot(names) => {
            let header = &message[message_part?.header.clone()];
            let keep = matches!(spec, Spec::Fields(_));
            let mut out = Vec::new();
            for field in fields(header) {
                let named = names.iter().any(|n| n.eq_ignore_ascii_case(field.name));
                if named == keep {
                    out.extend_from_slice(&header[field.range.clone()]);
                }
            }
            out.extend_from_slice(b"\r\n");
            Cow::Owned(out)
        }
    })
}

/// Whether the items need the message described: its size, date or
/// cached structure.
pub fn needs_description(items: &[Item]) -> bool {
    items.iter().any(|item| {
        matches!(
            item,
            Item::InternalDate | Item::Size | Item::Envelope | Item::Body | Item::BodyStructure
        )
    })
}

/// Whether any item needs the message's bytes.
pub fn reads_file(items: &[Item]) -> bool {
    items
        .iter()
        .any(|item| matches!(item, Item::Section { .. }))
}

/// A message read for its sections: the bytes, and the MIME tree made
/// the first time a section needs it, once for all of them.
pub struct Read {
    pub bytes: Vec<u8>,
    top: OnceCell<Part>,
}

impl Read {
    pub fn new(bytes: Vec<u8>) -> Read {
        Read {
            bytes,
            top: OnceCell::new(),
        }
    }

    fn top(&self) -> &Part {
        self.top.get_or_init(|| tree(&self.bytes))
    }
}

/// Appends one item's answer for message `index`; `Err` when the message
/// is gone. `flags` is its FLAGS list as this session shows it; `read` the
/// message, read once for all its sections.
pub fn answer(
    folder: &Folder,
    index: usize,
    item: &Item,
    flags: &[u8],
    read: Option<&Read>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let record = folder.snapshot().record(index);
    match item {
        Item::Flags => {
            out.extend_from_slice(b"FLAGS ");
            out.extend_from_slice(flags);
        }
        Item::Uid => {
            let _ = write!(out, "UID {}", record.uid);
        }
        Item::InternalDate => {
            out.extend_from_slice(b"INTERNALDATE ");
            out.extend_from_slice(crate::dates::internal_date(record.internal_date).as_bytes());
        }
        Item::Size => out.extend_from_slice(format!("RFC822.SIZE {}", record.size).as_bytes()),
        Item::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            out.extend_from_slice(&folder.field(index, describe::ENVELOPE)?);
        }
        Item::Body => {
            out.extend_from_slice(b"BODY ");
            out.extend_from_slice(&folder.field(index, describe::BODY)?);
        }
        Item::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            out.extend_from_slice(&folder.field(index, describe::BODYSTRUCTURE)?);
        }
        Item::Section {
            label,
            numbers,
            spec,
            partial,
            ..
        } => {
            let Some(read) = read else {
                return Err(std::io::ErrorKind::NotFound.into());
            };
            let data = section(read, numbers, spec).unwrap_or_default();
            out.extend_from_slice(label.as_bytes());
            out.push(b' ');
            match partial {
                Some((origin, count)) => {
                    let start = (*origin as usize).min(data.len());
                    let end = start.saturating_add(*count as usize).min(data.len());
                    literal(&data[start..end], out);
                }
                None => literal(&data, out),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"Subject: hi\r\nFrom: a@x.test\r\nTo: b@y.test\r\n\r\nbody\r\n";

    #[test]
    fn sections_of_a_simple_message() {
        let read = Read::new(MESSAGE.to_vec());
        let get =
            |numbers: &[u32], spec: Spec| section(&read, numbers, &spec).unwrap().into_owned();
        assert_eq!(get(&[], Spec::Whole), MESSAGE);
        assert_eq!(get(&[], Spec::Text), b"body\r\n");
        assert_eq!(get(&[1], Spec::Whole), b"body\r\n");
        assert_eq!(
            get(
                &[],
                Spec::Fields(vec![b"FROM".to_vec(), b"SUBJECT".to_vec()])
            ),
            b"Subject: hi\r\nFrom: a@x.test\r\n\r\n"
        );
        assert_eq!(
            get(&[], Spec::FieldsNot(vec![b"SUBJECT".to_vec()])),
            b"From: a@x.test\r\nTo: b@y.test\r\n\r\n"
        );
        assert_eq!(
            get(&[], Spec::Header),
            b"Subject: hi\r\nFrom: a@x.test\r\nTo: b@y.test\r\n\r\n"
        );
        assert!(section(&read, &[2], &Spec::Whole).is_none());
        assert!(section(&read, &[1], &Spec::Header).is_none());
    }
}
