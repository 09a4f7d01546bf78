//! Where a domain's mail goes, as DNS says (RFC 5321 §5.1): its MX hosts
//! by preference, in random order among equals; the domain itself when
//! it has no MX but an address (the implicit MX); RFC 7505's null MX; and
//! the IPv6 and IPv4 addresses of each host. The difference that matters
//! to the sender is kept: a domain with no mail server fails (5.1.x), DNS
//! that does not answer defers (4.4.3). Name servers are resolv.conf's,
//! or the ones the configuration names (a local resolver, a test's).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use postern_queue_format::Status;

pub mod secure;
#[cfg(feature = "testing")]
pub mod testing;

/// The most MX hosts one attempt looks at; the most addresses of one.
pub const MAX_HOSTS: usize = 10;
pub const MAX_ADDRESSES: usize = 10;

/// A host of a next hop: its MX preference (none for a host named by
/// itself), its name, and its addresses, or why they could not be had.
#[derive(Debug)]
pub struct HopHost {
    pub preference: Option<u16>,
    pub name: String,
    pub addresses: Result<Vec<IpAddr>, Status>,
}

/// A host that takes mail for a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailHost {
    /// Without the final dot, lower case.
    pub name: String,
    pub preference: u16,
    /// The domain itself, for lack of an MX record.
    pub implicit: bool,
}

pub struct Dns {
    resolver: Resolver<TokioRuntimeProvider>,
}

impl Dns {
    /// A resolver asking `servers`, or resolv.conf's when there are none.
    /// Each question waits at most `timeout` and is asked twice.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Dns, String> {
        let mut builder = match servers {
            [] => Resolver::builder_tokio().map_err(|e| format!("resolv.conf: {e}"))?,
            servers => {
                let configs = servers
                    .iter()
                    .map(|server| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = server.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = server.port();
                        NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                    })
                    .collect();
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(configs),
                    TokioRuntimeProvider::default(),
                )
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 2;
        options.ip_strategy = LookupIpStrategy::Ipv6AndIpv4;
        // Names are always whole: a search domain must never turn a
        // recipient's domain into a local name.
        options.ndots = 0;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(Dns { resolver })
    }

    /// The hosts that take `domain`'s mail, best first.
    pub async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, Status> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let fqdn = format!("{domain}.");
        match self.resolver.lookup(fqdn.as_str(), RecordType::MX).await {
            Ok(lookup) => {
                let mut hosts: Vec<MailHost> = Vec::new();
                let mut null = false;
                for record in lookup.answers() {
                    if let RData::MX(mx) = &record.data {
                        if mx.exchange.is_root() {
                            null = true;
                            continue;
                        }
                        hosts.push(MailHost {
                            name: name_of(&mx.exchange.to_string()),
                            preference: mx.preference,
                            implicit: false,
                        });
                    }
                }
                if hosts.is_empty() && null {
                    return Err(Status::new(
                        "5.1.10",
                        format!("{domain} accepts no mail (null MX, RFC 7505)"),
                    ));
                }
                if hosts.is_empty() {
                    return self.implicit(&domain).await;
                }
                Ok(ordered(hosts))
            }
            Err(e) => match absence(&e) {
                Some(ResponseCode::NXDomain) => Err(Status::new(
                    "5.1.2",
                    format!("{domain} does not exist (DNS: no such domain)"),
                )),
                Some(_) => self.implicit(&domain).await,
                None => Err(not_answering(&domain, "MX", &e)),
            },
        }
    }

    /// No MX record: the domain itself, if it has an address.
    async fn implicit(&self, domain: &str) -> Result<Vec<MailHost>, Status> {
        if self.addresses(domain).await?.is_empty() {
            return Err(Status::new(
                "5.1.2",
                format!("{domain} has no mail server (no MX, A or AAAA record)"),
            ));
        }
        Ok(vec![MailHost {
            name: domain.to_string(),
            preference: 0,
            implicit: true,
        }])
    }

    /// The hosts of a next hop, in the order to try them: `host` alone
    /// when `literal` (`[host]`: an address, or a name's addresses, no MX
    /// lookup), else `host`'s mail hosts. Each host's address lookup is
    /// its own result: postern-remote stops at a failed one, `explain
    /// --route` shows it.
    pub async fn next_hop_hosts(&self, host: &str, literal: bool) -> Result<Vec<HopHost>, Status> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![HopHost {
                preference: None,
                name: host.to_string(),
                addresses: Ok(vec![ip]),
            }]);
        }
        if literal {
            return Ok(vec![HopHost {
                preference: None,
                name: host.to_string(),
                addresses: self.addresses(host).await,
            }]);
        }
        let mut found = Vec::new();
        for mail_host in self.mail_hosts(host).await? {
            found.push(HopHost {
                preference: (!mail_host.implicit).then_some(mail_host.preference),
                addresses: self.addresses(&mail_host.name).await,
                name: mail_host.name,
            });
        }
        Ok(found)
    }

    /// The TXT records of `name`, each its strings joined; none when it
    /// has none (or does not exist).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, Status> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.lookup(fqdn.as_str(), RecordType::TXT).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if absence(&e).is_some() => Ok(Vec::new()),
            Err(e) => Err(not_answering(name, "TXT", &e)),
        }
    }

    /// `host`'s addresses, IPv6 first; none when it has none.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Status> {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(found) => {
                let mut addresses: Vec<IpAddr> = found.iter().collect();
                addresses.sort_by_key(|ip| ip.is_ipv4());
                addresses.dedup();
                addresses.truncate(MAX_ADDRESSES);
                Ok(addresses)
            }
            Err(e) if absence(&e).is_some() => Ok(Vec::new()),
            Err(e) => Err(not_answering(host, "A/AAAA", &e)),
        }
    }
}

