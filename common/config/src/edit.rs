//! Changing a map the way an admin's editor would, but atomically: the new
//! text goes to a temporary file beside the map, is fsync'd, keeps the
//! map's owner and mode, and replaces the map by rename; the directory is
//! then fsync'd. A reader sees the old map or the new one, never a mix, and
//! a crash leaves one of the two. Writers serialize on `.<map>.lock`, a
//! separate file, since a lock on the map itself would go with the rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Maps hold secrets (the accounts file) or routing: private by default.
const NEW_MAP_MODE: u32 = 0o600;

/// Appends `line` to the map at `path` (created if missing) and returns the
/// new line's number. `check` sees the current text under the lock and may
/// refuse the change.
pub fn append_line(
    path: &Path,
    line: &str,
    check: impl FnOnce(&str) -> Result<(), String>,
) -> Result<usize, String> {
    let lock = lock_for(path)?;
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    check(&current)?;
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    let number = text.lines().count();
    replace(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    drop(lock);
    Ok(number)
}

fn lock_for(path: &Path) -> Result<File, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = path.with_file_name(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(NEW_MAP_MODE)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    Ok(lock)
}

fn replace(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new.{}", std::process::id()));
    let existing = std::fs::metadata(path).ok();
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(NEW_MAP_MODE)
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
    fn appends_keeping_text_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        std::fs::write(&path, "# keep me\na: b@c").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(append_line(&path, "x: y@z", |_| Ok(())), Ok(3));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# keep me\na: b@c\nx: y@z\n"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        let refused = append_line(&path, "z: q@r", |text| {
            if text.contains("x:") {
                Err("x exists".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(refused, Err("x exists".to_string()));
        let fresh = dir.path().join("accounts");
        assert_eq!(append_line(&fresh, "a@b:{PLAIN}c", |_| Ok(())), Ok(1));
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
    }
}
