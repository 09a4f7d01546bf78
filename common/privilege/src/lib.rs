//! Giving up root for good, and looking up users through NSS.
//!
//! SECURITY: `become_user` is the one place a Postern process changes
//! identity. It sets the supplementary groups, then the gid, then the uid
//! (in that order: after setuid there is no right left to change groups),
//! and then proves the change is irreversible by checking that root cannot
//! be regained. The whole process changes, not one thread (nix calls the
//! libc wrappers, which apply to every thread; rustix's do not).

mod caps;

pub use caps::{become_login_user, become_owner, capabilities};

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use nix::unistd::{Gid, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("refusing to run as root (uid 0) for this job")]
    Root,
    #[error("cannot switch to uid {uid} gid {gid}: {source}")]
    Switch {
        uid: u32,
        gid: u32,
        #[source]
        source: nix::Error,
    },
    #[error("switched to uid {0} but could regain root: aborting")]
    Regained(u32),
}

/// An account from the passwd database.
#[derive(Clone, Debug)]
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// The full name from the GECOS field (its first comma-separated part).
    pub full_name: String,
}

pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Whether a process of `uid` with the groups `gids` may do `want` (an
/// `rwx` mask: 4 read, 2 write, 1 search) to a file of this metadata, by
/// its mode bits as the kernel reads them: the owner's class for its
/// owner, else the group's for a member, else the others'. Root's override
/// is left out: the question is always about a role or a user.
pub fn may_access(meta: &std::fs::Metadata, uid: u32, gids: &[u32], want: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let class = if meta.uid() == uid {
        meta.mode() >> 6
    } else if gids.contains(&meta.gid()) {
        meta.mode() >> 3
    } else {
        meta.mode()
    };
    class & want & 0o7 == want & 0o7
}

pub fn current_ids() -> (u32, u32) {
    (Uid::effective().as_raw(), Gid::effective().as_raw())
}

/// Looks a user up by name through NSS (getpwnam).
pub fn lookup_user(name: &str) -> Option<SystemUser> {
    let user = User::from_name(name).ok()??;
    Some(system_user(user))
}

/// A system user's password hash from the shadow database (getspnam_r),
/// for a process that may read it (root, or group `shadow`); or why there
/// is none to check against: no readable entry, or an account that has
/// expired (`usermod --expiredate`).
pub fn shadow_password(name: &str) -> Result<String, &'static str> {
    let unreadable = "no shadow entry readable (is postern-auth in group shadow?)";
    let name = CString::new(name).map_err(|_| unreadable)?;
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: spwd is plain data filled by getspnam_r.
    let mut entry: libc::spwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::spwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, the buffer's length is
    // passed, and the result is checked before it is read.
    let status = unsafe {
        libc::getspnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    if status != 0 || result.is_null() || entry.sp_pwdp.is_null() {
        return Err(unreadable);
    }
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86400);
    // sp_expire is days since the epoch; -1 (or 0) means never.
    if entry.sp_expire > 0 && today >= entry.sp_expire as u64 {
        return Err("the account has expired");
    }
    // SAFETY: getspnam_r succeeded, so sp_pwdp points into `buffer` at a
    // NUL-terminated string.
    let hash = unsafe { std::ffi::CStr::from_ptr(entry.sp_pwdp) };
    Ok(hash.to_string_lossy().into_owned())
}

/// A group by name or number, through NSS (getgrnam).
pub fn lookup_group(spec: &str) -> Option<u32> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Some(gid);
    }
    nix::unistd::Group::from_name(spec)
        .ok()
        .flatten()
        .map(|group| group.gid.as_raw())
}

/// Looks a user up by uid through NSS (getpwuid).
pub fn lookup_uid(uid: u32) -> Option<SystemUser> {
    let user = User::from_uid(Uid::from_raw(uid)).ok()??;
    Some(system_user(user))
}

fn system_user(user: User) -> SystemUser {
    let gecos = user.gecos.to_string_lossy();
    SystemUser {
        full_name: gecos.split(',').next().unwrap_or_default().to_string(),
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
    }
}

/// Becomes `uid`/`gid` for the rest of the process. With `user_name`, the
/// user's supplementary groups from NSS are kept (initgroups); without, the
/// only group is `gid`. Refuses uid 0.
pub fn become_user(uid: u32, gid: u32, user_name: Option<&str>) -> Result<(), PrivilegeError> {
    become_user_with_groups(uid, gid, user_name, &[])
}

