//! Failed logins, counted per IP (an IPv6 address by its /64, which one
//! client usually has whole) and per account over a window. Once either
//! count reaches `failure_delay_after`, every answer for that IP or account
//! waits `failure_delay`, success too, so a client cannot tell a wrong
//! guess by how fast it is refused; once the IP's count reaches
//! `max_failures_per_ip`, its logins are refused unchecked until failures
//! age out. Kept in memory only, so a restart forgets them, and bounded, so
//! a flood of addresses or names cannot grow it without end. An address of
//! `proxy_networks` is shared by all of a proxy's users: it is not counted,
//! so one user's failures there cannot shut the others out. An address of
//! `local_networks` (loopback: mutt, fetchmail from cron and a webmail on
//! the host itself) is shared by every local user: it is counted together
//! with the account, so one user's wrong password delays and refuses that
//! user from there, and no one else.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use postern_auth_protocol::Block;
use postern_config::{AuthSettings, Network};

/// The most IPs (or accounts) remembered at once; past it, the ones whose
/// last failure is oldest are forgotten first.
const MAX_KEYS: usize = 50_000;
/// An account key longer than this is cut: names are short, and a flood
/// of long ones must not cost memory.
const MAX_ACCOUNT_KEY: usize = 320;

pub struct Throttle {
    window: u64,
    delay_after: usize,
    delay: u64,
    max_per_ip: usize,
    proxies: Vec<Network>,
    locals: Vec<Network>,
    ips: Failures<Client>,
    accounts: Failures<String>,
}

/// What a client's failures count under besides the account: its address,
/// or, on a local network, its address and the account together.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Client {
    ip: IpAddr,
    account: Option<String>,
}

/// What a login attempt may do now, and how long its answer waits.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub refuse: bool,
    pub delay: u64,
}

impl Throttle {
    pub fn new(settings: &AuthSettings) -> Throttle {
        Throttle {
            window: settings.failure_window,
            delay_after: settings.failure_delay_after,
            delay: settings.failure_delay,
            max_per_ip: settings.max_failures_per_ip,
            proxies: settings.proxy_networks.clone(),
            locals: settings.local_networks.clone(),
            ips: Failures::default(),
            accounts: Failures::default(),
        }
    }

    /// The verdict for an attempt from `ip` at `account` at `now`. An
    /// attempt that may go on is counted as a failure at once, in the same
    /// step, so attempts made side by side cannot all slip under the
    /// limit; [`Throttle::succeeded`] takes it back.
    pub fn begin(&mut self, ip: IpAddr, account: &str, now: u64) -> Verdict {
        let verdict = self.verdict(ip, account, now);
        if !verdict.refuse {
            self.failed(ip, account, now);
        }
        verdict
    }

    /// The attempt [`Throttle::begin`] counted was a good login.
    pub fn succeeded(&mut self, ip: IpAddr, account: &str) {
        if let Some(client) = self.client(ip, account) {
            self.ips.take_back(&client);
        }
        self.accounts.take_back(&account_key(account));
    }

    /// The key an attempt from `ip` at `account` counts under, `None` for
    /// a proxy's address.
    fn client(&self, ip: IpAddr, account: &str) -> Option<Client> {
        if self.is_proxy(ip) {
            return None;
        }
        let local = self.locals.iter().any(|network| network.contains(ip));
        Some(Client {
            ip: ip_key(ip),
            account: local.then(|| account_key(account)),
        })
    }

    /// Everything that delays or refuses a login at `now`.
    pub fn blocked(&mut self, now: u64) -> Vec<Block> {
        let mut found = Vec::new();
        let window = self.window;
        for (client, times) in self.ips.current(now, window) {
            let (kind, key) = match &client.account {
                None => ("ip", client.ip.to_string()),
                Some(account) => ("ip+account", format!("{} {account}", client.ip)),
            };
            if let Some(entry) = self.judge(kind, key, &times, true) {
                found.push(entry);
            }
        }
        for (account, times) in self.accounts.current(now, window) {
            if let Some(entry) = self.judge("account", account, &times, false) {
                found.push(entry);
            }
        }
        found.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
        found
    }

