//! IP networks in CIDR notation (`127.0.0.1/32`, `2001:db8::/32`) for the
//! trusted relay networks. Hand-written: a prefix compare is a few lines,
//! smaller than a crate's API.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` lies in the network; an IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`, as a dual-stack socket reports IPv4 peers) is
    /// taken as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?}: not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(Network { address, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_and_families() {
        assert!(net("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(net("::1/128").contains(ip("::1")));
        assert!(!net("::1/128").contains(ip("127.0.0.1")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("::ffff:127.0.0.2")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("example.org/8".parse::<Network>().is_err());
        assert_eq!(net("192.0.2.0/24").to_string(), "192.0.2.0/24");
    }
}
