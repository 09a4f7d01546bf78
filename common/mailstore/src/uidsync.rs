//! Bringing a folder's UID list in line with its files: what IMAP sees
//! when it opens a folder others change (postern-local delivering into
//! `new/`, pop3d and other sessions renaming in `cur/`, mutt on the shell
//! moving and flagging files). A message keeps its UID for as long as its
//! file's base name (the part before `:2,`) exists in `new/` or `cur/`,
//! whatever its flags or directory; a new base name gets the next UID, in
//! the order of the names (delivery time first); a listed message whose
//! file is missing is taken as expunged only if a second scan confirms
//! it, since a file renamed from `new/` to `cur/` during a scan can be
//! missed by both reads. UIDs are never renumbered. The list is written
//! only when messages came or went: the names it holds are the last
//! known ones, and a flag change alone does not rewrite it.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::uidlist::{UidList, UidListLock, load};

/// How long a sync waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What a sync found.
#[derive(Debug)]
pub struct Synced {
    pub list: UidList,
    /// UIDs given to messages new since the last sync.
    pub added: Vec<u32>,
    /// UIDs of messages gone since.
    pub expunged: Vec<u32>,
}

/// The base names in `new/` and `cur/`, each with its current file name.
fn scan(folder: &Path) -> io::Result<HashMap<String, String>> {
    let mut found = HashMap::new();
    for sub in ["new", "cur"] {
        let entries = match std::fs::read_dir(folder.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            found.insert(crate::names::unique_of(&name).to_string(), name);
        }
    }
    Ok(found)
}

/// Syncs `folder`'s list with its files, under the list's lock; writes it
/// only if something changed.
pub fn sync(folder: &Path, now: SystemTime) -> io::Result<Synced> {
    let lock = UidListLock::take(folder, LOCK_WAIT)?;
    let loaded = load(folder)?;
    let existed = loaded.is_some();
    let mut list = loaded.unwrap_or_else(|| UidList::fresh(now));
    let mut files = scan(folder)?;
    let missing = |files: &HashMap<String, String>, list: &UidList| {
        list.records.iter().any(|r| !files.contains_key(r.base()))
    };
    if missing(&files, &list) {
        // Confirm: a file between new/ and cur/ may have been missed.
        for (base, name) in scan(folder)? {
            files.insert(base, name);
        }
    }
    let mut changed = false;
    let mut expunged = Vec::new();
    list.records
        .retain_mut(|record| match files.remove(record.base()) {
            Some(name) => {
                // A new name is a flag change: the list's names are hints
                // (Dovecot's are stale too), not worth a rewrite.
                record.name = name;
                true
            }
            None => {
                expunged.push(record.uid);
                changed = true;
                false
            }
        });
    // The rest are new: in delivery order, which their names start with.
    // (The times are parsed once: a first sync may order 100,000 names.)
    let mut new: Vec<((u64, u64), String, String)> = files
        .into_iter()
        .map(|(base, name)| (crate::names::delivery_time(&base), base, name))
        .collect();
    new.sort_unstable();
    let mut added = Vec::new();
    for (_, _, name) in new {
        added.push(list.assign(&name));
        changed = true;
    }
    if changed || !existed {
        lock.commit(&list)?;
    }
    Ok(Synced {
        list,
        added,
        expunged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        dir
    }

    fn put(dir: &Path, sub: &str, name: &str) {
        std::fs::write(dir.join(sub).join(name), "Subject: x\n\nx\n").unwrap();
    }

    #[test]
    fn uids_follow_base_names_through_renames_and_never_come_back() {
        let dir = maildir();
        let folder = dir.path();
        for n in 1..=3 {
            put(folder, "new", &format!("170000000{n}.M{n}P1.host"));
        }
        let first = sync(folder, SystemTime::now()).unwrap();
        assert_eq!(first.added, [1, 2, 3]);
        let validity = first.list.validity;
        // mutt reads message 2 (new/ to cur/, flag S) and deletes 3.
        std::fs::rename(
            folder.join("new/1700000002.M2P1.host"),
            folder.join("cur/1700000002.M2P1.host:2,S"),
        )
        .unwrap();
        std::fs::remove_file(folder.join("new/1700000003.M3P1.host")).unwrap();
        put(folder, "new", "1700000004.M4P1.host");
        let second = sync(folder, SystemTime::now()).unwrap();
        assert_eq!(second.added, [4]);
        assert_eq!(second.expunged, [3]);
        assert_eq!(second.list.validity, validity);
        assert_eq!(second.list.uid_of("1700000002.M2P1.host"), Some(2));
        assert_eq!(
            second
                .list
                .records
                .iter()
                .find(|r| r.uid == 2)
                .unwrap()
                .name,
            "1700000002.M2P1.host:2,S"
        );
        // A file that comes back under an expunged name is a new message.
        put(folder, "cur", "1700000003.M3P1.host:2,");
        let third = sync(folder, SystemTime::now()).unwrap();
        assert_eq!(third.added, [5]);
        // Nothing changed: nothing written, nothing reported.
        let before = std::fs::metadata(folder.join("dovecot-uidlist"))
            .unwrap()
            .modified()
            .unwrap();
        let fourth = sync(folder, SystemTime::now()).unwrap();
        assert!(fourth.added.is_empty() && fourth.expunged.is_empty());
        let after = std::fs::metadata(folder.join("dovecot-uidlist"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn an_empty_folder_gets_its_list_once() {
        let dir = maildir();
        let synced = sync(dir.path(), SystemTime::now()).unwrap();
        assert!(synced.added.is_empty());
        assert_eq!(synced.list.next, 1);
        assert!(dir.path().join("dovecot-uidlist").exists());
        assert!(!dir.path().join("dovecot-uidlist.lock").exists());
    }
}
