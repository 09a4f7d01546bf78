//! The scheduling loop: notices in (ids announced on the trigger, a
//! batch's results, the clock), batches out, and each answered message
//! settled by the rules of settle.rs: its outcomes recorded, its next
//! attempt scheduled, its reports queued, and removed once done.
//!
//! The manager keeps an index of the messages in `queue/` in memory, fed by
//! the ids injectors write to the trigger, with a full scan of the
//! directory at start, every `FULL_SCAN` and on an empty trigger line; so a
//! busy queue is not re-read for every message that arrives. Messages
//! ready at once are grouped into batches, enough per batch to spread them
//! over the free delivery slots, so that a full queue costs one
//! `postern-local` per batch rather than per message.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use postern_config::Settings;
use postern_queue_format::{
    Envelope, Event, QueueDir, QueueId, Records, ReportKind, Status, read_envelope_from,
};
use tracing::{error, info, warn};

use postern_routing::{Route, Router, remote_deferral};

use crate::clock::Clock;
use crate::notices::{Notice, read_spawner, read_trigger};
use crate::settle::{Policy, Reporter, deferral, due_reports, log_given_up, outcome_of_answer};

/// The longest wait for an event.
const TICK: Duration = Duration::from_secs(1);
/// The safety net for a lost trigger line.
const FULL_SCAN: Duration = Duration::from_secs(10);
/// tmp/ files older than this were left by an injector that died.
const STALE_TMP: Duration = Duration::from_secs(36 * 3600);
/// The most messages one batch carries.
const MAX_BATCH_MESSAGES: usize = 64;
/// While deliveries run, a new batch starts at most this often, unless
/// `FULL_BATCH` messages are ready: under a steady stream, messages gather
/// into batches (one `postern-local` each) instead of one process per
/// message; an idle queue still delivers at once.
const BATCH_PACE: Duration = Duration::from_millis(25);
const FULL_BATCH: usize = 16;
/// Ready messages are spread over the free slots, but not thinner than
/// this: a process per message would cost more than the parallel
/// deliveries save.
const MIN_SPREAD: usize = 8;

/// A message the manager knows of.
#[derive(Default)]
pub struct Entry {
    /// Read once: an envelope never changes.
    envelope: Option<(Envelope, u64)>,
    /// Not to be tried before this (the backoff), in seconds.
    pub not_before: Option<u64>,
    /// Flushed by the admin: try now, whatever the records say.
    flushed: bool,
    pub busy: bool,
    /// Known never to have been attempted, by this manager or one before
    /// it: it reached `queue/` after this manager's first scan. Its first
    /// attempt needs no `--retry` look, and no record before it starts.
    untried: bool,
    /// Why its queue file could not be opened, last time it was tried: it
    /// stays in the index (and `mailq`) and is tried again, never dropped.
    unreadable: Option<String>,
}

impl Entry {
    fn new(untried: bool) -> Entry {
        Entry {
            untried,
            ..Entry::default()
        }
    }

    /// Try now, whatever the schedule recorded says.
    fn flush(&mut self) {
        self.not_before = None;
        self.flushed = true;
    }
}

/// One message of a batch on its way: which recipients (by index) its
/// answer lines stand for.
pub struct Flight {
    pub id: QueueId,
    /// Every recipient the attempt stands for: those sent to the batch,
    /// and those routed off the host.
    pub indices: Vec<usize>,
    /// The recipients of `indices` routed off the host, with the outcome
    /// their route gives them now; the batch answers for the others.
    pub remote: Vec<(usize, Status)>,
    /// When the attempt started.
    pub started: u64,
    /// The message's first attempt ever, not yet recorded in `state/`.
    pub first: bool,
}

/// A batch on its way: its messages, the domains it holds a slot of, and
/// (until sent) its request lines.
#[derive(Default)]
pub struct Batch {
    pub flights: Vec<Flight>,
    pub domains: Vec<String>,
    lines: String,
    requests: usize,
}

