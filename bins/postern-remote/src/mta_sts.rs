//! MTA-STS (RFC 8461): a domain that publishes `_mta-sts.DOMAIN TXT
//! "v=STSv1; id=..."` and a policy at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` asks that its mail
//! go only to the MX hosts the policy names, over TLS with a certificate
//! valid for the host. The policy is fetched over HTTPS with the
//! certificate checked for `mta-sts.DOMAIN` (under `[remote] ca_file`), no
//! redirect followed, at most 64 KiB and 20 seconds; it is cached in
//! `[remote] state_dir` for its `max_age`, so it survives restarts and a
//! DNS or HTTPS outage, and fetched again when the TXT record's id
//! changes.
//!
//! The policy, record and response parsers are postern-mta-sts's. The
//! HTTPS GET is written here rather than taken from an HTTP crate:
//! one request, no redirects, strict limits, over the rustls the client
//! already has — an HTTP client library would bring more than it saves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_mta_sts::{MAX_POLICY, parse_response, record_id};
pub use postern_mta_sts::{Mode, Policy};

use postern_dns::Dns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{info, warn};

const FETCH_TIME: Duration = Duration::from_secs(20);

/// Where the policies are found and kept.
pub struct Fetcher<'a> {
    pub dns: &'a Dns,
    pub tls: Arc<rustls::ClientConfig>,
    pub port: u16,
    /// `[remote] state_dir`; policies are cached in its `mta-sts/`.
    pub state_dir: &'a Path,
    pub now: u64,
}

impl Fetcher<'_> {
    /// The policy `domain` publishes now, if any: the cached one while its
    /// id is the TXT record's and it is younger than its max_age, else a
    /// fresh one; a fetch that fails falls back on an unexpired cache.
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        let cached = self.cached(domain);
        let id = match self.dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => records.iter().find_map(|r| record_id(r)),
            Err(_) => None,
        };
        let Some(id) = id else {
            // No record (or DNS down): a policy still in its max_age holds.
            return cached.map(|(_, policy)| policy);
        };
        if let Some((cached_id, policy)) = &cached
            && *cached_id == id
        {
            return Some(policy.clone());
        }
        match self.fetch(domain).await.and_then(|text| {
            let policy = Policy::parse(&text)?;
            Ok((text, policy))
        }) {
            Ok((text, policy)) => {
                info!(
                    "MTA-STS policy of {domain} (id {id}): {:?}, mx {}",
                    policy.mode,
                    policy.mx.join(" ")
                );
                self.store(domain, &id, &text);
                Some(policy)
            }
            Err(why) => {
                warn!("MTA-STS policy of {domain} could not be fetched: {why}");
                cached.map(|(_, policy)| policy)
            }
        }
    }

    /// The cached id and policy, if still within its max_age.
    fn cached(&self, domain: &str) -> Option<(String, Policy)> {
        let path = postern_mta_sts::cache_path(self.state_dir, domain);
        let cached = postern_mta_sts::read_cache(&std::fs::read_to_string(path).ok()?)?;
        cached.fresh(self.now).then_some((cached.id, cached.policy))
    }

    fn store(&self, domain: &str, id: &str, text: &str) {
        let file = postern_mta_sts::cache_path(self.state_dir, domain);
        let Some(dir) = file.parent() else { return };
        let temporary = dir.join(format!(".{domain}.{}", std::process::id()));
        let stored = std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(&temporary, postern_mta_sts::cache_text(id, self.now, text))
            })
            .and_then(|()| std::fs::rename(&temporary, &file));
        if let Err(e) = stored {
            warn!(
                "cannot cache the MTA-STS policy of {domain} in {}: {e}",
                dir.display()
            );
        }
    }

    /// GET the policy, over TLS checked for `mta-sts.DOMAIN`.
    async fn fetch(&self, domain: &str) -> Result<String, String> {
        let host = format!("mta-sts.{domain}");
        let addresses = self.dns.addresses(&host).await.map_err(|s| s.to_string())?;
        let address = addresses.first().ok_or(format!("{host} has no address"))?;
        let get = async {
            let tcp = TcpStream::connect((*address, self.port))
                .await
                .map_err(|e| format!("connect to {host}: {e}"))?;
            let name =
                rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            let request = format!(
                "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: postern-remote\r\nConnection: close\r\n\r\n"
            );
            tls.write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut response = Vec::new();
            let mut limited = (&mut tls).take((MAX_POLICY + 16 * 1024) as u64);
            // A server that closes without close_notify still sent what
            // it sent: the body's length says whether it is whole.
            let _ = limited.read_to_end(&mut response).await;
            parse_response(&response)
        };
        timeout(FETCH_TIME, get)
            .await
            .unwrap_or_else(|_| Err(format!("{host} took longer than {FETCH_TIME:?}")))
    }
}
