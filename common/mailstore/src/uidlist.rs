//! The UID list of a Maildir folder, kept as Dovecot keeps it
//! (`dovecot-uidlist`, version 3), so that IMAP UIDs survive restarts,
//! other writers and a move between Dovecot and Postern in either
//! direction: a header `3 V<uidvalidity> N<next uid> G<mailbox guid>`,
//! then one line per message, `<uid> [<fields>] :<file name>`, fields a
//! letter and a value (`W<virtual size>`, `P<pop3 uidl>`, ...), kept as
//! they are.
//!
//! Changes take Dovecot's lock: `dovecot-uidlist.lock`, made with O_EXCL;
//! the new list is written into the lock file, synced, and renamed over
//! `dovecot-uidlist`, which installs it and frees the lock in one step. A
//! lock older than `STALE` is a crashed writer's and is taken over. A UID
//! is never given twice: `next` only grows.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const UIDLIST_FILE: &str = "dovecot-uidlist";
/// Courier-IMAP's UID list, whose format is Dovecot's version 1: a folder
/// moved from Courier keeps its UIDs.
pub const COURIER_FILE: &str = "courierimapuiddb";
pub const UIDLIST_LOCK: &str = "dovecot-uidlist.lock";
/// A lock untouched this long belongs to a writer that died (Dovecot's
/// dotlock takes over after two minutes).
pub const STALE: Duration = Duration::from_secs(120);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UidListError {
    #[error("not a dovecot-uidlist (header {0:?})")]
    Header(String),
}

/// One message's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidRecord {
    pub uid: u32,
    /// Extension fields as written (`W512`, `P0000abcd`), in order.
    pub fields: Vec<String>,
    /// The file name when the line was written (flags may have changed
    /// since; match on the part before `:`).
    pub name: String,
}

