//! TLS for the listeners (rustls with the ring provider): the server
//! configuration made from `[tls] certificate` and `key`, and made again
//! when either file changes, so a renewed certificate (certbot's deploy
//! hook, say) counts from the next connection without a restart. And
//! the client configuration with which a POP3 proxy checks the servers it
//! logs in to.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

pub use tokio_rustls::server::TlsStream;

/// A file's identity and age: a change of either means it was replaced.
type Stamp = Option<(u64, i64, i64)>;

pub struct Certificates {
    certificate: PathBuf,
    key: PathBuf,
    loaded: Option<([Stamp; 2], Arc<ServerConfig>)>,
}

impl Certificates {
    pub fn new(settings: &postern_config::TlsSettings) -> Certificates {
        Certificates {
            certificate: settings.certificate.clone(),
            key: settings.key.clone(),
            loaded: None,
        }
    }

    /// The acceptor for the files as they are now (see [`Self::config`]).
    pub fn acceptor(&mut self) -> (Option<TlsAcceptor>, Option<String>) {
        let (config, why) = self.config();
        (config.map(TlsAcceptor::from), why)
    }

    /// The server configuration for the files as they are now: the one
    /// made before if neither changed, else a new one; with why a changed
    /// pair did not load, in which case the last good one stays in use
    /// (if any).
    pub fn config(&mut self) -> (Option<Arc<ServerConfig>>, Option<String>) {
        let stamps = [stamp(&self.certificate), stamp(&self.key)];
        if let Some((loaded, config)) = &self.loaded
            && *loaded == stamps
        {
            return (Some(Arc::clone(config)), None);
        }
        match load(&self.certificate, &self.key) {
            Ok(config) => {
                let config = Arc::new(config);
                self.loaded = Some((stamps, Arc::clone(&config)));
                (Some(config), None)
            }
            Err(why) => match self.loaded.take() {
                Some((_, config)) => {
                    // Not tried again until the files change once more.
                    self.loaded = Some((stamps, Arc::clone(&config)));
                    let why = format!("{why}; the certificate loaded before stays in use");
                    (Some(config), Some(why))
                }
                None => (None, Some(why)),
            },
        }
    }
}

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
}

/// The server configuration of a PEM chain and key: TLS 1.2 and 1.3, ring.
pub fn load(certificate: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", certificate.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", certificate.display()))
}

/// A client configuration that trusts the certificates of `ca_file`
/// (PEM, as /etc/ssl/certs/ca-certificates.crt): TLS 1.2 and 1.3, ring.
pub fn client_config(ca_file: &Path) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!("{}: no usable certificate", ca_file.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    }

    #[test]
    fn loads_and_reloads_when_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "one.test");
        let mut certificates = Certificates::new(&postern_config::TlsSettings {
            certificate: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        });
        assert!(matches!(certificates.acceptor(), (Some(_), None)));
        let first = certificates.loaded.as_ref().unwrap().0;
        assert!(matches!(certificates.acceptor(), (Some(_), None)));
        assert_eq!(certificates.loaded.as_ref().unwrap().0, first);
        // Replaced by rename, as renewals do: a new inode.
        let new = tempfile::tempdir_in(dir.path()).unwrap();
        write_pair(new.path(), "two.test");
        std::fs::rename(new.path().join("cert.pem"), dir.path().join("cert.pem")).unwrap();
        std::fs::rename(new.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
        assert!(matches!(certificates.acceptor(), (Some(_), None)));
        assert_ne!(certificates.loaded.as_ref().unwrap().0, first);
        // A broken file keeps the last good pair, and says so once.
        std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
        assert!(matches!(certificates.acceptor(), (Some(_), Some(_))));
        assert!(matches!(certificates.acceptor(), (Some(_), None)));
    }

    #[test]
    fn missing_or_broken_files_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let why = load(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap_err();
        assert!(why.contains("cert.pem"), "{why}");
        write_pair(dir.path(), "one.test");
        std::fs::write(dir.path().join("key.pem"), "junk").unwrap();
        let why = load(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap_err();
        assert!(why.contains("key.pem"), "{why}");
    }

    #[test]
    fn a_client_trusts_only_what_its_ca_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let why = client_config(&ca).unwrap_err();
        assert!(why.contains("ca.pem"), "{why}");
        std::fs::write(&ca, "no certificate in here\n").unwrap();
        let why = client_config(&ca).unwrap_err();
        assert!(why.contains("no usable certificate"), "{why}");
        write_pair(dir.path(), "one.test");
        assert!(client_config(&dir.path().join("cert.pem")).is_ok());
    }
}
