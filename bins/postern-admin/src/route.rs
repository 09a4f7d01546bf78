//! `explain --route ADDR`: where mail for an address goes and how — the
//! decision chain of the queue and postern-remote, from the same code:
//! local or remote, the next hop (the transport map, `relayhost`, or the
//! domain's MX hosts, looked up in DNS as postern-remote would), each
//! host's addresses, the TLS the destination needs and why (`[remote]
//! tls` or the tls_policy map), and the AUTH login.

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
    let source = if level == remote.tls {
        "[remote] tls"
    } else {
        "the tls_policy map"
    };
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

type Host = (Option<u16>, String, Vec<std::net::IpAddr>);

async fn hosts(
    nameservers: &[std::net::SocketAddr],
    timeout: u64,
    hop: &NextHop,
) -> Result<Vec<Host>, String> {
    if let Ok(ip) = hop.host.parse::<std::net::IpAddr>() {
        return Ok(vec![(None, hop.host.clone(), vec![ip])]);
    }
    let dns = postern_dns::Dns::new(nameservers, Duration::from_secs(timeout.max(1)))
        .map_err(|e| e.to_string())?;
    if hop.literal {
        let addresses = dns.addresses(&hop.host).await.map_err(|s| s.to_string())?;
        return Ok(vec![(None, hop.host.clone(), addresses)]);
    }
    let mut found = Vec::new();
    for host in dns.mail_hosts(&hop.host).await.map_err(|s| s.to_string())? {
        let addresses = dns.addresses(&host.name).await.unwrap_or_default();
        let preference = (!host.implicit).then_some(host.preference);
        found.push((preference, host.name, addresses));
    }
    Ok(found)
}
