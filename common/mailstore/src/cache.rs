//! The size cache, `postern-pop3-cache` in each Maildir directory: what
//! was counted once is not counted again, and an unchanged `cur/` is not
//! read again.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use crate::measure::Entry;
use crate::names::unique_of;

pub const CACHE: &str = "postern-pop3-cache";

/// `postern-pop3-cache` in the Maildir: cur/'s messages with their sizes
/// (and the octets of their invalid Message-ID fields, where looked for),
/// and the time cur/ had when they were listed (zero when that time was
/// too recent to be trusted: a change within the same clock tick would
/// not change it). Rebuilt from the Maildir whenever it does not match.
pub struct Cache {
    pub stamp: Option<Stamp>,
    pub entries: Vec<Entry>,
    /// By the name up to `:`: size and cut.
    known: HashMap<String, (u64, Option<u64>)>,
    /// The file as read, so that the same text is not written again.
    text: String,
}

/// A directory's modification time and inode.
pub type Stamp = (i64, i64, u64);

/// Lines `SIZE NAME`.
const CACHE_HEADER_1: &str = "POSTERN-POP3 1";
/// Lines `SIZE CUT NAME`, CUT `-` where it was not looked for.
const CACHE_HEADER: &str = "POSTERN-POP3 2";

impl Cache {
    pub fn read(path: &Path) -> Cache {
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
    pub fn known(&self, name: String, in_new: bool) -> Entry {
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
    pub fn write(&self, path: &Path, entries: &[Entry]) -> io::Result<()> {
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

pub fn stamp(dir: &Path) -> io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    Ok((meta.mtime(), meta.mtime_nsec(), meta.ino()))
}
