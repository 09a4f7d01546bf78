//! The two-step privilege of a login session (DESIGN.md): first the
//! `postern-login` user holding only CAP_SETUID and CAP_SETGID, enough to
//! become the mailbox owner once postern-auth accepts the login and
//! nothing else; then the owner, for good, with no capability at all.
//! capget/capset by hand: nix has no capability calls, and the caps
//! crate is more than two system calls need.

use nix::unistd::{Gid, Uid};

use crate::PrivilegeError;

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two words.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The process's (effective, permitted) capability sets, as bit masks.
pub fn capabilities() -> std::io::Result<(u64, u64)> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a version-3 header and two data words, as capget expects.
    let result = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| u64::from(low) | (u64::from(high) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

fn set_capabilities(mask: u64) -> std::io::Result<()> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let word = |shift: u32| (mask >> shift) as u32;
    let data = [
        Data {
            effective: word(0),
            permitted: word(0),
            inheritable: 0,
        },
        Data {
            effective: word(32),
            permitted: word(32),
            inheritable: 0,
        },
    ];
    // SAFETY: a version-3 header and two data words, as capset expects.
    let result = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

const SETID: u64 = (1 << CAP_SETUID) | (1 << CAP_SETGID);

/// From root: becomes `uid`/`gid` (no supplementary groups) keeping only
/// CAP_SETUID and CAP_SETGID, so that [`become_owner`] can follow.
pub fn become_login_user(uid: u32, gid: u32) -> Result<(), PrivilegeError> {
    if uid == 0 {
        return Err(PrivilegeError::Root);
    }
    let fail = |source| PrivilegeError::Switch { uid, gid, source };
    let errno = |e: std::io::Error| fail(nix::Error::from_raw(e.raw_os_error().unwrap_or(0)));
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(errno(std::io::Error::last_os_error()));
    }
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[g]).map_err(fail)?;
    nix::unistd::setresgid(g, g, g).map_err(fail)?;
    nix::unistd::setresuid(u, u, u).map_err(fail)?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    set_capabilities(SETID).map_err(errno)?;
    match capabilities() {
        Ok((effective, permitted)) if effective == SETID && permitted == SETID => {}
        _ => return Err(PrivilegeError::Regained(uid)),
    }
    if Uid::effective() != u || Gid::effective() != g {
        return Err(PrivilegeError::Regained(uid));
    }
    Ok(())
}

/// From the login user (or root): becomes `uid`/`gid` for good, with
/// `gid` as the only group and every capability cleared, and checks that
/// neither root nor a capability can come back.
pub fn become_owner(uid: u32, gid: u32) -> Result<(), PrivilegeError> {
    if uid == 0 {
        return Err(PrivilegeError::Root);
    }
    let fail = |source| PrivilegeError::Switch { uid, gid, source };
    let errno = |e: std::io::Error| fail(nix::Error::from_raw(e.raw_os_error().unwrap_or(0)));
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[g]).map_err(fail)?;
    nix::unistd::setresgid(g, g, g).map_err(fail)?;
    nix::unistd::setresuid(u, u, u).map_err(fail)?;
    // A change between two non-root uids keeps the capabilities: clear
    // them by hand.
    set_capabilities(0).map_err(errno)?;
    match capabilities() {
        Ok((0, 0)) => {}
        _ => return Err(PrivilegeError::Regained(uid)),
    }
    if Uid::current() != u || Uid::effective() != u || Gid::effective() != g {
        return Err(PrivilegeError::Regained(uid));
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok()
        || nix::unistd::setgid(Gid::from_raw(0)).is_ok()
    {
        return Err(PrivilegeError::Regained(uid));
    }
    Ok(())
}
