//! Failed logins, counted per IP and per account over a window: from
//! `failure_delay_after` failures on, each further failure is answered
//! late; from `max_failures_per_ip` of one IP on, that IP is refused
//! outright until its failures age out. Kept in memory only, so a restart
//! forgets them, and bounded, so a flood of addresses cannot grow it
//! without end.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use postern_config::AuthSettings;

/// The most IPs (or accounts) remembered at once; past it, the ones whose
/// last failure is oldest are forgotten first.
const MAX_KEYS: usize = 50_000;

pub struct Throttle {
    window: u64,
    delay_after: usize,
    delay: u64,
    max_per_ip: usize,
    ips: Failures<IpAddr>,
    accounts: Failures<String>,
}

/// What a login attempt may do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Check,
    /// Too many failures from this IP: refused without a check.
    Refuse,
}

impl Throttle {
    pub fn new(settings: &AuthSettings) -> Throttle {
        Throttle {
            window: settings.failure_window,
            delay_after: settings.failure_delay_after,
            delay: settings.failure_delay,
            max_per_ip: settings.max_failures_per_ip,
            ips: Failures::default(),
            accounts: Failures::default(),
        }
    }

    /// Whether a login from `ip` may be checked at `now`.
    pub fn verdict(&mut self, ip: IpAddr, now: u64) -> Verdict {
        if self.max_per_ip > 0 && self.ips.count(&ip, now, self.window) >= self.max_per_ip {
            Verdict::Refuse
        } else {
            Verdict::Check
        }
    }

    /// Counts a failure; returns the seconds to wait before answering it.
    pub fn failed(&mut self, ip: IpAddr, account: &str, now: u64) -> u64 {
        let by_ip = self.ips.add(ip, now, self.window);
        let by_account = self.accounts.add(account.to_lowercase(), now, self.window);
        if by_ip.max(by_account) > self.delay_after {
            self.delay
        } else {
            0
        }
    }
}

struct Failures<K> {
    times: HashMap<K, VecDeque<u64>>,
}

impl<K> Default for Failures<K> {
    fn default() -> Self {
        Failures {
            times: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn count(&mut self, key: &K, now: u64, window: u64) -> usize {
        match self.times.get_mut(key) {
            Some(times) => {
                forget_old(times, now, window);
                times.len()
            }
            None => 0,
        }
    }

    /// Adds one at `now`; returns how many are in the window.
    fn add(&mut self, key: K, now: u64, window: u64) -> usize {
        if self.times.len() >= MAX_KEYS && !self.times.contains_key(&key) {
            self.make_room(now, window);
        }
        let times = self.times.entry(key).or_default();
        forget_old(times, now, window);
        times.push_back(now);
        times.len()
    }

    fn make_room(&mut self, now: u64, window: u64) {
        self.times.retain(|_, times| {
            forget_old(times, now, window);
            !times.is_empty()
        });
        if self.times.len() >= MAX_KEYS {
            let mut last: Vec<u64> = self
                .times
                .values()
                .filter_map(|t| t.back().copied())
                .collect();
            last.sort_unstable();
            let cut = last[last.len() / 2];
            self.times
                .retain(|_, times| times.back().is_some_and(|&t| t > cut));
        }
    }
}

fn forget_old(times: &mut VecDeque<u64>, now: u64, window: u64) {
    while times
        .front()
        .is_some_and(|&t| t.saturating_add(window) <= now)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&AuthSettings {
            failure_window: 900,
            failure_delay_after: 3,
            failure_delay: 2,
            max_failures_per_ip: 10,
            ..AuthSettings::default()
        })
    }

    #[test]
    fn delays_from_the_nth_failure_then_refuses_the_ip_until_the_window_passes() {
        let mut t = throttle();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let delays: Vec<u64> = (0..10).map(|_| t.failed(ip, "a@x.test", 1000)).collect();
        assert_eq!(delays, [0, 0, 0, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(t.verdict(ip, 1000), Verdict::Refuse);
        // Another IP is checked; its failures on the same account are
        // delayed (the account's count), but it is not refused.
        assert_eq!(t.verdict(other, 1000), Verdict::Check);
        assert_eq!(t.failed(other, "A@x.test", 1000), 2);
        assert_eq!(t.failed(other, "b@x.test", 1000), 0);
        // Once the window has passed, the IP starts afresh.
        assert_eq!(t.verdict(ip, 1900), Verdict::Check);
        assert_eq!(t.failed(ip, "c@x.test", 1900), 0);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = throttle();
        for i in 0..(MAX_KEYS as u32 + 10) {
            t.failed(
                IpAddr::from(i.to_be_bytes()),
                "a@x.test",
                1000 + u64::from(i / 1000),
            );
        }
        assert!(t.ips.times.len() <= MAX_KEYS);
    }
}
