//! What the queue knows of each other host it sends to, as Postfix's
//! qmgr keeps it: how many connections it may have at once (a window that
//! starts at `initial_destination_concurrency` and grows by one with each
//! batch a server answered, up to `destination_concurrency_limit`), and
//! whether it is dead — every connection of a whole window's worth of
//! batches in a row failed, so for `dead_destination_time` its mail is
//! deferred without a try instead of piling more connections on a host
//! that is down.

use std::collections::HashMap;

use postern_config::RemoteSettings;
use postern_queue_format::Status;

#[derive(Debug)]
pub struct Destination {
    /// Batches in flight.
    pub active: usize,
    /// Batches allowed in flight.
    pub window: usize,
    /// Batches in a row that no server answered.
    failures: usize,
    /// Dead until then (unix seconds), and why.
    dead: Option<(u64, Status)>,
}

pub struct Destinations {
    known: HashMap<String, Destination>,
    initial: usize,
    limit: usize,
    dead_time: u64,
    /// Batches in flight over every destination, and their limit.
    pub active: usize,
    max_active: usize,
}

impl Destinations {
    pub fn new(settings: &RemoteSettings) -> Destinations {
        let limit = settings.destination_concurrency_limit.max(1);
        Destinations {
            known: HashMap::new(),
            initial: settings.initial_destination_concurrency.clamp(1, limit),
            limit,
            dead_time: settings.dead_destination_time,
            active: 0,
            max_active: settings.max_connections.max(1),
        }
    }

    fn entry(&mut self, name: &str) -> &mut Destination {
        let initial = self.initial;
        self.known
            .entry(name.to_string())
            .or_insert_with(|| Destination {
                active: 0,
                window: initial,
                failures: 0,
                dead: None,
            })
    }

    /// Why `name` gets no connection now, when it is dead.
    pub fn dead(&mut self, name: &str, now: u64) -> Option<Status> {
        let destination = self.entry(name);
        match &destination.dead {
            Some((until, why)) if *until > now => Some(why.clone()),
            Some(_) => {
                // Alive again, on probation: one connection at first.
                destination.dead = None;
                destination.window = 1;
                None
            }
            None => None,
        }
    }

    /// The admin asked for `name` now: not dead, whatever it did.
    pub fn revive(&mut self, name: &str) {
        let destination = self.entry(name);
        destination.dead = None;
        destination.failures = 0;
    }

    /// How many more batches `name` may have in flight now.
    pub fn room(&mut self, name: &str) -> usize {
        let free = self.max_active.saturating_sub(self.active);
        let destination = self.entry(name);
        destination
            .window
            .saturating_sub(destination.active)
            .min(free)
    }

    pub fn started(&mut self, name: &str) {
        self.active += 1;
        self.entry(name).active += 1;
    }

    /// A batch for `name` ended: `answered` when a server answered for
    /// any of it, else `why` it could not (the last connection's reason).
    pub fn ended(&mut self, name: &str, answered: bool, why: Option<Status>, now: u64) {
        self.active = self.active.saturating_sub(1);
        let (limit, dead_time) = (self.limit, self.dead_time);
        let destination = self.entry(name);
        destination.active = destination.active.saturating_sub(1);
        if answered {
            destination.failures = 0;
            destination.window = (destination.window + 1).min(limit);
            return;
        }
        destination.failures += 1;
        if destination.failures >= destination.window {
            let why = why.unwrap_or_else(|| Status::new("4.4.1", "no server answered"));
            let text = format!(
                "{name} is not answering, not tried for a while: {}",
                why.text
            );
            destination.dead = Some((now + dead_time, Status { text, ..why }));
            destination.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RemoteSettings {
        RemoteSettings {
            initial_destination_concurrency: 2,
            destination_concurrency_limit: 3,
            max_connections: 4,
            dead_destination_time: 300,
            ..RemoteSettings::default()
        }
    }

    #[test]
    fn the_window_grows_while_the_destination_answers() {
        let mut d = Destinations::new(&settings());
        assert_eq!(d.room("a.test"), 2);
        d.started("a.test");
        d.started("a.test");
        assert_eq!(d.room("a.test"), 0);
        d.ended("a.test", true, None, 0);
        assert_eq!(d.room("a.test"), 2);
        d.ended("a.test", true, None, 0);
        // Capped at the limit, and by the global limit.
        assert_eq!(d.room("a.test"), 3);
        for _ in 0..3 {
            d.started("a.test");
        }
        assert_eq!(d.room("b.test"), 1);
    }

    #[test]
    fn a_cohort_of_failures_makes_it_dead_for_a_while() {
        let mut d = Destinations::new(&settings());
        d.started("a.test");
        d.started("a.test");
        let refused = Status::new("4.4.1", "connect to mx[192.0.2.1]:25: refused");
        d.ended("a.test", false, Some(refused.clone()), 100);
        assert!(d.dead("a.test", 100).is_none());
        d.ended("a.test", false, Some(refused), 100);
        let why = d.dead("a.test", 101).expect("dead");
        assert!(why.is_temporary());
        assert!(why.text.contains("refused"), "{}", why.text);
        // Back after the dead time, with one connection.
        assert!(d.dead("a.test", 400).is_none());
        assert_eq!(d.room("a.test"), 1);
    }
}
