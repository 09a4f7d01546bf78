//! The mailboxes of an account as IMAP names them: `INBOX` for the
//! Maildir itself, and each Maildir++ folder `.A.B` as `A.B`, with `.` as
//! the hierarchy delimiter (the one the directory names already use, and
//! Dovecot's for Maildir++, so a client moved from Dovecot finds the same
//! names). Names on the wire are modified UTF-7, as the directories are.

use std::io;
use std::path::{Path, PathBuf};

use postern_maildir::{FolderName, Maildir};

pub const DELIMITER: u8 = b'.';

/// One name LIST shows.
#[derive(Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// A parent only implied by its children's names (`\Noselect`).
    pub selectable: bool,
    pub has_children: bool,
}

/// Every mailbox of the Maildir at `root`: INBOX first, then the folders
/// and the parents their names imply, sorted.
pub fn list(root: &Path) -> io::Result<Vec<Listed>> {
    let folders = Maildir::at(root).folders()?;
    let mut names: std::collections::BTreeMap<String, bool> = Default::default();
    for folder in &folders {
        let name = folder.dir_name()[1..].to_string();
        let mut at = 0;
        while let Some(dot) = name[at..].find('.') {
            names.entry(name[..at + dot].to_string()).or_insert(false);
            at += dot + 1;
        }
        names.insert(name, true);
    }
    let mut out = vec![Listed {
        name: "INBOX".into(),
        selectable: true,
        has_children: false,
    }];
    for (name, selectable) in &names {
        let prefix = format!("{name}.");
        out.push(Listed {
            name: name.clone(),
            selectable: *selectable,
            has_children: names.keys().any(|other| other.starts_with(&prefix)),
        });
    }
    Ok(out)
}

/// The directory of the mailbox a client names, if the name is one a
/// folder can have (whether or not it exists).
pub fn path_of(root: &Path, name: &[u8]) -> Option<PathBuf> {
    if name.eq_ignore_ascii_case(b"INBOX") {
        return Some(root.to_path_buf());
    }
    let name = std::str::from_utf8(name).ok()?;
    let folder = FolderName::from_dir_name(&format!(".{name}")).ok()?;
    Some(root.join(folder.dir_name()))
}

/// Whether `name` matches a LIST pattern: `*` anything, `%` anything but
/// the delimiter; INBOX matched without regard to case.
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name == b"INBOX" && pattern.len() >= 5 && pattern[..5].eq_ignore_ascii_case(b"INBOX") {
        let mut upper = b"INBOX".to_vec();
        upper.extend_from_slice(&pattern[5..]);
        return glob(&upper, name);
    }
    glob(pattern, name)
}

/// Matches in O(pattern × name): a row of "pattern prefix matches name
/// prefix" per pattern byte.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                let mut reach = false;
                for i in 0..=name.len() {
                    reach |= row[i];
                    next[i] = reach;
                    if p == b'%' && i < name.len() && name[i] == DELIMITER {
                        reach = false;
                    }
                }
            }
            _ => {
                for i in 0..name.len() {
                    next[i + 1] = row[i] && name[i] == p;
                }
            }
        }
        row = next;
    }
    row[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_rfc_3501_says() {
        assert!(matches(b"*", b"INBOX"));
        assert!(matches(b"inbox", b"INBOX"));
        assert!(matches(b"*", b"Lists.rust"));
        assert!(!matches(b"%", b"Lists.rust"));
        assert!(matches(b"%", b"Lists"));
        assert!(matches(b"Lists.%", b"Lists.rust"));
        assert!(!matches(b"Lists.%", b"Lists.rust.old"));
        assert!(matches(b"L*t", b"Lists.rust"));
        assert!(!matches(b"", b"INBOX"));
        assert!(matches(b"%.%", b"a.b"));
    }

    #[test]
    fn folders_list_with_their_implied_parents() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let maildir = Maildir::create(root).unwrap();
        for name in [".Sent", ".Lists.rust", ".Caf&AOk-"] {
            maildir
                .create_folder(&FolderName::from_dir_name(name).unwrap())
                .unwrap();
        }
        std::fs::create_dir(root.join(".bad.")).unwrap();
        let listed = list(root).unwrap();
        let names: Vec<(&str, bool, bool)> = listed
            .iter()
            .map(|l| (l.name.as_str(), l.selectable, l.has_children))
            .collect();
        assert_eq!(
            names,
            [
                ("INBOX", true, false),
                ("Caf&AOk-", true, false),
                ("Lists", false, true),
                ("Lists.rust", true, false),
                ("Sent", true, false),
            ]
        );
        assert_eq!(path_of(root, b"inbox").unwrap(), root);
        assert_eq!(
            path_of(root, b"Lists.rust").unwrap(),
            root.join(".Lists.rust")
        );
        assert!(path_of(root, b"../etc").is_none());
        assert!(path_of(root, b"a/b").is_none());
        assert!(path_of(root, b"").is_none());
    }
}
