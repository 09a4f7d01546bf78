//! The queue directory and the one writer every injector uses: an
//! unnamed file in `tmp/`, its mode set, fsync'd, linked into `queue/`,
//! `queue/` fsync'd (several writers share one directory fsync), and only
//! then success.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Envelope, EnvelopeError, QueueId};

/// A queue directory: `tmp/`, `queue/`, `state/` and the `trigger` FIFO.
#[derive(Clone, Debug)]
pub struct QueueDir {
    root: PathBuf,
}

/// The subdirectories and their modes. Set-group-id, so that every file
/// made in them belongs to the directory's group (postern) and the queue
/// manager can read what any injector wrote; `tmp/` and `queue/` are
/// group-writable for the setgid injectors, `state/` is the manager's.
pub const SUBDIRECTORIES: [(&str, u32); 3] =
    [("tmp", 0o2770), ("queue", 0o2770), ("state", 0o2750)];

/// A queue file's mode: the queue's group (postern, through the setgid
/// directory) must read what any injector wrote. Set on the open file,
/// since the umask of the injector's caller (mutt sets 077) would take
/// the group's bit from a mode given at creation.
pub const QUEUE_FILE_MODE: u32 = 0o640;

/// An envelope is at most this long; a reader stops looking for its end
/// after it.
const MAX_ENVELOPE: usize = 4 << 20;

impl QueueDir {
    pub fn at(root: impl Into<PathBuf>) -> QueueDir {
        QueueDir { root: root.into() }
    }

    /// Makes the subdirectories and the trigger FIFO that are missing.
    pub fn create(root: impl Into<PathBuf>) -> io::Result<QueueDir> {
        let dir = QueueDir::at(root);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir.root)?;
        for (sub, mode) in SUBDIRECTORIES {
            let path = dir.root.join(sub);
            match std::fs::DirBuilder::new().mode(0o750).create(&path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                Err(_) => {}
                Ok(()) => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?,
            }
        }
        let trigger = dir.trigger();
        if std::fs::symlink_metadata(&trigger).is_err() {
            let name = std::ffi::CString::new(trigger.as_os_str().as_encoded_bytes())?;
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(name.as_ptr(), 0o620) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // The umask took the group's write bit, which injectors of the
            // queue's group (smtpd, setgid sendmail) need to poke it.
            std::fs::set_permissions(&trigger, std::fs::Permissions::from_mode(0o620))?;
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn trigger(&self) -> PathBuf {
        self.root.join("trigger")
    }

    /// The accepted queue file of `id`.
    pub fn queue_file(&self, id: &QueueId) -> PathBuf {
        self.root.join("queue").join(id.as_str())
    }

    pub fn state_file(&self, id: &QueueId) -> PathBuf {
        self.root.join("state").join(id.as_str())
    }

    /// Starts a message: `tmp/ID` with the envelope written.
    pub fn begin(&self, envelope: &Envelope) -> io::Result<QueueWriter> {
        let header = envelope.encode().map_err(io::Error::other)?;
        let id = QueueId::generate();
        // An unnamed file (O_TMPFILE) vanishes whole if the writer dies
        // before it commits: nothing of the message exists then. Where the
        // file system cannot do that, a named file in tmp/ stands in,
        // removed by the writer or, after a crash, by the queue manager.
        let unnamed = OpenOptions::new()
            .write(true)
            .mode(QUEUE_FILE_MODE)
            .custom_flags(libc::O_TMPFILE)
            .open(self.root.join("tmp"));
        let (mut file, tmp) = match unnamed {
            Ok(file) => (file, Staging::Unnamed),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
                ) =>
            {
                let tmp = self.root.join("tmp").join(id.as_str());
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(QUEUE_FILE_MODE)
                    .open(&tmp)?;
                (file, Staging::Named(tmp))
            }
            Err(e) => return Err(e),
        };
        let mut writer = QueueWriter {
            dir: self.clone(),
            id,
            tmp: Some(tmp),
            file: None,
        };
        file.set_permissions(std::fs::Permissions::from_mode(QUEUE_FILE_MODE))?;
        file.write_all(header.as_bytes())?;
        writer.file = Some(io::BufWriter::with_capacity(64 * 1024, file));
        Ok(writer)
    }

