//! Forwarding: addresses that a `.forward` or an alias sends a message on
//! to go back into the queue as a new message, with the original envelope
//! sender, as qmail-local hands forwards to qmail-queue. The copy is
//! written by a child that has become the queue's user (root writes no
//! queue file and reads no message byte), through the same queue writer
//! as `postern-inject`.
//!
//! With `[srs] domain` set, a forward to another host goes out from the
//! original sender's SRS address (docs/REMOTE.md, "SRS"), rewritten here,
//! as root, before the copy is written: the secrets are not the queue
//! user's to read.
//!
//! Forwards are at-least-once (DESIGN.md): a crash after the new message
//! is accepted and before the old recipient is recorded done sends it
//! again. To keep that window to crashes, a recipient's forwards are
//! queued only once none of its other deliveries is waiting for a retry.

use std::os::fd::AsRawFd;

use postern_config::{Config, Settings};
use postern_queue_format::{Envelope, QueueDir, Recipient};

use crate::message::{delivered_to_count, read_at};
use crate::plan::Request;
use crate::status::Status;

/// Queues one message to `targets` for `request`, marked
/// `Delivered-To: <recipient>` so a loop through forwards ends.
pub fn forward(config: &Config, request: &Request, targets: &[String]) -> Status {
    let settings = &config.settings;
    let Some(file) = &request.message else {
        return Status::temporary("no message to forward");
    };
    let sender = match forward_sender(config, &request.sender, targets) {
        Ok(sender) => sender,
        Err(status) => return status,
    };
    if !postern_privilege::is_root() {
        return write_copy(settings, request, &sender, targets).unwrap_or_else(|status| status);
    }
    let Some((uid, gid, name)) = settings.queue_user.resolve() else {
        return Status::temporary(format!(
            "queue_user \"{}\" is not a user on this host",
            settings.queue_user
        ));
    };
    let report = postern_privilege::run_as(uid, gid, name.as_deref(), &[file.as_raw_fd()], || {
        match write_copy(settings, request, &sender, targets) {
            Ok(status) | Err(status) => Ok(format!("{}\t{}", status.code, status.text)),
        }
    });
    match report {
        Ok(line) => match line.split_once('\t') {
            Some((code, text)) => Status::new(code, text.trim_end()),
            None => Status::temporary("no report from the forwarding process"),
        },
        Err(why) => Status::temporary(format!("forward: {why}")),
    }
}

/// The forward's envelope sender: the original one, or with SRS on, its
/// SRS address when the message leaves the host for another domain from
/// a sender that is not the host's own (SPF would refuse it there).
fn forward_sender(config: &Config, sender: &str, targets: &[String]) -> Result<String, Status> {
    let settings = &config.settings;
    let domain_of = |address: &str| {
        address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
    };
    let resolver = postern_routing::Resolver::of(config);
    let ours = |domain: &str| {
        resolver.domain_kind(domain).is_some()
            || postern_routing::srs::is_srs_domain(settings, domain)
    };
    let leaves = targets
        .iter()
        .any(|t| domain_of(t).is_some_and(|d| !ours(&d)));
    let foreign = domain_of(sender).is_some_and(|d| !ours(&d));
    if !leaves || !foreign {
        return Ok(sender.to_string());
    }
    let srs = match postern_routing::srs::load(settings) {
        Ok(Some(srs)) => srs,
        Ok(None) => return Ok(sender.to_string()),
        Err(why) => return Err(Status::temporary(why)),
    };
    srs.forward(sender, postern_config::unix_now())
        .map_err(|e| Status::temporary(format!("SRS: <{sender}>: {e}")))
}

fn write_copy(
    settings: &Settings,
    request: &Request,
    sender: &str,
    targets: &[String],
) -> Result<Status, Status> {
    let file = request
        .message
        .as_ref()
        .ok_or_else(|| Status::temporary("no message to forward"))?;
    let data = read_at(file, request.offset, None)
        .map_err(|e| Status::temporary(format!("read message: {e}")))?
        .map(postern_maildir::unix_line_ends)
        .unwrap_or_default();
    let recipient = &request.recipient;
    if delivered_to_count(&data, recipient) > settings.max_delivered_to {
        return Err(Status::new(
            "5.4.6",
            format!("mail forwarding loop for <{recipient}>"),
        ));
    }
    let arrival = postern_config::unix_now();
    let envelope = Envelope {
        arrival,
        sender: sender.to_string(),
        recipients: targets.iter().map(Recipient::new).collect(),
        ..Envelope::default()
    };
    let queue = QueueDir::at(&settings.queue_dir);
    let cannot = |e: std::io::Error| {
        Status::of_write_error(
            &e,
            format!(
                "cannot queue the forward in {}: {e}",
                settings.queue_dir.display()
            ),
        )
    };
    let mut writer = queue.begin(&envelope).map_err(cannot)?;
    writer
        .write(format!("Delivered-To: {recipient}\n").as_bytes())
        .and_then(|()| writer.write(&data))
        .map_err(cannot)?;
    let id = writer.commit().map_err(cannot)?;
    queue.poke(&id);
    Ok(Status::delivered(format!(
        "forwarded as {id} to <{}>",
        targets.join(">, <")
    )))
}

/// The addresses in `text` (from a child's report), space-separated.
pub fn parse_targets(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Keeps the first of each address, ignoring case.
pub fn dedup(targets: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.to_ascii_lowercase()));
}
