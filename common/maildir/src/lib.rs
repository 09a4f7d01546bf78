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
mod mutf7;
mod name;
mod quota;

pub use deliver::{DeliverError, Delivered, DeliveryName, deliver};
pub use folder::{FolderError, FolderName};
pub use list::{MessageEntry, Subdir};
pub use name::{MessageName, UniqueNames, escape_host};
pub use quota::{QuotaLimits, QuotaUsage, maildirsize_add};

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

impl Maildir {
    /// Refers to a Maildir without touching the disk.
    pub fn at(path: impl Into<PathBuf>) -> Maildir {
        Maildir { path: path.into() }
    }

    /// Creates the Maildir (and missing parents) if needed.
    pub fn create(path: impl Into<PathBuf>) -> io::Result<Maildir> {
        let maildir = Maildir::at(path);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(DIR_MODE);
        for sub in ["tmp", "new", "cur"] {
            builder.create(maildir.path.join(sub))?;
        }
        Ok(maildir)
    }

    /// Creates the Maildir and every missing parent, and gives each
    /// directory it created to `uid`:`gid` (as root, for the mailbox
    /// owner). Directories that existed keep their owner.
    pub fn create_owned(path: impl Into<PathBuf>, uid: u32, gid: u32) -> io::Result<Maildir> {
        let maildir = Maildir::at(path);
        let mut missing = Vec::new();
        let mut ancestor = Some(maildir.path.as_path());
        while let Some(dir) = ancestor.filter(|d| !d.exists()) {
            missing.push(dir.to_path_buf());
            ancestor = dir.parent();
        }
        Maildir::create(&maildir.path)?;
        missing.extend(
            ["tmp", "new", "cur"]
                .iter()
                .map(|sub| maildir.path.join(sub)),
        );
        for dir in missing {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
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
