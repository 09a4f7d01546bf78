//! `~/.forward`, as sendmail reads it: targets separated by commas or
//! lines, `#` comments, double quotes around targets with spaces. A line
//! that starts with `|` is one command, quoted or not, since that is how
//! people write `|/usr/bin/procmail -f-`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use postern_config::Address;

/// Where a `.forward` line sends mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardTarget {
    /// Another address: the mail goes back through the queue.
    Address(Address),
    /// `\user`: the user's own mailbox, with no `.forward` applied again.
    KeepLocal(String),
    /// `/path/file`: appended in mbox format.
    File(PathBuf),
    /// `/path/Maildir/` (trailing slash): a Maildir.
    Maildir(PathBuf),
    /// `|command`: run by `/bin/sh -c` with the message on stdin.
    Pipe(String),
}

/// A parsed `.forward`: its targets with their line numbers, and the lines
/// it could not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    pub targets: Vec<(usize, ForwardTarget)>,
    pub errors: Vec<(usize, String)>,
}

/// The largest `.forward` read; anything longer is a mistake.
pub const MAX_FORWARD_SIZE: u64 = 64 * 1024;

impl Forward {
    /// Parses a `.forward`; a bare name is that user at `hostname`.
    pub fn parse(text: &str, hostname: &str) -> Forward {
        let mut forward = Forward::default();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('|') {
                forward.push(number, line, hostname);
                continue;
            }
            for item in split_outside_quotes(line) {
                if !item.is_empty() {
                    forward.push(number, &item, hostname);
                }
            }
        }
        forward
    }

    fn push(&mut self, line: usize, item: &str, hostname: &str) {
        match target(item, hostname) {
            Ok(target) => {
                if !self.targets.iter().any(|(_, t)| *t == target) {
                    self.targets.push((line, target));
                }
            }
            Err(why) => self.errors.push((line, why)),
        }
    }
}

fn split_outside_quotes(line: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current).trim().to_string()),
            c => current.push(c),
        }
    }
    items.push(current.trim().to_string());
    items
}

fn target(item: &str, hostname: &str) -> Result<ForwardTarget, String> {
    let item = item.trim();
    let item = match item.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
        Some(inner) => inner.trim(),
        None => item,
    };
    if let Some(command) = item.strip_prefix('|') {
        let command = command.trim();
        if command.is_empty() {
            return Err("empty command".to_string());
        }
        return Ok(ForwardTarget::Pipe(command.to_string()));
    }
    if item.starts_with('/') {
        if item.split('/').any(|part| part == "..") {
            return Err(format!("{item:?}: no '..' in paths"));
        }
        return Ok(if item.ends_with('/') {
            ForwardTarget::Maildir(PathBuf::from(item))
        } else {
            ForwardTarget::File(PathBuf::from(item))
        });
    }
    if let Some(name) = item.strip_prefix('\\') {
        if name.is_empty()
            || name.contains(['@', '/'])
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("{item:?}: \\ takes a user name"));
        }
        return Ok(ForwardTarget::KeepLocal(name.to_lowercase()));
    }
    if item.starts_with(":include:") {
        return Err(":include: is for the aliases file, not .forward".to_string());
    }
    let address = if item.contains('@') {
        Address::parse(item)
    } else {
        Address::new(item, hostname)
    };
    address
        .map(ForwardTarget::Address)
        .map_err(|e| format!("{item:?}: {e}"))
}

/// Reads a `.forward` (or an `:include:` list) only if sendmail would trust
/// it: a regular file owned by `owner` (any owner when `None`) or root,
/// writable by no one else, in a directory no one else can write. It is
/// opened without following a symlink or blocking on a FIFO, and the
/// opened file is checked, not the name, which could change in between; at
/// most `MAX_FORWARD_SIZE` bytes are read. Returns the owner's uid and the
/// text, or why the file is not to be trusted, for the log line.
pub fn read_safe(path: &Path, owner: Option<u32>) -> Result<(u32, String), String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!("{shown} is a symbolic link"),
            _ => format!("{shown}: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let uid = owner.unwrap_or(meta.uid());
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!("{shown} belongs to uid {}, not {uid}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{shown} is group- or world-writable"));
    }
    if meta.len() > MAX_FORWARD_SIZE {
        return Err(format!("{shown} is larger than {MAX_FORWARD_SIZE} bytes"));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dir_meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if dir_meta.mode() & 0o022 != 0 && dir_meta.mode() & 0o1000 == 0 {
        return Err(format!(
            "{shown} is in {}, which others can write",
            dir.display()
        ));
    }
    if dir_meta.uid() != uid && dir_meta.uid() != 0 {
        return Err(format!(
            "{} belongs to uid {}, not {uid}",
            dir.display(),
            dir_meta.uid()
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FORWARD_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok((meta.uid(), String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_safe(path: &Path, uid: u32) -> Result<(), String> {
        read_safe(path, Some(uid)).map(drop)
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_every_kind() {
        let text = "# my forward\n\\bob, bob@elsewhere.example\n|/usr/bin/procmail -f- -a x\n\"|/bin/cat >> /tmp/x\"\n/home/bob/mbox\n/home/bob/Mail/\nalice\n|cat > \"$HOME/x\"\n";
        let f = Forward::parse(text, "shell.test");
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(
            f.targets,
            [
                (2, ForwardTarget::KeepLocal("bob".into())),
                (
                    2,
                    ForwardTarget::Address(Address::parse("bob@elsewhere.example").unwrap())
                ),
                (3, ForwardTarget::Pipe("/usr/bin/procmail -f- -a x".into())),
                (4, ForwardTarget::Pipe("/bin/cat >> /tmp/x".into())),
                (5, ForwardTarget::File("/home/bob/mbox".into())),
                (6, ForwardTarget::Maildir("/home/bob/Mail/".into())),
                (
                    7,
                    ForwardTarget::Address(Address::parse("alice@shell.test").unwrap())
                ),
                (8, ForwardTarget::Pipe("cat > \"$HOME/x\"".into())),
            ]
        );
    }

    #[test]
    fn bad_items_are_reported_by_line() {
        let f = Forward::parse("a b@x.test\n|\n/a/../etc/passwd\n:include:/x\n\\\n", "h");
        let lines: Vec<usize> = f.errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5]);
        assert!(f.targets.is_empty());
    }

    #[test]
    fn unsafe_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (uid, _) = postern_privilege::current_ids();
        let path = dir.path().join(".forward");
        std::fs::write(&path, "x@y.test\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check_safe(&path, uid), Ok(()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(
            check_safe(&path, uid)
                .unwrap_err()
                .contains("group- or world-writable")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check_safe(&path, uid)
                .unwrap_err()
                .contains("which others can write")
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            check_safe(&link, uid)
                .unwrap_err()
                .contains("is a symbolic link")
        );
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            check_safe(&fifo, uid)
                .unwrap_err()
                .contains("not a regular file")
        );
        if uid == 0 {
            assert!(
                check_safe(&path, 1234).is_ok(),
                "root-owned files are trusted"
            );
        } else {
            assert!(
                check_safe(&path, uid + 1)
                    .unwrap_err()
                    .contains("belongs to uid")
            );
        }
    }
}
