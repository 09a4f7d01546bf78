//! Who may connect (an access list) and how many at once (in total and
//! from one IP): decided at accept, before the connection costs a session.

use std::collections::HashMap;
use std::net::IpAddr;

use postern_config::Network;

/// The networks allowed to connect; `None` lets anyone in.
#[derive(Clone, Debug, Default)]
pub struct Access {
    allowed: Option<Vec<Network>>,
}

impl Access {
    /// From a server's `access` setting and its two lists.
    pub fn new(access: postern_config::Access, allow: &[Network], lan: &[Network]) -> Access {
        use postern_config::Access as Setting;
        let allowed = match access {
            Setting::Any => None,
            Setting::Allow => Some(allow.to_vec()),
            Setting::AllowLan => Some([allow, lan].concat()),
        };
        Access { allowed }
    }

    pub fn admits(&self, ip: IpAddr) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|n| n.contains(ip)))
    }
}

/// Why a connection was turned away at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crowded {
    /// The server has its `max_connections`.
    Total,
    /// This IP has its `max_connections_per_ip`.
    FromIp,
}

/// The connections being served, counted in total and per IP.
#[derive(Debug)]
pub struct Connections {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Connections {
    pub fn new(max_total: usize, max_per_ip: usize) -> Connections {
        Connections {
            max_total,
            max_per_ip,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Counts one more connection from `ip`, unless a limit is reached.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Crowded> {
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Crowded::FromIp);
        }
        if self.total >= self.max_total {
            return Err(Crowded::Total);
        }
        self.total += 1;
        *self.per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    /// A connection from `ip` has ended.
    pub fn leave(&mut self, ip: IpAddr) {
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            self.total -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limits_in_total_and_per_ip_and_room_again_after_leaving() {
        let mut connections = Connections::new(3, 2);
        assert_eq!(connections.admit(ip("192.0.2.1")), Ok(()));
        assert_eq!(connections.admit(ip("192.0.2.1")), Ok(()));
        assert_eq!(connections.admit(ip("192.0.2.1")), Err(Crowded::FromIp));
        assert_eq!(connections.admit(ip("192.0.2.2")), Ok(()));
        assert_eq!(connections.admit(ip("192.0.2.3")), Err(Crowded::Total));
        connections.leave(ip("192.0.2.1"));
        assert_eq!(connections.total(), 2);
        assert_eq!(connections.admit(ip("192.0.2.3")), Ok(()));
        // Leaving for an IP never counted changes nothing.
        connections.leave(ip("198.51.100.9"));
        assert_eq!(connections.total(), 3);
    }

    #[test]
    fn access_any_allow_and_allow_lan() {
        let allow = vec!["192.0.2.0/24".parse::<Network>().unwrap()];
        let lan = vec!["10.0.0.0/8".parse::<Network>().unwrap()];
        use postern_config::Access as Setting;
        let any = Access::new(Setting::Any, &allow, &lan);
        let listed = Access::new(Setting::Allow, &allow, &lan);
        let with_lan = Access::new(Setting::AllowLan, &allow, &lan);
        assert!(any.admits(ip("203.0.113.1")));
        assert!(listed.admits(ip("192.0.2.7")));
        assert!(!listed.admits(ip("10.1.2.3")));
        assert!(with_lan.admits(ip("10.1.2.3")));
        assert!(!with_lan.admits(ip("203.0.113.1")));
    }
}