pub struct Scheduler {
    pub queue: QueueDir,
    max_batches: usize,
    max_per_domain: usize,
    pub policy: Policy,
    pub reporter: Reporter,
    router: Router,
    pub index: BTreeMap<QueueId, Entry>,
    pub batches: HashMap<String, Batch>,
    /// Batches in flight per recipient domain.
    pub domains: HashMap<String, usize>,
    pub clock: Clock,
    last_scan: Option<Instant>,
    /// When the last batch was sent, and when to look again at messages
    /// held back by `BATCH_PACE`.
    last_batch: Option<Instant>,
    wake: Option<Instant>,
    /// Whether the first full scan is done: what appears in `queue/` after
    /// it cannot have been attempted by an earlier manager.
    scanned: bool,
}

pub fn run(settings: &Settings, config: &Path) -> i32 {
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
    read_trigger(&queue, events.clone());
    read_spawner(events);
    let router = Router::load(config, &settings.hostname);
    let reporter = Reporter::beside_this_program(config);
    let mut scheduler = Scheduler::new(queue, settings, reporter, router);
    let mut to_spawner = std::io::stdout().lock();
    loop {
        if !scheduler.handle_events(&inbox) {
            return 0;
        }
        if scheduler
            .last_scan
            .is_none_or(|at| scheduler.clock.since(at) >= FULL_SCAN)
        {
            scheduler.scan();
        }
        for (_, text) in scheduler.dispatch() {
            if to_spawner
                .write_all(text.as_bytes())
                .and_then(|()| to_spawner.flush())
                .is_err()
            {
                return 0;
            }
        }
    }
}

impl Scheduler {
    fn new(queue: QueueDir, settings: &Settings, reporter: Reporter, router: Router) -> Scheduler {
        Scheduler {
            queue,
            max_batches: settings.max_deliveries.max(1),
            max_per_domain: settings.max_deliveries_per_domain,
            policy: Policy::from(settings),
            reporter,
            router,
            index: BTreeMap::new(),
            batches: HashMap::new(),
            domains: HashMap::new(),
            clock: Clock::default(),
            last_scan: None,
            last_batch: None,
            wake: None,
            scanned: false,
        }
    }

    /// Waits for the next event (at most a tick), handles it and whatever
    /// else is waiting. False when the spawner is gone.
    fn handle_events(&mut self, inbox: &Receiver<Notice>) -> bool {
        let wait = self.wake.take().map_or(TICK, |at| {
            at.saturating_duration_since(self.clock.instant()).min(TICK)
        });
        let mut next = inbox.recv_timeout(wait).ok();
        while let Some(event) = next {
            match event {
                Notice::Scan => self.last_scan = None,
                Notice::Poke(ids) => {
                    for id in ids {
                        self.index
                            .entry(id)
                            .or_insert_with(|| Entry::new(self.scanned));
                    }
                }
                Notice::Flush(None) => {
                    self.last_scan = None;
                    for entry in self.index.values_mut() {
                        entry.flush();
                    }
                }
                Notice::Flush(Some(id)) => self
                    .index
                    .entry(id)
                    .or_insert_with(|| Entry::new(self.scanned))
                    .flush(),
                Notice::SpawnerGone => return false,
                Notice::Results(tag, lines) => self.results(&tag, &lines),
            }
            next = inbox.try_recv().ok();
        }
        true
    }

    /// Brings the index in line with `queue/`.
    fn scan(&mut self) {
        self.last_scan = Some(self.clock.instant());
        let Ok(ids) = self.queue.queued() else { return };
        let present: std::collections::HashSet<&QueueId> = ids.iter().collect();
        self.index
            .retain(|id, entry| entry.busy || present.contains(id));
        for id in ids {
            self.index
                .entry(id)
                .or_insert_with(|| Entry::new(self.scanned));
        }
        self.scanned = true;
    }

