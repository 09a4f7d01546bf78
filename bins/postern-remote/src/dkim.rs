//! DKIM signing (RFC 6376, relaxed/relaxed; rsa-sha256 and, RFC 8463,
//! ed25519-sha256), with mail-auth on ring. The keys live in the
//! configuration directory as `dkim/DOMAIN/SELECTOR.pem` (PKCS#8, or
//! PKCS#1 for RSA), readable by postern-remote alone, as `postern-admin
//! dkim keygen` writes them; a message whose `From:` domain has keys is
//! signed with each (an RSA and an Ed25519 selector side by side, say),
//! once, when its bytes are read for the first transaction, so every
//! copy this worker sends carries the same signatures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tracing::warn;

/// The directory of the keys, in the configuration directory.
pub const DKIM_DIR: &str = "dkim";

/// The fields signed, where present: those RFC 6376 §5.4.1 recommends.
/// `From` is listed twice, so that a `From:` added on the way breaks the
/// signature (oversigning).
const SIGNED: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// A selector and the signer of its key.
type Selector = (String, DkimSigner<DkimKey, Done>);

/// The signers of each sender domain, read when first needed.
pub struct Signer {
    dir: PathBuf,
    domains: HashMap<String, Vec<Selector>>,
}

impl Signer {
    pub fn new(config: &Path) -> Signer {
        Signer {
            dir: config.join(DKIM_DIR),
            domains: HashMap::new(),
        }
    }

    /// The `DKIM-Signature:` fields for `message` (LF line ends), to go
    /// before it; empty when its `From:` domain has no key.
    pub fn sign(&mut self, message: &[u8]) -> Vec<u8> {
        let Some(domain) = from_domain(message) else {
            return Vec::new();
        };
        let dir = self.dir.clone();
        let keys = self
            .domains
            .entry(domain.clone())
            .or_insert_with(|| load_keys(&dir, &domain));
        if keys.is_empty() {
            return Vec::new();
        }
        // Signed as it goes on the wire: CRLF line ends.
        let wire = postern_maildir::crlf_line_ends(message);
        let mut fields = Vec::new();
        for (selector, signer) in keys.iter() {
            match signer.sign(&wire) {
                Ok(signature) => {
                    let header = signature.to_header().replace("\r\n", "\n");
                    fields.extend_from_slice(header.as_bytes());
                }
                Err(e) => warn!("DKIM signature for {domain} (selector {selector}) failed: {e}"),
            }
        }
        fields
    }
}

fn signer(key: DkimKey, domain: &str, selector: &str) -> DkimSigner<DkimKey, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// The keys of `dir/DOMAIN/*.pem`, by selector (the file's stem), in
/// name order; a key that does not load is logged and left out.
fn load_keys(dir: &Path, domain: &str) -> Vec<Selector> {
    let Ok(entries) = std::fs::read_dir(dir.join(domain)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    files.sort();
    let mut keys = Vec::new();
    for path in files {
        let selector = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load_key(&path) {
            Ok(key) => {
                let signer = signer(key, domain, &selector);
                keys.push((selector, signer));
            }
            Err(e) => warn!("DKIM key {}: {e}", path.display()),
        }
    }
    keys
}

fn load_key(path: &Path) -> Result<DkimKey, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let der =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("not a PEM private key: {e}"))?;
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
    {
        return Ok(DkimKey::Ed25519(key));
    }
    RsaKey::<Sha256>::from_key_der(der)
        .map(DkimKey::Rsa)
        .map_err(|e| format!("neither an RSA nor an Ed25519 key: {e}"))
}

/// The domain of the first `From:` field's last address, lower-case.
fn from_domain(message: &[u8]) -> Option<String> {
    let value = postern_smtp_client::header::field(message, "from")?;
    let address = match value.rfind('<') {
        Some(start) => value[start + 1..].split('>').next().unwrap_or(""),
        None => value.trim(),
    };
    let domain = address.rsplit_once('@')?.1.trim().trim_end_matches('>');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_domain_of_plain_and_named_addresses() {
        assert_eq!(
            from_domain(b"Subject: x\nFrom: Alice <alice@Example.ORG>\n\nbody\n").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            from_domain(b"from: bob@b.test\n\n").as_deref(),
            Some("b.test")
        );
        assert_eq!(
            from_domain(b"From: \"A, B\"\n <ab@folded.test>\n\n").as_deref(),
            Some("folded.test")
        );
        assert_eq!(from_domain(b"Subject: x\n\nFrom: body@not.test\n"), None);
    }
}
