//! Measuring messages: each one's size with CRLF line ends (RFC 1939
//! §11, and IMAP's RFC822.SIZE), counted once and then known from the
//! name's `,W=` or the size cache, and the octets a view cuts out.

use std::io::{self, Read};
use std::path::Path;

use crate::Cut;
use crate::names::unique_of;

/// A message as found on disk, before its UIDL.
#[derive(Clone)]
pub struct Entry {
    pub name: String,
    pub in_new: bool,
    /// Octets with CRLF line ends; `None` until counted.
    pub size: Option<u64>,
    /// Of those, the octets of invalid `Message-ID:` fields; `None` until
    /// looked for.
    pub cut: Option<u64>,
}

/// Counts what the names and the cache did not know: the sizes, and with
/// a `cut` the octets it leaves out. Messages gone meanwhile (another
/// reader took them) are left out. Whether anything was counted.
///
/// On the first login to a large mailbox moved from elsewhere this reads
/// all of it, so the files are shared out among the CPUs; the threads
/// allocate nothing but their buffer.
pub fn measure(path: &Path, entries: &mut Vec<Entry>, cut: Option<Cut>) -> io::Result<bool> {
    let wanted = |e: &Entry| e.size.is_none() || (cut.is_some() && e.cut.is_none());
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
                Ok((i, count_one(dir, entry, cut, &mut buffer)?))
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

/// One file's size (the known one, else counted) and, with a `cut`, the
/// octets it leaves out; `None` if it is gone.
fn count_one(
    dir: &std::fs::File,
    entry: &Entry,
    cut: Option<Cut>,
    buffer: &mut [u8],
) -> io::Result<Option<(u64, Option<u64>)>> {
    use std::io::Seek;
    let mut file = match open_in(dir, &entry.name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut left_out = entry.cut;
    if let Some(cut) = cut
        && left_out.is_none()
    {
        let (length, whole) = read_head(&mut file, buffer, cut.head_limit)?;
        left_out = Some((cut.octets)(&buffer[..length], whole));
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
    Ok(Some((size, left_out)))
}

/// Reads a message's first octets, up to `limit`, into `buffer`: how
/// many, and whether that is the whole message.
pub fn read_head(
    file: &mut std::fs::File,
    buffer: &mut [u8],
    limit: usize,
) -> io::Result<(usize, bool)> {
    let limit = limit.min(buffer.len());
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