    /// The accepted messages, oldest first.
    pub fn queued(&self) -> io::Result<Vec<QueueId>> {
        let mut ids: Vec<QueueId> = std::fs::read_dir(self.root.join("queue"))?
            .filter_map(|e| QueueId::parse(e.ok()?.file_name().to_str()?))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Why the queue manager could not read `queue/ID`, judged by the
    /// file's owner, group and mode against `queue/`'s own (whose owner
    /// and group are the manager's), so that root's `mailq` and `check`
    /// see what the manager would; `None` when it can, or the file is gone.
    pub fn manager_cannot_read(&self, id: &QueueId) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let dir = std::fs::metadata(self.root.join("queue")).ok()?;
        let file = std::fs::symlink_metadata(self.queue_file(id)).ok()?;
        let readable =
            file.is_file() && postern_privilege::may_access(&file, dir.uid(), &[dir.gid()], 0o4);
        (!readable).then(|| {
            format!(
                "mode {:04o}, owner uid {}, group gid {}: the queue's user (uid {}, gid {}) cannot read it",
                file.mode() & 0o7777,
                file.uid(),
                file.gid(),
                dir.uid(),
                dir.gid()
            )
        })
    }

    /// The envelope of an accepted message and where its data starts.
    pub fn read_envelope(&self, id: &QueueId) -> io::Result<(Envelope, u64)> {
        let mut file = File::open(self.queue_file(id))?;
        read_envelope_from(id, &mut file)
    }

    /// Step 4 of docs/QUEUE.md: the queue file goes first, then its records.
    pub fn finish(&self, id: &QueueId) -> io::Result<()> {
        match std::fs::remove_file(self.queue_file(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::remove_file(self.state_file(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes what crashes leave: `tmp/` files older than `max_age`, and
    /// records whose queue file is gone. Returns how many files went.
    pub fn clean(&self, max_age: Duration) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            let old = entry
                .metadata()?
                .modified()?
                .elapsed()
                .is_ok_and(|age| age > max_age);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        for entry in std::fs::read_dir(self.root.join("state"))? {
            let entry = entry?;
            let orphan = !self.root.join("queue").join(entry.file_name()).exists();
            if orphan && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Wakes the queue manager with the id of a message just accepted (one
    /// line, written whole: shorter than PIPE_BUF). Without a reader the
    /// FIFO cannot be opened for writing without blocking; then the manager
    /// is not running and finds the message when it starts or rescans.
    pub fn poke(&self, id: &QueueId) {
        if let Ok(mut fifo) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.trigger())
        {
            let _ = fifo.write(format!("{id}\n").as_bytes());
        }
    }
}

/// The envelope of queue file `file` (read from its current position, the
/// start) and where its data starts.
pub fn read_envelope_from(id: &QueueId, file: &mut File) -> io::Result<(Envelope, u64)> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 4 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        bytes.extend_from_slice(&chunk[..n]);
        match Envelope::decode(&bytes) {
            Ok((envelope, offset)) => return Ok((envelope, offset as u64)),
            Err(EnvelopeError::Unterminated) if n > 0 && bytes.len() < MAX_ENVELOPE => continue,
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{id}: {e}"),
                ));
            }
        }
    }
}

/// A message being written into `tmp/`. Dropped without `commit`, or
/// killed, it leaves nothing behind.
pub struct QueueWriter {
    dir: QueueDir,
    id: QueueId,
    tmp: Option<Staging>,
    file: Option<io::BufWriter<File>>,
}

/// Where an uncommitted message lives.
enum Staging {
    /// An O_TMPFILE inode with no name yet.
    Unnamed,
    Named(PathBuf),
}

impl QueueWriter {
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("the file exists until commit")
            .write_all(data)
    }

