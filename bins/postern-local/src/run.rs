//! Plan, write, log: the steps every delivery goes through, in single and
//! batch mode alike.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use postern_config::Config;
use tracing::info;

use crate::plan::{Owner, Request, plan};
use crate::requeue;
use crate::status::{Reported, Status};
use crate::writer::run_as_owner;

/// The `-f` sender: empty (or `<>`) for a bounce, else an address without
/// spaces, controls or angle brackets, since it goes into `Return-Path:`.
pub fn envelope_sender(text: &str) -> Result<String, Status> {
    let bare = text.trim().trim_start_matches('<').trim_end_matches('>');
    if bare
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
        || bare.len() > 320
    {
        return Err(Status::new(
            "5.1.7",
            format!("bad sender address {:?}", postern_log::escape(text)),
        ));
    }
    Ok(bare.to_string())
}

/// Queue ids name files: letters and digits only.
pub fn valid_queue_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Delivers every request and returns one status per request. Requests
/// without a message get one from `open_message` once a mailbox needs it.
pub fn deliver(
    config: &Config,
    mut requests: Vec<Request>,
    open_message: impl Fn(&Owner, Option<u64>) -> Result<(std::fs::File, u64), Status>,
) -> Vec<Status> {
    let started = Instant::now();
    let recipients: Vec<String> = requests.iter().map(|r| r.recipient.clone()).collect();
    let recipient_refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let mut plan = plan(config, &recipient_refs);
    let mut statuses: Vec<Vec<Status>> = vec![Vec::new(); requests.len()];

    if let Some(owner) = message_reader(config, &plan) {
        // No mailbox takes more than this: a pipe is copied no further. A
        // forward takes the whole message.
        let limits: Vec<Option<u64>> = plan
            .jobs
            .values()
            .flatten()
            .map(|job| job.max_size)
            .collect();
        let limit = if limits.iter().any(Option::is_none) || !plan.forwards.is_empty() {
            None
        } else {
            limits.into_iter().flatten().max()
        };
        let mut unreadable: HashMap<usize, Status> = HashMap::new();
        for (index, request) in requests.iter_mut().enumerate() {
            if request.message.is_none() {
                match open_message(&owner, limit) {
                    Ok((file, offset)) => {
                        request.message = Some(file);
                        request.offset = offset;
                    }
                    Err(status) => {
                        unreadable.insert(index, status);
                    }
                }
            }
        }
        for jobs in plan.jobs.values_mut() {
            jobs.retain(|job| match unreadable.get(&job.request) {
                Some(status) => {
                    plan.early.push(crate::plan::Early {
                        request: job.request,
                        to: job.delivered_to.to_string(),
                        status: status.clone(),
                    });
                    false
                }
                None => true,
            });
        }
    }

    for early in &plan.early {
        log_outcome(
            &requests[early.request],
            &early.to,
            &early.status,
            None,
            started,
        );
        statuses[early.request].push(early.status.clone());
    }
    let mut forwards = std::mem::take(&mut plan.forwards);
    for (owner, jobs) in &plan.jobs {
        if jobs.is_empty() {
            continue;
        }
        let outcomes = run_as_owner(&config.settings, &requests, owner, jobs);
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let request = &requests[job.request];
            log_outcome(
                request,
                &job.delivered_to.to_string(),
                &outcome.status,
                outcome.path.as_deref(),
                started,
            );
            if !outcome.forward.is_empty() {
                forwards
                    .entry(job.request)
                    .or_default()
                    .extend(outcome.forward);
            }
            statuses[job.request].push(outcome.status);
        }
    }
    for (index, mut targets) in forwards {
        // A retry would redo the forward: wait until nothing else of this
        // recipient waits for one.
        if statuses[index].iter().any(Status::is_temporary) {
            continue;
        }
        requeue::dedup(&mut targets);
        let request = &requests[index];
        let status = requeue::forward(config, request, &targets);
        log_outcome(request, &targets.join(", "), &status, None, started);
        statuses[index].push(status);
    }
    statuses.into_iter().map(summarize).collect()
}

