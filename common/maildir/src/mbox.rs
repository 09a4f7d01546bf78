//! Appending to an mbox file, for `.forward` lines that name one: the
//! mboxrd format (a `From ` line, `>`-quoting of body lines that start
//! with `>*From `, a blank line after), under both locks the readers of a
//! shell host use — a dotlock (`file.lock`, as mutt and pine make) and an
//! fcntl lock — and all or nothing: a failed append is cut off again.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for a lock another program holds.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// A dotlock older than this was left by a crash (procmail uses 5 minutes).
const STALE_DOTLOCK: Duration = Duration::from_secs(300);

/// Appends one message (`parts` concatenated) to the mbox at `path`,
/// created 0600 if missing. `sender` goes on the `From ` line.
pub fn append(path: &Path, sender: &str, parts: &[&[u8]]) -> io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        // No symlink, and no waiting on a FIFO someone put there.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    // `/dev/null`, sendmail's way of discarding mail for an alias.
    if meta.file_type().is_char_device() && path == Path::new("/dev/null") {
        return Ok(());
    }
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.nlink() != 1 {
        return Err(io::Error::other(format!(
            "{} belongs to uid {} or has other links: not appending as uid {me}",
            path.display(),
            meta.uid()
        )));
    }
    let _dotlock = DotLock::take(path)?;
    lock_file(&file)?;
    let start = file.metadata()?.len();
    let result = separate(&file, start)
        .and_then(|()| write_message(&file, sender, parts))
        .and_then(|()| file.sync_all());
    if result.is_err() {
        // Leave the mbox as it was: a half message would corrupt the next.
        let _ = file.set_len(start);
        let _ = file.sync_all();
    }
    result
}

/// A `From ` line must start a line after an empty one: an mbox whose last
/// message was cut short (or edited by hand) gets the missing line ends.
fn separate(file: &File, length: u64) -> io::Result<()> {
    if length == 0 {
        return Ok(());
    }
    let mut tail = [0u8; 2];
    let start = length.saturating_sub(2);
    let read = file.read_at(&mut tail[..(length - start) as usize], start)?;
    let tail = &tail[..read];
    let missing: &[u8] = if tail.ends_with(b"\n\n") || tail == b"\n" {
        b""
    } else if tail.ends_with(b"\n") {
        b"\n"
    } else {
        b"\n\n"
    };
    (&*file).write_all(missing)
}

fn write_message(file: &File, sender: &str, parts: &[&[u8]]) -> io::Result<()> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let mut out = io::BufWriter::new(file);
    writeln!(
        out,
        "From {sender} {}",
        postern_log::dates::asctime(SystemTime::now())
    )?;
    let message: Vec<u8> = parts.concat();
    let mut ends_with_newline = true;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line
            .iter()
            .skip_while(|&&b| b == b'>')
            .take(5)
            .eq(b"From ".iter())
        {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        ends_with_newline = line.ends_with(b"\n");
    }
    if !ends_with_newline {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

/// An fcntl write lock on the whole file, waited for up to `LOCK_WAIT`;
/// released when the file is closed.
fn lock_file(file: &File) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock is plain data; zeroed is a valid start.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: F_SETLK with a valid flock on our own descriptor.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if !matches!(
            error.raw_os_error(),
            Some(libc::EAGAIN) | Some(libc::EACCES)
        ) {
            return Err(error);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "mbox is locked by another program",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `file.lock`, made with O_EXCL. Where the directory is not writable to
/// us (a spool directory that needs a setgid helper), there is no dotlock
/// and the fcntl lock alone guards the file.
struct DotLock(Option<PathBuf>);

impl DotLock {
    fn take(path: &Path) -> io::Result<DotLock> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&lock)
            {
                Ok(_) => return Ok(DotLock(Some(lock))),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(DotLock(None)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::symlink_metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_DOTLOCK);
                    // A stale lock that cannot be removed (someone else's,
                    // in a sticky directory) is as good as held.
                    if stale && std::fs::remove_file(&lock).is_ok() {
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            format!("{} is held", lock.display()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Some(lock) = &self.0 {
            let _ = std::fs::remove_file(lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_quoted_messages_and_removes_the_dotlock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        append(
            &path,
            "a@x.test",
            &[b"Subject: one\n\nFrom here\n>From there\nno newline"],
        )
        .unwrap();
        append(&path, "", &[b"Subject: two\n\nbody\n"]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("From a@x.test ") && lines[0].len() > 20);
        assert_eq!(
            &lines[1..7],
            [
                "Subject: one",
                "",
                ">From here",
                ">>From there",
                "no newline",
                ""
            ]
        );
        assert!(lines[7].starts_with("From MAILER-DAEMON "));
        assert_eq!(&lines[8..], ["Subject: two", "", "body", ""]);
        assert!(!dir.path().join("mbox.lock").exists());
    }

    #[test]
    fn a_cut_short_mbox_is_mended_and_dev_null_discards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        std::fs::write(
            &path,
            b"From a@b Thu Jan  1 00:00:00 1970\nSubject: cut\n\nno end",
        )
        .unwrap();
        append(&path, "c@d", &[b"Subject: next\n\nx\n"]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("no end\n\nFrom c@d "), "{text}");
        append(Path::new("/dev/null"), "c@d", &[b"x\n"]).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(append(&fifo, "c@d", &[b"x\n"]).is_err());
        let link = dir.path().join("link");
        std::fs::hard_link(&path, &link).unwrap();
        assert!(append(&link, "c@d", &[b"x\n"]).is_err());
    }

    #[test]
    fn waits_out_a_stale_dotlock_but_not_a_fresh_one_forever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        let lock = dir.path().join("mbox.lock");
        std::fs::write(&lock, b"").unwrap();
        let old = SystemTime::now() - Duration::from_secs(600);
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        append(&path, "a@x.test", &[b"x\n"]).unwrap();
        assert!(!lock.exists());
    }
}