    /// Steps 1 and 2 of docs/QUEUE.md: fsync the file, rename it into
    /// `queue/`, fsync `queue/`. Only when this returns is the message
    /// accepted.
    pub fn commit(mut self) -> io::Result<QueueId> {
        let file = self.file.take().expect("the file exists until commit");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let target = self.dir.queue_file(&self.id);
        match self.tmp.take().expect("not yet committed") {
            Staging::Unnamed => link_unnamed(&file, &target)?,
            Staging::Named(tmp) => {
                if let Err(e) = std::fs::rename(&tmp, &target) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        drop(file);
        sync_directory(&self.dir.root.join("queue"))?;
        Ok(self.id.clone())
    }
}

/// Concurrent commits of one process share directory fsyncs (DESIGN.md's
/// grouped durable steps): a commit whose link was made before an fsync of
/// `queue/` began is covered by it, so a thread that finds one running
/// waits for the next and every thread behind it is served by that one.
struct DirectorySync {
    /// Links made (each commit takes a ticket after its link).
    linked: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    running: bool,
    /// The directory the tickets are for; another one is synced alone.
    path: Option<PathBuf>,
}

static DIRECTORY_SYNC: std::sync::Mutex<DirectorySync> = std::sync::Mutex::new(DirectorySync {
    linked: 0,
    synced: 0,
    running: false,
    path: None,
});
static DIRECTORY_SYNCED: std::sync::Condvar = std::sync::Condvar::new();

fn sync_directory(dir: &Path) -> io::Result<()> {
    let mut state = DIRECTORY_SYNC.lock().unwrap_or_else(|e| e.into_inner());
    if state.path.get_or_insert_with(|| dir.to_path_buf()) != dir {
        drop(state);
        return File::open(dir)?.sync_all();
    }
    state.linked += 1;
    let ticket = state.linked;
    loop {
        if state.synced >= ticket {
            return Ok(());
        }
        if !state.running {
            state.running = true;
            let covers = state.linked;
            drop(state);
            let result = File::open(dir).and_then(|d| d.sync_all());
            state = DIRECTORY_SYNC.lock().unwrap_or_else(|e| e.into_inner());
            state.running = false;
            if result.is_ok() {
                state.synced = state.synced.max(covers);
            }
            DIRECTORY_SYNCED.notify_all();
            // A failed fsync covers nobody: this commit reports it, the
            // others try again themselves.
            result?;
            continue;
        }
        state = DIRECTORY_SYNCED
            .wait(state)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Gives an O_TMPFILE inode its name, through /proc/self/fd (linkat with
/// AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
fn link_unnamed(file: &File, target: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let source = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let target = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
    // SAFETY: two valid NUL-terminated paths; the result is checked.
    let result = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for QueueWriter {
    fn drop(&mut self) {
        if let Some(Staging::Named(tmp)) = self.tmp.take() {
            self.file.take();
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recipient;

    fn envelope() -> Envelope {
        Envelope {
            arrival: 1795499282,
            sender: "alice@example.org".into(),
            recipients: vec![Recipient::new("bob@example.test")],
            ..Envelope::default()
        }
    }

    #[test]
    fn a_committed_message_is_queued_whole() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDir::create(dir.path()).unwrap();
        let mut writer = queue.begin(&envelope()).unwrap();
        writer.write(b"Subject: hi\n\n").unwrap();
        writer.write(b"body\n").unwrap();
        let id = writer.commit().unwrap();
        assert_eq!(queue.queued().unwrap(), std::slice::from_ref(&id));
        let (read, offset) = queue.read_envelope(&id).unwrap();
        assert_eq!(read, envelope());
        let bytes = std::fs::read(queue.queue_file(&id)).unwrap();
        assert_eq!(&bytes[offset as usize..], b"Subject: hi\n\nbody\n");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        queue.poke(&id);
        // Injectors of the queue's group may poke it, whatever the umask.
        let mode = std::fs::metadata(queue.trigger())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o620);
    }

    #[test]
    fn concurrent_commits_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDir::create(dir.path()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let mut writer = queue.begin(&envelope()).unwrap();
                        writer.write(b"Subject: x\n\nx\n").unwrap();
                        writer.commit().unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(queue.queued().unwrap().len(), 160);
    }

    #[test]
    fn an_abandoned_message_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDir::create(dir.path()).unwrap();
        let mut writer = queue.begin(&envelope()).unwrap();
        writer.write(b"half a mess").unwrap();
        drop(writer);
        assert!(queue.queued().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn clean_removes_stale_tmp_and_orphan_records() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDir::create(dir.path()).unwrap();
        std::fs::write(dir.path().join("tmp/0000000000000000000000"), b"crashed").unwrap();
        std::fs::write(dir.path().join("state/0000000000000000000001"), b"done 0\n").unwrap();
        assert_eq!(queue.clean(Duration::from_secs(3600)).unwrap(), 1);
        assert_eq!(queue.clean(Duration::ZERO).unwrap(), 1);
        let id = queue.begin(&envelope()).unwrap().commit().unwrap();
        queue.finish(&id).unwrap();
        assert!(queue.queued().unwrap().is_empty());
    }
}
