//! A folder as IMAP (and later the webmail) reads it: its UIDs, each
//! message's flags, size, date and described fields, from the index and
//! cache beside the Maildir (`index`), kept in line with the files.
//!
//! Checking costs four `stat`s: the index's snapshot records `new/`'s and
//! `cur/`'s mtimes and `dovecot-uidlist`'s size, mtime and inode, and
//! while they match (and are not within a second of the clock, when a
//! change could leave them the same) the snapshot is the folder. When
//! they differ, the folder is synced under its lock: the UID list with
//! the files (`uidsync`), then a new snapshot in which known messages
//! keep their size, date and cache entry, only their flags read again
//! from their names, and new messages are known by name alone. A message
//! is read and described into the cache, and its size and date recorded,
//! the first time a reader asks for them (`describe`), so that opening
//! a large folder never waits for its messages to be read. Readers take
//! no lock: the snapshot is replaced by rename,
//! and a session keeps the one it mapped until it can tell its client
//! what changed.
//!
//! The index and cache can be deleted at any time: the next open rebuilds
//! them from the Maildir and `dovecot-uidlist`, with the same UIDs.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::index::entries::{self, CACHE_FILE, Describe, Entry};
use crate::index::snapshot::{
    self, Header, INDEX_FILE, Record, Snapshot, Stamps, letters, letters_of,
};
use crate::names::{find_by_unique, unique_of};

/// A file's bytes, mapped when it has any.
pub enum Mapped {
    Map(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        match self {
            Mapped::Map(map) => map,
            Mapped::Bytes(bytes) => bytes,
        }
    }
}

fn map(file: &File, len: u64) -> io::Result<Mapped> {
    if len == 0 {
        return Ok(Mapped::Bytes(Vec::new()));
    }
    // SAFETY: the index is never written in place (new snapshots are
    // renamed over it), and the cache only grows past the mapped length;
    // every read through the map is bounds-checked against its length.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file)? };
    Ok(Mapped::Map(map))
}

/// How long a reader trusts the stamps alone before it reads the
/// directories again.
const FULL_CHECK: std::time::Duration = std::time::Duration::from_secs(600);

/// A record's cache offset until its message is described.
pub const UNDESCRIBED: u64 = u64::MAX;

/// Described entries are written to the cache in pieces of about this
/// size, so that describing a large folder holds little in memory.
const APPEND_CHUNK: usize = 1 << 20;

/// Messages described at a time, across the threads that describe them.
const DESCRIBE_BATCH: usize = 512;

/// Threads that describe messages at once, at most.
const MAX_DESCRIBERS: usize = 4;

/// A message read and described: its size with CRLF line ends, its
/// internal date and its fields.
type Described = (u32, i64, Vec<Vec<u8>>);

/// One open folder.
pub struct Folder {
    path: PathBuf,
    describe: Describe,
    snapshot: Snapshot<Mapped>,
    index_stamp: IndexStamp,
    cache: Mapped,
    /// When this reader last read the directories itself.
    synced_at: SystemTime,
    /// How many of the snapshot's messages are not described, once
    /// counted.
    undescribed: Option<usize>,
}

