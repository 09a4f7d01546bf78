//! Maildir++ storage as Courier defines it and Dovecot reads it: folders are
//! `.Name.Sub/` beside `new/`, `cur/` and `tmp/`, flags follow `:2,`, the
//! size rides in `,S=` and quota lives in `maildirsize`.
//!
//! Written by hand: the `maildir` crate does not fsync the directory after
//! the rename, does not escape the host name and has no folders or quota.
//!
//! Durability: a message is in `new/` only after its bytes were fsync'd in
//! `tmp/` and the rename was made durable by an fsync of `new/`. A crash at
//! any instant leaves either no message or a whole one (and maybe a stale
//! file in `tmp/`, which readers ignore).

mod deliver;
mod folder;
mod list;
pub mod mbox;
mod mutf7;
mod name;
mod quota;
mod text;

pub use deliver::{DeliverError, Delivered, DeliveryName, deliver};
pub use folder::{FolderError, FolderName};
pub use list::{MessageEntry, Subdir};
pub use name::{MessageName, UniqueNames, escape_host};
pub use quota::{QuotaLimits, QuotaUsage, maildirsize_add};
pub use text::{crlf_len, crlf_line_ends, unix_line_ends};

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A Maildir: a directory with `tmp/`, `new/` and `cur/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maildir {
    path: PathBuf,
}

/// Directories are private to the mailbox owner, as Courier and Dovecot
/// create them.
const DIR_MODE: u32 = 0o700;
/// Parents made for a Maildir: passable, not listable.
const PARENT_MODE: u32 = 0o711;

/// mkdir that is content to find the directory already there.
fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

impl Maildir {
    /// Refers to a Maildir without touching the disk.
    pub fn at(path: impl Into<PathBuf>) -> Maildir {
        Maildir { path: path.into() }
    }

    /// Creates the Maildir (and missing parents) if needed, durably: the
    /// new directory entries are fsync'd, so a crash cannot lose a Maildir
    /// whose first message was reported delivered. Parents made here are
    /// 0711, so other owners can pass through to their own Maildirs; the
    /// Maildir and its subdirectories are 0700. Run it as the owner: it
    /// follows symlinks, which only matters for who runs it.
    pub fn create(path: impl Into<PathBuf>) -> io::Result<Maildir> {
        let maildir = Maildir::at(path);
        let mut missing = Vec::new();
        let mut ancestor = Some(maildir.path.as_path());
        while let Some(dir) = ancestor.filter(|d| !d.exists()) {
            missing.push(dir.to_path_buf());
            ancestor = dir.parent();
        }
        for dir in missing.iter().rev() {
            let mode = if *dir == maildir.path {
                DIR_MODE
            } else {
                PARENT_MODE
            };
            create_dir(dir, mode)?;
        }
        for sub in ["tmp", "new", "cur"] {
            create_dir(&maildir.path.join(sub), DIR_MODE)?;
        }
        sync_dir(&maildir.path)?;
        for dir in &missing {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(maildir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        ["tmp", "new", "cur"]
            .iter()
            .all(|sub| self.path.join(sub).is_dir())
    }

    /// Creates a Maildir++ folder with its `maildirfolder` marker, which
    /// tells Courier's and Dovecot's quota code that it is a folder.
    pub fn create_folder(&self, folder: &FolderName) -> io::Result<Maildir> {
        let sub = Maildir::create(self.path.join(folder.dir_name()))?;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(sub.path.join("maildirfolder"))?;
        Ok(sub)
    }

    /// The folder's Maildir, whether or not it exists.
    pub fn folder(&self, folder: &FolderName) -> Maildir {
        Maildir::at(self.path.join(folder.dir_name()))
    }

    /// The folders under this Maildir, by their directory names.
    pub fn folders(&self) -> io::Result<Vec<FolderName>> {
        let mut folders = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(folder) = FolderName::from_dir_name(name)
                && entry.file_type()?.is_dir()
            {
                folders.push(folder);
            }
        }
        folders.sort();
        Ok(folders)
    }
}

/// fsync a directory, making the renames and creations in it durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
