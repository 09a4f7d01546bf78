//! A maildrop: INBOX's `new/` and `cur/` (and, in an all-folders view,
//! every folder's after them) in file-name order (names start with the
//! delivery time), each message's size with CRLF line ends and its unique
//! id; and deletions, as POP3's UPDATE makes them.
//!
//! - Messages seen in `new/` move to `cur/` when the maildrop opens, as
//!   any Maildir reader does.
//! - A size is the octets with CRLF line ends (RFC 1939 §11): the `,W=` of
//!   the name where it has one (Postern's and Courier's deliveries), else
//!   counted once and kept in `postern-pop3-cache`, which also lists
//!   `cur/` so that a login needs no readdir of a large `cur/` that has
//!   not changed.
//! - A UIDL is Dovecot's for a message `dovecot-uidlist` lists (so a
//!   mailbox moved from Dovecot is not fetched again), else the file name
//!   up to `:` when that is at most 70 printable characters, else a hash
//!   of it: stable across flag changes and moves.
//! - Deletions remove the files and update `maildirsize`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use postern_maildir::{Maildir, MessageEntry, Subdir};

use crate::names::{uidl_of, unique_of};
use crate::scan::scan;
use crate::{Cut, Listing};

/// A message of the maildrop, kept small: a mailbox may hold a hundred
/// thousand of them. Its file name is its UIDL (or its entry in
/// `other_uniques`) followed by its part of `rests`.
struct Message {
    /// Where its name's rest (`:2,S` most often) ends in `rests`.
    rest_end: u32,
    /// In `new/` (it could not be moved), not `cur/`.
    in_new: bool,
    /// Which of the maildrop's `folders` (0: INBOX).
    folder: u16,
}

pub struct Maildrop {
    maildir: Maildir,
    messages: Vec<Message>,
    /// Sizes and UIDLs, shared with the protocol session: most UIDLs are
    /// the file name up to `:`, which is then not kept twice.
    listing: Listing,
    /// Every name's part after that, one after another.
    rests: String,
    /// The names up to `:` of the messages whose UIDL is something else
    /// (Dovecot's, a hash of a long name, or a folder's).
    other_uniques: HashMap<usize, Box<str>>,
    /// The directories the messages are in: "" for INBOX, then `.Folder`s.
    folders: Vec<String>,
}

/// What a session sees of the mailbox: the account's and the service's
/// options.
#[derive(Clone, Copy, Default)]
pub struct View {
    /// Every folder after INBOX, not INBOX alone.
    pub all_folders: bool,
    /// Octets left out of each message, and the sizes made to match.
    pub cut: Option<Cut>,
}

impl Maildrop {
    /// INBOX's messages; with `all_folders`, every folder's after them
    /// (each folder's UIDLs prefixed with its directory, so they stay
    /// unique and stable).
    pub fn open(path: &Path, view: View) -> io::Result<Maildrop> {
        let maildir = Maildir::at(path);
        let mut folders = vec![String::new()];
        if view.all_folders {
            folders.extend(maildir.folders()?.iter().map(|f| f.dir_name()));
        }
        let mut maildrop = Maildrop {
            maildir,
            messages: Vec::new(),
            listing: Listing::default(),
            rests: String::new(),
            other_uniques: HashMap::new(),
            folders: Vec::new(),
        };
        for (folder, dir_name) in folders.into_iter().enumerate() {
            let dir = path.join(&dir_name);
            let (found, dovecot) = scan(&dir, view.cut)?;
            maildrop.messages.reserve_exact(found.len());
            for entry in found {
                let index = maildrop.messages.len();
                let unique = unique_of(&entry.name);
                let own = match dovecot.get(unique) {
                    Some(kept) => kept.clone(),
                    None => uidl_of(unique),
                };
                let uidl = if folder == 0 {
                    own
                } else {
                    uidl_of(&format!("{dir_name}/{own}"))
                };
                if uidl != unique {
                    maildrop.other_uniques.insert(index, unique.into());
                }
                let cut = match view.cut {
                    Some(_) => entry.cut.unwrap_or(0),
                    None => 0,
                };
                let size = entry.size.unwrap_or(0).saturating_sub(cut);
                maildrop.listing.push(size, &uidl);
                maildrop.rests.push_str(&entry.name[unique.len()..]);
                maildrop.messages.push(Message {
                    rest_end: maildrop.rests.len() as u32,
                    in_new: entry.in_new,
                    folder: folder as u16,
                });
            }
            maildrop.folders.push(dir_name);
        }
        // What was grown by doubling goes back: the session may sit idle
        // with it for minutes.
        maildrop.listing.shrink_to_fit();
        maildrop.rests.shrink_to_fit();
        maildrop.other_uniques.shrink_to_fit();
        Ok(maildrop)
    }

