//! A recipient's outcome three ways: as the queue records it (the answer
//! line), as the log says it (one Postfix-style line per attempt), and
//! for the worker's answer to lspawn.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_queue_format::Status;
use postern_queue_format::status::{Class, Code};
use postern_smtp_client::{Recipient, RecipientResult};
use tracing::info;

use crate::connection::Delivered;
use crate::job::Job;

/// Each job's recipients' answer lines (`ID<TAB>INDEX<TAB>EXIT<TAB>STATUS`)
/// into `out`, each attempt logged. EXIT is 0 (delivered), 3 (delivered,
/// the DSN requests passed on to the next hop), 75 (deferred) or 100
/// (failed).
pub fn answer(
    out: &mut impl Write,
    jobs: &[Job],
    results: Vec<Vec<Delivered>>,
    started: SystemTime,
) {
    for (job, results) in jobs.iter().zip(results) {
        for ((recipient, index), delivered) in job.recipients.iter().zip(&job.indices).zip(results)
        {
            let status = status_of(&delivered);
            // 3: delivered, and the next hop reports on it if asked (it
            // took DSN's NOTIFY); 0: delivered, any report is this host's.
            let exit = match status.class() {
                Class::Success if delivered.dsn && recipient.notify.is_some() => 3,
                Class::Success => 0,
                Class::Temporary => 75,
                Class::Permanent => 100,
            };
            log_attempt(job, recipient, &delivered, &status, started);
            let _ = writeln!(out, "{}\t{index}\t{exit}\t{}", job.id, status.record());
        }
    }
}

/// Every recipient deferred with `status` (the destination's settings are
/// wrong): nothing was tried.
pub fn answer_all(out: &mut impl Write, jobs: &[Job], status: &Status, started: SystemTime) {
    let delivered = Delivered {
        dsn: false,
        result: RecipientResult {
            reply: postern_smtp_client::Reply::new(
                451,
                &status.code.to_string(),
                status.text.clone(),
            ),
            remote: false,
        },
        relay: "none".to_string(),
        setup: Duration::ZERO,
        transfer: Duration::ZERO,
    };
    for job in jobs {
        for (recipient, index) in job.recipients.iter().zip(&job.indices) {
            log_attempt(job, recipient, &delivered, status, started);
            let _ = writeln!(out, "{}\t{index}\t75\t{}", job.id, status.record());
        }
    }
}

/// A recipient's outcome as the queue records it.
pub fn status_of(delivered: &Delivered) -> Status {
    let RecipientResult { reply, remote } = &delivered.result;
    let class = Class::of_reply(reply.code).unwrap_or(Class::Permanent);
    let code = reply
        .status
        .as_deref()
        .and_then(Code::parse)
        .filter(|code| code.class == class)
        .unwrap_or_else(|| Code::unspecified(class));
    let text = reply.lines.join(" ");
    if !remote {
        return Status {
            code,
            text,
            remote: None,
        };
    }
    let host = delivered.relay.split('[').next().unwrap_or("none");
    Status::from_remote(code, text, host, reply.code)
}

pub fn log_attempt(
    job: &Job,
    recipient: &Recipient,
    delivered: &Delivered,
    status: &Status,
    started: SystemTime,
) {
    let arrived = UNIX_EPOCH + Duration::from_secs(job.arrival);
    let waited = started.duration_since(arrived).unwrap_or_default();
    let word = match status.class() {
        Class::Success => "sent",
        Class::Temporary => "deferred",
        Class::Permanent => "bounced",
    };
    let detail = match (&status.remote, status.smtp_reply()) {
        (Some(_), Some(reply)) if status.is_success() => reply,
        (Some(remote), Some(reply)) => format!("host {} said: {reply}", remote.mta),
        _ => status.text.clone(),
    };
    let line = postern_log::RemoteAttempt {
        id: &job.id,
        to: &recipient.address,
        relay: &delivered.relay,
        delay: SystemTime::now()
            .duration_since(arrived)
            .unwrap_or_default(),
        delays: [waited, Duration::ZERO, delivered.setup, delivered.transfer],
        dsn: &status.code.to_string(),
        status: word,
        detail: &detail,
    };
    info!("{line}");
}
