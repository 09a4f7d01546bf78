//! The manager's two inputs, each read by a thread that turns lines into
//! events: the `trigger` FIFO (ids of new messages, and the admin's
//! requests) and postern-lspawn's answers on stdin.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc::Sender;

use postern_queue_format::{QueueDir, QueueId};
use tracing::warn;

pub enum Event {
    /// Ids announced on the trigger.
    Poke(Vec<QueueId>),
    /// An empty line: scan `queue/`.
    Scan,
    /// `flush` or `flush ID`: try now, whatever the schedule says.
    Flush(Option<QueueId>),
    /// `RESULT <tag> <n>` and its n lines.
    Results(String, Vec<String>),
    SpawnerGone,
}

/// A trigger line as an event; `None` for a line that means nothing.
fn trigger_event(line: &str) -> Option<Event> {
    let line = line.trim();
    if line.is_empty() {
        return Some(Event::Scan);
    }
    if let Some(id) = QueueId::parse(line) {
        return Some(Event::Poke(vec![id]));
    }
    match line.split_once(' ') {
        None if line == "flush" => Some(Event::Flush(None)),
        Some(("flush", id)) => QueueId::parse(id).map(|id| Event::Flush(Some(id))),
        _ => None,
    }
}

/// Reads the FIFO. Opened read-write, it never reaches end of file when the
/// last writer goes. Ids that arrive together become one event.
pub fn listen_to_trigger(queue: &QueueDir, events: Sender<Event>) {
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
            let mut take = |text: &str| match trigger_event(text) {
                Some(Event::Poke(mut more)) => ids.append(&mut more),
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
            let batch = (!ids.is_empty()).then_some(Event::Poke(ids));
            for event in batch.into_iter().chain(others) {
                if events.send(event).is_err() {
                    return;
                }
            }
        }
    });
}

/// `RESULT <tag> <n>` and n lines, from postern-lspawn on stdin.
pub fn listen_to_spawner(events: Sender<Event>) {
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
                .send(Event::Results(tag.to_string(), answer))
                .is_err()
            {
                return;
            }
        }
        let _ = events.send(Event::SpawnerGone);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_lines() {
        let id = "6b0548dd2b5f80059e8d98";
        assert!(
            matches!(trigger_event(&format!("{id}\n")), Some(Event::Poke(ids)) if ids.len() == 1)
        );
        assert!(matches!(trigger_event("\n"), Some(Event::Scan)));
        assert!(matches!(trigger_event("flush\n"), Some(Event::Flush(None))));
        assert!(matches!(
            trigger_event(&format!("flush {id}")),
            Some(Event::Flush(Some(_)))
        ));
        assert!(trigger_event("flush ../x").is_none());
        assert!(trigger_event("junk").is_none());
    }
}
