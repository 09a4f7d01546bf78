//! The message files of a Maildir's `new/` and `cur/`, as readers list
//! them.

use std::io;
use std::path::PathBuf;

use crate::{Maildir, MessageName};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subdir {
    New,
    Cur,
}

/// A message file found in `new/` or `cur/`.
#[derive(Clone, Debug)]
pub struct MessageEntry {
    pub path: PathBuf,
    pub subdir: Subdir,
    pub name: MessageName,
}

impl MessageEntry {
    /// The size from `,S=` if the name has it, else from the file.
    pub fn size(&self) -> io::Result<u64> {
        match self.name.size {
            Some(size) => Ok(size),
            None => Ok(std::fs::metadata(&self.path)?.len()),
        }
    }
}

impl Maildir {
    /// Removes a message and records it in `maildirsize`, as every reader
    /// that expunges must, so the quota stays right without a recount.
    pub fn remove(&self, entry: &MessageEntry) -> io::Result<()> {
        let size = entry.size()?;
        std::fs::remove_file(&entry.path)?;
        crate::maildirsize_add(self, -(size as i64), -1)
    }

    /// The messages in `new/` then `cur/`, each sorted by file name (which
    /// starts with the delivery time). Dot files are not messages.
    pub fn messages(&self) -> io::Result<Vec<MessageEntry>> {
        let mut entries = Vec::new();
        for (sub, subdir) in [("new", Subdir::New), ("cur", Subdir::Cur)] {
            let mut names: Vec<String> = Vec::new();
            for entry in std::fs::read_dir(self.path().join(sub))? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if !name.starts_with('.') {
                    names.push(name);
                }
            }
            names.sort();
            entries.extend(names.into_iter().map(|name| MessageEntry {
                path: self.path().join(sub).join(&name),
                subdir,
                name: MessageName::parse(&name),
            }));
        }
        Ok(entries)
    }
}