fn nanos(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

fn now_nanos(now: SystemTime) -> i64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The folder's stamps now; a directory time within a second of `now` is
/// recorded as 0, which never matches, since a change in the same clock
/// tick would leave it as it is.
fn stamps(folder: &Path, now: SystemTime) -> io::Result<Stamps> {
    let now = now_nanos(now);
    let dir_time = |sub: &str| match std::fs::metadata(folder.join(sub)) {
        Ok(meta) => {
            let time = nanos(&meta);
            Ok(if now - time < 1_000_000_000 { 0 } else { time })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(-1),
        Err(e) => Err(e),
    };
    let mut stamps = Stamps {
        new_mtime: dir_time("new")?,
        cur_mtime: dir_time("cur")?,
        ..Stamps::default()
    };
    take_uidlist_stamps(folder, &mut stamps)?;
    Ok(stamps)
}

/// The UID list's size, mtime and inode into `stamps` (zero without one).
fn take_uidlist_stamps(folder: &Path, stamps: &mut Stamps) -> io::Result<()> {
    match std::fs::metadata(folder.join(crate::uidlist::UIDLIST_FILE)) {
        Ok(meta) => {
            stamps.uidlist_size = meta.len();
            stamps.uidlist_mtime = nanos(&meta);
            stamps.uidlist_inode = meta.ino();
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn fresh(stamps: &Stamps) -> bool {
    stamps.new_mtime != 0 && stamps.cur_mtime != 0
}

/// What a refresh found: the snapshot the folder had before, when it
/// changed, so the reader can tell what came, went and changed flags.
pub struct Refreshed {
    pub previous: Option<Snapshot<Mapped>>,
    /// UIDs this reader is the first to see (`\Recent`), when it asked.
    pub recent: Vec<u32>,
}

impl Refreshed {
    fn unchanged() -> Refreshed {
        Refreshed {
            previous: None,
            recent: Vec::new(),
        }
    }
}

/// The lock file of the index's and cache's writers: a file of its own,
/// since the cache is replaced when it is compacted.
const LOCK_FILE: &str = "postern-index.lock";

/// The folder's lock for writers of the index and cache (an flock on
/// `postern-index.lock`), and the cache opened for appending.
struct WriterLock {
    _lock: File,
    file: File,
}

impl WriterLock {
    fn take(folder: &Path) -> io::Result<WriterLock> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(folder.join(LOCK_FILE))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .read(true)
            .open(folder.join(CACHE_FILE))?;
        Ok(WriterLock { _lock: lock, file })
    }

    /// Replaces the cache with `entries`, whose length is the new one.
    fn replace_cache(&mut self, folder: &Path, entries: &[u8]) -> io::Result<()> {
        let temporary = folder.join(format!("{CACHE_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, entries)?;
        std::fs::rename(&temporary, folder.join(CACHE_FILE))?;
        self.file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(folder.join(CACHE_FILE))?;
        Ok(())
    }
}

/// A cache larger than this whose live entries fill less than half of it
/// is compacted at the next sync (entries of deleted messages and of an
/// older describe version stay until then).
const COMPACT_ABOVE: u64 = 1 << 20;

/// The index file's inode and mtime: which snapshot a reader mapped.
type IndexStamp = (u64, i64);

fn load_index(folder: &Path) -> io::Result<Option<(Snapshot<Mapped>, IndexStamp)>> {
    let file = match File::open(folder.join(INDEX_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mapped = map(&file, meta.len())?;
    Ok(Snapshot::parse(mapped)
        .ok()
        .map(|snapshot| (snapshot, (meta.ino(), nanos(&meta)))))
}

fn load_cache(folder: &Path, len: u64) -> io::Result<Option<Mapped>> {
    let file = match File::open(folder.join(CACHE_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((len == 0).then(|| Mapped::Bytes(Vec::new())));
        }
        Err(e) => return Err(e),
    };
    if file.metadata()?.len() < len {
        return Ok(None);
    }
    map(&file, len).map(Some)
}

impl Folder {
    /// Opens the Maildir folder at `path` (INBOX is the Maildir itself),
    /// synced with its files; `claim_recent` takes the messages no one
    /// has seen as this reader's `\Recent` ones.
    pub fn open(
        path: &Path,
        describe: Describe,
        claim_recent: bool,
        now: SystemTime,
    ) -> io::Result<(Folder, Vec<u32>)> {
        let empty = Snapshot::parse(Mapped::Bytes(snapshot::encode(&Header::default(), &[])))?;
        let mut folder = Folder {
            path: path.to_path_buf(),
            describe,
            snapshot: empty,
            index_stamp: (0, 0),
            cache: Mapped::Bytes(Vec::new()),
            synced_at: now,
            undescribed: None,
        };
        let refreshed = folder.refresh(claim_recent, now)?;
        Ok((folder, refreshed.recent))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Brings the folder up to date; cheap when nothing changed.
    pub fn refresh(&mut self, claim_recent: bool, now: SystemTime) -> io::Result<Refreshed> {
        let current = stamps(&self.path, now)?;
        let header = &self.snapshot.header;
        let unclaimed = claim_recent && header.first_recent < header.next_uid;
        // The stamps miss what a clock out of step with the file system's
        // (NFS) hides: now and then the directories are read anyway.
        let overdue = now
            .duration_since(self.synced_at)
            .is_ok_and(|since| since > FULL_CHECK);
        if !fresh(&current) || unclaimed || overdue {
            return self.sync(claim_recent, now);
        }
        let ours_current = current == header.stamps;
        if ours_current && self.index_unchanged() {
            return Ok(Refreshed::unchanged());
        }
        // Another reader may have done the work: a snapshot on disk that
        // matches the folder is taken as it is.
        if let Some((snapshot, stamp)) = load_index(&self.path)?
            && stamp != self.index_stamp
            && snapshot.header.stamps == current
            && snapshot.header.describe_version == self.describe.version
            && let Some(cache) = load_cache(&self.path, snapshot.header.cache_len)?
        {
            let previous = self.adopt(snapshot, cache, stamp);
            return Ok(Refreshed {
                previous: Some(previous),
                recent: Vec::new(),
            });
        }
        if ours_current {
            return Ok(Refreshed::unchanged());
        }
        self.sync(claim_recent, now)
    }

    fn index_unchanged(&self) -> bool {
        std::fs::metadata(self.path.join(INDEX_FILE))
            .is_ok_and(|meta| (meta.ino(), nanos(&meta)) == self.index_stamp)
    }

    /// The full sync, under the writers' lock.
    fn sync(&mut self, claim_recent: bool, now: SystemTime) -> io::Result<Refreshed> {
        self.synced_at = now;
        let mut lock = WriterLock::take(&self.path)?;
        // Taken before the scan: a change during it leaves a time that
        // differs from these, and the next check syncs again.
        let mut taken = stamps(&self.path, now)?;
        let synced = crate::uidsync::sync(&self.path, now)?;
        // The UID list as the sync left it.
        take_uidlist_stamps(&self.path, &mut taken)?;
        let mut cache_len = lock.file.metadata()?.len();
        let on_disk = self.reusable(synced.list.validity, cache_len)?;
        let first_recent = on_disk.as_ref().map_or(1, |(s, _)| s.header.first_recent);
        let mut records: Vec<(Record, &str)> = Vec::with_capacity(synced.list.records.len());
        for listed in &synced.list.records {
            let (flags, keywords) = snapshot::letters_of(&listed.name);
            let known = match &on_disk {
                Some((snapshot, cache)) => snapshot
                    .search(listed.uid)
                    .ok()
                    .map(|at| snapshot.record(at))
                    .filter(|r| entries::entry(cache.as_ref(), r.cache_offset, r.uid).is_some()),
                _ => None,
            };
            let record = match known {
                Some(record) => Record {
                    flags,
                    keywords,
                    ..record
                },
                None => Record {
                    uid: listed.uid,
                    flags,
                    keywords,
                    cache_offset: UNDESCRIBED,
                    ..Record::default()
                },
            };
            records.push((record, &listed.name));
        }
        if let Some((_, cache)) = &on_disk {
            let live: u64 = records
                .iter()
                .filter_map(|(r, _)| entries::entry(cache.as_ref(), r.cache_offset, r.uid))
                .map(|entry| entry.bytes().len() as u64)
                .sum();
            if cache_len > COMPACT_ABOVE && live * 2 < cache_len {
                let mut compacted = Vec::with_capacity(live as usize);
                for (record, _) in &mut records {
                    if let Some(entry) =
                        entries::entry(cache.as_ref(), record.cache_offset, record.uid)
                    {
                        record.cache_offset = compacted.len() as u64;
                        compacted.extend_from_slice(entry.bytes());
                    }
                }
                lock.replace_cache(&self.path, &compacted)?;
                cache_len = compacted.len() as u64;
            }
        }
        let mut header = Header {
            validity: synced.list.validity,
            next_uid: synced.list.next,
            count: records.len() as u32,
            first_recent,
            names_len: 0,
            describe_version: self.describe.version,
            stamps: taken,
            cache_len,
        };
        let recent: Vec<u32> = match claim_recent {
            true => records
                .iter()
                .map(|(r, _)| r.uid)
                .filter(|&uid| uid >= first_recent)
                .collect(),
            false => Vec::new(),
        };
        if claim_recent {
            header.first_recent = header.next_uid;
        }
        let bytes = snapshot::encode(&header, &records);
        let previous = self.install(lock, bytes)?;
        Ok(Refreshed {
            previous: Some(previous),
            recent,
        })
    }

    /// Writes `bytes` as the folder's snapshot and maps it (or, when
    /// another writer's replaced it at once, keeps ours until the next
    /// refresh); the snapshot it had.
    fn install(&mut self, lock: WriterLock, bytes: Vec<u8>) -> io::Result<Snapshot<Mapped>> {
        // Not synced to disk: the index is rebuilt from the Maildir if a
        // crash loses it, and a rebuild only costs time.
        let temporary = self
            .path
            .join(format!("{INDEX_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, &bytes)?;
        std::fs::rename(&temporary, self.path.join(INDEX_FILE))?;
        drop(lock);
        let written = Snapshot::parse(&bytes[..])?.header;
        let (snapshot, stamp) = match load_index(&self.path)? {
            Some((snapshot, stamp)) if snapshot.header == written => (snapshot, stamp),
            _ => (Snapshot::parse(Mapped::Bytes(bytes))?, (0, 0)),
        };
        let cache =
            load_cache(&self.path, snapshot.header.cache_len)?.unwrap_or(Mapped::Bytes(Vec::new()));
        Ok(self.adopt(snapshot, cache, stamp))
    }

    /// The snapshot on disk and its cache, when their entries may be
    /// used again: the same UIDVALIDITY and describe version, and a cache
    /// as long as the snapshot says (`cache_len` is the cache file's
    /// length, read under the writers' lock).
    fn reusable(
        &self,
        validity: u32,
        cache_len: u64,
    ) -> io::Result<Option<(Snapshot<Mapped>, Mapped)>> {
        let Some((snapshot, _)) = load_index(&self.path)? else {
            return Ok(None);
        };
        let header = &snapshot.header;
        if header.validity != validity
            || header.describe_version != self.describe.version
            || header.cache_len > cache_len
        {
            return Ok(None);
        }
        let cache = load_cache(&self.path, header.cache_len)?;
        Ok(cache.map(|cache| (snapshot, cache)))
    }

    /// Takes `snapshot` and its cache as the folder's; the one it had.
    fn adopt(
        &mut self,
        snapshot: Snapshot<Mapped>,
        cache: Mapped,
        stamp: IndexStamp,
    ) -> Snapshot<Mapped> {
        self.cache = cache;
        self.index_stamp = stamp;
        self.undescribed = None;
        std::mem::replace(&mut self.snapshot, snapshot)
    }

    /// Whether message `index` was read and described: its size, date
    /// and cached fields are known.
    pub fn described(&self, index: usize) -> bool {
        self.entry(index).is_some()
    }

    /// Reads and describes the messages of `indexes` not described yet,
    /// under the writers' lock, taking what another reader described
    /// meanwhile; a message gone since stays undescribed.
    pub fn describe(&mut self, indexes: &[usize]) -> io::Result<()> {
        // Counted at the first describe of a snapshot (not at SELECT, which
        // would touch the whole cache), so that a FETCH or SEARCH over a
        // folder described already checks nothing more.
        let undescribed = match self.undescribed {
            Some(count) => count,
            None => (0..self.len()).filter(|&i| !self.described(i)).count(),
        };
        self.undescribed = Some(undescribed);
        if undescribed == 0 {
            return Ok(());
        }
        let wanted: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|&i| i < self.len() && !self.described(i))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut lock = WriterLock::take(&self.path)?;
        let mut cache_len = lock.file.metadata()?.len();
        let theirs = self.reusable(self.validity(), cache_len)?;
        let mut records: Vec<Record> = (0..self.len()).map(|i| self.snapshot.record(i)).collect();
        let mut to_read = Vec::new();
        let mut changed = false;
        for index in wanted {
            let record = &mut records[index];
            let done_there = theirs.as_ref().and_then(|(snapshot, cache)| {
                let found = snapshot.record(snapshot.search(record.uid).ok()?);
                entries::entry(cache.as_ref(), found.cache_offset, found.uid).map(|_| found)
            });
            match done_there {
                Some(found) => {
                    (record.size, record.internal_date) = (found.size, found.internal_date);
                    record.cache_offset = found.cache_offset;
                    changed = true;
                }
                None => to_read.push(index),
            }
        }
        let mut appended = Vec::new();
        for batch in to_read.chunks(DESCRIBE_BATCH) {
            for (index, read) in self.read_and_describe(batch) {
                let Some((size, internal_date, fields)) = read? else {
                    continue;
                };
                let record = &mut records[index];
                record.cache_offset = cache_len + appended.len() as u64;
                (record.size, record.internal_date) = (size, internal_date);
                entries::encode(record.uid, &fields, &mut appended);
                changed = true;
            }
            if appended.len() >= APPEND_CHUNK {
                lock.file.write_all(&appended)?;
                cache_len += appended.len() as u64;
                appended.clear();
            }
        }
        if !changed {
            // Only messages gone since: the next sync drops them.
            return Ok(());
        }
        lock.file.write_all(&appended)?;
        cache_len += appended.len() as u64;
        let header = Header {
            cache_len,
            ..self.snapshot.header
        };
        let named: Vec<(Record, &str)> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| (record, self.snapshot.name(i)))
            .collect();
        let bytes = snapshot::encode(&header, &named);
        self.install(lock, bytes)?;
        Ok(())
    }

    /// Reads and describes the messages of `batch`, on every CPU: each
    /// is independent of the others, and a large folder's first FETCH
    /// of ENVELOPE waits for all of them. Each message's size, date and
    /// fields, or `None` when it is gone.
    fn read_and_describe(&self, batch: &[usize]) -> Vec<(usize, io::Result<Option<Described>>)> {
        let one = |index: usize| {
            let read = read_message(&self.path, self.snapshot.name(index)).map(|read| {
                read.map(|(bytes, date)| {
                    let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    (size, date, (self.describe.fields)(&bytes))
                })
            });
            (index, read)
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_DESCRIBERS);
        if workers < 2 || batch.len() < 2 * workers {
            return batch.iter().map(|&index| one(index)).collect();
        }
        let share = batch.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .chunks(share)
                .map(|part| scope.spawn(move || part.iter().map(|&i| one(i)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| match handle.join() {
                    Ok(done) => done,
                    // The describer is outside code fed hostile input;
                    // its panic is that part's failure, not the session's.
                    Err(_) => vec![(usize::MAX, Err(io::Error::other("a describer failed")))],
                })
                .collect()
        })
    }

    pub fn snapshot(&self) -> &Snapshot<Mapped> {
        &self.snapshot
    }

    pub fn validity(&self) -> u32 {
        self.snapshot.header.validity
    }

    pub fn next_uid(&self) -> u32 {
        self.snapshot.header.next_uid
    }

    pub fn len(&self) -> usize {
        self.snapshot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot.is_empty()
    }

    /// Message `index`'s cached fields, if its entry is whole.
    pub fn entry(&self, index: usize) -> Option<Entry<'_>> {
        let record = self.snapshot.record(index);
        entries::entry(self.cache.as_ref(), record.cache_offset, record.uid)
    }

    /// What `describe` makes of message `index`, from the cache or, when
    /// its entry is missing, from the file.
    pub fn field(&self, index: usize, n: usize) -> io::Result<Cow<'_, [u8]>> {
        if let Some(entry) = self.entry(index) {
            return Ok(Cow::Borrowed(entry.field(n)));
        }
        let bytes = self.message(index)?;
        Ok(Cow::Owned(
            (self.describe.fields)(&bytes)
                .into_iter()
                .nth(n)
                .unwrap_or_default(),
        ))
    }

    /// Message `index`'s bytes with CRLF line ends; `NotFound` when it
    /// is gone.
    pub fn message(&self, index: usize) -> io::Result<Vec<u8>> {
        match read_message(&self.path, self.snapshot.name(index))? {
            Some((bytes, _)) => Ok(bytes),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    /// Removes the files of messages `indexes` for good: each unlinked,
    /// the directories synced before it returns, and `maildirsize` (at
    /// the Maildir's root, which a folder's quota counts in) told, as
    /// postern-local and POP3 keep it. A message already gone is no
    /// error. The folder's next refresh shows them gone.
    pub fn expunge(&self, indexes: &[usize]) -> io::Result<()> {
        let (mut bytes, mut count) = (0i64, 0i64);
        for &index in indexes {
            let Some((dir, current)) = locate(&self.path, self.snapshot.name(index))? else {
                continue;
            };
            let file = dir.join(&current);
            let size = match std::fs::metadata(&file) {
                Ok(meta) => meta.len() as i64,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match std::fs::remove_file(&file) {
                Ok(()) => (bytes, count) = (bytes + size, count + 1),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if count == 0 {
            return Ok(());
        }
        for sub in ["cur", "new"] {
            postern_maildir::sync_dir(&self.path.join(sub))?;
        }
        let folder_name = self.path.file_name().and_then(|n| n.to_str());
        let root = match folder_name {
            Some(name) if name.starts_with('.') => self.path.parent().unwrap_or(&self.path),
            _ => &self.path,
        };
        postern_maildir::maildirsize_add(&postern_maildir::Maildir::at(root), -bytes, -count)
    }

    /// Changes message `index`'s flags: `change` gets the flags and
    /// keywords its file name has now (another program may have changed
    /// them since the snapshot) and gives those it is to have; the file is
    /// renamed into `cur/` with their letters. The flags it has then, or
    /// `None` when the message is gone. The folder's next refresh shows
    /// the change.
    pub fn change_flags(
        &self,
        index: usize,
        change: impl FnOnce(u32, u32) -> (u32, u32),
    ) -> io::Result<Option<(u32, u32)>> {
        let name = self.snapshot.name(index);
        let Some((from, current)) = locate(&self.path, name)? else {
            return Ok(None);
        };
        let (now_flags, now_keywords) = letters_of(&current);
        let (flags, keywords) = change(now_flags, now_keywords);
        if (flags, keywords) == (now_flags, now_keywords) && from.ends_with("cur") {
            return Ok(Some((flags, keywords)));
        }
        let base = match current.split_once(":2,") {
            Some((base, _)) => base,
            None => unique_of(&current),
        };
        let target = self
            .path
            .join("cur")
            .join(format!("{base}:2,{}", letters(flags, keywords)));
        match std::fs::rename(from.join(&current), target) {
            Ok(()) => Ok(Some((flags, keywords))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Where a message is now: its directory and current file name, found by
/// its unique part when flags changed it since it was listed.
fn locate(folder: &Path, name: &str) -> io::Result<Option<(PathBuf, String)>> {
    for sub in ["cur", "new"] {
        let dir = folder.join(sub);
        if dir.join(name).exists() {
            return Ok(Some((dir, name.to_string())));
        }
    }
    renamed(folder, name)
}

/// A message under another name than `name` (its flags changed): found by
/// its unique part, a readdir of `cur/` and `new/`.
fn renamed(folder: &Path, name: &str) -> io::Result<Option<(PathBuf, String)>> {
    for sub in ["cur", "new"] {
        let dir = folder.join(sub);
        if let Some(found) = find_by_unique(&dir, unique_of(name))? {
            return Ok(Some((dir, found)));
        }
    }
    Ok(None)
}

/// The message file listed as `name`, opened where it is: tried by its
/// name (one path walk, no stat first), found by its unique part only
/// when it is not there.
fn open_message(folder: &Path, name: &str) -> io::Result<Option<File>> {
    for sub in ["cur", "new"] {
        match File::open(folder.join(sub).join(name)) {
            Ok(file) => return Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let Some((dir, current)) = renamed(folder, name)? else {
        return Ok(None);
    };
    match File::open(dir.join(current)) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A message's bytes (CRLF line ends) and its internal date (the file's
/// mtime, as deliveries set it), or `None` when the file is gone.
fn read_message(folder: &Path, name: &str) -> io::Result<Option<(Vec<u8>, i64)>> {
    let Some(mut file) = open_message(folder, name)? else {
        return Ok(None);
    };
    let date = file.metadata()?.mtime();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some((postern_maildir::crlf_line_ends(&bytes), date)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test's description: the Subject line and the size.
    const DESCRIBE: Describe = Describe {
        version: 1,
        fields: subject_and_size,
    };

    fn subject_and_size(bytes: &[u8]) -> Vec<Vec<u8>> {
        let subject = bytes
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"Subject: "))
            .unwrap_or_default();
        vec![subject.to_vec(), bytes.len().to_string().into_bytes()]
    }

    fn maildir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        dir
    }

    fn put(dir: &Path, sub: &str, name: &str, subject: &str) {
        let text = format!("Subject: {subject}\nFrom: a@b\n\nbody\n");
        std::fs::write(dir.join(sub).join(name), text).unwrap();
    }

    /// A clock far enough ahead that no directory time is "too recent".
    fn later() -> SystemTime {
        SystemTime::now() + std::time::Duration::from_secs(5)
    }

    fn uids(folder: &Folder) -> Vec<u32> {
        (0..folder.len())
            .map(|i| folder.snapshot().uid(i))
            .collect()
    }

    #[test]
    fn a_folder_opens_with_uids_sizes_and_described_fields() {
        let dir = maildir();
        put(dir.path(), "new", "1700000001.M1P1.host", "one");
        put(dir.path(), "cur", "1700000002.M2P1.host:2,FS", "two");
        let (mut folder, recent) = Folder::open(dir.path(), DESCRIBE, true, later()).unwrap();
        assert_eq!(uids(&folder), [1, 2]);
        assert_eq!(recent, [1, 2]);
        // Known by name until asked for: then read and described once.
        assert!(!folder.described(0) && !folder.described(1));
        folder.describe(&[1]).unwrap();
        assert!(!folder.described(0) && folder.described(1));
        folder.describe(&[0, 1]).unwrap();
        let record = folder.snapshot().record(1);
        assert_eq!(record.flags, (1 << (b'F' - b'A')) | (1 << (b'S' - b'A')));
        // CRLF octets: four lines of the file each gain a CR.
        let file_len = "Subject: two\nFrom: a@b\n\nbody\n".len() as u32;
        assert_eq!(record.size, file_len + 4);
        assert_eq!(folder.entry(0).unwrap().field(0), b"one\r");
        assert_eq!(
            folder.field(1, 1).unwrap(),
            (file_len + 4).to_string().as_bytes()
        );
        // Seen once: a second reader gets no \Recent, and the entries
        // the first one made.
        let (other, recent) = Folder::open(dir.path(), DESCRIBE, true, later()).unwrap();
        assert!(recent.is_empty());
        assert!(other.described(0) && other.described(1));
        assert_eq!(other.snapshot().record(1).size, file_len + 4);
    }

    #[test]
    fn a_refresh_reports_what_others_changed_and_keeps_uids() {
        let dir = maildir();
        for n in 1..=3 {
            put(dir.path(), "new", &format!("170000000{n}.M{n}P1.host"), "m");
        }
        let (mut folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        assert!(folder.refresh(false, later()).unwrap().previous.is_none());
        // mutt reads 1, deletes 2; a delivery brings 4.
        std::fs::rename(
            dir.path().join("new/1700000001.M1P1.host"),
            dir.path().join("cur/1700000001.M1P1.host:2,S"),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("new/1700000002.M2P1.host")).unwrap();
        put(dir.path(), "new", "1700000004.M4P1.host", "m");
        let refreshed = folder.refresh(true, later()).unwrap();
        let previous = refreshed.previous.unwrap();
        assert_eq!(previous.len(), 3);
        assert_eq!(uids(&folder), [1, 3, 4]);
        assert_eq!(refreshed.recent, [1, 3, 4]);
        assert_eq!(folder.snapshot().record(0).flags, 1 << (b'S' - b'A'));
        assert_eq!(folder.snapshot().name(0), "1700000001.M1P1.host:2,S");
    }

    #[test]
    fn a_lost_or_damaged_index_is_rebuilt_with_the_same_uids() {
        let dir = maildir();
        for n in 1..=3 {
            put(
                dir.path(),
                "cur",
                &format!("170000000{n}.M{n}P1.host:2,"),
                "m",
            );
        }
        let (folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        let validity = folder.validity();
        std::fs::remove_file(dir.path().join("cur/1700000001.M1P1.host:2,")).unwrap();
        // Damaged: the index cut short; the cache gone.
        let index = dir.path().join(INDEX_FILE);
        let bytes = std::fs::read(&index).unwrap();
        std::fs::write(&index, &bytes[..bytes.len() - 3]).unwrap();
        std::fs::remove_file(dir.path().join(CACHE_FILE)).unwrap();
        let (mut folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        assert_eq!(folder.validity(), validity);
        assert_eq!(uids(&folder), [2, 3]);
        folder.describe(&[0, 1]).unwrap();
        assert_eq!(folder.entry(1).unwrap().field(0), b"m\r");
        // Lost altogether.
        std::fs::remove_file(&index).unwrap();
        let (folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        assert_eq!(uids(&folder), [2, 3]);
    }

    #[test]
    fn flags_change_by_renaming_into_cur_from_what_the_file_has_now() {
        let dir = maildir();
        put(dir.path(), "new", "1700000001.M1P1.host", "m");
        put(dir.path(), "cur", "1700000002.M2P1.host:2,S", "n");
        let (mut folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        let seen = 1 << (b'S' - b'A');
        let flagged = 1 << (b'F' - b'A');
        let add_seen = |f: u32, k: u32| (f | seen, k);
        assert_eq!(folder.change_flags(0, add_seen).unwrap(), Some((seen, 0)));
        assert!(dir.path().join("cur/1700000001.M1P1.host:2,S").exists());
        // mutt flagged the second one meanwhile: a keyword joins that.
        std::fs::rename(
            dir.path().join("cur/1700000002.M2P1.host:2,S"),
            dir.path().join("cur/1700000002.M2P1.host:2,FS"),
        )
        .unwrap();
        let add_keyword = |f: u32, k: u32| (f, k | 0b10);
        assert_eq!(
            folder.change_flags(1, add_keyword).unwrap(),
            Some((flagged | seen, 0b10))
        );
        assert!(dir.path().join("cur/1700000002.M2P1.host:2,FSb").exists());
        folder.refresh(false, later()).unwrap();
        assert_eq!(folder.snapshot().record(0).flags, seen);
        assert_eq!(folder.snapshot().record(1).keywords, 0b10);
        assert_eq!(
            folder.message(0).unwrap(),
            b"Subject: m\r\nFrom: a@b\r\n\r\nbody\r\n"
        );
        std::fs::remove_file(dir.path().join("cur/1700000001.M1P1.host:2,S")).unwrap();
        assert_eq!(folder.change_flags(0, add_seen).unwrap(), None);
    }

    #[test]
    fn entries_made_by_another_describe_version_are_made_again() {
        let dir = maildir();
        put(dir.path(), "cur", "1700000001.M1P1.host:2,S", "m");
        let (mut folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        folder.describe(&[0]).unwrap();
        assert_eq!(folder.entry(0).unwrap().field(0), b"m\r");
        drop(folder);
        let newer = Describe {
            version: 2,
            fields: |_| vec![b"made again".to_vec()],
        };
        let (mut folder, _) = Folder::open(dir.path(), newer, false, later()).unwrap();
        assert!(!folder.described(0));
        folder.describe(&[0]).unwrap();
        assert_eq!(folder.entry(0).unwrap().field(0), b"made again");
        assert_eq!(uids(&folder), [1]);
    }

    #[test]
    fn the_directories_are_read_again_when_the_stamps_were_last_read_long_ago() {
        let dir = maildir();
        put(dir.path(), "cur", "1700000001.M1P1.host:2,", "m");
        let (mut folder, _) = Folder::open(dir.path(), DESCRIBE, false, later()).unwrap();
        // A flag set whose directory time a clock out of step hid.
        let cur = dir.path().join("cur");
        let before = std::fs::metadata(&cur).unwrap();
        std::fs::rename(
            cur.join("1700000001.M1P1.host:2,"),
            cur.join("1700000001.M1P1.host:2,F"),
        )
        .unwrap();
        let times = [
            libc::timespec {
                tv_sec: before.atime(),
                tv_nsec: before.atime_nsec(),
            },
            libc::timespec {
                tv_sec: before.mtime(),
                tv_nsec: before.mtime_nsec(),
            },
        ];
        let path = std::ffi::CString::new(cur.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path and two timespecs.
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) },
            0
        );
        let soon = later() + std::time::Duration::from_secs(60);
        assert!(folder.refresh(false, soon).unwrap().previous.is_none());
        assert_eq!(folder.snapshot().record(0).flags, 0);
        let overdue = later() + FULL_CHECK + std::time::Duration::from_secs(1);
        folder.refresh(false, overdue).unwrap();
        assert_eq!(folder.snapshot().record(0).flags, 1 << (b'F' - b'A'));
    }

    #[test]
    fn a_cache_mostly_of_deleted_messages_is_compacted() {
        let dir = maildir();
        for n in 1..=3 {
            put(
                dir.path(),
                "cur",
                &format!("170000000{n}.M{n}P1.host:2,"),
                "m",
            );
        }
        let big = Describe {
            version: 1,
            fields: |bytes| vec![bytes.to_vec(), vec![b'x'; 600 << 10]],
        };
        let (mut folder, _) = Folder::open(dir.path(), big, false, later()).unwrap();
        folder.describe(&[0, 1, 2]).unwrap();
        let cache = dir.path().join(CACHE_FILE);
        let before = std::fs::metadata(&cache).unwrap().len();
        assert!(before > 3 * (600 << 10));
        for n in 1..=2 {
            std::fs::remove_file(dir.path().join(format!("cur/170000000{n}.M{n}P1.host:2,")))
                .unwrap();
        }
        let soon = later() + std::time::Duration::from_secs(5);
        folder.refresh(false, soon).unwrap();
        let after = std::fs::metadata(&cache).unwrap().len();
        assert!(after < before / 2, "{after} of {before}");
        assert_eq!(uids(&folder), [3]);
        assert!(folder.described(0));
        assert_eq!(folder.entry(0).unwrap().field(1).len(), 600 << 10);
        // Another reader opens it as it is now.
        let (other, _) = Folder::open(dir.path(), big, false, soon).unwrap();
        assert!(other.described(0));
    }

    #[test]
    fn expunged_files_go_and_the_quota_is_told() {
        let root = maildir();
        std::fs::write(root.path().join("maildirsize"), "1000S,10C\n100 2\n").unwrap();
        let folder_path = root.path().join(".Work");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(folder_path.join(sub)).unwrap();
        }
        put(&folder_path, "cur", "1700000001.M1P1.host:2,T", "gone");
        put(&folder_path, "new", "1700000002.M2P1.host", "kept");
        let (folder, _) = Folder::open(&folder_path, DESCRIBE, false, later()).unwrap();
        let size = std::fs::metadata(folder_path.join("cur/1700000001.M1P1.host:2,T"))
            .unwrap()
            .len();
        folder.expunge(&[0]).unwrap();
        // Gone already: no error, nothing counted twice.
        folder.expunge(&[0]).unwrap();
        assert!(!folder_path.join("cur/1700000001.M1P1.host:2,T").exists());
        assert!(folder_path.join("new/1700000002.M2P1.host").exists());
        assert_eq!(
            std::fs::read_to_string(root.path().join("maildirsize")).unwrap(),
            format!("1000S,10C\n100 2\n-{size} -1\n")
        );
    }
}
