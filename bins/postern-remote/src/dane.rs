//! DANE for SMTP (RFC 7672): an MX host whose TLSA records
//! (`_25._tcp.HOST`) come, like the MX records that named it, from a
//! validated answer is held to them — STARTTLS required, and the
//! certificate must match a DANE-EE record (usage 3: the server's own
//! certificate or key, whatever its names and dates) or chain to a
//! certificate that matches a DANE-TA record (usage 2: a trust anchor,
//! with the host's name checked). Usages 0 and 1 are unusable for SMTP
//! (§3.1.3); a host whose records are all unusable still gets TLS,
//! unauthenticated. A DANE failure defers the mail: it is never sent to
//! that host without TLS.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use postern_config::TlsLevel;
use postern_dns::secure::{SecureDns, Tlsa};
use postern_queue_format::Status;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::opportunistic::AnyCertificate;
use crate::policy::Policy;

/// What DANE makes of one host.
#[derive(Clone)]
pub enum HostPolicy {
    /// No validated TLSA records: the destination's own policy holds.
    None,
    /// Held to its records.
    Dane(Policy),
}

/// What DANE found for the worker's destination, asked once for the
/// worker's life (a destination, while its connection is cached): whether
/// its MX answer validated, and each host's policy.
#[derive(Default)]
pub struct Found {
    pub mx_secure: Option<bool>,
    hosts: HashMap<String, HostPolicy>,
}

/// `host_policy`, asked of the resolver once per worker.
pub async fn known_host_policy(
    found: &RefCell<Found>,
    secure: &SecureDns,
    base: &Policy,
    host: &str,
    port: u16,
) -> Result<HostPolicy, Status> {
    if let Some(known) = found.borrow().hosts.get(host) {
        return Ok(known.clone());
    }
    let answer = host_policy(secure, base, host, port).await;
    // A failed lookup is asked again at the next batch.
    if let Ok(policy) = &answer {
        found
            .borrow_mut()
            .hosts
            .insert(host.to_string(), policy.clone());
    }
    answer
}

/// The policy for `host` on `port`, given the destination's (`base`); an
/// error (a TLSA lookup that failed) leaves the host unusable.
pub async fn host_policy(
    secure: &SecureDns,
    base: &Policy,
    host: &str,
    port: u16,
) -> Result<HostPolicy, Status> {
    let Some(records) = secure.tlsa(host, port).await? else {
        return Ok(HostPolicy::None);
    };
    let usable: Vec<Tlsa> = records.into_iter().filter(usable).collect();
    let source = Some(format!("DANE TLSA of _{port}._tcp.{host}"));
    if usable.is_empty() {
        let tls = crate::opportunistic::client_config()
            .map_err(|e| Status::new("4.7.5", format!("TLS: {e}")))?;
        return Ok(HostPolicy::Dane(Policy {
            level: TlsLevel::Encrypt,
            tls,
            source,
            ..base.clone()
        }));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = DaneVerifier {
        records: usable,
        signatures: AnyCertificate {
            provider: Arc::clone(&provider),
        },
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Status::new("4.7.5", format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(HostPolicy::Dane(Policy {
        level: TlsLevel::Verify,
        tls: Arc::new(config),
        source,
        ..base.clone()
    }))
}

/// RFC 7672 §3.1: DANE-TA(2) and DANE-EE(3), of a selector and matching
/// type this client knows.
fn usable(record: &Tlsa) -> bool {
    matches!(record.usage, 2 | 3)
        && matches!(record.selector, 0 | 1)
        && matches!(record.matching, 0..=2)
}

/// Whether `certificate` is what `record` describes.
fn matches(record: &Tlsa, certificate: &CertificateDer<'_>) -> bool {
    let data: Vec<u8> = match record.selector {
        0 => certificate.as_ref().to_vec(),
        1 => match webpki::EndEntityCert::try_from(certificate) {
            Ok(parsed) => parsed.subject_public_key_info().as_ref().to_vec(),
            Err(_) => return false,
        },
        _ => return false,
    };
    match record.matching {
        0 => data == record.data,
        1 => ring::digest::digest(&ring::digest::SHA256, &data).as_ref() == record.data,
        2 => ring::digest::digest(&ring::digest::SHA512, &data).as_ref() == record.data,
        _ => false,
    }
}

#[derive(Debug)]
struct DaneVerifier {
    records: Vec<Tlsa>,
    /// The handshake's signatures are checked as for any certificate;
    /// its provider serves DANE-TA's chain check too.
    signatures: AnyCertificate,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the server's own certificate or key; no name or date
        // is checked (RFC 7672 §3.1.1).
        if self
            .records
            .iter()
            .any(|r| r.usage == 3 && matches(r, end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate the server sent is the trust anchor of
        // a chain to its own, which must name the host (§3.1.2).
        for record in self.records.iter().filter(|r| r.usage == 2) {
            for anchor in intermediates.iter().filter(|c| matches(record, c)) {
                let mut roots = rustls::RootCertStore::empty();
                if roots.add(anchor.clone()).is_err() {
                    continue;
                }
                let verifier = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&self.signatures.provider),
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                if verifier
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .is_ok()
                {
                    return Ok(ServerCertVerified::assertion());
                }
            }
        }
        Err(rustls::Error::General(
            "no TLSA record matches the server's certificate (DANE)".to_string(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_match_the_certificate_or_its_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.dane.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let sha256 = |data: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, data)
                .as_ref()
                .to_vec()
        };
        let record = |usage, selector, matching, data| Tlsa {
            usage,
            selector,
            matching,
            data,
        };
        assert!(matches(&record(3, 1, 1, sha256(&spki)), &der));
        assert!(matches(&record(3, 0, 1, sha256(der.as_ref())), &der));
        assert!(matches(&record(3, 0, 0, der.as_ref().to_vec()), &der));
        assert!(!matches(&record(3, 1, 1, sha256(b"another key")), &der));
        assert!(usable(&record(2, 0, 1, vec![])));
        assert!(!usable(&record(1, 1, 1, vec![])));
        assert!(!usable(&record(3, 2, 1, vec![])));
    }
}
