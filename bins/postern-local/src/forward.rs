//! A system user's `~/.forward`, followed by their own delivery process
//! (it has already become them: the file, its targets and its commands are
//! the user's business and run with the user's rights only).
//!
//! A missing, unsafe or empty `.forward` means plain delivery to
//! `~/Maildir/`; an unsafe one is logged with the reason, as sendmail does.

use postern_config::forward::{Forward, ForwardTarget, read_safe};
use postern_maildir::QuotaLimits;
use tracing::warn;

use crate::plan::{Job, SystemUserJob};
use crate::status::Status;
use crate::writer::{Delivery, Outcome, failed};

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
    // Until forwarding through the queue lands an address can only wait,
    // and so does the whole .forward: running its commands and appends now
    // would run them again on every retry.
    let waiting = forward.targets.iter().find_map(|(_, target)| match target {
        ForwardTarget::Address(address) => Some(address.to_string()),
        ForwardTarget::KeepLocal(name) if !name.eq_ignore_ascii_case(&user.name) => {
            Some(format!("{name}@{}", delivery.settings.hostname))
        }
        _ => None,
    });
    if let Some(address) = waiting {
        return Some(failed(needs_queue(&address)));
    }
    let mut statuses = Vec::new();
    let mut done = Vec::new();
    for (_, target) in &forward.targets {
        let (status, what) = deliver_to(delivery, user, job, target);
        if status.is_success() {
            done.push(what);
        }
        statuses.push(status);
    }
    let status = match Status::worst(statuses) {
        Some(status) if status.is_success() => {
            Status::delivered(format!("delivered by .forward to {}", done.join(", ")))
        }
        Some(status) => status,
        None => return None,
    };
    Some(Outcome {
        status,
        path: Some(path.display().to_string()),
    })
}

fn deliver_to(
    delivery: &Delivery<'_>,
    user: &SystemUserJob,
    job: &Job,
    target: &ForwardTarget,
) -> (Status, String) {
    match target {
        ForwardTarget::KeepLocal(name) if name.eq_ignore_ascii_case(&user.name) => {
            let outcome = delivery.to_maildir(&job.maildir, job.limits);
            (outcome.status, format!("{}/", job.maildir.display()))
        }
        ForwardTarget::Maildir(path) => {
            // A Maildir of the user's choosing carries no quota of ours.
            let outcome = delivery.to_maildir(path, QuotaLimits::default());
            (outcome.status, path.display().to_string())
        }
        ForwardTarget::File(path) => (delivery.to_mbox(path), path.display().to_string()),
        ForwardTarget::Pipe(command) => (
            delivery.to_command(command, &user.home, &user.name),
            format!("|{command}"),
        ),
        ForwardTarget::KeepLocal(name) => (
            needs_queue(&format!("{name}@{}", delivery.settings.hostname)),
            String::new(),
        ),
        ForwardTarget::Address(address) => (needs_queue(&address.to_string()), String::new()),
    }
}

/// Until re-injection through the queue writer lands, an address waits.
fn needs_queue(address: &str) -> Status {
    Status::temporary(format!("forwarding to <{address}> is not available yet"))
}
