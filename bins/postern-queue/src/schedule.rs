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
//!
//! A message's attempt has a part per route: its local recipients go in a
//! local batch, and those of each other destination wait in that
//! destination's line until it has room (destinations.rs), then go with
//! other messages for it in a remote batch (one `postern-remote`, few
//! connections). The attempt ends, and its next one is scheduled, when
//! every part has answered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use postern_config::Settings;
use postern_queue_format::status::Class;
use postern_queue_format::{
    Envelope, Event, Outcome, QueueDir, QueueId, Records, ReportKind, Ret, Status,
    read_envelope_from,
};
use tracing::{error, info, warn};

use postern_routing::{Route, Router};

use crate::clock::Clock;
use crate::destinations::Destinations;
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
/// The most messages one remote batch carries: a message that arrives
/// for a busy destination waits for at most this many before it.
const MAX_REMOTE_BATCH: usize = 50;

/// A message the manager knows of.
#[derive(Default)]
pub struct Entry {
    /// Read once: an envelope never changes.
    envelope: Option<(Envelope, u64)>,
    /// Not to be tried before this (the backoff), in seconds.
    pub not_before: Option<u64>,
    /// Flushed by the admin: try now, whatever the records say.
    flushed: bool,
    /// Parts of the current attempt not yet answered.
    pub parts: usize,
    /// The current attempt, while it runs.
    attempt: Option<Attempt>,
    /// Known never to have been attempted, by this manager or one before
    /// it: it reached `queue/` after this manager's first scan. Its first
    /// attempt needs no `--retry` look, and no record before it starts.
    untried: bool,
    /// Why its queue file could not be opened, last time it was tried: it
    /// stays in the index (and `mailq`) and is tried again, never dropped.
    unreadable: Option<String>,
}

/// An attempt at a message's pending recipients.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    started: u64,
    /// Its round is not on record yet: it goes with the first outcome
    /// (and not at all when a sole part delivers everything), so an
    /// attempt costs no write before it starts.
    unrecorded: bool,
    /// Its parts, and whether any went to another host.
    parts: usize,
    remote: bool,
}