    /// Message `index`'s file name.
    fn name(&self, index: usize) -> String {
        let start = match index {
            0 => 0,
            _ => self.messages[index - 1].rest_end as usize,
        };
        let rest = &self.rests[start..self.messages[index].rest_end as usize];
        let unique = match self.other_uniques.get(&index) {
            Some(unique) => unique,
            None => self.listing.uidl(index),
        };
        format!("{unique}{rest}")
    }

    /// The sizes and UIDLs (shared, not copied).
    pub fn listing(&self) -> Listing {
        self.listing.clone()
    }

    /// Where message `index` is.
    pub fn path(&self, index: usize) -> Option<PathBuf> {
        let message = self.messages.get(index)?;
        let sub = if message.in_new { "new" } else { "cur" };
        let folder = &self.folders[message.folder as usize];
        Some(
            self.maildir
                .path()
                .join(folder)
                .join(sub)
                .join(self.name(index)),
        )
    }

    /// Message `index` at its listed name.
    fn listed(&self, index: usize) -> Option<MessageEntry> {
        let message = self.messages.get(index)?;
        Some(MessageEntry {
            path: self.path(index)?,
            subdir: if message.in_new {
                Subdir::New
            } else {
                Subdir::Cur
            },
            name: postern_maildir::MessageName::parse(&self.name(index)),
        })
    }

    /// Message `index` renamed since it was listed, by another reader that
    /// changed its flags (mutt on the shell, an IMAP session): found in
    /// `cur/` by its unique part. Looked for only once the listed name is
    /// gone, so a RETR costs no more than its open.
    fn renamed(&self, index: usize) -> Option<MessageEntry> {
        let message = self.messages.get(index)?;
        let name = self.name(index);
        let unique = unique_of(&name);
        let cur = self
            .maildir
            .path()
            .join(&self.folders[message.folder as usize])
            .join("cur");
        let renamed = crate::names::find_by_unique(&cur, unique).ok()??;
        Some(MessageEntry {
            path: cur.join(&renamed),
            subdir: Subdir::Cur,
            name: postern_maildir::MessageName::parse(&renamed),
        })
    }

