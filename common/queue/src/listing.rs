//! The queue as `mailq` and `postern-queue --list` show it (each message
//! with its id, size, arrival, sender and schedule, then each recipient
//! with its state and last status), and as `postern-queue --stats` counts
//! it for monitoring.

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
    for (id, envelope, records, size) in entries(queue, &ids) {
        shown += 1;
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
        if records.held {
            out.push_str("  (held)");
        } else if let Some(next) = records.next {
            let _ = write!(out, "  (next attempt {})", format_date(next));
        }
        out.push('\n');
        for (recipient, outcome) in envelope.recipients.iter().zip(&records.outcomes) {
            let state = match outcome {
                None => "queued".to_string(),
                Some(Outcome::Done) => "delivered".to_string(),
                Some(Outcome::Failed { status }) => format!("failed: {status}"),
                Some(Outcome::Deferred { status }) => format!("deferred: {status}"),
            };
            let _ = writeln!(out, "    {:<40} {state}", recipient.address);
        }
    }
    let _ = writeln!(out, "-- {shown} messages");
    Ok(out)
}

/// Counts for monitoring, one `name value` line each: messages, held
/// messages, recipients by state, and the age of the oldest message.
pub fn stats(queue: &QueueDir, now: u64) -> io::Result<String> {
    let ids = queue.queued()?;
    let (mut messages, mut held, mut queued, mut deferred, mut failed) = (0, 0, 0, 0, 0);
    let mut oldest: Option<u64> = None;
    for (_, envelope, records, _) in entries(queue, &ids) {
        messages += 1;
        held += usize::from(records.held);
        for outcome in &records.outcomes {
            match outcome {
                None => queued += 1,
                Some(Outcome::Deferred { .. }) => deferred += 1,
                Some(Outcome::Failed { .. }) => failed += 1,
                Some(Outcome::Done) => {}
            }
        }
        oldest = Some(oldest.map_or(envelope.arrival, |o| o.min(envelope.arrival)));
    }
    let age = oldest.map_or(0, |arrival| now.saturating_sub(arrival));
    Ok(format!(
        "messages {messages}\nheld {held}\nrecipients_queued {queued}\nrecipients_deferred {deferred}\nrecipients_failed {failed}\noldest_age_seconds {age}\n"
    ))
}

/// Each readable message with its records and data size; a message
/// delivered while we look is simply gone.
fn entries<'a>(
    queue: &'a QueueDir,
    ids: &'a [QueueId],
) -> impl Iterator<Item = (&'a QueueId, Envelope, Records, u64)> + 'a {
    ids.iter().filter_map(move |id| {
        let (envelope, offset) = queue.read_envelope(id).ok()?;
        let size = std::fs::metadata(queue.queue_file(id))
            .map(|m| m.len().saturating_sub(offset))
            .unwrap_or(0);
        let records = Records::read(queue, id, envelope.recipients.len())
            .unwrap_or_else(|_| Records::parse("", envelope.recipients.len()));
        Some((id, envelope, records, size))
    })
}
