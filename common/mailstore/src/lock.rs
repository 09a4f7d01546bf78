//! One POP3 session per mailbox (RFC 1939 §8: the maildrop is locked in
//! the TRANSACTION state). The lock is an flock on `postern-pop3.lock` in
//! the Maildir, so it dies with its session however that ends — QUIT, a
//! dropped connection, a crash, the idle timeout. The holder touches the
//! file at each command; a new login finds it idle past `lock_takeover`,
//! ends that session (which deletes nothing: it never reached UPDATE) and
//! takes the lock, so a stale session never keeps a user out.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

pub const LOCK_FILE: &str = "postern-pop3.lock";

/// How long a session that was told to go has to let go of the lock.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

pub struct MaildropLock {
    file: File,
}

pub enum LockError {
    InUse,
    Io(std::io::Error),
}

impl From<std::io::Error> for LockError {
    fn from(e: std::io::Error) -> LockError {
        LockError::Io(e)
    }
}

impl MaildropLock {
    /// The mailbox's lock, taking it over from a session idle for
    /// `takeover` or more.
    pub fn acquire(maildir: &Path, takeover: Duration) -> Result<MaildropLock, LockError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(maildir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let idle = file
                    .metadata()?
                    .modified()?
                    .elapsed()
                    .unwrap_or(Duration::ZERO);
                if idle < takeover {
                    return Err(LockError::InUse);
                }
                let mut text = String::new();
                file.read_to_string(&mut text)?;
                if let Ok(pid) = text.trim().parse::<i32>()
                    && is_pop3_session(pid)
                {
                    // SAFETY: kill(2) on a session of this same user.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let deadline = Instant::now() + TAKEOVER_WAIT;
                loop {
                    match file.try_lock() {
                        Ok(()) => break,
                        Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(TryLockError::WouldBlock) => return Err(LockError::InUse),
                        Err(TryLockError::Error(e)) => return Err(e.into()),
                    }
                }
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        let lock = MaildropLock { file };
        lock.touch();
        Ok(lock)
    }

    /// The session is alive: a command just came.
    pub fn touch(&self) {
        let _ = self.file.set_modified(SystemTime::now());
    }
}

/// Whether `pid` is a postern-pop3d process (a pid in a stale lock file
/// may since have gone to something else).
fn is_pop3_session(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|name| name.trim_end() == "postern-pop3d")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_and_a_takeover_after_the_idle_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = MaildropLock::acquire(dir.path(), Duration::from_secs(30))
            .ok()
            .unwrap();
        assert!(matches!(
            MaildropLock::acquire(dir.path(), Duration::from_secs(30)),
            Err(LockError::InUse)
        ));
        // Idle for a minute (as the file's time says): taken over once the
        // holder lets go (here by hand: this test is the holder itself).
        let minute_ago = SystemTime::now() - Duration::from_secs(60);
        first.file.set_modified(minute_ago).unwrap();
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        assert!(MaildropLock::acquire(dir.path(), Duration::from_secs(30)).is_ok());
        handle.join().unwrap();
    }
}
