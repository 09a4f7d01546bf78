//! The manager's two inputs, each read by a thread that turns lines into
//! notices: the `trigger` FIFO (ids of new messages, and the admin's
//! requests) and postern-lspawn's answers on stdin.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc::Sender;

use postern_queue_format::{QueueDir, QueueId};
use tracing::warn;

pub enum Notice {
    /// Ids announced on the trigger.
    Poke(Vec<QueueId>),
    /// An empty line: scan `queue/`.
    Scan,
    /// `flush` or `flush ID`: try now, whatever the schedule says.
    Flush(Option<QueueId>),
    /// `flush-domain DOMAIN`: the messages with recipients there, now,
    /// and the destination tried again even if it was marked dead.
    FlushDomain(String),
    /// `RESULT <tag> <n>` and its n lines.
    Results(String, Vec<String>),
    SpawnerGone,
}

/// A trigger line as an event; `None` for a line that means nothing.
fn trigger_notice(line: &str) -> Option<Notice> {
    let line = line.trim();
    if line.is_empty() {
        return Some(Notice::Scan);
    }
    if let Some(id) = QueueId::parse(line) {
        return Some(Notice::Poke(vec![id]));
    }
    match line.split_once(' ') {
        None if line == "flush" => Some(Notice::Flush(None)),
        Some(("flush", id)) => QueueId::parse(id).map(|id| Notice::Flush(Some(id))),
        Some(("flush-domain", domain)) if is_domain(domain) => {
            Some(Notice::FlushDomain(domain.to_ascii_lowercase()))
        }
        _ => None,
    }
}

/// A domain name, as the admin's `--flush DOMAIN` may give: letters,
/// digits, dots and hyphens, with a dot.
pub fn is_domain(text: &str) -> bool {
    text.contains('.')
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Reads the FIFO. Opened read-write, it never reaches end of file when the
/// last writer goes. Ids that arrive together become one event.
pub fn read_trigger(queue: &QueueDir, events: Sender<Notice>) {
    let Ok(fifo) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(queue.trigger())
    else {
        warn!(
            "no trigger at {}: new mail waits for the next scan",
            queue.trigger().display()
        );
        return;
    };
    std::thread::spawn(move || {
        let mut reader = BufReader::new(fifo);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let mut ids = Vec::new();
            let mut others = Vec::new();
            let mut take = |text: &str| match trigger_notice(text) {
                Some(Notice::Poke(mut more)) => ids.append(&mut more),
                Some(other) => others.push(other),
                None => {}
            };
            take(&line);
            while reader.buffer().contains(&b'\n') {
                line.clear();
                if reader.read_line(&mut line).is_err() {
                    break;
                }
                take(&line);
            }
            let batch = (!ids.is_empty()).then_some(Notice::Poke(ids));
            for event in batch.into_iter().chain(others) {
                if events.send(event).is_err() {
                    return;
                }
            }
        }
    });
}

/// `RESULT <tag> <n>` and n lines, from postern-lspawn on stdin.
pub fn read_spawner(events: Sender<Notice>) {
    std::thread::spawn(move || {
        let mut lines = BufReader::new(std::io::stdin()).lines();
        while let Some(Ok(header)) = lines.next() {
            let fields: Vec<&str> = header.split(' ').collect();
            let ["RESULT", tag, count] = fields[..] else {
                continue;
            };
            let count: usize = count.parse().unwrap_or(0);
            let answer: Vec<String> = lines.by_ref().take(count).map_while(Result::ok).collect();
            if events
                .send(Notice::Results(tag.to_string(), answer))
                .is_err()
            {
                return;
            }
        }
        let _ = events.send(Notice::SpawnerGone);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_lines() {
        let id = "6b0548dd2b5f80059e8d98";
        assert!(
            matches!(trigger_notice(&format!("{id}\n")), Some(Notice::Poke(ids)) if ids.len() == 1)
        );
        assert!(matches!(trigger_notice("\n"), Some(Notice::Scan)));
        assert!(matches!(
            trigger_notice("flush\n"),
            Some(Notice::Flush(None))
        ));
        assert!(matches!(
            trigger_notice(&format!("flush {id}")),
            Some(Notice::Flush(Some(_)))
        ));
        assert!(trigger_notice("flush ../x").is_none());
        assert!(matches!(
            trigger_notice("flush-domain Remote.Example"),
            Some(Notice::FlushDomain(d)) if d == "remote.example"
        ));
        assert!(trigger_notice("flush-domain ../etc").is_none());
        assert!(trigger_notice("junk").is_none());
    }
}
