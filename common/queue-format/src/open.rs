//! Opening a queue file named in a delivery request, for the root
//! processes that are handed file names (postern-local --batch,
//! postern-lspawn): only beneath the queue directory, following no
//! symlink, so a request can never make root open another file.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `file` (absolute, in `queue_dir`, or relative to it), read-only. As
/// root, beneath `queue_dir` only; otherwise as the caller's rights allow,
/// no symlink followed.
pub fn open_queued(queue_dir: &Path, file: &str) -> std::io::Result<File> {
    if postern_privilege::is_root() {
        open_beneath(queue_dir, file)
    } else {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(file)
    }
}

/// openat2(2) beneath `root`, refusing `..` escapes and every symlink.
pub(crate) fn open_beneath(root: &Path, file: &str) -> std::io::Result<File> {
    let path = Path::new(file);
    let relative = if path.is_absolute() {
        path.strip_prefix(root).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("outside the queue directory {}", root.display()),
            )
        })?
    } else {
        path
    };
    let dir = File::open(root)?;
    let name = CString::new(relative.as_os_str().as_bytes())?;
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a valid directory descriptor, a NUL-terminated path and an
    // open_how of the size passed; the result is checked.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_outside_the_directory_or_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue");
        std::fs::create_dir(&queue).unwrap();
        std::fs::write(queue.join("ok"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), queue.join("link")).unwrap();
        let inside = queue.join("ok");
        assert!(open_beneath(&queue, inside.to_str().unwrap()).is_ok());
        assert!(open_beneath(&queue, "ok").is_ok());
        assert!(open_beneath(&queue, "../secret").is_err());
        assert!(open_beneath(&queue, dir.path().join("secret").to_str().unwrap()).is_err());
        assert!(open_beneath(&queue, "link").is_err());
    }
}
