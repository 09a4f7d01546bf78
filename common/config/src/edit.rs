//! Changing a map the way an admin's editor would, but atomically: the new
//! text goes to a temporary file beside the map, is fsync'd, keeps the
//! map's owner and mode, and replaces the map by rename; the directory is
//! then fsync'd. A reader sees the old map or the new one, never a mix, and
//! a crash leaves one of the two. Writers serialize on `.<map>.lock`, a
//! separate file, since a lock on the map itself would go with the rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Maps hold secrets (the accounts file) or routing: private by default.
const NEW_MAP_MODE: u32 = 0o600;

/// The masquerade map is read by `postern-inject`, run by every user; it
/// tells nothing their mail would not show.
const NEW_PUBLIC_MAP_MODE: u32 = 0o644;

impl MapKind {
    fn new_mode(self) -> u32 {
        match self {
            MapKind::Masquerade => NEW_PUBLIC_MAP_MODE,
            MapKind::Domains | MapKind::Accounts | MapKind::Aliases => NEW_MAP_MODE,
        }
    }
}

/// Which map a text is, for finding its entries' keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Domains,
    Accounts,
    Aliases,
    Masquerade,
}

/// A map's text as lines, edited entry by entry. Lines that are not
/// touched — comments, blank lines, other entries, bad lines — are written
/// back byte for byte, in their order.
#[derive(Clone, Debug)]
pub struct MapText {
    kind: MapKind,
    /// Lines as written, a CR at the end kept.
    lines: Vec<String>,
    /// Whether the text ends with a line end (a file's last line may not).
    final_newline: bool,
}

impl MapText {
    pub fn new(kind: MapKind, text: &str) -> MapText {
        let body = text.strip_suffix('\n').unwrap_or(text);
        MapText {
            kind,
            lines: if text.is_empty() {
                Vec::new()
            } else {
                body.split('\n').map(str::to_string).collect()
            },
            final_newline: text.is_empty() || text.ends_with('\n'),
        }
    }

    /// Every entry's key (lower-cased, as lookups see it) and its lines.
    pub fn entries(&self) -> Vec<(String, Range<usize>)> {
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let ranges: Vec<Range<usize>> = match self.kind {
            MapKind::Aliases => crate::aliases::entry_ranges(&lines),
            MapKind::Domains | MapKind::Accounts | MapKind::Masquerade => lines
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    let t = l.trim_start();
                    !t.is_empty() && !t.starts_with('#')
                })
                .map(|(i, _)| i..i + 1)
                .collect(),
        };
        ranges
            .into_iter()
            .filter_map(|range| {
                let first = lines[range.start];
                let key = match self.kind {
                    MapKind::Aliases => crate::aliases::entry_key(first)?,
                    MapKind::Domains => {
                        let word = first.split_whitespace().next()?.to_lowercase();
                        word.strip_suffix('.').map(str::to_string).unwrap_or(word)
                    }
                    MapKind::Accounts | MapKind::Masquerade => {
                        first.split(':').next()?.trim().to_lowercase()
                    }
                };
                Some((key, range))
            })
            .collect()
    }

    /// The lines of the entry for `key`, if there is one.
    pub fn find(&self, key: &str) -> Option<Range<usize>> {
        self.entries()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r)
    }

    pub fn lines(&self, range: Range<usize>) -> &[String] {
        &self.lines[range]
    }

    /// Replaces an entry's lines (with none, to remove it).
    pub fn replace(&mut self, range: Range<usize>, new: Vec<String>) {
        self.lines.splice(range, new);
    }

    /// Removes every entry for `key` (a map may hold shadowed duplicates,
    /// which must not come back to life); returns their 1-based first line
    /// numbers as they were.
    pub fn remove_all(&mut self, key: &str) -> Vec<usize> {
        let mut removed = Vec::new();
        let mut shift = 0;
        while let Some(range) = self.find(key) {
            removed.push(range.start + 1 + shift);
            shift += range.len();
            self.replace(range, Vec::new());
        }
        removed
    }

    /// Adds lines at the end; returns the 1-based number of the first.
    pub fn append(&mut self, new: Vec<String>) -> usize {
        let number = self.lines.len() + 1;
        self.lines.extend(new);
        self.final_newline = true;
        number
    }

    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        if !text.is_empty() && self.final_newline {
            text.push('\n');
        }
        text
    }
}

