//! STORE (RFC 3501 §6.4.6): the flags a command names as the bits of
//! their Maildir letters, and what each message's flags become.

use std::path::Path;

use imap_codec::imap_types::flag::{Flag, StoreType};

use crate::flags::{self, bit};

/// One STORE's change, applied to each message's flags as its file has
/// them at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    kind: StoreType,
    flags: u32,
    keywords: u32,
}

/// Why a STORE's flag list is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `\Recent` or an unknown `\Name`: a BAD command.
    Bad(&'static str),
    /// Every keyword letter is taken, or the keyword file cannot be
    /// written: NO.
    No(&'static str),
}

impl Change {
    /// The change `kind` with `named` flags; keywords new to the folder
    /// get a letter (`names` follows).
    pub fn new(
        kind: StoreType,
        named: &[Flag<'_>],
        folder: &Path,
        names: &mut Vec<Option<String>>,
    ) -> Result<Change, Refused> {
        let (mut bits, mut keywords) = (0, 0);
        for flag in named {
            let letter = match flag {
                Flag::Answered => b'R',
                Flag::Flagged => b'F',
                Flag::Deleted => b'T',
                Flag::Seen => b'S',
                Flag::Draft => b'D',
                Flag::Extension(_) => {
                    return Err(Refused::Bad("Unknown or unsettable system flag."));
                }
                Flag::Keyword(atom) => {
                    match flags::letter_for(folder, names, atom.as_ref()) {
                        Ok(Some(n)) => keywords |= 1 << n,
                        Ok(None) => {
                            return Err(Refused::No("[LIMIT] No more keywords in this mailbox."));
                        }
                        Err(_) => {
                            return Err(Refused::No(
                                "[SERVERBUG] The mailbox's keywords cannot be written now.",
                            ));
                        }
                    }
                    continue;
                }
            };
            bits |= bit(letter);
        }
        Ok(Change {
            kind,
            flags: bits,
            keywords,
        })
    }

    /// The flags and keywords a message with `flags` and `keywords` is to
    /// have. Replacing keeps the letters IMAP does not show.
    pub fn apply(&self, flags: u32, keywords: u32) -> (u32, u32) {
        match self.kind {
            StoreType::Add => (flags | self.flags, keywords | self.keywords),
            StoreType::Remove => (flags & !self.flags, keywords & !self.keywords),
            StoreType::Replace => ((flags & !flags::system_mask()) | self.flags, self.keywords),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::core::Atom;

    #[test]
    fn add_remove_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = vec![None; 26];
        let named = [
            Flag::Seen,
            Flag::Keyword(Atom::try_from("$Label1").unwrap()),
        ];
        let add = Change::new(StoreType::Add, &named, dir.path(), &mut names).unwrap();
        assert_eq!(names[0].as_deref(), Some("$Label1"));
        let passed = bit(b'P');
        assert_eq!(add.apply(passed, 0b100), (passed | bit(b'S'), 0b101));
        let remove = Change::new(StoreType::Remove, &named, dir.path(), &mut names).unwrap();
        assert_eq!(remove.apply(bit(b'S') | bit(b'F'), 0b11), (bit(b'F'), 0b10));
        let replace =
            Change::new(StoreType::Replace, &[Flag::Draft], dir.path(), &mut names).unwrap();
        assert_eq!(
            replace.apply(passed | bit(b'S'), 0b1),
            (passed | bit(b'D'), 0)
        );
        let recent = Flag::system(Atom::try_from("Recent").unwrap());
        assert!(matches!(
            Change::new(StoreType::Add, &[recent], dir.path(), &mut names),
            Err(Refused::Bad(_))
        ));
    }
}
