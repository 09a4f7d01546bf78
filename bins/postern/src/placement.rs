//! Where a root sandbox can live and run from. Its role uids must reach
//! its directory and exec the programs that run as them (postern-queue,
//! postern-bounce); a checkout under `/root` (mode 0700 on Debian) lets
//! neither through. Rather than chmod a directory it did not make,
//! `postern up` then keeps the sandbox under `/var/tmp/postern-sandbox`,
//! with the requested directory a link to it, and runs the suite from
//! links to (or copies of) the programs in the sandbox's `bin/`, made
//! again at every start so a rebuild is always what runs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// Where the sandboxes of unreachable directories live.
const HOME: &str = "/var/tmp/postern-sandbox";

/// The programs the sandbox runs, when not those beside `postern`.
static PROGRAMS: OnceLock<PathBuf> = OnceLock::new();

/// The first directory on the way to `path` (itself included) that others
/// cannot pass through.
pub fn barrier(path: &Path) -> Option<PathBuf> {
    let path = fs::canonicalize(path).ok()?;
    path.ancestors()
        .filter_map(|dir| Some((dir, fs::metadata(dir).ok()?)))
        .filter(|(_, meta)| meta.mode() & 0o001 == 0)
        .last()
        .map(|(dir, _)| dir.to_path_buf())
}

/// The directory the sandbox asked for as `dir` really lives in, and why
/// it is elsewhere when it is.
pub fn sandbox_dir(dir: &Path) -> anyhow::Result<(PathBuf, Option<String>)> {
    if !postern_privilege::is_root() {
        return Ok((dir.to_path_buf(), None));
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let Some(barrier) = barrier(parent) else {
        return Ok((dir.to_path_buf(), None));
    };
    // Readable, and one to one: the hash of the whole path tells apart
    // what the readable part maps alike (`/a_b` and `/a/b`).
    let path = dir.as_os_str().as_encoded_bytes();
    let readable: String = String::from_utf8_lossy(path)
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = path.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let real = Path::new(HOME).join(format!("{readable}-{hash:016x}"));
    let why = format!(
        "{} is a link to it: the sandbox's users cannot pass {} (mode {:04o})",
        dir.display(),
        barrier.display(),
        fs::metadata(&barrier).map_or(0, |m| m.mode() & 0o7777)
    );
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            make_home()?;
            std::os::unix::fs::symlink(&real, dir)
                .with_context(|| format!("link {} to {}", dir.display(), real.display()))?;
        }
        Ok(meta) if meta.file_type().is_symlink() && fs::read_link(dir)? == real => {}
        // A sandbox made in place before: kept, and it says why it fails.
        Ok(_) => return Ok((dir.to_path_buf(), None)),
        Err(e) => return Err(e.into()),
    }
    // SECURITY: checked at every start, not only the first: /var/tmp is
    // everyone's, and a directory there that went away (tmpfiles ages
    // /var/tmp) could come back as someone else's, with programs root
    // would run.
    make_home()?;
    if real.exists() {
        roots_own(&real)?;
    }
    Ok((real, Some(why)))
}

/// `path` is a directory (not a link) of root's that no one else may
/// write, or an error.
fn roots_own(path: &Path) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    if !(meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o022 == 0) {
        bail!(
            "{} is not a directory of root's that only root may write: remove it and start again",
            path.display()
        );
    }
    Ok(())
}

/// `/var/tmp/postern-sandbox`: root's, and nobody else's to write.
fn make_home() -> anyhow::Result<()> {
    match fs::symlink_metadata(HOME) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir(HOME)?;
            fs::set_permissions(HOME, fs::Permissions::from_mode(0o755))?;
            Ok(())
        }
        Ok(_) => roots_own(Path::new(HOME)),
        Err(e) => Err(e.into()),
    }
}

/// As root, with this program where role uids cannot reach it: the
/// suite's programs linked (or, across file systems, copied) into
/// `sandbox/bin`, from where the sandbox runs them. Returns the reason,
/// when it did.
pub fn programs(sandbox: &Path) -> anyhow::Result<Option<String>> {
    let exe = std::env::current_exe().context("locate postern")?;
    let here = exe.parent().context("postern has no directory")?;
    if !postern_privilege::is_root() {
        return Ok(None);
    }
    let Some(barrier) = barrier(here) else {
        return Ok(None);
    };
    roots_own(sandbox)?;
    let bin = sandbox.join("bin");
    match fs::symlink_metadata(&bin) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir(&bin)?;
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
        }
        _ => roots_own(&bin)?,
    }
    // The suite's programs are this one's executable neighbours named
    // postern*, whichever the build made: no list to keep up to date.
    for entry in fs::read_dir(here)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        let program = name.starts_with("postern") && !name.contains('.');
        if !program || !meta.is_file() || meta.mode() & 0o111 == 0 {
            continue;
        }
        let (from, to) = (entry.path(), bin.join(&name));
        let _ = fs::remove_file(&to);
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
        }
    }
    let _ = PROGRAMS.set(bin.clone());
    Ok(Some(format!(
        "runs the programs from {} (the sandbox's users cannot pass {})",
        bin.display(),
        barrier.display()
    )))
}

/// Where the sandbox's programs are: `bin/` when [`programs`] made it,
/// else beside this one.
pub fn program_dir() -> Option<PathBuf> {
    PROGRAMS.get().cloned()
}
