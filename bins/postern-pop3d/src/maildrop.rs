//! The maildrop of a POP3 session: INBOX's `new/` and `cur/` in file-name
//! order (names start with the delivery time), each message's size as
//! POP3 counts it and its unique id; and the deletions of UPDATE.
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
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use postern_maildir::{Maildir, MessageEntry, Subdir};
use postern_pop3::Listing;

const CACHE: &str = "postern-pop3-cache";
/// RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E.
const MAX_UIDL: usize = 70;

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
    strip_message_id: bool,
}

/// What a session sees of the mailbox: the account's and the service's
/// options.
#[derive(Clone, Copy, Debug, Default)]
pub struct View {
    /// Every folder after INBOX, not INBOX alone.
    pub all_folders: bool,
    /// Invalid `Message-ID:` fields left out, and the sizes made to match.
    pub strip_message_id: bool,
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
            strip_message_id: view.strip_message_id,
        };
        for (folder, dir_name) in folders.into_iter().enumerate() {
            let dir = path.join(&dir_name);
            let (found, dovecot) = scan(&dir, view.strip_message_id)?;
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
                let cut = match view.strip_message_id {
                    true => entry.cut.unwrap_or(0),
                    false => 0,
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

    /// Whether RETR and TOP leave out invalid `Message-ID:` fields (the
    /// sizes already do).
    pub fn strips_message_id(&self) -> bool {
        self.strip_message_id
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

    /// UPDATE: removes these messages; a message already gone (another
    /// reader deleted it) counts as removed.
    pub fn delete(&self, indices: &[usize]) -> Result<(), String> {
        let mut failed = Vec::new();
        for &index in indices {
            let (Some(message), Some(path)) = (self.messages.get(index), self.path(index)) else {
                continue;
            };
            let entry = MessageEntry {
                path,
                subdir: if message.in_new {
                    Subdir::New
                } else {
                    Subdir::Cur
                },
                name: postern_maildir::MessageName::parse(&self.name(index)),
            };
            match self.maildir.remove(&entry) {
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

/// The file name up to `:` (the unique part with its `,S=`/`,W=`).
fn unique_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(unique, _)| unique)
}

/// The file name up to its first `,` or `:`.
fn base_of(name: &str) -> &str {
    let unique = unique_of(name);
    unique.split_once(',').map_or(unique, |(base, _)| base)
}

fn uidl_of(unique: &str) -> String {
    let printable = unique.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if printable && !unique.is_empty() && unique.len() <= MAX_UIDL {
        return unique.to_string();
    }
    let hash = unique.bytes().fold(0xcbf29ce484222325u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{hash:016x}")
}

/// The size with every bare LF counted as CRLF, read in pieces through
/// `buffer`. Most mail has no CR at all: such a piece costs one count of
/// its LFs, which the compiler turns into vector instructions. `stored`,
/// the `,S=` of the name, saves the read that would find the end.
fn crlf_size(mut file: std::fs::File, stored: Option<u64>, buffer: &mut [u8]) -> io::Result<u64> {
    let (mut size, mut read, mut previous) = (0u64, 0u64, 0u8);
    loop {
        if stored.is_some_and(|stored| read >= stored) {
            return Ok(size);
        }
        let n = file.read(buffer)?;
        if n == 0 {
            return Ok(size);
        }
        read += n as u64;
        let piece = &buffer[..n];
        if previous != b'\r' && !piece.contains(&b'\r') {
            size += n as u64 + piece.iter().filter(|&&b| b == b'\n').count() as u64;
        } else {
            for &byte in piece {
                size += if byte == b'\n' && previous != b'\r' {
                    2
                } else {
                    1
                };
                previous = byte;
            }
        }
        previous = piece[n - 1];
    }
}

/// Opens `name` in the directory `dir` (already open): no walk of the
/// whole path for each of ten thousand files.
fn open_in(dir: &std::fs::File, name: &str) -> io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let name = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the
    // result is checked.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// One Maildir directory (INBOX or a folder): its messages in file-name
/// order, after the moves from `new/`, and Dovecot's UIDLs for them; its
/// cache brought up to date. With `strip`, each message's invalid
/// `Message-ID:` octets are known too.
fn scan(path: &Path, strip: bool) -> io::Result<(Vec<Entry>, HashMap<String, String>)> {
    let dovecot = postern_maildir::dovecot::pop3_uidls(&Maildir::at(path))?;
    let cache = Cache::read(path);
    let cur = stamp(&path.join("cur"))?;
    // The cache lists cur/ as it was when its time was taken: while cur/
    // has that time still, nothing was added, renamed or removed there,
    // and no readdir of a large cur/ is needed.
    let (mut found, mut changed) = if cache.stamp == Some(cur) {
        (cache.entries.clone(), false)
    } else {
        let names = names_in(&path.join("cur"))?;
        let listed = names
            .into_iter()
            .map(|name| cache.known(name, false))
            .collect();
        (listed, true)
    };
    for name in names_in(&path.join("new"))? {
        let moved = format!("{name}:2,");
        match std::fs::rename(path.join("new").join(&name), path.join("cur").join(&moved)) {
            Ok(()) => found.push(cache.known(moved, false)),
            // Another reader moved it first: it will be in cur/.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => found.push(cache.known(name, true)),
        }
        changed = true;
    }
    if measure(path, &mut found, strip)? {
        changed = true;
    }
    // File-name order: the delivery time comes first in the name.
    found.sort_by(|a, b| base_of(&a.name).cmp(base_of(&b.name)));
    if changed {
        // Only a cache: a failure to write it costs a readdir next time.
        let _ = cache.write(path, &found);
    }
    Ok((found, dovecot))
}

/// A message as found on disk, before its UIDL.
#[derive(Clone)]
struct Entry {
    name: String,
    in_new: bool,
    /// Octets with CRLF line ends; `None` until counted.
    size: Option<u64>,
    /// Of those, the octets of invalid `Message-ID:` fields; `None` until
    /// looked for.
    cut: Option<u64>,
}

/// Counts what the names and the cache did not know: the sizes, and with
/// `strip` the invalid Message-ID octets. Messages gone meanwhile (another
/// reader took them) are left out. Whether anything was counted.
///
/// On the first login to a large mailbox moved from elsewhere this reads
/// all of it, so the files are shared out among the CPUs; the threads
/// allocate nothing but their buffer.
fn measure(path: &Path, entries: &mut Vec<Entry>, strip: bool) -> io::Result<bool> {
    let wanted = |e: &Entry| e.size.is_none() || (strip && e.cut.is_none());
    let unknown: Vec<usize> = (0..entries.len())
        .filter(|&i| wanted(&entries[i]))
        .collect();
    if unknown.is_empty() {
        return Ok(false);
    }
    let cur = std::fs::File::open(path.join("cur"))?;
    let new = std::fs::File::open(path.join("new"))?;
    let (cur, new, shared) = (&cur, &new, &*entries);
    let workers = if unknown.len() < 64 {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
    };
    let share = unknown.len().div_ceil(workers).max(1);
    // Each worker's (index, what was counted); None for a file gone.
    type Counted = io::Result<Vec<(usize, Option<(u64, Option<u64>)>)>>;
    let count = move |indices: &[usize]| -> Counted {
        let mut buffer = vec![0u8; 128 * 1024];
        indices
            .iter()
            .map(|&i| {
                let entry = &shared[i];
                let dir = if entry.in_new { new } else { cur };
                Ok((i, count_one(dir, entry, strip, &mut buffer)?))
            })
            .collect()
    };
    let counted: Vec<Counted> = if workers == 1 {
        vec![count(&unknown)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = unknown
                .chunks(share)
                .map(|chunk| scope.spawn(move || count(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("a sizing thread failed")))
                })
                .collect()
        })
    };
    for part in counted {
        for (index, result) in part? {
            let entry = &mut entries[index];
            match result {
                Some((size, cut)) => {
                    entry.size = Some(size);
                    entry.cut = cut;
                }
                None => entry.size = None,
            }
        }
    }
    entries.retain(|e| e.size.is_some());
    Ok(true)
}

/// One file's size (the known one, else counted) and, with `strip`, its
/// invalid Message-ID octets; `None` if it is gone.
fn count_one(
    dir: &std::fs::File,
    entry: &Entry,
    strip: bool,
    buffer: &mut [u8],
) -> io::Result<Option<(u64, Option<u64>)>> {
    use std::io::Seek;
    let mut file = match open_in(dir, &entry.name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut cut = entry.cut;
    if strip && cut.is_none() {
        let (length, whole) = read_head(&mut file, buffer)?;
        let head = &buffer[..length];
        let ranges = postern_pop3::invalid_message_ids(head, whole);
        cut = Some(
            ranges
                .into_iter()
                .map(|r| postern_pop3::crlf_len(&head[r]))
                .sum(),
        );
        file.rewind()?;
    }
    let size = match entry.size {
        Some(size) => size,
        None => {
            let stored = unique_of(&entry.name)
                .split(',')
                .skip(1)
                .find_map(|field| field.strip_prefix("S=")?.parse::<u64>().ok());
            crlf_size(file, stored, buffer)?
        }
    };
    Ok(Some((size, cut)))
}

/// Reads a message's first octets, up to [`postern_pop3::HEAD_LIMIT`],
/// into `buffer`: how many, and whether that is the whole message.
pub fn read_head(file: &mut std::fs::File, buffer: &mut [u8]) -> io::Result<(usize, bool)> {
    let limit = postern_pop3::HEAD_LIMIT.min(buffer.len());
    let mut length = 0;
    while length < limit {
        match file.read(&mut buffer[length..limit]) {
            Ok(0) => return Ok((length, true)),
            Ok(n) => length += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((length, false))
}

/// `postern-pop3-cache` in the Maildir: cur/'s messages with their sizes
/// (and the octets of their invalid Message-ID fields, where looked for),
/// and the time cur/ had when they were listed (zero when that time was
/// too recent to be trusted: a change within the same clock tick would
/// not change it). Rebuilt from the Maildir whenever it does not match.
struct Cache {
    stamp: Option<Stamp>,
    entries: Vec<Entry>,
    /// By the name up to `:`: size and cut.
    known: HashMap<String, (u64, Option<u64>)>,
    /// The file as read, so that the same text is not written again.
    text: String,
}

/// A directory's modification time and inode.
type Stamp = (i64, i64, u64);

/// Lines `SIZE NAME`.
const CACHE_HEADER_1: &str = "POSTERN-POP3 1";
/// Lines `SIZE CUT NAME`, CUT `-` where it was not looked for.
const CACHE_HEADER: &str = "POSTERN-POP3 2";

impl Cache {
    fn read(path: &Path) -> Cache {
        let mut cache = Cache::read_nothing();
        let Ok(text) = std::fs::read_to_string(path.join(CACHE)) else {
            return cache;
        };
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let (stamp, with_cut) = if let Some(stamp) = header.strip_prefix(CACHE_HEADER) {
            (stamp, true)
        } else if let Some(stamp) = header.strip_prefix(CACHE_HEADER_1) {
            (stamp, false)
        } else {
            return cache;
        };
        let numbers: Vec<i64> = stamp
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        for line in lines {
            let Some((size, cut, name)) = parse_cache_line(line, with_cut) else {
                return Cache::read_nothing();
            };
            cache.known.insert(unique_of(name).to_string(), (size, cut));
            cache.entries.push(Entry {
                name: name.to_string(),
                in_new: false,
                size: Some(size),
                cut,
            });
        }
        if let [seconds, nanoseconds, inode] = numbers[..]
            && seconds > 0
        {
            cache.stamp = Some((seconds, nanoseconds, inode as u64));
        }
        cache.text = text;
        cache
    }

    fn read_nothing() -> Cache {
        Cache {
            stamp: None,
            entries: Vec::new(),
            known: HashMap::new(),
            text: String::new(),
        }
    }

    /// A message with what its name (`,W=`) or the cache knows of it.
    fn known(&self, name: String, in_new: bool) -> Entry {
        let unique = unique_of(&name);
        let cached = self.known.get(unique);
        let named = unique
            .split(',')
            .skip(1)
            .find_map(|field| field.strip_prefix("W=")?.parse::<u64>().ok());
        Entry {
            size: named.or(cached.map(|c| c.0)),
            cut: cached.and_then(|c| c.1),
            name,
            in_new,
        }
    }

    /// Lists cur/'s messages; the time is kept only if cur/ has not
    /// changed for a second (our own moves from new/ just changed it).
    fn write(&self, path: &Path, entries: &[Entry]) -> io::Result<()> {
        let cur = stamp(&path.join("cur"))?;
        let settled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|now| now.as_secs() as i64 > cur.0 + 1);
        let (seconds, nanoseconds, inode) = if settled { cur } else { (0, 0, 0) };
        let mut text = format!("{CACHE_HEADER} {seconds} {nanoseconds} {inode}\n");
        for entry in entries.iter().filter(|e| !e.in_new) {
            let Some(size) = entry.size else { continue };
            match entry.cut {
                Some(cut) => text.push_str(&format!("{size} {cut} {}\n", entry.name)),
                None => text.push_str(&format!("{size} - {}\n", entry.name)),
            }
        }
        if text == self.text {
            return Ok(());
        }
        let tmp = path.join(format!(".{CACHE}.{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        drop(file);
        std::fs::rename(&tmp, path.join(CACHE))
    }
}

/// A cache line: size, cut (`None` where not looked for) and name.
fn parse_cache_line(line: &str, with_cut: bool) -> Option<(u64, Option<u64>, &str)> {
    let (size, rest) = line.split_once(' ')?;
    let size = size.parse().ok()?;
    if !with_cut {
        return Some((size, None, rest));
    }
    let (cut, name) = rest.split_once(' ')?;
    match cut {
        "-" => Some((size, None, name)),
        _ => Some((size, Some(cut.parse().ok()?), name)),
    }
}

fn stamp(dir: &Path) -> io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    Ok((meta.mtime(), meta.mtime_nsec(), meta.ino()))
}

/// The message file names of a directory (dot files are not messages).
fn names_in(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string()
            && !name.starts_with('.')
        {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg(test)]
mod folder_tests {
    use super::*;

    const ALL: View = View {
        all_folders: true,
        strip_message_id: false,
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
