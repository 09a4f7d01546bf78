//! Flags as IMAP names them and as Maildir keeps them: the system flags
//! as the `:2,` letters every Maildir reader knows (S seen, R replied,
//! F flagged, T trashed, D draft), keywords as Dovecot's letters `a`–`z`
//! named in `dovecot-keywords`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use postern_mailstore::index::snapshot::Record;
use postern_mailstore::uidlist::UidListLock;

/// How long a new keyword waits for the folder's uidlist lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// System flags and their letters, in the order FLAGS lists them.
pub const SYSTEM: [(&str, u8); 5] = [
    ("\\Answered", b'R'),
    ("\\Flagged", b'F'),
    ("\\Deleted", b'T'),
    ("\\Seen", b'S'),
    ("\\Draft", b'D'),
];

pub fn bit(letter: u8) -> u32 {
    1 << (letter - b'A')
}

/// Flags and keywords a session set that its snapshot does not show yet,
/// by UID: the next refresh shows them without the client being told
/// again.
pub type SetHere = BTreeMap<u32, (u32, u32)>;

/// A message's flags and keywords as a session knows them.
pub fn as_known(record: &Record, set_here: &SetHere) -> (u32, u32) {
    set_here
        .get(&record.uid)
        .copied()
        .unwrap_or((record.flags, record.keywords))
}

/// The bits of the system flags IMAP shows; other letters (`P` passed)
/// are kept as they are by a STORE that replaces the flags.
pub fn system_mask() -> u32 {
    SYSTEM
        .iter()
        .fold(0, |mask, (_, letter)| mask | bit(*letter))
}

/// A folder's keyword names by letter index (`dovecot-keywords`: lines
/// `N name`); empty without the file.
pub fn keywords(folder: &Path) -> Vec<Option<String>> {
    let mut names = vec![None; 26];
    let Ok(text) = std::fs::read_to_string(folder.join("dovecot-keywords")) else {
        return names;
    };
    for line in text.lines() {
        let Some((number, name)) = line.split_once(' ') else {
            continue;
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
        if let Ok(n) = number.parse::<usize>()
            && n < 26
            && valid
        {
            names[n] = Some(name.to_string());
        }
    }
    names
}

/// The letter index of keyword `name` (compared without case, as IMAP
/// does), giving it the first free one when the folder has none yet:
/// `dovecot-keywords` is written anew under the uidlist lock, as Dovecot
/// writes it, and `names` follows. `None` when all 26 are taken.
pub fn letter_for(
    folder: &Path,
    names: &mut Vec<Option<String>>,
    name: &str,
) -> io::Result<Option<usize>> {
    let find = |names: &[Option<String>]| {
        names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    };
    if let Some(found) = find(names) {
        return Ok(Some(found));
    }
    let _lock = UidListLock::take(folder, LOCK_WAIT)?;
    *names = keywords(folder);
    if let Some(found) = find(names) {
        return Ok(Some(found));
    }
    let Some(free) = names.iter().position(Option::is_none) else {
        return Ok(None);
    };
    names[free] = Some(name.to_string());
    let text: String = names
        .iter()
        .enumerate()
        .filter_map(|(n, name)| name.as_ref().map(|name| format!("{n} {name}\n")))
        .collect();
    let temporary = folder.join("dovecot-keywords.postern-new");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, folder.join("dovecot-keywords"))?;
    Ok(Some(free))
}

/// `(\Seen $Label1 \Recent)`.
pub fn list(flags: u32, keywords: u32, names: &[Option<String>], recent: bool, out: &mut Vec<u8>) {
    out.push(b'(');
    let mut first = true;
    let mut add = |name: &str, out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(name.as_bytes());
    };
    for (name, letter) in SYSTEM {
        if flags & bit(letter) != 0 {
            add(name, out);
        }
    }
    for (n, name) in names.iter().enumerate() {
        if keywords & (1 << n) != 0
            && let Some(name) = name
        {
            add(name, out);
        }
    }
    if recent {
        add("\\Recent", out);
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dovecot-keywords"),
            "0 $Junk\n2 Work\n30 Over\nx y\n",
        )
        .unwrap();
        let names = keywords(dir.path());
        assert_eq!(names[0].as_deref(), Some("$Junk"));
        assert_eq!(names[2].as_deref(), Some("Work"));
        let mut out = Vec::new();
        list(bit(b'S') | bit(b'F'), 0b101, &names, true, &mut out);
        assert_eq!(out, b"(\\Flagged \\Seen $Junk Work \\Recent)");
        out.clear();
        list(0, 0, &names, false, &mut out);
        assert_eq!(out, b"()");
    }

    #[test]
    fn a_new_keyword_takes_the_first_free_letter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dovecot-keywords"), "0 $Junk\n2 Work\n").unwrap();
        let mut names = keywords(dir.path());
        assert_eq!(letter_for(dir.path(), &mut names, "work").unwrap(), Some(2));
        assert_eq!(
            letter_for(dir.path(), &mut names, "$Forwarded").unwrap(),
            Some(1)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dovecot-keywords")).unwrap(),
            "0 $Junk\n1 $Forwarded\n2 Work\n"
        );
        assert!(!dir.path().join("dovecot-uidlist.lock").exists());
        for n in 3..26 {
            assert_eq!(
                letter_for(dir.path(), &mut names, &format!("k{n}")).unwrap(),
                Some(n)
            );
        }
        assert_eq!(
            letter_for(dir.path(), &mut names, "one-more").unwrap(),
            None
        );
    }
}