/// Edits the map at `path` (created if missing) under its lock: `change`
/// gets the current text and returns what to report; the new text replaces
/// the map atomically, unless `change` refuses with an error.
pub fn edit_map<T>(
    path: &Path,
    kind: MapKind,
    change: impl FnOnce(&mut MapText) -> Result<T, String>,
) -> Result<T, String> {
    // A map that is a symbolic link (aliases -> /etc/aliases) is edited
    // where it lives, so the link stays a link.
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => path.to_path_buf(),
    };
    let path = resolved.as_path();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock = lock_file(&path.with_file_name(format!(".{name}.lock")), NEW_MAP_MODE)?;
    let current = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            format!(
                "{}:{line}: not UTF-8; postern-admin edits only text it can keep byte for byte",
                path.display()
            )
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut map = MapText::new(kind, &current);
    let result = change(&mut map)?;
    let text = map.text();
    if text != current {
        replace(path, &text, kind.new_mode(), true)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    drop(lock);
    Ok(result)
}

/// Takes the exclusive lock on `lock_path`, made with `mode` if missing.
/// Read-only is enough for flock, so any writer that may read it can lock.
pub(crate) fn lock_file(lock_path: &Path, mode: u32) -> Result<File, String> {
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .open(lock_path)
        .or_else(|_| File::open(lock_path));
    let lock = opened.map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    Ok(lock)
}

/// Replaces `path` by a new file holding `text`, atomically and durably.
/// With `keep_owner` the new file gets the old one's owner and mode (root
/// editing a map); without, it is the writer's, with `mode`.
pub(crate) fn replace(path: &Path, text: &str, mode: u32, keep_owner: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new.{}", std::process::id()));
    let existing = std::fs::metadata(path).ok().filter(|_| keep_owner);
    // One left by a writer that was killed, whose pid this one now has:
    // under the lock, nobody else can be writing it.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some(meta) = &existing {
            std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_everything_else_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        let original = "# hand-written note\nteam@x.test: a@x.test,\n\tb@x.test\n\n# another\nbroken line\nsales@x.test: c@x.test\n";
        std::fs::write(&path, original).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let removed = edit_map(&path, MapKind::Aliases, |map| {
            let range = map.find("team@x.test").ok_or("no team")?;
            let old = map.lines(range.clone()).to_vec();
            map.replace(range, Vec::new());
            Ok(old)
        });
        assert_eq!(removed.unwrap(), ["team@x.test: a@x.test,", "\tb@x.test"]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# hand-written note\n\n# another\nbroken line\nsales@x.test: c@x.test\n"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        let number = edit_map(&path, MapKind::Aliases, |map| {
            Ok(map.append(vec!["new@x.test: d@x.test".into()]))
        });
        assert_eq!(number, Ok(6));
        let refused: Result<(), String> = edit_map(&path, MapKind::Aliases, |_| Err("no".into()));
        assert_eq!(refused, Err("no".to_string()));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("sales@x.test: c@x.test\nnew@x.test: d@x.test\n")
        );
    }

    #[test]
    fn crlf_lines_a_missing_final_newline_and_links_survive() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-aliases");
        let link = dir.path().join("aliases");
        std::fs::write(
            &real,
            "# dos\r\nold@x.test: a@x.test\r\nkeep@x.test: b@x.test",
        )
        .unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        edit_map(&link, MapKind::Aliases, |map| {
            let range = map.find("old@x.test").ok_or("no old")?;
            map.replace(range, Vec::new());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "# dos\r\nkeep@x.test: b@x.test"
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        std::fs::write(&real, b"ok: a@x.test\nbad: \xff\n").unwrap();
        let refused = edit_map(&link, MapKind::Aliases, |map| {
            Ok(map.append(vec!["n: c@x.test".into()]))
        });
        assert!(
            refused.unwrap_err().ends_with(
                ":2: not UTF-8; postern-admin edits only text it can keep byte for byte"
            )
        );
    }

    #[test]
    fn keys_per_map() {
        let accounts = MapText::new(MapKind::Accounts, "# c\nA@X.test:{PLAIN}x\n");
        assert_eq!(accounts.find("a@x.test"), Some(1..2));
        let domains = MapText::new(MapKind::Domains, "Example.TEST. virtual\n");
        assert_eq!(domains.find("example.test"), Some(0..1));
        let fresh = dir_map();
        assert_eq!(fresh.text(), "");
    }

    fn dir_map() -> MapText {
        MapText::new(MapKind::Domains, "")
    }
}
