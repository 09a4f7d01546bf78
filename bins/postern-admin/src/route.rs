//! `explain --route ADDR`: where mail for an address goes and how — the
//! decision chain of the queue and postern-remote, from the same code:
//! local or remote, the next hop (the transport map, `relayhost`, or the
//! domain's MX hosts, looked up in DNS as postern-remote would), each
//! host's addresses, the TLS the destination needs and why (the
//! tls_policy map, DANE, MTA-STS, or `[remote] tls`), and the AUTH login.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use postern_config::{NextHop, Settings, TlsLevel, TlsPolicies};
use postern_routing::{Route, Router};

pub fn run(dir: &Path, address: &str) -> anyhow::Result<String> {
    let settings = Settings::load(dir)?;
    let remote = &settings.remote;
    let router = Router::load(dir, &settings.hostname)
        .with_relayhost(remote.relayhost.clone())
        .with_srs_domain(&settings.srs.domain);
    let mut out = format!("<{address}>\n");
    let destination = match router.route(address) {
        Route::Local => {
            out.push_str(
                "  route: this host (postern-local); `explain ADDR` shows how it resolves\n",
            );
            return Ok(out);
        }
        Route::Held(status) => {
            let _ = writeln!(out, "  route: held, deferred with {status}");
            return Ok(out);
        }
        Route::Remote {
            domain,
            destination,
        } => {
            let why = if destination == domain {
                "the domain's own mail servers".to_string()
            } else if remote
                .relayhost
                .as_ref()
                .is_some_and(|h| h.to_string() == destination)
            {
                "[remote] relayhost".to_string()
            } else {
                format!("the transport map's line for {domain}")
            };
            let _ = writeln!(out, "  route: another host's, to {destination} ({why})");
            destination
        }
    };
    let hop = NextHop::parse(&destination).map_err(anyhow::Error::msg)?;
    let port = hop.port.unwrap_or(remote.port);
    let dns = match remote.nameservers.as_slice() {
        [] => "resolv.conf's servers".to_string(),
        servers => servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lookup = runtime.block_on(hosts(&remote.nameservers, remote.dns_timeout, &hop));
    let found: Vec<String> = lookup
        .as_ref()
        .map(|hosts| hosts.iter().map(|(_, name, _)| name.clone()).collect())
        .unwrap_or_default();
    match lookup {
        Ok(hosts) => {
            let how = match hop.literal {
                true => format!("{} alone, no MX lookup", hop.host),
                false => format!("the MX hosts of {}, by preference", hop.host),
            };
            let _ = writeln!(out, "  hosts: {how} (DNS: {dns}), port {port}:");
            for (preference, name, addresses) in hosts {
                let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                let preference = preference.map(|p| format!("{p:>5} ")).unwrap_or_default();
                let _ = writeln!(out, "    {preference}{name}: {}", addresses.join(", "));
            }
        }
        Err(status) => {
            let _ = writeln!(out, "  hosts: none found (DNS: {dns}): {status}");
        }
    }
    let (policies, _) = TlsPolicies::load_checked(dir)?;
    let level = policies.level(&destination, hop.host(), remote.tls);
    let explicit = policies.names(&destination, hop.host());
    let source = if explicit {
        "the tls_policy map"
    } else {
        "[remote] tls"
    };
    if !explicit {
        let facts = runtime.block_on(secure_facts(&settings, &hop, port, &found));
        for fact in facts {
            let _ = writeln!(out, "  {fact}");
        }
    }
    let meaning = match level {
        TlsLevel::None => "no STARTTLS",
        TlsLevel::May => "STARTTLS where offered, the certificate not checked; cleartext otherwise",
        TlsLevel::Encrypt => "STARTTLS required, the certificate not checked; no TLS, no delivery",
        TlsLevel::Verify => "STARTTLS required with a certificate valid for the host under ca_file",
    };
    let level_name = format!("{level:?}").to_ascii_lowercase();
    let _ = writeln!(out, "  TLS: {level_name} ({source}): {meaning}");
    let auth = match remote.relayhost_credentials.as_os_str().is_empty() {
        true => "none (no relayhost_credentials)".to_string(),
        false => format!(
            "from {} if it has a line for {destination} (sent over TLS only)",
            remote.relayhost_credentials.display()
        ),
    };
    let _ = writeln!(out, "  AUTH: {auth}");
    Ok(out)
}

/// What DANE and MTA-STS say of the destination, a line each: DANE per
/// host (validated TLSA records win), then the MTA-STS policy (the one
/// postern-remote cached, or that a TXT record announces).
async fn secure_facts(
    settings: &Settings,
    hop: &NextHop,
    port: u16,
    hosts: &[String],
) -> Vec<String> {
    let remote = &settings.remote;
    let mut facts = Vec::new();
    match remote.dnssec_resolver {
        None => facts.push("DANE: off (no [remote] dnssec_resolver)".to_string()),
        Some(resolver) => {
            let secure = postern_dns::secure::SecureDns::new(
                resolver,
                Duration::from_secs(remote.dns_timeout.max(1)),
            );
            let mx_secure = hop.literal || matches!(secure.mx_is_secure(&hop.host).await, Ok(true));
            if !mx_secure {
                facts.push(format!(
                    "DANE: does not apply: the MX records of {} are not validated",
                    hop.host
                ));
            } else {
                for host in hosts {
                    let line = match secure.tlsa(host, port).await {
                        Ok(Some(records)) => {
                            let shown: Vec<String> = records
                                .iter()
                                .map(|r| format!("{} {} {}", r.usage, r.selector, r.matching))
                                .collect();
                            format!(
                                "DANE: {host} has validated TLSA records ({}): TLS required, the certificate must match them",
                                shown.join(", ")
                            )
                        }
                        Ok(None) => format!("DANE: {host} has no validated TLSA record"),
                        Err(status) => format!("DANE: {host} is not used: {status}"),
                    };
                    facts.push(line);
                }
            }
        }
    }
    if !remote.mta_sts || hop.literal || hop.port.is_some() {
        facts.push("MTA-STS: does not apply".to_string());
        return facts;
    }
    let path = postern_mta_sts::cache_path(&remote.state_dir, &hop.host);
    let cached = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| postern_mta_sts::read_cache(&text));
    match cached {
        Some(cached) => {
            facts.push(format!(
                "MTA-STS: the cached policy of {} says mode {}, mx {}",
                hop.host,
                cached.policy.mode.name(),
                cached.policy.mx.join(" ")
            ));
        }
        None => {
            let dns = postern_dns::Dns::new(
                &remote.nameservers,
                Duration::from_secs(remote.dns_timeout.max(1)),
            );
            let record = match dns {
                Ok(dns) => dns
                    .txt(&format!("_mta-sts.{}", hop.host))
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .find(|r| r.starts_with("v=STSv1")),
                Err(_) => None,
            };
            facts.push(match record {
                Some(record) => format!("MTA-STS: {} publishes a policy ({record}); postern-remote fetches it on its first delivery there", hop.host),
                None => format!("MTA-STS: {} publishes no policy", hop.host),
            });
        }
    }
    facts
}

type Host = (Option<u16>, String, Vec<std::net::IpAddr>);

async fn hosts(
    nameservers: &[std::net::SocketAddr],
    timeout: u64,
    hop: &NextHop,
) -> Result<Vec<Host>, String> {
    let dns = postern_dns::Dns::new(nameservers, Duration::from_secs(timeout.max(1)))
        .map_err(|e| e.to_string())?;
    let found = dns
        .next_hop_hosts(&hop.host, hop.literal)
        .await
        .map_err(|s| s.to_string())?;
    Ok(found
        .into_iter()
        .map(|h| (h.preference, h.name, h.addresses.unwrap_or_default()))
        .collect())
}