    /// What `times` (oldest first) of one key do to its logins.
    fn judge(
        &self,
        kind: &'static str,
        key: String,
        times: &[u64],
        may_refuse: bool,
    ) -> Option<Block> {
        let n = times.len();
        let refused = may_refuse && self.max_per_ip > 0 && n >= self.max_per_ip;
        let threshold = if refused {
            self.max_per_ip
        } else if self.delay_after > 0 && n >= self.delay_after {
            self.delay_after
        } else {
            return None;
        };
        Some(Block {
            kind: kind.to_string(),
            key,
            failures: n,
            refused,
            until: times[n - threshold] + self.window,
        })
    }

    /// Forgets the failures of an address (`192.0.2.7`, or with its
    /// account on a local network) or of an account; how many keys went.
    pub fn unblock(&mut self, what: &str) -> usize {
        match what.parse::<IpAddr>() {
            Ok(ip) => {
                let key = ip_key(ip);
                self.ips.forget(|client| client.ip == key)
            }
            Err(_) => {
                let account = account_key(what);
                self.ips
                    .forget(|client| client.account.as_deref() == Some(account.as_str()))
                    + self.accounts.forget(|key| *key == account)
            }
        }
    }

    /// Whether `ip` is one of `proxy_networks`.
    pub fn is_proxy(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|network| network.contains(ip))
    }

    fn verdict(&mut self, ip: IpAddr, account: &str, now: u64) -> Verdict {
        let by_ip = match self.client(ip, account) {
            None => 0,
            Some(client) => self.ips.count(&client, now, self.window),
        };
        let by_account = self.accounts.count(&account_key(account), now, self.window);
        let delayed = self.delay_after > 0 && by_ip.max(by_account) >= self.delay_after;
        Verdict {
            refuse: self.max_per_ip > 0 && by_ip >= self.max_per_ip,
            delay: if delayed { self.delay } else { 0 },
        }
    }

    fn failed(&mut self, ip: IpAddr, account: &str, now: u64) {
        let keep = self.delay_after.max(self.max_per_ip) + 1;
        if let Some(client) = self.client(ip, account) {
            self.ips.add(client, now, self.window, keep);
        }
        self.accounts
            .add(account_key(account), now, self.window, keep);
    }
}