impl UidRecord {
    /// The file name up to `:2,`: the message's lasting name.
    pub fn base(&self) -> &str {
        crate::names::unique_of(&self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidList {
    pub validity: u32,
    /// The UID the next new message gets.
    pub next: u32,
    /// The mailbox GUID (hex), empty when there is none.
    pub guid: String,
    /// Header fields of other kinds, kept as they are.
    pub header_extra: Vec<String>,
    /// By UID, ascending.
    pub records: Vec<UidRecord>,
}

impl UidList {
    /// A list for a folder that has none: UIDVALIDITY from the clock, as
    /// Dovecot makes it.
    pub fn fresh(now: SystemTime) -> UidList {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        UidList {
            validity: u32::try_from(secs).unwrap_or(u32::MAX).max(1),
            next: 1,
            guid: String::new(),
            header_extra: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Version 3 (and version 1, `1 <validity> <next>` with `uid name`
    /// lines). A line that does not read is left out; a UID at or above
    /// `next` raises `next`, so no UID can be given twice.
    pub fn parse(text: &str) -> Result<UidList, UidListError> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let mut words = header.split(' ');
        let version = words.next().unwrap_or_default();
        let mut list = UidList {
            validity: 0,
            next: 1,
            guid: String::new(),
            header_extra: Vec::new(),
            records: Vec::new(),
        };
        match version {
            "3" => {
                for word in words.filter(|w| !w.is_empty()) {
                    // A key of one letter: a character, not a byte, since
                    // a damaged file may hold anything.
                    let key = word.chars().next().unwrap_or(' ');
                    let value = &word[key.len_utf8()..];
                    match key {
                        'V' => list.validity = value.parse().unwrap_or(0),
                        'N' => list.next = value.parse().unwrap_or(1),
                        'G' => list.guid = value.to_string(),
                        _ => list.header_extra.push(word.to_string()),
                    }
                }
            }
            "1" => {
                list.validity = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                list.next = words.next().and_then(|v| v.parse().ok()).unwrap_or(1);
            }
            _ => return Err(UidListError::Header(header.chars().take(40).collect())),
        }
        if list.validity == 0 {
            return Err(UidListError::Header(header.chars().take(40).collect()));
        }
        for line in lines {
            let record = match version {
                "3" => line.split_once(" :").and_then(|(fields, name)| {
                    let mut fields = fields.split(' ').filter(|f| !f.is_empty());
                    let uid = fields.next()?.parse::<u32>().ok()?;
                    Some(UidRecord {
                        uid,
                        fields: fields.map(str::to_string).collect(),
                        name: name.to_string(),
                    })
                }),
                _ => line.split_once(' ').and_then(|(uid, name)| {
                    Some(UidRecord {
                        uid: uid.parse().ok()?,
                        fields: Vec::new(),
                        name: name.to_string(),
                    })
                }),
            };
            let Some(record) = record.filter(|r| r.uid > 0 && !r.name.is_empty()) else {
                continue;
            };
            list.next = list.next.max(record.uid.saturating_add(1));
            list.records.push(record);
        }
        list.records.sort_by_key(|r| r.uid);
        list.records.dedup_by_key(|r| r.uid);
        Ok(list)
    }

    /// The file's text, version 3.
    pub fn to_text(&self) -> String {
        let mut out = format!("3 V{} N{}", self.validity, self.next);
        if !self.guid.is_empty() {
            out.push_str(&format!(" G{}", self.guid));
        }
        for extra in &self.header_extra {
            out.push(' ');
            out.push_str(extra);
        }
        out.push('\n');
        for record in &self.records {
            out.push_str(&record.uid.to_string());
            for field in &record.fields {
                out.push(' ');
                out.push_str(field);
            }
            out.push_str(" :");
            out.push_str(&record.name);
            out.push('\n');
        }
        out
    }

    /// The UID of the message whose base name is `base`, if listed.
    pub fn uid_of(&self, base: &str) -> Option<u32> {
        self.records
            .iter()
            .find(|r| r.base() == base)
            .map(|r| r.uid)
    }

    /// A new UID for `name` (a file not listed yet); its UID.
    pub fn assign(&mut self, name: &str) -> u32 {
        let uid = self.next;
        self.next = self.next.saturating_add(1);
        self.records.push(UidRecord {
            uid,
            fields: Vec::new(),
            name: name.to_string(),
        });
        uid
    }
}

/// Reads a folder's list: Dovecot's, else Courier's (taken as the start
/// of a Dovecot list); `None` when it has neither.
pub fn load(folder: &Path) -> io::Result<Option<UidList>> {
    for name in [UIDLIST_FILE, COURIER_FILE] {
        match std::fs::read(folder.join(name)) {
            Ok(bytes) => {
                return UidList::parse(&String::from_utf8_lossy(&bytes))
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The POP3 UIDL of each message `dovecot-uidlist` lists (Courier's list
/// is not read: Courier's POP3 made its own UIDLs), by file name up to
/// `:`: the `P` field if Dovecot kept one (a migrated UIDL), else
/// Dovecot's default `pop3_uidl_format`, `%08Xu%08Xv` (UID and
/// UIDVALIDITY in upper-case hex). Empty without the file or when its
/// header does not read, so a mailbox moved from Dovecot keeps its ids
/// and POP3 clients that leave mail on the server fetch nothing again.
pub fn pop3_uidls(folder: &Path) -> io::Result<HashMap<String, String>> {
    let bytes = match std::fs::read(folder.join(UIDLIST_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let Ok(list) = UidList::parse(&String::from_utf8_lossy(&bytes)) else {
        return Ok(HashMap::new());
    };
    Ok(list
        .records
        .iter()
        .map(|record| {
            let kept = record
                .fields
                .iter()
                .find_map(|f| f.strip_prefix('P'))
                .filter(|p| !p.is_empty());
            let uidl = kept.map_or_else(
                || format!("{:08X}{:08X}", record.uid, list.validity),
                str::to_string,
            );
            (record.base().to_string(), uidl)
        })
        .collect())
}

/// The folder's UID list lock, held until committed or dropped.
pub struct UidListLock {
    file: Option<File>,
    path: PathBuf,
    target: PathBuf,
}

impl UidListLock {
    /// Takes the lock, waiting up to `wait` for another writer; a lock
    /// older than `STALE` is taken over.
    pub fn take(folder: &Path, wait: Duration) -> io::Result<UidListLock> {
        let path = folder.join(UIDLIST_LOCK);
        let deadline = std::time::Instant::now() + wait;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(UidListLock {
                        file: Some(file),
                        path,
                        target: folder.join(UIDLIST_FILE),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE);
                    if stale {
                        // Only the lock as it was: a new holder made
                        // since would have a new inode and a new time.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            format!("{} is held by another writer", path.display()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Installs `list`: written into the lock file, synced, renamed over
    /// the list (which frees the lock), the folder synced.
    pub fn commit(mut self, list: &UidList) -> io::Result<()> {
        let mut file = self.file.take().expect("a lock not yet committed");
        file.write_all(list.to_text().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&self.path, &self.target)?;
        if let Some(folder) = self.target.parent() {
            File::open(folder)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for UidListLock {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop3_uidls_of_versions_three_and_one() {
        let dir = tempfile::tempdir().unwrap();
        let uidls = |text: &str| {
            std::fs::write(dir.path().join(UIDLIST_FILE), text).unwrap();
            pop3_uidls(dir.path()).unwrap()
        };
        let v3 = uidls(
            "3 V1700000000 N4 G0123456789abcdef0123456789abcdef\n\
             1 :1700000001.M1P1.mail,S=100,W=103:2,S\n\
             2 W512 :1700000002.M2P2.mail,S=500\n\
             3 P0000000abc W10 :1700000003.M3P3.mail\n\
             junk line\n",
        );
        assert_eq!(v3["1700000001.M1P1.mail,S=100,W=103"], "000000016553F100");
        assert_eq!(v3["1700000002.M2P2.mail,S=500"], "000000026553F100");
        assert_eq!(v3["1700000003.M3P3.mail"], "0000000abc");
        assert_eq!(v3.len(), 3);
        let v1 = uidls("1 1700000000 3\n1 1700000001.M1P1.mail:2,\n2 1700000002.x\n");
        assert_eq!(v1["1700000001.M1P1.mail"], "000000016553F100");
        assert_eq!(v1.len(), 2);
        assert!(uidls("").is_empty());
        assert!(uidls("9 what\n1 :x\n").is_empty());
        std::fs::remove_file(dir.path().join(UIDLIST_FILE)).unwrap();
        assert!(pop3_uidls(dir.path()).unwrap().is_empty());
    }

    const DOVECOT: &str = "3 V1700000000 N5 G0123456789abcdef0123456789abcdef\n\
                           1 :1700000001.M1P1.mail,S=100,W=103:2,S\n\
                           2 W512 :1700000002.M2P2.mail,S=500\n\
                           4 P0000000abc W10 :1700000004.M4P4.mail\n";

    #[test]
    fn dovecots_file_reads_and_writes_back_the_same() {
        let list = UidList::parse(DOVECOT).unwrap();
        assert_eq!((list.validity, list.next), (1_700_000_000, 5));
        assert_eq!(list.guid, "0123456789abcdef0123456789abcdef");
        assert_eq!(list.records[1].fields, ["W512"]);
        assert_eq!(list.uid_of("1700000001.M1P1.mail,S=100,W=103"), Some(1));
        assert_eq!(list.uid_of("1700000004.M4P4.mail"), Some(4));
        assert_eq!(list.to_text(), DOVECOT);
        let v1 = UidList::parse("1 1600000000 3\n1 a.mail:2,\n2 b.mail\n").unwrap();
        assert_eq!(
            (v1.validity, v1.next, v1.records.len()),
            (1_600_000_000, 3, 2)
        );
        assert!(UidList::parse("").is_err());
        assert!(UidList::parse("3 N5\n").is_err());
        // A multi-byte first character (found by fuzzing).
        assert!(UidList::parse("3 \u{fffd}PPP1\n").is_err());
    }

    #[test]
    fn courier_uids_are_taken_where_dovecot_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join(COURIER_FILE),
            "1 1500000000 12\n10 1499999999.M1P2.host\n11 1499999999.M3P4.host\n",
        )
        .unwrap();
        let list = load(dir.path()).unwrap().unwrap();
        assert_eq!((list.validity, list.next), (1_500_000_000, 12));
        assert_eq!(list.uid_of("1499999999.M3P4.host"), Some(11));
        // Once a Dovecot list exists, it is the one read.
        std::fs::write(dir.path().join(UIDLIST_FILE), "3 V7 N2\n1 :a\n").unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().validity, 7);
    }

    #[test]
    fn no_uid_is_given_twice() {
        // A list whose N lags its lines (a crash, a hand edit): the next
        // UID is past every listed one.
        let mut list = UidList::parse("3 V1 N2\n7 :x.mail\nbad line\n0 :zero\n").unwrap();
        assert_eq!(list.next, 8);
        assert_eq!(list.records.len(), 1);
        assert_eq!(list.assign("y.mail"), 8);
        assert_eq!(list.assign("z.mail"), 9);
        assert_eq!(list.next, 10);
    }

    #[test]
    fn the_lock_is_exclusive_commits_atomically_and_stale_ones_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut list = UidList::fresh(SystemTime::now());
        list.assign("1.mail");
        let lock = UidListLock::take(dir.path(), Duration::ZERO).unwrap();
        let second = UidListLock::take(dir.path(), Duration::from_millis(50));
        assert_eq!(second.err().unwrap().kind(), io::ErrorKind::WouldBlock);
        lock.commit(&list).unwrap();
        assert!(!dir.path().join(UIDLIST_LOCK).exists());
        assert_eq!(load(dir.path()).unwrap().unwrap(), list);
        // Dropped without a commit: the list stays, the lock goes.
        drop(UidListLock::take(dir.path(), Duration::ZERO).unwrap());
        assert!(!dir.path().join(UIDLIST_LOCK).exists());
        // A crashed writer's lock, three minutes old, is taken over.
        std::fs::write(dir.path().join(UIDLIST_LOCK), "").unwrap();
        let old = SystemTime::now() - Duration::from_secs(180);
        File::options()
            .write(true)
            .open(dir.path().join(UIDLIST_LOCK))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(UidListLock::take(dir.path(), Duration::ZERO).is_ok());
    }
}
