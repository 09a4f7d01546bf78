//! `mailq` / `-bp`: each queued message with its size, arrival, sender and
//! recipients, and each recipient's last outcome.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use postern_config::Settings;
use postern_queue_format::{Outcome, QueueDir, Records};

use crate::{EX_CONFIG, EX_TEMPFAIL, fail};

pub fn run(dir: &Path) -> i32 {
    let settings = match Settings::load(dir) {
        Ok(settings) => settings,
        Err(e) => fail(EX_CONFIG, &e.to_string()),
    };
    let queue = QueueDir::at(&settings.queue_dir);
    let ids = match queue.queued() {
        Ok(ids) => ids,
        Err(e) => fail(
            EX_TEMPFAIL,
            &format!("read {}: {e}", settings.queue_dir.display()),
        ),
    };
    if ids.is_empty() {
        println!("Mail queue is empty");
        return 0;
    }
    for id in &ids {
        // A message delivered while we list is simply gone.
        let Ok((envelope, offset)) = queue.read_envelope(id) else {
            continue;
        };
        let size = std::fs::metadata(queue.queue_file(id))
            .map(|m| m.len().saturating_sub(offset))
            .unwrap_or(0);
        let arrival =
            postern_maildir::dates::rfc5322(UNIX_EPOCH + Duration::from_secs(envelope.arrival));
        let sender = if envelope.sender.is_empty() {
            "<>"
        } else {
            &envelope.sender
        };
        println!("{id} {size:>9} {arrival}  {sender}");
        let records = Records::read(&queue, id, envelope.recipients.len()).unwrap_or(Records {
            outcomes: vec![None; envelope.recipients.len()],
        });
        for (recipient, outcome) in envelope.recipients.iter().zip(&records.outcomes) {
            let state = match outcome {
                None => "queued".to_string(),
                Some(Outcome::Done) => "delivered".to_string(),
                Some(Outcome::Failed { status }) => format!("failed: {status}"),
                Some(Outcome::Deferred { status }) => format!("deferred: {status}"),
            };
            println!("    {:<40} {state}", recipient.address);
        }
    }
    println!("-- {} messages", ids.len());
    0
}
