//! The maildrop of a POP3 session: INBOX's `new/` and `cur/` in file-name
//! order (names start with the delivery time), each message's size as
//! POP3 counts it and its unique id; and the deletions of UPDATE.
//!
//! - Messages seen in `new/` move to `cur/` when the maildrop opens, as
//!   any Maildir reader does.
//! - A size is the octets with CRLF line ends (RFC 1939 §11): the `,W=` of
//!   the name where it has one (Postern's and Courier's deliveries), else
//!   counted once and kept in `postern-pop3-sizes` beside the Maildir.
//! - A UIDL is Dovecot's for a message `dovecot-uidlist` lists (so a
//!   mailbox moved from Dovecot is not fetched again), else the file name
//!   up to `:` when that is at most 70 printable characters, else a hash
//!   of it: stable across flag changes and moves.
//! - Deletions remove the files and update `maildirsize`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use postern_maildir::{Maildir, MessageEntry, Subdir};
use postern_pop3::Listing;

const SIZES: &str = "postern-pop3-sizes";
/// RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E.
const MAX_UIDL: usize = 70;

/// A message of the maildrop, kept small: a mailbox may hold a hundred
/// thousand of them.
struct Message {
    /// The file name in `cur/` (or `new/`, if another reader moved it
    /// back or it could not be moved).
    name: Box<str>,
    in_new: bool,
    /// Octets with CRLF line ends.
    size: u64,
    /// Dovecot's UIDL, where it gave one; else the UIDL follows from the
    /// name.
    dovecot_uidl: Option<Box<str>>,
}

impl Message {
    fn uidl(&self) -> String {
        match &self.dovecot_uidl {
            Some(uidl) => uidl.to_string(),
            None => uidl_of(unique_of(&self.name)),
        }
    }
}

pub struct Maildrop {
    maildir: Maildir,
    messages: Vec<Message>,
}

impl Maildrop {
    pub fn open(path: &Path) -> io::Result<Maildrop> {
        let maildir = Maildir::at(path);
        let dovecot = postern_maildir::dovecot::pop3_uidls(&maildir)?;
        let mut known = read_sizes(path);
        let mut counted = false;
        let mut messages = Vec::new();
        for mut entry in maildir.messages()? {
            if entry.subdir == Subdir::New
                && let Some(moved) = move_to_cur(&maildir, &entry)
            {
                entry = moved;
            }
            let name = file_name(&entry);
            let unique = unique_of(&name);
            let size = match entry
                .name
                .virtual_size
                .or_else(|| known.get(unique).copied())
            {
                Some(size) => size,
                None => match crlf_size(&entry.path) {
                    Ok(size) => {
                        known.insert(unique.to_string(), size);
                        counted = true;
                        size
                    }
                    // Gone since the listing (another reader took it).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            messages.push(Message {
                dovecot_uidl: dovecot.get(unique).map(|u| u.as_str().into()),
                in_new: entry.subdir == Subdir::New,
                size,
                name: name.into(),
            });
        }
        // File-name order: the delivery time comes first in the name.
        messages.sort_by(|a, b| base_of(&a.name).cmp(base_of(&b.name)));
        if counted {
            // Only a cache: a failure to write it costs a recount next time.
            let _ = write_sizes(path, &known, &messages);
        }
        Ok(Maildrop { maildir, messages })
    }

    pub fn listing(&self) -> Listing {
        Listing {
            messages: self.messages.iter().map(|m| (m.size, m.uidl())).collect(),
        }
    }

    /// Where message `index` is.
    pub fn path(&self, index: usize) -> Option<PathBuf> {
        let message = self.messages.get(index)?;
        let sub = if message.in_new { "new" } else { "cur" };
        Some(self.maildir.path().join(sub).join(&*message.name))
    }