fn ip_key(ip: IpAddr) -> IpAddr {
    match postern_config::relayers::canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

fn account_key(account: &str) -> String {
    let mut key = account.to_lowercase();
    if key.len() > MAX_ACCOUNT_KEY {
        let mut end = MAX_ACCOUNT_KEY;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key
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

    /// Adds one at `now`, keeping at most `keep` (more change no verdict).
    fn add(&mut self, key: K, now: u64, window: u64, keep: usize) {
        if self.times.len() >= MAX_KEYS && !self.times.contains_key(&key) {
            self.make_room(now, window);
        }
        let times = self.times.entry(key).or_default();
        forget_old(times, now, window);
        times.push_back(now);
        while times.len() > keep {
            times.pop_front();
        }
    }

    /// Every key with failures inside the window, with their times.
    fn current(&mut self, now: u64, window: u64) -> Vec<(K, Vec<u64>)> {
        self.times.retain(|_, times| {
            forget_old(times, now, window);
            !times.is_empty()
        });
        self.times
            .iter()
            .map(|(key, times)| (key.clone(), times.iter().copied().collect()))
            .collect()
    }

    /// Drops the keys `matches` picks; how many.
    fn forget(&mut self, matches: impl Fn(&K) -> bool) -> usize {
        let before = self.times.len();
        self.times.retain(|key, _| !matches(key));
        before - self.times.len()
    }

    fn take_back(&mut self, key: &K) {
        if let Some(times) = self.times.get_mut(key) {
            times.pop_back();
            if times.is_empty() {
                self.times.remove(key);
            }
        }
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
        let delays: Vec<u64> = (0..10)
            .map(|_| t.begin(ip, "a@x.test", 1000).delay)
            .collect();
        assert_eq!(delays, [0, 0, 0, 2, 2, 2, 2, 2, 2, 2]);
        assert!(t.verdict(ip, "b@x.test", 1000).refuse);
        // A good login takes its count back.
        let mut fresh = throttle();
        fresh.begin(other, "b@x.test", 1000);
        fresh.succeeded(other, "b@x.test");
        assert!(fresh.ips.times.is_empty() && fresh.accounts.times.is_empty());
        // Another IP is checked; the account's count delays it, another
        // account's does not.
        assert_eq!(
            t.verdict(other, "A@x.test", 1000),
            Verdict {
                refuse: false,
                delay: 2
            }
        );
        assert_eq!(
            t.verdict(other, "b@x.test", 1000),
            Verdict {
                refuse: false,
                delay: 0
            }
        );
        // Once the window has passed, the IP starts afresh.
        assert_eq!(
            t.verdict(ip, "c@x.test", 1900),
            Verdict {
                refuse: false,
                delay: 0
            }
        );
    }

    #[test]
    fn a_proxy_address_is_never_refused_but_its_accounts_are_still_delayed() {
        let mut t = Throttle::new(&AuthSettings {
            proxy_networks: vec!["192.0.2.0/28".parse().unwrap()],
            ..AuthSettings::default()
        });
        let proxy: IpAddr = "192.0.2.9".parse().unwrap();
        // Twenty users' failures through the proxy: none of them counts
        // against the others.
        for i in 0..20 {
            let verdict = t.begin(proxy, &format!("u{i}@x.test"), 1000);
            assert_eq!(
                verdict,
                Verdict {
                    refuse: false,
                    delay: 0
                },
                "{i}"
            );
        }
        assert!(t.ips.times.is_empty());
        // One account's own failures still slow its guesses.
        let delays: Vec<u64> = (0..5)
            .map(|_| t.begin(proxy, "victim@x.test", 1000).delay)
            .collect();
        assert_eq!(delays, [0, 0, 0, 2, 2]);
        t.succeeded(proxy, "u1@x.test");
        // An address outside the network is counted as ever.
        let outside: IpAddr = "192.0.2.16".parse().unwrap();
        t.begin(outside, "a@x.test", 1000);
        assert_eq!(t.ips.times.len(), 1);
        assert!(t.is_proxy(proxy) && !t.is_proxy(outside));
    }

    #[test]
    fn on_a_local_network_failures_count_per_address_and_account() {
        let mut t = throttle();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..10 {
            t.begin(loopback, "mallory@x.test", 1000);
        }
        // Mallory is refused from there; everyone else logs in at once.
        assert!(t.verdict(loopback, "Mallory@x.test", 1000).refuse);
        assert_eq!(
            t.verdict(loopback, "alice@x.test", 1000),
            Verdict {
                refuse: false,
                delay: 0
            }
        );
        // What the admin sees, and lifts.
        let blocked = t.blocked(1000);
        assert_eq!(blocked.len(), 2, "{blocked:?}");
        assert_eq!(
            (
                blocked[0].kind.as_str(),
                blocked[0].key.as_str(),
                blocked[0].refused
            ),
            ("account", "mallory@x.test", false)
        );
        assert_eq!(
            (
                blocked[1].kind.as_str(),
                blocked[1].key.as_str(),
                blocked[1].failures,
                blocked[1].refused,
                blocked[1].until
            ),
            ("ip+account", "127.0.0.1 mallory@x.test", 10, true, 1900)
        );
        assert_eq!(t.unblock("MALLORY@x.test"), 2);
        assert!(!t.verdict(loopback, "mallory@x.test", 1000).refuse);
        assert!(t.blocked(1000).is_empty());
        // An outside address is blocked as a whole, and lifted by address.
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..10 {
            t.begin(outside, &format!("u{i}@x.test"), 1000);
        }
        assert!(t.verdict(outside, "z@x.test", 1000).refuse);
        assert_eq!(t.unblock("192.0.2.1"), 1);
        assert!(!t.verdict(outside, "z@x.test", 1000).refuse);
        assert_eq!(t.unblock("nobody@x.test"), 0);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let mut t = throttle();
        for i in 0..10u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            t.failed(ip, &format!("u{i}@x.test"), 1000);
        }
        let neighbour: IpAddr = "2001:db8:0:1:ffff::1".parse().unwrap();
        assert!(t.verdict(neighbour, "z@x.test", 1000).refuse);
        let elsewhere: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert!(!t.verdict(elsewhere, "z@x.test", 1000).refuse);
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
        assert!(t.accounts.times["a@x.test"].len() <= 11);
        t.failed("192.0.2.9".parse().unwrap(), &"x".repeat(100_000), 2000);
        assert!(t.accounts.times.keys().all(|k| k.len() <= MAX_ACCOUNT_KEY));
    }
}
