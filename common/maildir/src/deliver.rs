//! Writing one message into a Maildir's `new/`: `tmp/`, fsync, rename
//! without replacing, fsync of `new/`; quota checked first; a queued
//! delivery named so that a retry finds it already there.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{
    Maildir, MessageName, QuotaLimits, QuotaUsage, UniqueNames, escape_host, maildirsize_add,
    sync_dir,
};

/// How the delivered file is named.
pub enum DeliveryName<'a> {
    /// A fresh unique name, for deliveries outside the queue.
    Unique(&'a UniqueNames),
    /// A name derived from the queue entry and the recipient, the same on
    /// every attempt, so a retry after a crash can tell the message already
    /// landed: `<arrival>.Q<queue id>R<recipient hash>.<host>`.
    Queued {
        arrival: u64,
        queue_id: &'a str,
        recipient: &'a str,
        host: &'a str,
        /// Look in `new/` and `cur/` first (only retries pay for the scan).
        retry: bool,
    },
}

#[derive(Debug)]
pub struct Delivered {
    pub path: PathBuf,
    pub size: u64,
    /// A retry found the message already delivered and wrote nothing.
    pub already_there: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("mailbox full ({} of {} bytes, {} messages)", usage.bytes, limits.bytes, usage.messages)]
    OverQuota {
        usage: QuotaUsage,
        limits: QuotaLimits,
    },
    /// The message alone is larger than the whole quota: it can never
    /// fit, however much is deleted.
    #[error("message too large for the mailbox ({size} bytes; its whole quota is {limit} bytes)")]
    LargerThanQuota { size: u64, limit: u64 },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DeliverError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> DeliverError {
        DeliverError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Out of space or over the file-system quota: the sender should retry.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, DeliverError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }
}

/// Delivers the concatenation of `parts` (the added header lines, then the
/// message) into `new/`: write in `tmp/`, fsync, rename, fsync `new/`.
/// With `quota`, a message that would not fit is refused before a byte is
/// written. `maildirsize`, where it exists, grows by the message after it
/// lands (with or without a quota, so it stays right if one is set later).
pub fn deliver(
    maildir: &Maildir,
    parts: &[&[u8]],
    name: DeliveryName<'_>,
    quota: Option<(QuotaLimits, &UniqueNames)>,
) -> Result<Delivered, DeliverError> {
    let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let (base, queued, retry) = match &name {
        DeliveryName::Unique(names) => (names.next(), false, false),
        DeliveryName::Queued {
            arrival,
            queue_id,
            recipient,
            host,
            retry,
        } => (
            format!(
                "{arrival}.Q{queue_id}R{:016x}.{}",
                fnv1a(recipient.as_bytes()),
                escape_host(host)
            ),
            true,
            *retry,
        ),
    };
    // A retry looks before anything else: a message that landed before a
    // crash must not now be refused, by quota or otherwise.
    if retry && let Some(path) = find_delivered(maildir, &base)? {
        return already_delivered(path, size);
    }
    if let Some((limits, names)) = quota {
        if limits.bytes != 0 && size > limits.bytes {
            return Err(DeliverError::LargerThanQuota {
                size,
                limit: limits.bytes,
            });
        }
        let usage = maildir
            .quota_usage(limits, names)
            .map_err(|e| DeliverError::io("read quota of", maildir.path(), e))?;
        if !usage.admits(limits, size) {
            return Err(DeliverError::OverQuota { usage, limits });
        }
    }

    let tmp = maildir.path().join("tmp").join(&base);
    let mut file = match create_exclusive(&tmp) {
        Ok(file) => file,
        // A queued name left in tmp/ by an attempt that crashed: that
        // attempt may also have got as far as new/, so look, then redo.
        Err(e) if queued && e.kind() == io::ErrorKind::AlreadyExists => {
            if let Some(path) = find_delivered(maildir, &base)? {
                let _ = std::fs::remove_file(&tmp);
                return already_delivered(path, size);
            }
            std::fs::remove_file(&tmp).map_err(|e| DeliverError::io("remove stale", &tmp, e))?;
            create_exclusive(&tmp).map_err(|e| DeliverError::io("create", &tmp, e))?
        }
        Err(e) => return Err(DeliverError::io("create", &tmp, e)),
    };

    let written = parts
        .iter()
        .try_for_each(|part| file.write_all(part))
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DeliverError::io("write", &tmp, e));
    }

    let virtual_size = size + parts.iter().map(|p| bare_newlines(p)).sum::<u64>();
    let new_dir = maildir.path().join("new");
    let path = new_dir.join(MessageName::for_new(&base, size, virtual_size));
    match rename_no_replace(&tmp, &path) {
        Ok(()) => {}
        // Two recipients of one queue entry that reach the same mailbox
        // share the queued name: the mailbox keeps one copy.
        Err(e) if queued && e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            return already_delivered(path, size);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(DeliverError::io("rename into", &new_dir, e));
        }
    }
    sync_dir(&new_dir).map_err(|e| DeliverError::io("fsync", &new_dir, e))?;
    // The message is safely delivered; a stale maildirsize only costs a
    // recount later, so a failure here is not the sender's problem.
    let _ = maildirsize_add(maildir, size as i64, 1);
    Ok(Delivered {
        path,
        size,
        already_there: false,
    })
}

