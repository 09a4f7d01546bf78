//! The scheduling loop: events in (a poke on the trigger, a batch's
//! results), batches out.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use postern_config::Settings;
use postern_queue_format::{Outcome, QueueDir, QueueId, Records};
use tracing::{info, warn};

const RESCAN: Duration = Duration::from_secs(1);
/// tmp/ files older than this were left by an injector that died.
const STALE_TMP: Duration = Duration::from_secs(36 * 3600);

enum Event {
    Poke,
    Results(String, Vec<String>),
    SpawnerGone,
}

/// A batch on its way: which recipients (by index) its answer lines
/// stand for.
struct InFlight {
    indices: Vec<usize>,
    recipients: usize,
}

pub fn run(settings: &Settings) -> i32 {
    let queue = QueueDir::at(&settings.queue_dir);
    if let Err(e) = QueueDir::create(&settings.queue_dir) {
        warn!("cannot prepare {}: {e}", settings.queue_dir.display());
        return 75;
    }
    match queue.clean(STALE_TMP) {
        Ok(0) => {}
        Ok(n) => info!("removed {n} files left by crashes"),
        Err(e) => warn!("clean {}: {e}", settings.queue_dir.display()),
    }
    let (events, inbox) = channel();
    listen_to_trigger(&queue, events.clone());
    listen_to_spawner(events);
    let mut to_spawner = std::io::stdout().lock();
    let mut in_flight: HashMap<String, InFlight> = HashMap::new();
    let mut not_before: HashMap<QueueId, Instant> = HashMap::new();
    let retry = Duration::from_secs(settings.retry_interval.max(1));
    loop {
        if !handle_events(&queue, &inbox, &mut in_flight, &mut not_before, retry) {
            return 0;
        }
        let Ok(ids) = queue.queued() else { continue };
        for id in ids {
            if in_flight.len() >= settings.max_deliveries.max(1) {
                break;
            }
            if in_flight.contains_key(id.as_str())
                || not_before.get(&id).is_some_and(|t| *t > Instant::now())
            {
                continue;
            }
            if let Some((batch, flight)) = prepare(&queue, &id) {
                if to_spawner
                    .write_all(batch.as_bytes())
                    .and_then(|()| to_spawner.flush())
                    .is_err()
                {
                    return 0;
                }
                in_flight.insert(id.to_string(), flight);
            }
        }
    }
}

/// Waits for the next event (at most a rescan period), handles it and
/// whatever else is waiting. False when the spawner is gone.
fn handle_events(
    queue: &QueueDir,
    inbox: &Receiver<Event>,
    in_flight: &mut HashMap<String, InFlight>,
    not_before: &mut HashMap<QueueId, Instant>,
    retry: Duration,
) -> bool {
    let mut next = inbox.recv_timeout(RESCAN).ok();
    while let Some(event) = next {
        match event {
            Event::Poke => {}
            Event::SpawnerGone => return false,
            Event::Results(tag, lines) => {
                if let (Some(flight), Some(id)) = (in_flight.remove(&tag), QueueId::parse(&tag)) {
                    record(queue, &id, &flight, &lines);
                    match Records::read(queue, &id, flight.recipients) {
                        Ok(records) if records.finished() => {
                            match queue.finish(&id) {
                                Ok(()) => info!("{id}: removed"),
                                Err(e) => warn!("{id}: cannot remove: {e}"),
                            }
                            not_before.remove(&id);
                        }
                        _ => {
                            not_before.insert(id.clone(), Instant::now() + retry);
                        }
                    }
                }
            }
        }
        next = inbox.try_recv().ok();
    }
    true
}

/// The batch for a message's pending recipients, or `None` when there is
/// nothing to do now (locked by another run, finished, unreadable).
fn prepare(queue: &QueueDir, id: &QueueId) -> Option<(String, InFlight)> {
    // The delivery holds the queue file's lock (postern-local --batch takes
    // it), so a batch that outlived the manager that sent it, after a
    // crash, shows here: leave the message until it is done.
    let lock = File::open(queue.queue_file(id)).ok()?;
    lock.try_lock().ok()?;
    drop(lock);
    let (envelope, offset) = match queue.read_envelope(id) {
        Ok(read) => read,
        Err(e) => {
            warn!("{id}: cannot read the envelope: {e}");
            return None;
        }
    };
    let records = Records::read(queue, id, envelope.recipients.len()).ok()?;
    let indices = records.pending();
    if indices.is_empty() {
        if queue.finish(id).is_ok() {
            info!("{id}: removed");
        }
        return None;
    }
    // A message tried before may have landed where the record was lost:
    // such deliveries look first (postern-local --retry). The "try" record
    // marks the first attempt before it starts.
    let retry = queue.state_file(id).exists();
    if !retry {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(queue.state_file(id))
            .and_then(|mut f| f.write_all(b"try\n"));
        info!(
            "{id}: from=<{}>, nrcpt={}",
            envelope.sender,
            envelope.recipients.len()
        );
    }
    let file = queue.queue_file(id);
    let mut batch = format!("BATCH {id} {}\n", indices.len());
    for &index in &indices {
        batch.push_str(&format!(
            "{}\t{offset}\t{}\t{}\t{id}\t{}\t{}\n",
            file.display(),
            envelope.sender,
            envelope.recipients[index].address,
            envelope.arrival,
            u8::from(retry)
        ));
    }
    let recipients = envelope.recipients.len();
    Some((
        batch,
        InFlight {
            indices,
            recipients,
        },
    ))
}

/// Step 3 of docs/QUEUE.md: one record per answer line.
fn record(queue: &QueueDir, id: &QueueId, flight: &InFlight, lines: &[String]) {
    for (index, line) in flight.indices.iter().zip(lines) {
        let mut fields = line.splitn(3, '\t');
        let (_, exit, status) = (
            fields.next(),
            fields.next(),
            fields.next().unwrap_or_default(),
        );
        let outcome = match exit {
            Some("0") => Outcome::Done,
            Some("75") | None => Outcome::Deferred {
                status: status.to_string(),
            },
            Some(_) => Outcome::Failed {
                status: status.to_string(),
            },
        };
        if let Err(e) = Records::append(queue, id, *index, &outcome) {
            warn!("{id}: cannot record an outcome: {e}");
        }
    }
}

/// Pokes arrive as bytes on the FIFO. Opened read-write, it never reaches
/// end of file when the last writer goes.
fn listen_to_trigger(queue: &QueueDir, events: Sender<Event>) {
    let Ok(mut fifo) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(queue.trigger())
    else {
        warn!(
            "no trigger at {}: new mail waits for the next rescan",
            queue.trigger().display()
        );
        return;
    };
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while matches!(fifo.read(&mut buffer), Ok(n) if n > 0) {
            if events.send(Event::Poke).is_err() {
                break;
            }
        }
    });
}

/// `RESULT <tag> <n>` and n lines, from postern-lspawn on stdin.
fn listen_to_spawner(events: Sender<Event>) {
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