    /// UPDATE: removes these messages; a message already gone (another
    /// reader deleted it) counts as removed.
    pub fn delete(&self, indices: &[usize]) -> Result<(), String> {
        let mut failed = Vec::new();
        for &index in indices {
            let (Some(message), Some(path)) = (self.messages.get(index), self.path(index)) else {
                continue;
            };
            let entry = MessageEntry {
                path,
                subdir: if message.in_new {
                    Subdir::New
                } else {
                    Subdir::Cur
                },
                name: postern_maildir::MessageName::parse(&message.name),
            };
            match self.maildir.remove(&entry) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => failed.push(format!("message {}: {e}", index + 1)),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

fn file_name(entry: &MessageEntry) -> String {
    entry
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The file name up to `:` (the unique part with its `,S=`/`,W=`).
fn unique_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(unique, _)| unique)
}

/// The file name up to its first `,` or `:`.
fn base_of(name: &str) -> &str {
    let unique = unique_of(name);
    unique.split_once(',').map_or(unique, |(base, _)| base)
}

fn uidl_of(unique: &str) -> String {
    let printable = unique.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if printable && !unique.is_empty() && unique.len() <= MAX_UIDL {
        return unique.to_string();
    }
    let hash = unique.bytes().fold(0xcbf29ce484222325u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{hash:016x}")
}

/// `new/NAME` → `cur/NAME:2,`; `None` if another reader moved it first
/// (the listing then holds the old path, and reading finds it gone).
fn move_to_cur(maildir: &Maildir, entry: &MessageEntry) -> Option<MessageEntry> {
    let name = entry.path.file_name()?.to_string_lossy().into_owned();
    let target = maildir.path().join("cur").join(format!("{name}:2,"));
    std::fs::rename(&entry.path, &target).ok()?;
    Some(MessageEntry {
        path: target,
        subdir: Subdir::Cur,
        name: entry.name.clone(),
    })
}

/// The size with every bare LF counted as CRLF.
fn crlf_size(path: &Path) -> io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let (mut size, mut previous) = (0u64, 0u8);
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(size);
        }
        for &byte in &buffer[..n] {
            size += if byte == b'\n' && previous != b'\r' {
                2
            } else {
                1
            };
            previous = byte;
        }
    }
}

fn read_sizes(path: &Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(path.join(SIZES)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (size, name) = line.split_once(' ')?;
            Some((name.to_string(), size.parse().ok()?))
        })
        .collect()
}

/// Keeps the counted sizes of the messages still here, replaced whole.
fn write_sizes(path: &Path, known: &HashMap<String, u64>, messages: &[Message]) -> io::Result<()> {
    let mut text = String::new();
    for message in messages {
        let unique = unique_of(&message.name);
        if let Some(size) = known.get(unique) {
            text.push_str(&format!("{size} {unique}\n"));
        }
    }
    let tmp = path.join(format!(".{SIZES}.{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path.join(SIZES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Maildir");
        Maildir::create(&path).unwrap();
        (dir, path)
    }

    #[test]
    fn order_sizes_uidls_and_the_move_to_cur() {
        let (_dir, path) = maildir();
        // Postern's delivery (W= in the name), another MTA's without it,
        // and one already seen with flags.
        std::fs::write(
            path.join("new/1700000002.P1.host,S=10,W=12"),
            "a\nb\nc\r\nd",
        )
        .unwrap();
        std::fs::write(path.join("new/1700000001.P2.host"), "x\ny\n").unwrap();
        std::fs::write(path.join("cur/1700000003.P3.host:2,S"), "z\r\n").unwrap();
        let long = format!("1700000004.{}.host", "q".repeat(80));
        std::fs::write(path.join("cur").join(format!("{long}:2,")), "").unwrap();
        let drop = Maildrop::open(&path).unwrap();
        let listing = drop.listing();
        assert_eq!(
            listing.messages,
            [
                (6, "1700000001.P2.host".to_string()),
                (12, "1700000002.P1.host,S=10,W=12".to_string()),
                (3, "1700000003.P3.host".to_string()),
                (0, uidl_of(&long)),
            ]
        );
        assert_eq!(uidl_of(&long).len(), 16);
        // Seen: moved to cur/, and the counted size kept.
        assert_eq!(std::fs::read_dir(path.join("new")).unwrap().count(), 0);
        assert!(path.join("cur/1700000001.P2.host:2,").exists());
        let cached = std::fs::read_to_string(path.join(SIZES)).unwrap();
        assert!(cached.contains("6 1700000001.P2.host\n"), "{cached}");
        // The same ids the next time.
        assert_eq!(Maildrop::open(&path).unwrap().listing(), listing);
    }

    #[test]
    fn dovecot_uids_are_kept_and_deletions_update_maildirsize() {
        let (_dir, path) = maildir();
        std::fs::write(path.join("cur/1700000001.M1P1.mail,S=3:2,S"), "ab\n").unwrap();
        std::fs::write(path.join("cur/1700000009.M9P9.mail:2,"), "new\n").unwrap();
        std::fs::write(
            path.join("dovecot-uidlist"),
            "3 V1700000000 N2 Gabc\n1 :1700000001.M1P1.mail,S=3\n",
        )
        .unwrap();
        std::fs::write(path.join("maildirsize"), "0S,0C\n7 2\n").unwrap();
        let drop = Maildrop::open(&path).unwrap();
        assert_eq!(drop.listing().messages[0].1, "000000016553F100");
        assert_eq!(drop.listing().messages[1].1, "1700000009.M9P9.mail");
        drop.delete(&[0]).unwrap();
        assert!(!path.join("cur/1700000001.M1P1.mail,S=3:2,S").exists());
        let size = std::fs::read_to_string(path.join("maildirsize")).unwrap();
        assert!(size.ends_with("-3 -1\n"), "{size}");
        // Already gone: still fine.
        drop.delete(&[0]).unwrap();
    }
}