/// A delivery found in place. Its directory is fsync'd before success is
/// reported: the attempt that put it there may have died before its own
/// fsync.
fn already_delivered(path: PathBuf, size: u64) -> Result<Delivered, DeliverError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir).map_err(|e| DeliverError::io("fsync", dir, e))?;
    Ok(Delivered {
        path,
        size,
        already_there: true,
    })
}

/// rename(2) that fails with EEXIST instead of replacing a file.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths relative to the cwd.
    let result = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn create_exclusive(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// A delivery whose file name starts with `base` in `new/` or `cur/`
/// (a reader may have moved it and added flags).
fn find_delivered(maildir: &Maildir, base: &str) -> Result<Option<PathBuf>, DeliverError> {
    for sub in ["new", "cur"] {
        let dir = maildir.path().join(sub);
        let entries = std::fs::read_dir(&dir).map_err(|e| DeliverError::io("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DeliverError::io("read", &dir, e))?;
            let file_name = entry.file_name();
            let name = file_name.as_encoded_bytes();
            if name.starts_with(base.as_bytes())
                && matches!(name.get(base.len()), None | Some(b',') | Some(b':'))
            {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

/// Line ends a CRLF reader (POP3, IMAP) will count twice: the `W=` size.
fn bare_newlines(bytes: &[u8]) -> u64 {
    let mut count = 0;
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' {
            count += 1;
        }
        previous = b;
    }
    count
}

/// FNV-1a, 64 bits: a stable, dependency-free digest of the recipient for
/// the queued name (not a security boundary: the queue id is unique).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Maildir) {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("Maildir")).unwrap();
        (dir, md)
    }

    #[test]
    fn delivers_into_new_with_sizes_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, md) = setup();
        let names = UniqueNames::new("mx");
        let d = deliver(
            &md,
            &[b"X-A: 1\n", b"Subject: hi\n\nbody\n"],
            DeliveryName::Unique(&names),
            None,
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&d.path).unwrap(),
            b"X-A: 1\nSubject: hi\n\nbody\n"
        );
        let file_name = d.path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(file_name.ends_with(".mx,S=25,W=29"), "{file_name}");
        assert_eq!(
            std::fs::metadata(&d.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn queued_names_are_stable_and_retries_skip_landed_mail() {
        let (_dir, md) = setup();
        let name = |retry| DeliveryName::Queued {
            arrival: 1700000000,
            queue_id: "abc123",
            recipient: "bob@example.test",
            host: "mx",
            retry,
        };
        let first = deliver(&md, &[b"m\n"], name(false), None).unwrap();
        assert!(!first.already_there);
        // The reader moved it to cur/ and set a flag.
        let cur = md.path().join("cur").join(format!(
            "{}:2,S",
            first.path.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::rename(&first.path, &cur).unwrap();
        let again = deliver(&md, &[b"m\n"], name(true), None).unwrap();
        assert!(again.already_there);
        assert_eq!(again.path, cur);
        assert_eq!(md.messages().unwrap().len(), 1);
    }

    #[test]
    fn stale_tmp_of_a_crashed_attempt_is_replaced() {
        let (_dir, md) = setup();
        let name = DeliveryName::Queued {
            arrival: 1,
            queue_id: "q1",
            recipient: "a@b",
            host: "mx",
            retry: false,
        };
        let base = format!("1.Qq1R{:016x}.mx", fnv1a(b"a@b"));
        std::fs::write(md.path().join("tmp").join(&base), b"half").unwrap();
        let d = deliver(&md, &[b"whole\n"], name, None).unwrap();
        assert_eq!(std::fs::read(&d.path).unwrap(), b"whole\n");
        assert_eq!(std::fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn over_quota_writes_nothing() {
        let (_dir, md) = setup();
        let names = UniqueNames::new("mx");
        let limits = QuotaLimits {
            bytes: 10,
            messages: 0,
        };
        deliver(
            &md,
            &[b"12345\n"],
            DeliveryName::Unique(&names),
            Some((limits, &names)),
        )
        .unwrap();
        let err = deliver(
            &md,
            &[b"123456\n"],
            DeliveryName::Unique(&names),
            Some((limits, &names)),
        )
        .unwrap_err();
        assert!(matches!(err, DeliverError::OverQuota { .. }), "{err}");
        assert_eq!(md.messages().unwrap().len(), 1);
        // One that could never fit, even in the empty mailbox, says so.
        let err = deliver(
            &md,
            &[b"12345678901\n"],
            DeliveryName::Unique(&names),
            Some((limits, &names)),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DeliverError::LargerThanQuota {
                    size: 12,
                    limit: 10
                }
            ),
            "{err}"
        );
        assert_eq!(md.messages().unwrap().len(), 1);
        assert_eq!(
            std::fs::read_to_string(md.path().join("maildirsize")).unwrap(),
            "10S\n0 0\n6 1\n"
        );
    }

    #[test]
    fn a_retry_finds_its_delivery_even_in_a_full_mailbox() {
        let (_dir, md) = setup();
        let names = UniqueNames::new("mx");
        let limits = QuotaLimits {
            bytes: 10,
            messages: 0,
        };
        let name = |retry| DeliveryName::Queued {
            arrival: 5,
            queue_id: "q9",
            recipient: "a@b",
            host: "mx",
            retry,
        };
        deliver(&md, &[b"123456789\n"], name(false), Some((limits, &names))).unwrap();
        let again = deliver(&md, &[b"123456789\n"], name(true), Some((limits, &names))).unwrap();
        assert!(again.already_there);
    }

    #[test]
    fn two_recipients_reaching_one_mailbox_leave_one_copy() {
        let (_dir, md) = setup();
        let names = UniqueNames::new("mx");
        let limits = QuotaLimits {
            bytes: 1000,
            messages: 0,
        };
        let name = || DeliveryName::Queued {
            arrival: 5,
            queue_id: "q9",
            recipient: "a@b",
            host: "mx",
            retry: false,
        };
        assert!(
            !deliver(&md, &[b"m\n"], name(), Some((limits, &names)))
                .unwrap()
                .already_there
        );
        assert!(
            deliver(&md, &[b"m\n"], name(), Some((limits, &names)))
                .unwrap()
                .already_there
        );
        assert_eq!(md.messages().unwrap().len(), 1);
        assert_eq!(
            std::fs::read_to_string(md.path().join("maildirsize")).unwrap(),
            "1000S\n0 0\n2 1\n"
        );
    }

    #[test]
    fn newline_counting() {
        assert_eq!(bare_newlines(b"a\nb\r\nc\n"), 2);
    }
}
