//! The queue as `mailq` and `postern-queue --list` show it (each message
//! with its id, size, arrival, sender and schedule, then each recipient
//! with its state and last status), and as `postern-queue --stats` counts
//! it for monitoring. A queue file the manager cannot read is shown with
//! the reason, never left out: it is mail that waits for an admin.

use std::fmt::Write;
use std::io;

use crate::{Envelope, Outcome, QueueDir, QueueId, Records};

/// The listing; `format_date` renders a time (seconds since the epoch).
pub fn list(queue: &QueueDir, format_date: impl Fn(u64) -> String) -> io::Result<String> {
    let ids = queue.queued()?;
    if ids.is_empty() {
        return Ok("Mail queue is empty\n".to_string());
    }
    let mut out = String::new();
    let mut shown = 0;
    for entry in entries(queue, &ids) {
        shown += 1;
        let id = entry.id;
        let Some((envelope, records, size)) = entry.content else {
            let _ = writeln!(
                out,
                "{id} {:>9} {}  ?  (unreadable: {})",
                "?",
                format_date(id.seconds()),
                entry.problem.unwrap_or_default()
            );
            continue;
        };
        let sender = if envelope.sender.is_empty() {
            "<>"
        } else {
            &envelope.sender
        };
        let _ = write!(
            out,
            "{id} {size:>9} {}  {sender}",
            format_date(envelope.arrival)
        );
        if let Some(problem) = &entry.problem {
            let _ = write!(out, "  (unreadable: {problem})");
        } else if records.held {
            out.push_str("  (held)");
        } else if let Some(next) = records.next {
            let _ = write!(out, "  (next attempt {})", format_date(next));
        }
        out.push('\n');
        for (recipient, outcome) in envelope.recipients.iter().zip(&records.outcomes) {
            let state = match outcome {
                None => "queued".to_string(),
                Some(Outcome::Done) => "delivered".to_string(),
                Some(Outcome::Failed { status }) => format!("failed: {}", status.said()),
                Some(Outcome::Deferred { status }) => format!("deferred: {}", status.said()),
            };
            let _ = writeln!(out, "    {:<40} {state}", recipient.address);
        }
    }
    let _ = writeln!(out, "-- {shown} messages");
    Ok(out)
}

/// Counts for monitoring, one `name value` line each: messages, held
/// messages, messages the manager cannot read, recipients by state, and
/// the age of the oldest message.
pub fn stats(queue: &QueueDir, now: u64) -> io::Result<String> {
    let ids = queue.queued()?;
    let (mut messages, mut held, mut queued, mut deferred, mut failed) = (0, 0, 0, 0, 0);
    let mut unreadable = 0;
    let mut oldest: Option<u64> = None;
    for entry in entries(queue, &ids) {
        messages += 1;
        unreadable += usize::from(entry.problem.is_some());
        let arrival = match &entry.content {
            Some((envelope, _, _)) => envelope.arrival,
            None => entry.id.seconds(),
        };
        oldest = Some(oldest.map_or(arrival, |o| o.min(arrival)));
        let Some((_, records, _)) = entry.content else {
            continue;
        };
        held += usize::from(records.held);
        for outcome in &records.outcomes {
            match outcome {
                None => queued += 1,
                Some(Outcome::Deferred { .. }) => deferred += 1,
                Some(Outcome::Failed { .. }) => failed += 1,
                Some(Outcome::Done) => {}
            }
        }
    }
    let age = oldest.map_or(0, |arrival| now.saturating_sub(arrival));
    Ok(format!(
        "messages {messages}\nheld {held}\nunreadable {unreadable}\nrecipients_queued {queued}\nrecipients_deferred {deferred}\nrecipients_failed {failed}\noldest_age_seconds {age}\n"
    ))
}

struct Entry<'a> {
    id: &'a QueueId,
    /// The envelope, records and data size, when this process can read it.
    content: Option<(Envelope, Records, u64)>,
    /// Why the queue manager cannot read it.
    problem: Option<String>,
}

/// Each message; one delivered while we look is simply gone.
fn entries<'a>(queue: &'a QueueDir, ids: &'a [QueueId]) -> impl Iterator<Item = Entry<'a>> + 'a {
    ids.iter().filter_map(move |id| {
        let mut problem = queue.manager_cannot_read(id);
        let content = match queue.read_envelope(id) {
            Ok((envelope, offset)) => {
                let size = std::fs::metadata(queue.queue_file(id))
                    .map(|m| m.len().saturating_sub(offset))
                    .unwrap_or(0);
                let records = Records::read(queue, id, envelope.recipients.len())
                    .unwrap_or_else(|_| Records::parse("", envelope.recipients.len()));
                Some((envelope, records, size))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                problem.get_or_insert_with(|| e.to_string());
                None
            }
        };
        Some(Entry {
            id,
            content,
            problem,
        })
    })
}
