//! The queue as `mailq` and `postern-queue --list` show it: each message
//! with its id, size, arrival and sender, then each recipient with its
//! state and last status.

use std::fmt::Write;
use std::io;

use crate::{Outcome, QueueDir, Records};

/// The listing; `format_date` renders an arrival time.
pub fn list(queue: &QueueDir, format_date: impl Fn(u64) -> String) -> io::Result<String> {
    let ids = queue.queued()?;
    if ids.is_empty() {
        return Ok("Mail queue is empty\n".to_string());
    }
    let mut out = String::new();
    for id in &ids {
        // A message delivered while we list is simply gone.
        let Ok((envelope, offset)) = queue.read_envelope(id) else {
            continue;
        };
        let size = std::fs::metadata(queue.queue_file(id))
            .map(|m| m.len().saturating_sub(offset))
            .unwrap_or(0);
        let sender = if envelope.sender.is_empty() {
            "<>"
        } else {
            &envelope.sender
        };
        let _ = writeln!(
            out,
            "{id} {size:>9} {}  {sender}",
            format_date(envelope.arrival)
        );
        let records = Records::read(queue, id, envelope.recipients.len()).unwrap_or(Records {
            outcomes: vec![None; envelope.recipients.len()],
        });
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
    let _ = writeln!(out, "-- {} messages", ids.len());
    Ok(out)
}