/// Who may read a message that is not yet open: the first mailbox owner,
/// else (forwards alone) the queue's user. `None`: nothing needs it.
fn message_reader(config: &Config, plan: &crate::plan::Plan) -> Option<Owner> {
    if let Some(owner) = plan.jobs.keys().next() {
        return Some(owner.clone());
    }
    if plan.forwards.is_empty() {
        return None;
    }
    let (uid, gid, name) = config.settings.queue_user.resolve().unwrap_or_else(|| {
        let (uid, gid) = postern_privilege::current_ids();
        (uid, gid, None)
    });
    Some(Owner { uid, gid, name })
}

fn summarize(statuses: Vec<Status>) -> Status {
    let (forwarded, delivered): (Vec<&str>, Vec<&str>) = statuses
        .iter()
        .filter(|s| s.is_success())
        .map(|s| s.text.as_str())
        .partition(|text| text.starts_with("forwarded"));
    let mailboxes = match delivered.len() {
        0 => None,
        1 => Some(delivered[0].to_string()),
        n => Some(format!("delivered to {n} mailboxes")),
    };
    let text = mailboxes
        .into_iter()
        .chain(forwarded.iter().map(|t| t.to_string()))
        .collect::<Vec<_>>()
        .join("; ");
    match crate::status::worst(statuses) {
        Some(status) if status.is_success() => Status::delivered(text),
        Some(status) => status,
        None => Status::temporary("nothing to deliver to"),
    }
}

fn log_outcome(request: &Request, to: &str, status: &Status, path: Option<&str>, started: Instant) {
    let id = request
        .queue
        .as_ref()
        .map(|q| q.id.as_str())
        .unwrap_or("NOQUEUE");
    let original = (!request.recipient.eq_ignore_ascii_case(to)).then_some(&*request.recipient);
    let detail = match path {
        Some(path) if status.is_success() => format!("{status}: {}", postern_log::escape(path)),
        _ => status.to_string(),
    };
    // As in Postfix: the time since the message arrived in the queue (the
    // id carries it to the microsecond), or since this delivery began.
    let delay = request
        .queue
        .as_ref()
        .and_then(|q| Some((postern_queue_format::QueueId::parse(&q.id)?, q.arrival)))
        .and_then(|(id, arrival)| id.arrived(arrival).elapsed().ok())
        .unwrap_or_else(|| started.elapsed());
    info!(
        "{}",
        postern_log::delivery_line(id, to, original, "local", delay, status.log_word(), &detail)
    );
}

/// Copies a non-seekable stdin into an anonymous memory file, at most
/// `limit + 1` bytes (enough to see it is too big). As root the copy is
/// made by a child that first becomes `owner`, so root never reads a byte
/// of the message.
pub fn copy_to_memory(
    stdin: OwnedFd,
    owner: &Owner,
    limit: Option<u64>,
) -> Result<OwnedFd, Status> {
    let memory = memfd().map_err(|e| Status::temporary(format!("memfd_create: {e}")))?;
    let keep = [stdin.as_raw_fd(), memory.as_raw_fd()];
    postern_privilege::run_as(owner.uid, owner.gid, owner.name.as_deref(), &keep, || {
        let from = std::fs::File::from(stdin.try_clone().map_err(|e| e.to_string())?);
        let mut into = std::fs::File::from(memory.try_clone().map_err(|e| e.to_string())?);
        let mut from = from.take(limit.map_or(u64::MAX, |l| l.saturating_add(1)));
        std::io::copy(&mut from, &mut into).map_err(|e| e.to_string())?;
        into.flush().map_err(|e| e.to_string())?;
        Ok(String::new())
    })
    .map_err(|e| Status::temporary(format!("read message: {e}")))?;
    Ok(memory)
}

fn memfd() -> std::io::Result<OwnedFd> {
    // SAFETY: a constant NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"postern-local-message".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}