/// `become_user`, keeping `extra_groups` as supplementary groups too (a
/// service that must write a directory of another group, as postern-auth
/// the relayers file's).
pub fn become_user_with_groups(
    uid: u32,
    gid: u32,
    user_name: Option<&str>,
    extra_groups: &[u32],
) -> Result<(), PrivilegeError> {
    if uid == 0 {
        return Err(PrivilegeError::Root);
    }
    let switch = |source| PrivilegeError::Switch { uid, gid, source };
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    if Uid::effective().is_root() {
        match user_name.and_then(|name| CString::new(name).ok()) {
            Some(name) => nix::unistd::initgroups(&name, g).map_err(switch)?,
            None => nix::unistd::setgroups(&[g]).map_err(switch)?,
        }
        if !extra_groups.is_empty() {
            let mut groups = nix::unistd::getgroups().map_err(switch)?;
            groups.extend(extra_groups.iter().map(|&extra| Gid::from_raw(extra)));
            nix::unistd::setgroups(&groups).map_err(switch)?;
        }
    }
    nix::unistd::setresgid(g, g, g).map_err(switch)?;
    nix::unistd::setresuid(u, u, u).map_err(switch)?;
    if Uid::current() != u || Uid::effective() != u || Gid::effective() != g {
        return Err(PrivilegeError::Regained(uid));
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::Regained(uid));
    }
    Ok(())
}

/// Runs `job` in a child process that has become `uid`/`gid` (with
/// `user_name`'s groups, if given) and returns the text it returned, or its
/// error. The child first closes every descriptor but stderr, its report
/// pipe and `keep`, so it holds nothing of root's it was not meant to. The
/// calling process never runs `job` as itself. Without root, `job` runs
/// here if we already are `uid`, and is refused otherwise. The caller must
/// be single-threaded (it forks).
pub fn run_as(
    uid: u32,
    gid: u32,
    user_name: Option<&str>,
    keep: &[RawFd],
    job: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    use std::io::{Read, Write};
    if !is_root() {
        let (current, _) = current_ids();
        return if current == uid {
            job()
        } else {
            Err(format!(
                "only root can act as uid {uid} (running as uid {current})"
            ))
        };
    }
    // Close-on-exec: a command the job runs must not inherit the report pipe.
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the caller is single-threaded, so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let mut kept = vec![write_end.as_raw_fd()];
            kept.extend_from_slice(keep);
            // SECURITY: the switch happens before `job` reads anything.
            let result = close_all_except(&kept)
                .and_then(|()| become_user(uid, gid, user_name).map_err(|e| e.to_string()))
                .and_then(|()| job());
            let (code, text) = match result {
                Ok(text) => (0, text),
                Err(text) => (1, text),
            };
            let written = std::fs::File::from(write_end).write_all(text.as_bytes());
            // SAFETY: leaves the parent's buffers and exit handlers alone.
            unsafe { libc::_exit(if written.is_ok() { code } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            let mut text = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut text);
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(text),
                _ if !text.is_empty() => Err(text),
                other => Err(format!("the process acting as uid {uid} failed: {other:?}")),
            }
        }
    }
}

/// Closes every descriptor of this process not in `keep` (stderr is always
/// kept), and points stdin and stdout at /dev/null so later opens cannot
/// land on them. Fails closed: if descriptors cannot be closed, the child
/// must not go on.
fn close_all_except(keep: &[RawFd]) -> Result<(), String> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    // SAFETY: plain system calls on descriptor numbers; no memory is shared.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null < 0 {
            return Err(format!(
                "open /dev/null: {}",
                std::io::Error::last_os_error()
            ));
        }
        for fd in [0, 1] {
            if libc::dup2(null, fd) < 0 {
                return Err(format!("dup2: {}", std::io::Error::last_os_error()));
            }
        }
        if null > 2 && !keep.contains(&null) {
            libc::close(null);
        }
    }
    let mut first: RawFd = 3;
    for &fd in keep.iter().chain(std::iter::once(&RawFd::MAX)) {
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd.saturating_add(1);
    }
    Ok(())
}

/// close_range(2), or closing what /proc/self/fd lists where the kernel
/// lacks it.
fn close_range(first: RawFd, last: RawFd) -> Result<(), String> {
    // SAFETY: close_range touches only this process's descriptor table.
    let result = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0,
        )
    };
    if result == 0 {
        return Ok(());
    }
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("cannot close inherited descriptors: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| (first..=last).contains(fd)) {
        // SAFETY: a descriptor in the range this process gives up.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn access_follows_the_one_class_that_applies() {
        let dir = std::env::temp_dir().join(format!("postern-may-access-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let meta = |mode: u32| {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::metadata(&dir).unwrap()
        };
        let m = meta(0o040);
        let (owner, group) = (m.uid(), m.gid());
        let stranger = owner.wrapping_add(4242);
        // The owner is judged by the owner's bits alone, even where the
        // group's would allow it.
        assert!(!may_access(&m, owner, &[group], 0o4));
        assert!(may_access(&m, stranger, &[group], 0o4));
        assert!(!may_access(&m, stranger, &[group.wrapping_add(1)], 0o4));
        let m = meta(0o750);
        assert!(may_access(&m, owner, &[], 0o7));
        assert!(may_access(&m, stranger, &[group], 0o5));
        assert!(!may_access(&m, stranger, &[group], 0o2));
        std::fs::remove_file(&dir).unwrap();
    }
}