    /// The batches to send now, as (tag, text).
    fn dispatch(&mut self) -> Vec<(String, String)> {
        let free = self.max_batches.saturating_sub(self.batches.len());
        if free == 0 {
            return Vec::new();
        }
        let now = self.clock.unix();
        let ready: Vec<QueueId> = self
            .index
            .iter()
            .filter(|(_, e)| !e.busy && e.not_before.is_none_or(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        if let Some(last) = self.last_batch
            && !self.batches.is_empty()
            && ready.len() < FULL_BATCH
            && self.clock.since(last) < BATCH_PACE
        {
            self.wake = Some(last + BATCH_PACE);
            return Vec::new();
        }
        if ready.is_empty() {
            return Vec::new();
        }
        // A domain added a moment ago routes here from its first message.
        self.router.refresh();
        self.last_batch = Some(self.clock.instant());
        let per_batch = ready
            .len()
            .div_ceil(free)
            .clamp(MIN_SPREAD, MAX_BATCH_MESSAGES);
        let mut sent = Vec::new();
        let mut current = Batch::default();
        for id in ready {
            if sent.len() >= free {
                break;
            }
            let Some((lines, flight, domains)) = self.prepare(&id) else {
                continue;
            };
            if lines.is_empty() {
                // Every recipient is routed off the host: settled now,
                // with no delivery to wait for.
                self.settle_flight(&flight, &[], now);
                continue;
            }
            if !self.domains_allow(&domains, &current.domains) {
                continue;
            }
            for domain in domains {
                if !current.domains.contains(&domain) {
                    current.domains.push(domain);
                }
            }
            if let Some(entry) = self.index.get_mut(&id) {
                entry.busy = true;
                entry.flushed = false;
            }
            current.requests += flight.indices.len() - flight.remote.len();
            current.lines.push_str(&lines);
            current.flights.push(flight);
            if current.flights.len() >= per_batch {
                sent.push(self.send(std::mem::take(&mut current)));
            }
        }
        if !current.flights.is_empty() {
            sent.push(self.send(current));
        }
        sent
    }

    /// Whether a message for `domains` may join a batch already holding
    /// `joined`, under `max_deliveries_per_domain`.
    fn domains_allow(&self, domains: &[String], joined: &[String]) -> bool {
        self.max_per_domain == 0
            || domains.iter().all(|d| {
                joined.contains(d)
                    || self.domains.get(d).copied().unwrap_or(0) < self.max_per_domain
            })
    }

    /// Registers a batch as in flight; returns its tag and text.
    fn send(&mut self, mut batch: Batch) -> (String, String) {
        let tag = batch.flights[0].id.to_string();
        for domain in &batch.domains {
            *self.domains.entry(domain.clone()).or_default() += 1;
        }
        let text = format!(
            "BATCH {tag} {}\n{}",
            batch.requests,
            std::mem::take(&mut batch.lines)
        );
        self.batches.insert(tag.clone(), batch);
        (tag, text)
    }

    /// A message's envelope, from the index or its queue file.
    pub fn envelope_of(&mut self, id: &QueueId) -> Option<Envelope> {
        let entry = self.index.entry(id.clone()).or_default();
        if entry.envelope.is_none() {
            entry.envelope = self.queue.read_envelope(id).ok();
        }
        entry
            .envelope
            .as_ref()
            .map(|(envelope, _)| envelope.clone())
    }

    /// A queue file that exists but cannot be opened (a mode an injector
    /// got wrong, a file an admin copied in): logged as an error when it is
    /// first seen so, and tried again at each full scan, so that a fix
    /// (`chmod g+r`) lets it go without a restart.
    fn unreadable(&mut self, id: &QueueId, error: &std::io::Error) {
        let reason = error.to_string();
        let retry = self.clock.unix() + FULL_SCAN.as_secs();
        let entry = self.index.entry(id.clone()).or_default();
        if entry.unreadable.as_deref() != Some(reason.as_str()) {
            error!(
                "{id}: cannot open the queue file {}: {reason}; it stays queued until it can be read (postern-admin check)",
                self.queue.queue_file(id).display()
            );
        }
        entry.unreadable = Some(reason);
        entry.not_before = Some(retry);
    }

    /// A message's request lines, its flight and its pending recipients'
    /// domains; `None` when there is nothing to do now (locked by another
    /// run, finished, unreadable).
    fn prepare(&mut self, id: &QueueId) -> Option<(String, Flight, Vec<String>)> {
        // The delivery holds the queue file's lock (postern-local --batch
        // takes it), so a batch that outlived the manager that sent it,
        // after a crash, shows here: leave the message until it is done.
        let mut file = match File::open(self.queue.queue_file(id)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.index.remove(id);
                return None;
            }
            Err(e) => {
                self.unreadable(id, &e);
                return None;
            }
        };
        if file.try_lock().is_err() {
            return None;
        }
        let now = self.clock.unix();
        let entry = self.index.entry(id.clone()).or_default();
        if entry.unreadable.take().is_some() {
            info!("{id}: the queue file can be read again");
        }
        if entry.envelope.is_none() {
            match read_envelope_from(id, &mut file) {
                Ok(read) => entry.envelope = Some(read),
                Err(e) => {
                    warn!("{id}: cannot read the envelope: {e}");
                    entry.not_before = Some(now + self.policy.first_retry);
                    return None;
                }
            }
        }
        drop(file);
        let flushed = entry.flushed;
        let first = entry.untried;
        let (envelope, offset) = entry.envelope.clone().expect("read above");
        let records = Records::read(&self.queue, id, envelope.recipients.len()).ok()?;
        if records.held {
            return None;
        }
        if let Some(next) = records.next.filter(|&next| next > now && !flushed) {
            // The schedule recorded before a restart.
            if let Some(entry) = self.index.get_mut(id) {
                entry.not_before = Some(next);
            }
            return None;
        }
        let indices = records.pending();
        if indices.is_empty() {
            // Delivered, but a report may still be due.
            self.settle(id, &envelope, &records, now);
            return None;
        }
        // A message that may have been tried before (by an earlier manager,
        // whose records a crash may have cut short) may have landed where
        // the record was lost: its deliveries look first (postern-local
        // --retry). A first attempt is recorded only with its outcome,
        // and not at all when it delivers everything: no `state/` file.
        let retry = !first;
        if first || !self.queue.state_file(id).exists() {
            info!(
                "{id}: from=<{}>, nrcpt={}",
                envelope.sender,
                envelope.recipients.len()
            );
        }
        if !first && let Err(e) = Records::note(&self.queue, id, &[Event::Round(now)]) {
            warn!("{id}: cannot record the attempt: {e}");
        }
        if let Some(entry) = self.index.get_mut(id) {
            entry.untried = false;
        }
        let file = self.queue.queue_file(id);
        let mut lines = String::new();
        let mut domains: Vec<String> = Vec::new();
        let mut remote = Vec::new();
        for &index in &indices {
            let address = &envelope.recipients[index].address;
            if let Route::Remote { .. } = self.router.route(address) {
                let status = remote_deferral(address);
                let delay = id.arrived(envelope.arrival).elapsed().unwrap_or_default();
                let line = postern_log::delivery_line(
                    id.as_str(),
                    address,
                    None,
                    "none",
                    delay,
                    "deferred",
                    &status.to_string(),
                );
                info!("{line}");
                remote.push((index, status));
                continue;
            }
            lines.push_str(&format!(
                "{}\t{offset}\t{}\t{address}\t{id}\t{}\t{}\n",
                file.display(),
                envelope.sender,
                envelope.arrival,
                u8::from(retry)
            ));
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        let flight = Flight {
            id: id.clone(),
            indices,
            remote,
            started: now,
            first,
        };
        Some((lines, flight, domains))
    }

    /// A batch's answer: outcomes recorded, then each message scheduled
    /// again or settled.
    pub fn results(&mut self, tag: &str, lines: &[String]) {
        let Some(batch) = self.batches.remove(tag) else {
            return;
        };
        for domain in &batch.domains {
            if let Some(count) = self.domains.get_mut(domain) {
                *count = count.saturating_sub(1);
            }
        }
        let now = self.clock.unix();
        let mut lines = lines.iter();
        for flight in &batch.flights {
            let sent = flight.indices.len() - flight.remote.len();
            let answers: Vec<&String> = lines.by_ref().take(sent).collect();
            self.settle_flight(flight, &answers, now);
        }
    }

    /// One message's attempt answered: the batch's `answers` for its local
    /// recipients, the route's outcome for the remote ones; outcomes
    /// recorded, then the message scheduled again or settled.
    fn settle_flight(&mut self, flight: &Flight, answers: &[&String], now: u64) {
        let Some(envelope) = self.envelope_of(&flight.id) else {
            // Gone while it was delivered: nothing left to do.
            self.index.remove(&flight.id);
            return;
        };
        let expired = now >= envelope.arrival.saturating_add(self.policy.lifetime);
        let lifetime = expired.then_some(self.policy.lifetime);
        let mut events = Vec::new();
        if flight.first {
            events.push(Event::Round(flight.started));
        }
        // The batch answered for the local recipients, in order; the
        // route already decided for the remote ones.
        let mut local = answers.iter();
        for &index in &flight.indices {
            let outcome = match flight.remote.iter().find(|(i, _)| *i == index) {
                Some((_, status)) => deferral(status.clone(), lifetime),
                None => outcome_of_answer(local.next().map(|line| line.as_str()), lifetime),
            };
            events.push(Event::Outcome(index, outcome));
        }
        let id = flight.id.clone();
        let Ok(mut records) = Records::read(&self.queue, &id, envelope.recipients.len()) else {
            return;
        };
        records.apply(&events);
        if expired {
            log_given_up(&id, &envelope, &events);
        }
        // A first attempt that delivered everything, with no report to
        // send, leaves nothing worth a `state/` file.
        let forgettable = flight.first
            && records.finished()
            && due_reports(&envelope, &records, &self.policy, now).is_empty();
        if !forgettable && let Err(e) = Records::note(&self.queue, &id, &events) {
            warn!("{id}: cannot record an outcome: {e}");
        }
        if let Some(entry) = self.index.get_mut(&id) {
            entry.busy = false;
        }
        if !records.finished() {
            let next = now + self.policy.backoff(records.rounds.len());
            if let Err(e) = Records::note(&self.queue, &id, &[Event::Next(next)]) {
                warn!("{id}: cannot record the next attempt: {e}");
            }
            if let Some(entry) = self.index.get_mut(&id) {
                entry.not_before = Some(next);
            }
        }
        self.settle(&id, &envelope, &records, now);
    }

    /// Queues the reports that are due, and removes the message when it
    /// is finished and nothing is left to report.
    pub fn settle(&mut self, id: &QueueId, envelope: &Envelope, records: &Records, now: u64) {
        let mut all_sent = true;
        for (kind, indices) in due_reports(envelope, records, &self.policy, now) {
            if !self.reporter.report(kind, id, &indices) {
                all_sent = false;
                continue;
            }
            let events: Vec<Event> = match kind {
                ReportKind::Delay => vec![Event::Warned],
                _ => indices.iter().map(|&i| Event::Reported(i)).collect(),
            };
            if let Err(e) = Records::note(&self.queue, id, &events) {
                warn!("{id}: cannot record a report: {e}");
            }
        }
        if !all_sent {
            // postern-bounce failed (a full disk, say): try again later,
            // not at every turn of the loop.
            if let Some(entry) = self.index.get_mut(id) {
                let later = now + self.policy.first_retry;
                entry.not_before = Some(entry.not_before.map_or(later, |t| t.max(later)));
            }
            return;
        }
        if !records.finished() {
            return;
        }
        match self.queue.finish(id) {
            Ok(()) => info!("{id}: removed"),
            Err(e) => warn!("{id}: cannot remove: {e}"),
        }
        self.index.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_queue_format::Recipient;

    fn queue_with(recipients: &[&str]) -> (tempfile::TempDir, QueueDir) {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDir::create(dir.path()).unwrap();
        add(&queue, recipients);
        (dir, queue)
    }

    /// Queues one message per recipient; their ids.
    fn add(queue: &QueueDir, recipients: &[&str]) -> Vec<QueueId> {
        let mut ids = Vec::new();
        for address in recipients {
            let envelope = Envelope {
                arrival: postern_config::unix_now(),
                sender: "s@x.test".into(),
                recipients: vec![Recipient::new(address.to_string())],
                ..Envelope::default()
            };
            let mut writer = queue.begin(&envelope).unwrap();
            writer.write(b"Subject: x\n\nx\n").unwrap();
            ids.push(writer.commit().unwrap());
        }
        ids
    }

    /// Queues one message for a local and a remote recipient; its id.
    fn add_mixed(queue: &QueueDir) -> QueueId {
        let envelope = Envelope {
            arrival: postern_config::unix_now(),
            sender: "s@x.test".into(),
            recipients: vec![
                Recipient::new("a@a.test".to_string()),
                Recipient::new("friend@remote.example".to_string()),
            ],
            ..Envelope::default()
        };
        let mut writer = queue.begin(&envelope).unwrap();
        writer.write(b"Subject: x\n\nx\n").unwrap();
        writer.commit().unwrap()
    }

    /// The injectors' announcement of new messages.
    fn poke(scheduler: &mut Scheduler, ids: Vec<QueueId>) {
        let (events, inbox) = channel();
        events.send(Notice::Poke(ids)).unwrap();
        scheduler.handle_events(&inbox);
        // Tests step past the pace.
        scheduler.last_batch = None;
    }

    fn new_scheduler(queue: QueueDir, batches: usize, per_domain: usize) -> Scheduler {
        let settings = Settings {
            max_deliveries: batches,
            max_deliveries_per_domain: per_domain,
            ..Settings::default()
        };
        let reporter = Reporter {
            program: "/nonexistent/postern-bounce".into(),
            config: "/nonexistent".into(),
        };
        // The tests' domains are the host's; `remote.example` is not.
        std::fs::write(
            queue.root().join("domains"),
            "a.test virtual\nb.test virtual\n",
        )
        .unwrap();
        let router = Router::load(queue.root(), "localhost");
        let mut scheduler = Scheduler::new(queue, &settings, reporter, router);
        scheduler.scan();
        scheduler
    }

    /// The recipients of each batch text.
    fn recipients(sent: &[(String, String)]) -> Vec<Vec<String>> {
        sent.iter()
            .map(|(_, text)| {
                text.lines()
                    .skip(1)
                    .map(|l| l.split('\t').nth(3).unwrap().to_string())
                    .collect()
            })
            .collect()
    }

    fn sizes(sent: &[(String, String)]) -> Vec<usize> {
        recipients(sent).iter().map(Vec::len).collect()
    }

    #[test]
    fn ready_messages_are_spread_over_the_free_slots() {
        let addresses: Vec<String> = (0..40).map(|i| format!("u{i}@a.test")).collect();
        let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let (_dir, queue) = queue_with(&refs);
        let mut scheduler = new_scheduler(queue, 4, 0);
        let sent = scheduler.dispatch();
        assert_eq!(sizes(&sent), [10, 10, 10, 10]);
        assert!(sent[0].1.starts_with(&format!("BATCH {} 10\n", sent[0].0)));
        // Every slot is taken: nothing more until a batch answers.
        scheduler.last_batch = None;
        assert!(scheduler.dispatch().is_empty());
    }

    #[test]
    fn a_few_ready_messages_share_one_batch() {
        let addresses: Vec<String> = (0..10).map(|i| format!("u{i}@a.test")).collect();
        let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let (_dir, queue) = queue_with(&refs);
        let mut scheduler = new_scheduler(queue, 4, 0);
        assert_eq!(sizes(&scheduler.dispatch()), [MIN_SPREAD, 10 - MIN_SPREAD]);
    }

    #[test]
    fn while_deliveries_run_new_messages_gather_for_the_pace() {
        let (_dir, queue) = queue_with(&["first@a.test"]);
        let mut scheduler = new_scheduler(queue, 4, 0);
        assert_eq!(sizes(&scheduler.dispatch()), [1]);
        let queue = scheduler.queue.clone();
        let (events, inbox) = channel();
        events
            .send(Notice::Poke(add(&queue, &["a@a.test", "b@a.test"])))
            .unwrap();
        scheduler.handle_events(&inbox);
        // A batch runs and the pace is not over: they wait, and the
        // manager knows when to look again.
        assert!(scheduler.dispatch().is_empty());
        assert!(scheduler.wake.is_some());
        scheduler.clock.advance(BATCH_PACE);
        assert_eq!(sizes(&scheduler.dispatch()), [2]);
        // A full batch does not wait.
        let many: Vec<String> = (0..FULL_BATCH).map(|i| format!("u{i}@a.test")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        events.send(Notice::Poke(add(&queue, &refs))).unwrap();
        scheduler.handle_events(&inbox);
        assert_eq!(
            sizes(&scheduler.dispatch()).iter().sum::<usize>(),
            FULL_BATCH
        );
    }

    #[test]
    fn one_domain_waits_at_its_limit_and_others_go_on() {
        let (_dir, queue) = queue_with(&["a1@a.test"]);
        let mut scheduler = new_scheduler(queue, 4, 1);
        let sent = scheduler.dispatch();
        assert_eq!(recipients(&sent), [vec!["a1@a.test"]]);
        let queue = scheduler.queue.clone();
        poke(&mut scheduler, add(&queue, &["a2@a.test", "b1@b.test"]));
        assert_eq!(recipients(&scheduler.dispatch()), [vec!["b1@b.test"]]);
        scheduler.results(&sent[0].0, &["a1@a.test\t0\t2.0.0 delivered".to_string()]);
        scheduler.last_batch = None;
        assert_eq!(recipients(&scheduler.dispatch()), [vec!["a2@a.test"]]);
        // The delivered message is gone from the queue.
        assert_eq!(scheduler.queue.queued().unwrap().len(), 2);
    }

    #[test]
    fn a_first_attempt_that_delivers_leaves_no_records() {
        let (_dir, queue) = queue_with(&[]);
        let mut scheduler = new_scheduler(queue.clone(), 4, 0);
        let ids = add(&queue, &["a@a.test", "b@a.test"]);
        poke(&mut scheduler, ids.clone());
        let sent = scheduler.dispatch();
        // Announced after the first scan: never tried, so no look first,
        // and nothing recorded before the outcome.
        for line in sent[0].1.lines().skip(1) {
            assert!(line.ends_with("\t0"), "{line}");
        }
        assert!(!queue.state_file(&ids[0]).exists());
        scheduler.results(
            &sent[0].0,
            &[
                "a@a.test\t0\t2.0.0 delivered".to_string(),
                "b@a.test\t75\t4.2.2 mailbox full".to_string(),
            ],
        );
        assert!(!queue.queue_file(&ids[0]).exists());
        assert!(!queue.state_file(&ids[0]).exists());
        // The deferred one has its attempt and outcome on record.
        let records = Records::read(&queue, &ids[1], 1).unwrap();
        assert_eq!(records.rounds.len(), 1);
        assert!(matches!(
            records.outcomes[0],
            Some(postern_queue_format::Outcome::Deferred { .. })
        ));
    }

    #[test]
    fn what_the_first_scan_finds_may_have_been_tried_before() {
        let (_dir, queue) = queue_with(&["a@a.test"]);
        // No records, but an earlier manager may have started it.
        let mut scheduler = new_scheduler(queue, 4, 0);
        let sent = scheduler.dispatch();
        assert!(sent[0].1.lines().nth(1).unwrap().ends_with("\t1"));
    }

    #[test]
    fn a_deferred_message_waits_for_the_retry_interval() {
        let (_dir, queue) = queue_with(&["a1@a.test"]);
        let mut scheduler = new_scheduler(queue, 4, 0);
        let sent = scheduler.dispatch();
        let before = scheduler.clock.unix();
        scheduler.results(
            &sent[0].0,
            &["a1@a.test\t75\t4.2.2 mailbox full".to_string()],
        );
        assert!(scheduler.dispatch().is_empty());
        // The first wait is retry_interval (300 s by default), recorded.
        let id = scheduler.queue.queued().unwrap()[0].clone();
        let next = Records::read(&scheduler.queue, &id, 1)
            .unwrap()
            .next
            .unwrap();
        assert!(
            (before + 300..=scheduler.clock.unix() + 300).contains(&next),
            "{next}"
        );
        // A manager started afresh keeps to it.
        let mut fresh = new_scheduler(scheduler.queue.clone(), 4, 0);
        assert!(fresh.dispatch().is_empty());
        let entry = scheduler.index.get_mut(&id).unwrap();
        entry.not_before = None;
        entry.flushed = true;
        let again = scheduler.dispatch();
        // A retry: the delivery looks for an earlier landing first.
        assert!(again[0].1.lines().nth(1).unwrap().ends_with("\t1"));
    }

    #[test]
    fn a_deferred_message_is_tried_again_when_its_wait_is_over() {
        let (_dir, queue) = queue_with(&["a1@a.test"]);
        let mut scheduler = new_scheduler(queue, 4, 0);
        let sent = scheduler.dispatch();
        scheduler.results(
            &sent[0].0,
            &["a1@a.test\t75\t4.2.2 mailbox full".to_string()],
        );
        // 299 seconds on: not yet. 300: again, as a retry. Then the wait
        // doubles.
        scheduler.clock.advance(Duration::from_secs(299));
        assert!(scheduler.dispatch().is_empty());
        scheduler.clock.advance(Duration::from_secs(1));
        let again = scheduler.dispatch();
        assert!(again[0].1.lines().nth(1).unwrap().ends_with("\t1"));
        scheduler.results(
            &again[0].0,
            &["a1@a.test\t75\t4.2.2 mailbox full".to_string()],
        );
        scheduler.clock.advance(Duration::from_secs(599));
        scheduler.last_batch = None;
        assert!(scheduler.dispatch().is_empty());
        scheduler.clock.advance(Duration::from_secs(1));
        assert_eq!(recipients(&scheduler.dispatch()), [vec!["a1@a.test"]]);
    }

    #[test]
    fn recipients_of_other_hosts_are_routed_off_and_never_reach_the_batch() {
        let (_dir, queue) = queue_with(&[]);
        let mut scheduler = new_scheduler(queue.clone(), 4, 0);
        let mixed = add_mixed(&queue);
        let only_remote = add(&queue, &["other@remote.example"]).remove(0);
        poke(&mut scheduler, vec![mixed.clone(), only_remote.clone()]);
        let sent = scheduler.dispatch();
        // One batch, one request: the local recipient's.
        assert_eq!(recipients(&sent), [vec!["a@a.test"]]);
        assert!(sent[0].1.starts_with(&format!("BATCH {} 1\n", sent[0].0)));
        // The remote-only message is deferred already, with no batch.
        let records = Records::read(&queue, &only_remote, 1).unwrap();
        let Some(Some(postern_queue_format::Outcome::Deferred { status })) =
            records.outcomes.first()
        else {
            panic!("not deferred: {records:?}");
        };
        assert!(
            status.to_string().starts_with(
                "4.3.0 <other@remote.example> is outside the local and virtual domains"
            ),
            "{status}"
        );
        assert!(!scheduler.index[&only_remote].busy);
        assert_eq!(records.rounds.len(), 1);
        // The batch answers for the local one; the remote one is deferred.
        scheduler.results(&sent[0].0, &["a@a.test\t0\t2.0.0 delivered".to_string()]);
        let records = Records::read(&queue, &mixed, 2).unwrap();
        assert_eq!(
            records.outcomes[0],
            Some(postern_queue_format::Outcome::Done)
        );
        assert!(matches!(
            &records.outcomes[1],
            Some(postern_queue_format::Outcome::Deferred { status }) if status.is_temporary()
        ));
        assert_eq!(records.rounds.len(), 1);
        assert_eq!(records.pending(), [1]);
    }

    #[test]
    fn a_short_answer_defers_the_local_recipient_and_keeps_the_remote_ones_status() {
        let (_dir, queue) = queue_with(&[]);
        let mut scheduler = new_scheduler(queue.clone(), 4, 0);
        let id = add_mixed(&queue);
        poke(&mut scheduler, vec![id.clone()]);
        let sent = scheduler.dispatch();
        // The delivery died before it answered.
        scheduler.results(&sent[0].0, &[]);
        let records = Records::read(&queue, &id, 2).unwrap();
        let status = |i: usize| match &records.outcomes[i] {
            Some(postern_queue_format::Outcome::Deferred { status }) => status.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(status(0), "4.3.0 no answer from the delivery");
        assert!(
            status(1).starts_with("4.3.0 <friend@remote.example> is outside"),
            "{}",
            status(1)
        );
    }
}