/// The response code of an answer that says there is no such record
/// (NOERROR, the name has other types) or no such name (NXDOMAIN).
fn absence(error: &NetError) -> Option<ResponseCode> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(none)) => Some(none.response_code),
        _ => None,
    }
}

fn not_answering(name: &str, kind: &str, error: &NetError) -> Status {
    Status::new(
        "4.4.3",
        format!("DNS does not answer for {name} ({kind}): {error}"),
    )
}

fn name_of(fqdn: &str) -> String {
    fqdn.trim_end_matches('.').to_ascii_lowercase()
}

/// By preference, in random order among hosts of the same preference
/// (RFC 5321 §5.1), at most `MAX_HOSTS`.
fn ordered(mut hosts: Vec<MailHost>) -> Vec<MailHost> {
    let state = RandomState::new();
    let mut keys: Vec<(u16, u64, MailHost)> = hosts
        .drain(..)
        .map(|host| {
            let mut hasher = state.build_hasher();
            hasher.write(host.name.as_bytes());
            (host.preference, hasher.finish(), host)
        })
        .collect();
    keys.sort_by_key(|(preference, shuffle, _)| (*preference, *shuffle));
    keys.dedup_by(|a, b| a.2.name == b.2.name);
    keys.into_iter()
        .map(|(_, _, host)| host)
        .take(MAX_HOSTS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, preference: u16) -> MailHost {
        MailHost {
            name: name.into(),
            preference,
            implicit: false,
        }
    }

    #[test]
    fn by_preference_and_every_order_among_equals() {
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let got = ordered(vec![host("c", 20), host("a", 10), host("b", 10)]);
            assert_eq!(got.len(), 3);
            assert_eq!(got[2].name, "c");
            firsts.insert(got[0].name.clone());
        }
        assert_eq!(firsts.len(), 2, "equal preferences always in one order");
        let many: Vec<MailHost> = (0..30).map(|i| host(&format!("h{i}"), i)).collect();
        assert_eq!(ordered(many).len(), MAX_HOSTS);
    }
}