    /// Opens message `index` for reading, wherever it is now.
    pub fn open_message(&self, index: usize) -> io::Result<std::fs::File> {
        let gone = || io::Error::from(io::ErrorKind::NotFound);
        let listed = self.listed(index).ok_or_else(gone)?;
        match std::fs::File::open(&listed.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::File::open(self.renamed(index).ok_or_else(gone)?.path)
            }
            opened => opened,
        }
    }

    /// UPDATE: removes these messages; a message already gone (another
    /// reader deleted it) counts as removed.
    pub fn delete(&self, indices: &[usize]) -> Result<(), String> {
        let mut failed = Vec::new();
        for &index in indices {
            let Some(listed) = self.listed(index) else {
                continue;
            };
            let removed = match self.maildir.remove(&listed) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => match self.renamed(index) {
                    Some(renamed) => self.maildir.remove(&renamed),
                    None => Ok(()),
                },
                removed => removed,
            };
            match removed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CACHE;

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
        let drop = Maildrop::open(&path, View::default()).unwrap();
        let listing = drop.listing();
        let ids: Vec<(u64, String)> = (0..listing.len())
            .map(|i| (listing.size(i), listing.uidl(i).to_string()))
            .collect();
        assert_eq!(
            ids,
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
        let cached = std::fs::read_to_string(path.join(CACHE)).unwrap();
        assert!(cached.contains("6 - 1700000001.P2.host:2,\n"), "{cached}");
        // The same ids the next time.
        assert_eq!(
            Maildrop::open(&path, View::default()).unwrap().listing(),
            listing
        );
    }

    fn set_mtime(dir: &Path, time: std::time::SystemTime) {
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    #[test]
    fn an_unchanged_cur_is_listed_from_the_cache() {
        let (_dir, path) = maildir();
        let listed = || {
            Maildrop::open(&path, View::default())
                .unwrap()
                .listing()
                .len()
        };
        std::fs::write(path.join("cur/1700000001.P1.host,S=2,W=4:2,"), "a\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        set_mtime(&path.join("cur"), old);
        assert_eq!(listed(), 1);
        // A file slipped in with cur/'s time put back: the cache is
        // trusted, so it is not seen...
        std::fs::write(path.join("cur/1700000002.P2.host,S=2,W=4:2,"), "b\n").unwrap();
        set_mtime(&path.join("cur"), old);
        assert_eq!(listed(), 1);
        // ...until cur/ changes, as any real change makes it.
        set_mtime(&path.join("cur"), old + std::time::Duration::from_secs(1));
        assert_eq!(listed(), 2);
        // A move from new/ (just now) is listed, and leaves the cache
        // untrusted until cur/ has settled.
        std::fs::write(path.join("new/1700000003.P3.host"), "c\n").unwrap();
        assert_eq!(listed(), 3);
        let cached = std::fs::read_to_string(path.join(CACHE)).unwrap();
        assert!(cached.starts_with("POSTERN-POP3 2 0 0 0\n"), "{cached}");
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
        let drop = Maildrop::open(&path, View::default()).unwrap();
        assert_eq!(drop.listing().uidl(0), "000000016553F100");
        assert_eq!(drop.listing().uidl(1), "1700000009.M9P9.mail");
        drop.delete(&[0]).unwrap();
        assert!(!path.join("cur/1700000001.M1P1.mail,S=3:2,S").exists());
        let size = std::fs::read_to_string(path.join("maildirsize")).unwrap();
        assert!(size.ends_with("-3 -1\n"), "{size}");
        // Already gone: still fine.
        drop.delete(&[0]).unwrap();
    }

    #[test]
    fn a_message_whose_flags_changed_is_read_and_deleted_under_its_new_name() {
        let (_dir, path) = maildir();
        std::fs::write(path.join("cur/1700000001.P1.host,S=2:2,"), "a\n").unwrap();
        let drop = Maildrop::open(&path, View::default()).unwrap();
        // mutt on the shell marks it seen and flagged meanwhile.
        std::fs::rename(
            path.join("cur/1700000001.P1.host,S=2:2,"),
            path.join("cur/1700000001.P1.host,S=2:2,FS"),
        )
        .unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut drop.open_message(0).unwrap(), &mut text).unwrap();
        assert_eq!(text, "a\n");
        drop.delete(&[0]).unwrap();
        assert!(!path.join("cur/1700000001.P1.host,S=2:2,FS").exists());
        assert_eq!(
            drop.open_message(0).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}

#[cfg(test)]
mod folder_tests {
    use super::*;

    const ALL: View = View {
        all_folders: true,
        cut: None,
    };

    #[test]
    fn every_folder_after_inbox_with_its_own_uidls_and_the_roots_quota() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Maildir");
        let root = Maildir::create(&path).unwrap();
        let sent = root
            .create_folder(&postern_maildir::FolderName::from_dir_name(".Sent").unwrap())
            .unwrap();
        std::fs::write(path.join("cur/1700000002.P1.host,S=2:2,S"), "a\n").unwrap();
        std::fs::write(sent.path().join("cur/1700000001.P1.host,S=2:2,S"), "b\n").unwrap();
        std::fs::write(path.join("maildirsize"), "0S,0C\n4 2\n").unwrap();
        let inbox_only = Maildrop::open(&path, View::default()).unwrap();
        assert_eq!(inbox_only.listing().len(), 1);
        let all = Maildrop::open(&path, ALL).unwrap();
        let listing = all.listing();
        assert_eq!(listing.len(), 2);
        assert_eq!(listing.uidl(0), "1700000002.P1.host,S=2");
        // Same base name in a folder: its own UIDL, stable.
        assert_eq!(listing.uidl(1), ".Sent/1700000001.P1.host,S=2");
        assert_eq!(Maildrop::open(&path, ALL).unwrap().listing(), listing);
        assert!(all.path(1).unwrap().starts_with(sent.path()));
        // A deletion in a folder counts against the mailbox's quota.
        all.delete(&[1]).unwrap();
        assert!(!sent.path().join("cur/1700000001.P1.host,S=2:2,S").exists());
        let quota = std::fs::read_to_string(path.join("maildirsize")).unwrap();
        assert!(quota.ends_with("-2 -1\n"), "{quota}");
    }
}
