//! The directories mail passes through, as the programs that use them need
//! them: the queue (the queue user's, with the injectors' group able to
//! write `tmp/` and `queue/`), every queue file readable by the queue
//! manager, the mail root (the mail owner's) and the relayers file's
//! directory (writable by postern-auth). Each problem is an error: with it,
//! mail waits or is refused however good the maps are.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use postern_config::{MailOwner, Settings};
use postern_queue_format::{QueueDir, SUBDIRECTORIES};

pub fn errors(settings: &Settings) -> Vec<String> {
    let mut errors = Vec::new();
    queue(settings, &mut errors);
    mail_root(settings, &mut errors);
    relayers(settings, &mut errors);
    errors
}

/// Who a role is, or the error that it is no one.
fn ids(key: &str, owner: &MailOwner, errors: &mut Vec<String>) -> Option<(u32, u32)> {
    match owner.resolve() {
        Some((uid, gid, _)) => Some((uid, gid)),
        None => {
            errors.push(format!(
                "postern.toml: {key} \"{owner}\" is not a user on this host (make install-users creates Postern's users)"
            ));
            None
        }
    }
}

fn queue(settings: &Settings, errors: &mut Vec<String>) {
    let root = &settings.queue_dir;
    let Some((uid, gid)) = owned_directory(
        ("queue_dir", root),
        ("queue_user", &settings.queue_user),
        errors,
    ) else {
        return;
    };
    for (sub, mode) in SUBDIRECTORIES {
        let path = root.join(sub);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            errors.push(format!(
                "queue_dir {}: {sub}/ is missing (postern-queue makes it at start)",
                root.display()
            ));
            continue;
        };
        // The injectors (setgid sendmail, smtpd) write as the queue's
        // group: owner, group and mode all matter.
        if !meta.is_dir() || meta.uid() != uid || meta.gid() != gid || meta.mode() & mode != mode {
            errors.push(format!(
                "{}: needs to be a directory of {uid}:{gid} with mode {mode:04o}, is {}:{} mode {:04o}",
                path.display(),
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777
            ));
        }
    }
    let queue = QueueDir::at(root);
    match std::fs::symlink_metadata(queue.trigger()) {
        Ok(meta)
            if meta.file_type().is_fifo() && meta.gid() == gid && meta.mode() & 0o620 == 0o620 => {}
        _ => errors.push(format!(
            "{}: needs to be a FIFO of group {gid}, mode 0620 (postern-queue makes it at start)",
            queue.trigger().display()
        )),
    }
    for id in queue.queued().unwrap_or_default() {
        if let Some(problem) = queue.manager_cannot_read(&id) {
            errors.push(format!(
                "{}: {problem}, so it is never delivered: chmod g+r it (its group must be the queue's)",
                queue.queue_file(&id).display()
            ));
        }
    }
}

fn mail_root(settings: &Settings, errors: &mut Vec<String>) {
    owned_directory(
        ("mail_root", &settings.mail_root),
        ("mail_owner", &settings.mail_owner),
        errors,
    );
}

/// A directory that must exist and belong to a role: the role's ids when
/// it does.
fn owned_directory(
    (key, path): (&str, &Path),
    (role, owner): (&str, &MailOwner),
    errors: &mut Vec<String>,
) -> Option<(u32, u32)> {
    let (uid, gid) = ids(role, owner, errors)?;
    let meta = directory(key, path, errors)?;
    if meta.uid() != uid {
        errors.push(format!(
            "{key} {}: owned by uid {}, not by {role} \"{owner}\" (uid {uid}): chown {uid}:{gid} {}",
            path.display(),
            meta.uid(),
            path.display()
        ));
        return None;
    }
    Some((uid, gid))
}

/// postern-auth writes the relayers file (whole, by rename) as its user,
/// keeping `[auth] groups`: one of them must be able to write the
/// directory.
fn relayers(settings: &Settings, errors: &mut Vec<String>) {
    let Some(dir) = settings.smtpd.relayers_file.parent() else {
        return;
    };
    let Some(meta) = directory("the relayers file's directory", dir, errors) else {
        return;
    };
    let Some((uid, gid)) = ids("[auth] user", &settings.auth.user, errors) else {
        return;
    };
    let groups: Vec<u32> = std::iter::once(gid)
        .chain(
            settings
                .auth
                .groups
                .iter()
                .filter_map(|g| postern_privilege::lookup_group(g)),
        )
        .collect();
    // Write and search: it makes a file there and renames it into place.
    if !postern_privilege::may_access(&meta, uid, &groups, 0o3) {
        errors.push(format!(
            "{}: postern-auth ([auth] user \"{}\" and groups {:?}) cannot write it, so POP-before-SMTP logins are not recorded: make it group postern-relay, mode 2775 (make install does)",
            dir.display(),
            settings.auth.user,
            settings.auth.groups
        ));
    }
}

/// The metadata of a directory that must exist, or the error.
fn directory(key: &str, path: &Path, errors: &mut Vec<String>) -> Option<std::fs::Metadata> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Some(meta),
        Ok(_) => {
            errors.push(format!("{key} {}: not a directory", path.display()));
            None
        }
        Err(e) => {
            errors.push(format!(
                "{key} {}: {e} (make install creates it with its owner and mode)",
                path.display()
            ));
            None
        }
    }
}