impl Entry {
    pub fn busy(&self) -> bool {
        self.parts > 0
    }

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

/// One part of a message's attempt: the recipients (by index) one batch
/// answers for.
#[derive(Clone, Debug)]
pub struct Flight {
    pub id: QueueId,
    pub indices: Vec<usize>,
}

/// A batch on its way: its messages, the domains it holds a slot of (a
/// local batch) or its destination (a remote one), and (until sent) its
/// request lines.
#[derive(Default)]
pub struct Batch {
    pub flights: Vec<Flight>,
    pub domains: Vec<String>,
    pub destination: Option<String>,
    lines: String,
    requests: usize,
}

/// What an attempt at a message will be: its local part's request lines
/// and flight, and a flight for each other destination.
struct Plan {
    lines: String,
    local: Option<Flight>,
    domains: Vec<String>,
    remote: Vec<(String, Flight)>,
    /// Recipients whose route holds them now, with why: a part settled
    /// at once.
    held: Vec<(usize, Status)>,
    first: bool,
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
    /// Local batches in flight.
    local_batches: usize,
    /// Each destination's parts waiting for room, oldest first.
    waiting: BTreeMap<String, VecDeque<Flight>>,
    pub destinations: Destinations,
    /// The cap on the wait between attempts at mail for other hosts.
    remote_max_retry: u64,
    /// Remote batches sent, for their tags.
    remote_sent: u64,
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
    let router = Router::load(config, &settings.hostname)
        .with_relayhost(settings.remote.relayhost.clone())
        .with_srs_domain(&settings.srs.domain);
    let reporter = Reporter::beside_this_program(config);
    let mut scheduler = Scheduler::new(queue, settings, reporter, router);
    // The first scan and dispatch at once, not after a tick: mail queued
    // while the manager was down goes as soon as it starts.
    scheduler.wake = Some(scheduler.clock.instant());
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
            local_batches: 0,
            waiting: BTreeMap::new(),
            destinations: Destinations::new(&settings.remote),
            remote_max_retry: settings.remote.max_retry_interval.max(1),
            remote_sent: 0,
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
                Notice::FlushDomain(domain) => self.flush_domain(&domain),
                Notice::SpawnerGone => return false,
                Notice::Results(tag, lines) => self.results(&tag, &lines),
            }
            next = inbox.try_recv().ok();
        }
        true
    }

    /// The admin's `--flush DOMAIN`: every message with a recipient there
    /// is tried now, and the destinations it routes to are given another
    /// chance if they were marked dead.
    fn flush_domain(&mut self, domain: &str) {
        self.last_scan = None;
        self.scan();
        let ids: Vec<QueueId> = self.index.keys().cloned().collect();
        for id in ids {
            let Some(envelope) = self.envelope_of(&id) else {
                continue;
            };
            let mine = envelope.recipients.iter().any(|r| {
                r.address
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
            });
            if !mine {
                continue;
            }
            for recipient in &envelope.recipients {
                if let Route::Remote { destination, .. } = self.router.route(&recipient.address) {
                    self.destinations.revive(&destination);
                }
            }
            if let Some(entry) = self.index.get_mut(&id) {
                entry.flush();
            }
        }
    }

    /// Brings the index in line with `queue/`.
    fn scan(&mut self) {
        self.last_scan = Some(self.clock.instant());
        let Ok(ids) = self.queue.queued() else { return };
        let present: std::collections::HashSet<&QueueId> = ids.iter().collect();
        self.index
            .retain(|id, entry| entry.busy() || present.contains(id));
        for id in ids {
            self.index
                .entry(id)
                .or_insert_with(|| Entry::new(self.scanned));
        }
        self.scanned = true;
    }

    /// The batches to send now, as (tag, text).
    fn dispatch(&mut self) -> Vec<(String, String)> {
        let mut sent = self.dispatch_local();
        sent.extend(self.dispatch_remote());
        sent
    }

    /// Starts the attempts that are due: local parts in local batches, as
    /// many as the free slots take; remote parts to their destinations'
    /// lines.
    fn dispatch_local(&mut self) -> Vec<(String, String)> {
        let free = self.max_batches.saturating_sub(self.local_batches);
        let now = self.clock.unix();
        let ready: Vec<QueueId> = self
            .index
            .iter()
            .filter(|(_, e)| !e.busy() && e.not_before.is_none_or(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        if let Some(last) = self.last_batch
            && self.local_batches > 0
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
            .div_ceil(free.max(1))
            .clamp(MIN_SPREAD, MAX_BATCH_MESSAGES);
        let mut sent = Vec::new();
        let mut current = Batch::default();
        for id in ready {
            // With every local slot taken, a message known to have a local
            // recipient waits without its file being opened again.
            if sent.len() >= free && self.has_local_recipient(&id) {
                continue;
            }
            let Some(plan) = self.prepare(&id) else {
                continue;
            };
            if plan.local.is_some()
                && (sent.len() >= free || !self.domains_allow(&plan.domains, &current.domains))
            {
                // No room for its local part now: the whole attempt waits.
                continue;
            }
            let Plan {
                lines,
                local,
                domains,
                remote,
                held,
                first,
            } = plan;
            let parts = usize::from(local.is_some()) + remote.len() + usize::from(!held.is_empty());
            self.begin(&id, first, parts, !remote.is_empty());
            for (destination, flight) in remote {
                self.waiting
                    .entry(destination)
                    .or_default()
                    .push_back(flight);
            }
            if !held.is_empty() {
                let flight = Flight {
                    id: id.clone(),
                    indices: held.iter().map(|(i, _)| *i).collect(),
                };
                let now = self.clock.unix();
                let over = self.lifetime_over(&id, now);
                let outcomes = held
                    .into_iter()
                    .map(|(i, status)| (i, deferral(status, over)))
                    .collect();
                self.settle_part(&flight, outcomes, now);
            }
            let Some(flight) = local else {
                continue;
            };
            for domain in domains {
                if !current.domains.contains(&domain) {
                    current.domains.push(domain);
                }
            }
            current.requests += flight.indices.len();
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

    /// Remote batches for the destinations that have room; the parts for
    /// a dead destination deferred at once with its reason.
    fn dispatch_remote(&mut self) -> Vec<(String, String)> {
        let now = self.clock.unix();
        let mut sent = Vec::new();
        let names: Vec<String> = self.waiting.keys().cloned().collect();
        for name in names {
            if let Some(why) = self.destinations.dead(&name, now) {
                let parts = self.waiting.remove(&name).unwrap_or_default();
                for flight in parts {
                    let over = self.lifetime_over(&flight.id, now);
                    let outcomes = flight
                        .indices
                        .iter()
                        .map(|&i| (i, deferral(why.clone(), over)))
                        .collect();
                    self.settle_part(&flight, outcomes, now);
                }
                continue;
            }
            let room = self.destinations.room(&name);
            let Some(line) = self.waiting.get_mut(&name) else {
                continue;
            };
            if room == 0 || line.is_empty() {
                continue;
            }
            // Spread evenly over the connections it may open now.
            let count = room.min(line.len());
            let (share, extra) = (line.len() / count, line.len() % count);
            let mut batches = Vec::new();
            for n in 0..count {
                let take = (share + usize::from(n < extra)).min(MAX_REMOTE_BATCH);
                batches.push(line.drain(..take).collect::<Vec<Flight>>());
            }
            if line.is_empty() {
                self.waiting.remove(&name);
            }
            for flights in batches {
                sent.push(self.send_remote(&name, flights));
            }
        }
        sent
    }

    /// Registers a remote batch as in flight; returns its tag and text.
    fn send_remote(&mut self, destination: &str, flights: Vec<Flight>) -> (String, String) {
        self.remote_sent += 1;
        let tag = format!("r{}", self.remote_sent);
        let mut lines = String::new();
        let mut count = 0;
        for flight in &flights {
            let Some((envelope, offset)) = self
                .index
                .get(&flight.id)
                .and_then(|entry| entry.envelope.clone())
            else {
                continue;
            };
            let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
            lines.push_str(&format!(
                "M\t{}\t{offset}\t{}\t{}\t{}\t{}\t{}\n",
                self.queue.queue_file(&flight.id).display(),
                flight.id,
                envelope.arrival,
                envelope.sender,
                optional(envelope.ret.map(|r| match r {
                    Ret::Full => "FULL".to_string(),
                    Ret::Headers => "HDRS".to_string(),
                })),
                optional(envelope.envid.clone()),
            ));
            count += 1;
            for &index in &flight.indices {
                let recipient = &envelope.recipients[index];
                lines.push_str(&format!(
                    "R\t{index}\t{}\t{}\t{}\n",
                    recipient.address,
                    optional(recipient.notify.map(|n| n.to_string())),
                    optional(recipient.orcpt.clone()),
                ));
                count += 1;
            }
        }
        self.destinations.started(destination);
        let text = format!("RBATCH {tag} {destination} {count}\n{lines}");
        self.batches.insert(
            tag.clone(),
            Batch {
                flights,
                destination: Some(destination.to_string()),
                ..Batch::default()
            },
        );
        (tag, text)
    }

    /// Whether the message, its envelope already read, has a recipient
    /// that postern-local delivers, done or not: no file is opened to
    /// know. (One whose local recipients are all done waits with the
    /// others for a free slot, a batch's time at most.)
    fn has_local_recipient(&self, id: &QueueId) -> bool {
        let Some((envelope, _)) = self.index.get(id).and_then(|e| e.envelope.as_ref()) else {
            return false;
        };
        envelope
            .recipients
            .iter()
            .any(|r| self.router.route(&r.address) == Route::Local)
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
        self.local_batches += 1;
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

    /// What an attempt at a message would be now; `None` when there is
    /// nothing to do (locked by another run, finished, unreadable, held,
    /// not yet due).
    fn prepare(&mut self, id: &QueueId) -> Option<Plan> {
        // The delivery holds the queue file's lock (postern-local --batch
        // and postern-lspawn take it), so a batch that outlived the
        // manager that sent it, after a crash, shows here: leave the
        // message until it is done.
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
        // --retry).
        let retry = !first;
        let file = self.queue.queue_file(id);
        let mut plan = Plan {
            lines: String::new(),
            local: None,
            domains: Vec::new(),
            remote: Vec::new(),
            held: Vec::new(),
            first,
        };
        let mut local = Vec::new();
        for &index in &indices {
            let address = &envelope.recipients[index].address;
            match self.router.route(address) {
                Route::Local => {}
                Route::Held(status) => {
                    plan.held.push((index, status));
                    continue;
                }
                Route::Remote { destination, .. } => {
                    match plan.remote.iter_mut().find(|(d, _)| *d == destination) {
                        Some((_, flight)) => flight.indices.push(index),
                        None => plan.remote.push((
                            destination,
                            Flight {
                                id: id.clone(),
                                indices: vec![index],
                            },
                        )),
                    }
                    continue;
                }
            }
            local.push(index);
            plan.lines.push_str(&format!(
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
            if !plan.domains.contains(&domain) {
                plan.domains.push(domain);
            }
        }
        if !local.is_empty() {
            plan.local = Some(Flight {
                id: id.clone(),
                indices: local,
            });
        }
        Some(plan)
    }

    /// An attempt of `parts` parts starts: recorded (a first attempt only
    /// with its outcome), and the message busy until every part answers.
    fn begin(&mut self, id: &QueueId, first: bool, parts: usize, remote: bool) {
        let now = self.clock.unix();
        if (first || !self.queue.state_file(id).exists())
            && let Some((envelope, _)) = self.index.get(id).and_then(|e| e.envelope.as_ref())
        {
            info!(
                "{id}: from=<{}>, nrcpt={}",
                envelope.sender,
                envelope.recipients.len()
            );
        }
        if let Some(entry) = self.index.get_mut(id) {
            entry.untried = false;
            entry.flushed = false;
            entry.parts = parts;
            entry.attempt = Some(Attempt {
                started: now,
                unrecorded: true,
                parts,
                remote,
            });
        }
    }

    /// A batch's answer: outcomes recorded, then each message scheduled
    /// again or settled.
    pub fn results(&mut self, tag: &str, lines: &[String]) {
        let Some(batch) = self.batches.remove(tag) else {
            return;
        };
        let now = self.clock.unix();
        if let Some(destination) = &batch.destination {
            self.remote_results(destination, &batch.flights, lines, now);
            return;
        }
        self.local_batches = self.local_batches.saturating_sub(1);
        for domain in &batch.domains {
            if let Some(count) = self.domains.get_mut(domain) {
                *count = count.saturating_sub(1);
            }
        }
        let mut lines = lines.iter();
        for flight in &batch.flights {
            let over = self.lifetime_over(&flight.id, now);
            let outcomes = flight
                .indices
                .iter()
                .map(|&index| {
                    (
                        index,
                        outcome_of_answer(lines.next().map(String::as_str), over),
                    )
                })
                .collect();
            self.settle_part(flight, outcomes, now);
        }
    }

    /// A remote batch's answer, `ID<TAB>INDEX<TAB>EXIT<TAB>STATUS` a
    /// recipient; what it does not answer for is deferred. The
    /// destination learns whether a server answered.
    fn remote_results(
        &mut self,
        destination: &str,
        flights: &[Flight],
        lines: &[String],
        now: u64,
    ) {
        let mut answers: HashMap<(&str, usize), (&str, &str)> = HashMap::new();
        for line in lines {
            let mut fields = line.splitn(4, '\t');
            if let (Some(id), Some(Ok(index)), Some(exit), Some(status)) = (
                fields.next(),
                fields.next().map(str::parse::<usize>),
                fields.next(),
                fields.next(),
            ) {
                answers.insert((id, index), (exit, status));
            }
        }
        let mut answered = false;
        let mut why = None;
        let mut settled = Vec::new();
        for flight in flights {
            let over = self.lifetime_over(&flight.id, now);
            let mut outcomes = Vec::new();
            let mut passed_on = Vec::new();
            for &index in &flight.indices {
                let status = match answers.get(&(flight.id.as_str(), index)) {
                    Some(&(exit, status)) => {
                        let class = match exit {
                            "0" | "3" => Class::Success,
                            "75" => Class::Temporary,
                            _ => Class::Permanent,
                        };
                        // The next hop took the DSN requests: its report,
                        // not ours (RFC 3461 §4.1).
                        if exit == "3" {
                            passed_on.push(index);
                        }
                        Status::from_record(status, class)
                    }
                    None => Status::temporary("no answer from the remote delivery"),
                };
                answered |= status.remote.is_some();
                let outcome = match status.class() {
                    Class::Success => Outcome::Done,
                    Class::Temporary => {
                        if status.remote.is_none() {
                            why = Some(status.clone());
                        }
                        deferral(status, over)
                    }
                    Class::Permanent => Outcome::Failed { status },
                };
                outcomes.push((index, outcome));
            }
            if !passed_on.is_empty() {
                let events: Vec<Event> = passed_on.into_iter().map(Event::Reported).collect();
                if let Err(e) = Records::note(&self.queue, &flight.id, &events) {
                    warn!("{}: cannot record a report passed on: {e}", flight.id);
                }
            }
            settled.push((flight, outcomes));
        }
        self.destinations.ended(destination, answered, why, now);
        for (flight, outcomes) in settled {
            self.settle_part(flight, outcomes, now);
        }
    }

    /// The queue lifetime a message has used up at `now`, if it has: its
    /// deferrals become failures.
    fn lifetime_over(&mut self, id: &QueueId, now: u64) -> Option<u64> {
        let arrival = self.envelope_of(id)?.arrival;
        (now >= arrival.saturating_add(self.policy.lifetime)).then_some(self.policy.lifetime)
    }

    /// One part of a message's attempt answered: its outcomes recorded;
    /// when it was the last part, the message scheduled again or settled.
    fn settle_part(&mut self, flight: &Flight, outcomes: Vec<(usize, Outcome)>, now: u64) {
        let Some(envelope) = self.envelope_of(&flight.id) else {
            // Gone while it was delivered: nothing left to do.
            self.index.remove(&flight.id);
            return;
        };
        let id = flight.id.clone();
        let Some(entry) = self.index.get_mut(&id) else {
            return;
        };
        entry.parts = entry.parts.saturating_sub(1);
        let last = entry.parts == 0;
        let Some(attempt) = entry.attempt.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        if attempt.unrecorded {
            // The attempt's round goes with its first outcome.
            events.push(Event::Round(attempt.started));
            attempt.unrecorded = false;
        }
        let attempt = *attempt;
        let sole = attempt.parts == 1;
        events.extend(
            outcomes
                .into_iter()
                .map(|(index, outcome)| Event::Outcome(index, outcome)),
        );
        let Ok(mut records) = Records::read(&self.queue, &id, envelope.recipients.len()) else {
            return;
        };
        records.apply(&events);
        let expired = now >= envelope.arrival.saturating_add(self.policy.lifetime);
        if expired {
            log_given_up(&id, &envelope, &events);
        }
        // An attempt of one part that delivered everything, with no report
        // to send, leaves nothing worth writing: the message goes.
        let forgettable = sole
            && events.first().is_some_and(|e| matches!(e, Event::Round(_)))
            && records.finished()
            && due_reports(&envelope, &records, &self.policy, now).is_empty();
        if !forgettable && let Err(e) = Records::note(&self.queue, &id, &events) {
            warn!("{id}: cannot record an outcome: {e}");
        }
        if !last {
            return;
        }
        if let Some(entry) = self.index.get_mut(&id) {
            entry.attempt = None;
        }
        if !records.finished() {
            let mut wait = self.policy.backoff(records.rounds.len());
            if attempt.remote {
                wait = wait.min(self.remote_max_retry.max(self.policy.first_retry));
            }
            let next = now + wait;
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

    /// The local batches' recipients, and each remote batch's
    /// destination with its `R` lines' addresses.
    fn remote_batches(sent: &[(String, String)]) -> Vec<(String, Vec<String>)> {
        sent.iter()
            .filter(|(_, text)| text.starts_with("RBATCH "))
            .map(|(_, text)| {
                let destination = text.split(' ').nth(2).unwrap().to_string();
                let addresses = text
                    .lines()
                    .filter(|l| l.starts_with("R\t"))
                    .map(|l| l.split('\t').nth(2).unwrap().to_string())
                    .collect();
                (destination, addresses)
            })
            .collect()
    }

    fn local_only(sent: &[(String, String)]) -> Vec<(String, String)> {
        sent.iter()
            .filter(|(_, text)| text.starts_with("BATCH "))
            .cloned()
            .collect()
    }

    #[test]
    fn recipients_of_other_hosts_go_in_a_remote_batch_for_their_destination() {
        let (_dir, queue) = queue_with(&[]);
        let mut scheduler = new_scheduler(queue.clone(), 4, 0);
        let mixed = add_mixed(&queue);
        let only_remote = add(&queue, &["other@remote.example"]).remove(0);
        poke(&mut scheduler, vec![mixed.clone(), only_remote.clone()]);
        let sent = scheduler.dispatch();
        // One local batch with the local recipient; remote.example's
        // recipients over two connections, since it has room for them.
        assert_eq!(recipients(&local_only(&sent)), [vec!["a@a.test"]]);
        assert_eq!(
            remote_batches(&sent),
            [
                (
                    "remote.example".to_string(),
                    vec!["friend@remote.example".to_string()]
                ),
                (
                    "remote.example".to_string(),
                    vec!["other@remote.example".to_string()]
                )
            ]
        );
        let remote: Vec<&(String, String)> = sent
            .iter()
            .filter(|(_, t)| t.starts_with("RBATCH"))
            .collect();
        let (tag, text) = remote[0];
        assert!(
            text.starts_with(&format!("RBATCH {tag} remote.example 2\n")),
            "{text}"
        );
        let m_line = text.lines().nth(1).unwrap();
        assert!(m_line.starts_with(&format!("M\t{}\t", queue.queue_file(&mixed).display())));
        // The local part answers first: the attempt is not over.
        let local_tag = &local_only(&sent)[0].0;
        scheduler.results(local_tag, &["a@a.test\t0\t2.0.0 delivered".to_string()]);
        assert!(scheduler.index[&mixed].busy());
        // The remote batches: one delivered, one refused by the server.
        scheduler.results(
            tag,
            &[format!(
                "{mixed}\t1\t0\t2.0.0 Ok: queued as X\tmx.remote.example 250"
            )],
        );
        scheduler.results(
            &remote[1].0,
            &[format!(
                "{only_remote}\t0\t100\t5.1.1 no such user\tmx.remote.example 550"
            )],
        );
        // The mixed message is done and gone; the other failed for good,
        // its server's reply on record.
        assert!(!queue.queue_file(&mixed).exists());
        let records = Records::read(&queue, &only_remote, 1).unwrap();
        let Some(Some(Outcome::Failed { status })) = records.outcomes.first() else {
            panic!("not failed: {records:?}");
        };
        assert_eq!(status.remote.as_ref().unwrap().mta, "mx.remote.example");
        assert_eq!(status.smtp_reply().unwrap(), "550 5.1.1 no such user");
        assert!(!scheduler.index.get(&only_remote).is_some_and(Entry::busy));
    }

    #[test]
    fn a_remote_deferral_is_retried_and_a_dead_destination_gets_no_connection() {
        let (_dir, queue) = queue_with(&[]);
        let mut scheduler = new_scheduler(queue.clone(), 4, 0);
        let addresses: Vec<String> = (0..12).map(|i| format!("u{i}@remote.example")).collect();
        let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let ids = add(&queue, &refs);
        poke(&mut scheduler, ids.clone());
        let sent = scheduler.dispatch();
        // Five connections at first (the initial concurrency), the twelve
        // messages spread over them.
        let batches = remote_batches(&sent);
        assert_eq!(batches.len(), 5);
        assert_eq!(batches.iter().map(|(_, a)| a.len()).sum::<usize>(), 12);
        // Every one of them fails to connect: the destination is dead.
        let refused = "4.4.1 connect to mx.remote.example[192.0.2.1]:25: Connection refused";
        for (tag, text) in &sent {
            let answers: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("M\t"))
                .map(|l| format!("{}\t0\t75\t{refused}", l.split('\t').nth(3).unwrap()))
                .collect();
            scheduler.results(tag, &answers);
        }
        for id in &ids {
            let records = Records::read(&queue, id, 1).unwrap();
            assert!(
                matches!(&records.outcomes[0], Some(Outcome::Deferred { status }) if status.text.contains("refused")),
                "{records:?}"
            );
            // The first wait, as for any deferral.
            assert_eq!(records.next, Some(scheduler.clock.unix() + 300));
        }
        // A new message for it is deferred at once, with the reason.
        let late = add(&queue, &["late@remote.example"]);
        poke(&mut scheduler, late.clone());
        assert!(scheduler.dispatch().is_empty());
        let records = Records::read(&queue, &late[0], 1).unwrap();
        let Some(Some(Outcome::Deferred { status })) = records.outcomes.first() else {
            panic!("{records:?}");
        };
        assert!(
            status.text.contains("remote.example is not answering"),
            "{}",
            status.text
        );
        assert!(status.text.contains("refused"), "{}", status.text);
    }

    #[test]
    fn remote_retries_wait_at_most_the_remote_cap() {
        let (_dir, queue) = queue_with(&[]);
        let mut scheduler = new_scheduler(queue.clone(), 4, 0);
        let id = add(&queue, &["x@remote.example"]).remove(0);
        poke(&mut scheduler, vec![id.clone()]);
        for round in 0..8 {
            let sent = scheduler.dispatch();
            assert_eq!(sent.len(), 1, "round {round}");
            scheduler.results(
                &sent[0].0,
                &[format!(
                    "{id}\t0\t75\t4.2.1 try later\tmx.remote.example 451"
                )],
            );
            let next = Records::read(&queue, &id, 1).unwrap().next.unwrap();
            let wait = next - scheduler.clock.unix();
            assert!(wait <= 3600, "round {round}: {wait}");
            scheduler.clock.advance(Duration::from_secs(wait));
            scheduler.last_batch = None;
        }
    }
}
