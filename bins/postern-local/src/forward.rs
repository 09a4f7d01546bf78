//! A system user's `~/.forward`, followed by their own delivery process
//! (it has already become them: the file, its targets and its commands are
//! the user's business and run with the user's rights only).
//!
//! A missing, unsafe or empty `.forward` means plain delivery to
//! `~/Maildir/`; an unsafe one is logged with the reason, as sendmail does.

use postern_maildir::QuotaLimits;
use postern_routing::forward::{Forward, ForwardTarget, read_safe};
use tracing::warn;

use crate::delivery::{Delivery, Outcome};
use crate::plan::{Job, SystemUserJob};
use crate::status::Status;

/// Delivers through `~/.forward` if it exists and may be trusted; `None`
/// sends the caller on to the user's Maildir.
pub fn follow(delivery: &Delivery<'_>, user: &SystemUserJob, job: &Job) -> Option<Outcome> {
    let path = user.home.join(".forward");
    if std::fs::symlink_metadata(&path).is_err() {
        return None;
    }
    let id = delivery
        .request
        .queue
        .as_ref()
        .map(|q| q.id.as_str())
        .unwrap_or("NOQUEUE");
    let (uid, _) = postern_privilege::current_ids();
    // Anything that makes the file unusable, unreadable included, means
    // plain delivery with a log line, as sendmail does.
    let text = match read_safe(&path, Some(uid)) {
        Ok((_, text)) => text,
        Err(why) => {
            warn!(
                "{id}: to=<{}>: ignoring .forward: {}",
                delivery.to,
                postern_log::escape(&why)
            );
            return None;
        }
    };
    let forward = Forward::parse(&text, &delivery.settings.hostname);
    for (line, why) in &forward.errors {
        warn!(
            "{id}: {}:{line}: {}",
            path.display(),
            postern_log::escape(why)
        );
    }
    if forward.targets.is_empty() {
        return None;
    }
    // Addresses go back to the parent, which queues them once the local
    // targets here have landed.
    let mut addresses = Vec::new();
    let mut statuses = Vec::new();
    let mut done = Vec::new();
    for (_, target) in &forward.targets {
        match deliver_to(delivery, user, job, target) {
            Target::Forward(address) => addresses.push(address),
            Target::Delivered(status, what) => {
                if status.is_success() {
                    done.push(what);
                }
                statuses.push(status);
            }
        }
    }
    let status = match crate::status::worst(statuses) {
        Some(status) if status.is_success() => {
            Status::delivered(format!("delivered by .forward to {}", done.join(", ")))
        }
        Some(status) => status,
        None => Status::delivered("forwarded by .forward"),
    };
    Some(Outcome {
        status,
        path: Some(path.display().to_string()),
        forward: addresses,
    })
}

/// What one line of `.forward` came to here.
enum Target {
    /// Written (or not), with what it was written to.
    Delivered(Status, String),
    /// An address, for the parent to queue.
    Forward(String),
}

fn deliver_to(
    delivery: &Delivery<'_>,
    user: &SystemUserJob,
    job: &Job,
    target: &ForwardTarget,
) -> Target {
    match target {
        ForwardTarget::KeepLocal(name) if name.eq_ignore_ascii_case(&user.name) => {
            let outcome = delivery.to_maildir(&job.maildir, job.limits);
            Target::Delivered(outcome.status, format!("{}/", job.maildir.display()))
        }
        // `\other` is another local user, reached through the queue like
        // any address.
        ForwardTarget::KeepLocal(name) => {
            Target::Forward(format!("{name}@{}", delivery.settings.hostname).to_ascii_lowercase())
        }
        ForwardTarget::Address(address) => Target::Forward(address.to_string()),
        ForwardTarget::Maildir(path) => {
            // A Maildir of the user's choosing carries no quota of ours.
            let outcome = delivery.to_maildir(path, QuotaLimits::default());
            Target::Delivered(outcome.status, path.display().to_string())
        }
        ForwardTarget::File(path) => {
            Target::Delivered(delivery.to_mbox(path), path.display().to_string())
        }
        ForwardTarget::Pipe(command) => Target::Delivered(
            delivery.to_command(command, &user.home, &user.name),
            format!("|{command}"),
        ),
    }
}
