//! Password schemes of Dovecot passwd-files, so a host moving from Dovecot
//! keeps its accounts file as it is.
//!
//! A stored password is `{SCHEME}secret`, or a bare crypt(3) string, which
//! Dovecot reads as `{CRYPT}`. The scheme fixes which SASL mechanisms can be
//! checked against it: a one-way hash only verifies a password the client
//! sends in the clear (PLAIN, LOGIN, USER/PASS); CRAM-MD5 also needs the
//! HMAC-MD5 context (`{CRAM-MD5}`) or the plain text; APOP needs the plain
//! text.
//!
//! Every comparison of secret material is constant-time.

mod cram_md5;
mod md5_crypt;
mod secret;

pub use cram_md5::CramMd5Context;
pub use secret::Secret;

use password_hash::PasswordVerifier;
use subtle::ConstantTimeEq;

/// A password as the accounts file stores it.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredPassword {
    /// `{PLAIN}`, `{CLEAR}` or `{CLEARTEXT}`: the password itself.
    Plain(Secret),
    /// `{CRAM-MD5}` / `{HMAC-MD5}`: Dovecot's precomputed HMAC-MD5 context.
    CramMd5(CramMd5Context),
    /// A crypt(3) string in modular crypt format, under any of Dovecot's
    /// crypt scheme names or none; `Crypt` records which form it is.
    Crypt(Crypt, String),
    /// A form this build cannot verify; kept so the line still loads and
    /// `postern-admin check` can name it. Every check against it fails.
    Unsupported(String),
}

/// The crypt(3) algorithms the modular crypt prefix selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crypt {
    Md5,
    Sha256,
    Sha512,
    Bcrypt,
    Yescrypt,
    Argon2,
}

/// The ways a client can prove it knows a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// The password itself (SASL PLAIN and LOGIN, POP3 USER/PASS, IMAP LOGIN).
    Cleartext,
    /// RFC 2195 CRAM-MD5.
    CramMd5,
    /// RFC 1939 APOP.
    Apop,
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme_name())
    }
}

impl StoredPassword {
    /// Reads the password field of a passwd-file line. Never fails: a scheme
    /// this build does not know becomes `Unsupported`.
    pub fn parse(field: &str) -> StoredPassword {
        let Some((scheme, secret)) = split_scheme(field) else {
            return Self::crypt_form(field, field);
        };
        match scheme.to_ascii_uppercase().as_str() {
            "PLAIN" | "CLEAR" | "CLEARTEXT" => StoredPassword::Plain(Secret::new(secret)),
            "CRAM-MD5" | "HMAC-MD5" => match CramMd5Context::from_hex(secret) {
                Some(context) => StoredPassword::CramMd5(context),
                None => StoredPassword::Unsupported(field.to_string()),
            },
            "CRYPT" | "DES-CRYPT" | "MD5-CRYPT" | "MD5" | "SHA256-CRYPT" | "SHA512-CRYPT"
            | "BLF-CRYPT" | "ARGON2I" | "ARGON2ID" => Self::crypt_form(secret, field),
            _ => StoredPassword::Unsupported(field.to_string()),
        }
    }

    fn crypt_form(hash: &str, field: &str) -> StoredPassword {
        let algorithm = if hash.starts_with("$1$") {
            Crypt::Md5
        } else if hash.starts_with("$5$") {
            Crypt::Sha256
        } else if hash.starts_with("$6$") {
            Crypt::Sha512
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            Crypt::Bcrypt
        } else if hash.starts_with("$y$") {
            Crypt::Yescrypt
        } else if hash.starts_with("$argon2") {
            Crypt::Argon2
        } else {
            return StoredPassword::Unsupported(field.to_string());
        };
        StoredPassword::Crypt(algorithm, hash.to_string())
    }

    /// The scheme's name as Dovecot writes it, for logs and `check`.
    pub fn scheme_name(&self) -> &'static str {
        match self {
            StoredPassword::Plain(_) => "PLAIN",
            StoredPassword::CramMd5(_) => "CRAM-MD5",
            StoredPassword::Crypt(Crypt::Md5, _) => "MD5-CRYPT",
            StoredPassword::Crypt(Crypt::Sha256, _) => "SHA256-CRYPT",
            StoredPassword::Crypt(Crypt::Sha512, _) => "SHA512-CRYPT",
            StoredPassword::Crypt(Crypt::Bcrypt, _) => "BLF-CRYPT",
            StoredPassword::Crypt(Crypt::Yescrypt, _) => "CRYPT",
            StoredPassword::Crypt(Crypt::Argon2, _) => "ARGON2ID",
            StoredPassword::Unsupported(_) => "unsupported",
        }
    }

    pub fn is_supported(&self) -> bool {
        !matches!(self, StoredPassword::Unsupported(_))
    }

    /// Whether a login by `mechanism` can be checked against this password.
    pub fn supports(&self, mechanism: Mechanism) -> bool {
        match (self, mechanism) {
            (StoredPassword::Unsupported(_), _) => false,
            (_, Mechanism::Cleartext) => true,
            (StoredPassword::Plain(_), _) => true,
            (StoredPassword::CramMd5(_), Mechanism::CramMd5) => true,
            _ => false,
        }
    }

    /// Checks a password sent in the clear.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredPassword::Plain(stored) => stored.as_bytes().ct_eq(password).into(),
            StoredPassword::CramMd5(stored) => CramMd5Context::from_password(password) == *stored,
            StoredPassword::Crypt(algorithm, hash) => verify_crypt(*algorithm, hash, password),
            StoredPassword::Unsupported(_) => false,
        }
    }

    /// Checks an RFC 2195 CRAM-MD5 response: `digest` is the client's
    /// HMAC-MD5 of `challenge`, in hex.
    pub fn verify_cram_md5(&self, challenge: &[u8], digest: &str) -> bool {
        match self.cram_md5_context() {
            Some(context) => hex(&context.hmac(challenge))
                .as_bytes()
                .ct_eq(digest.to_ascii_lowercase().as_bytes())
                .into(),
            None => false,
        }
    }

    /// Checks an RFC 1939 APOP digest: MD5 of the greeting's `timestamp`
    /// followed by the password, in hex. Only a stored plain password
    /// can answer it.
    pub fn verify_apop(&self, timestamp: &[u8], digest: &str) -> bool {
        use md5::{Digest, Md5};
        match self {
            StoredPassword::Plain(secret) => {
                let mut md5 = Md5::new();
                md5.update(timestamp);
                md5.update(secret.as_bytes());
                hex(&md5.finalize())
                    .as_bytes()
                    .ct_eq(digest.to_ascii_lowercase().as_bytes())
                    .into()
            }
            _ => false,
        }
    }

    /// The HMAC-MD5 context for CRAM-MD5, if this password yields one.
    pub fn cram_md5_context(&self) -> Option<CramMd5Context> {
        match self {
            StoredPassword::Plain(secret) => Some(CramMd5Context::from_password(secret.as_bytes())),
            StoredPassword::CramMd5(context) => Some(context.clone()),
            _ => None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `{SCHEME}rest` → (`SCHEME`, `rest`); a field without braces has no scheme.
fn split_scheme(field: &str) -> Option<(&str, &str)> {
    let rest = field.strip_prefix('{')?;
    let close = rest.find('}')?;
    Some((&rest[..close], &rest[close + 1..]))
}

fn verify_crypt(algorithm: Crypt, hash: &str, password: &[u8]) -> bool {
    match algorithm {
        Crypt::Md5 => match md5_crypt::hash_with_setting(password, hash) {
            Some(computed) => computed.as_bytes().ct_eq(hash.as_bytes()).into(),
            None => false,
        },
        Crypt::Sha256 | Crypt::Sha512 => sha_crypt::ShaCrypt::default()
            .verify_password(password, hash)
            .is_ok(),
        // bcrypt's own verify compares in constant time.
        Crypt::Bcrypt => bcrypt::verify(password, hash).unwrap_or(false),
        Crypt::Yescrypt => yescrypt::Yescrypt::default()
            .verify_password(password, hash)
            .is_ok(),
        Crypt::Argon2 => argon2::Argon2::default()
            .verify_password(password, hash)
            .is_ok(),
    }
}

/// Hashes a new password in the scheme Postern writes: `{SHA512-CRYPT}`,
/// which Dovecot, Courier and glibc all read.
pub fn hash_sha512_crypt(password: &[u8]) -> Result<String, Error> {
    use password_hash::PasswordHasher;
    // 12 random bytes give the full 16-character salt crypt(3) allows.
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    let hash = sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password, &salt)
        .map_err(|e| Error::Hash(e.to_string()))?;
    Ok(format!("{{SHA512-CRYPT}}{hash}"))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no random numbers from the system: {0}")]
    Random(String),
    #[error("cannot hash password: {0}")]
    Hash(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_examples_of_cram_md5_and_apop() {
        // RFC 2195 section 2: user tim, password tanstaaftanstaaf.
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let digest = "b913a602c7eda7a495b4e6e7334d3890";
        let plain = StoredPassword::parse("{PLAIN}tanstaaftanstaaf");
        assert!(plain.verify_cram_md5(challenge, digest));
        assert!(plain.verify_cram_md5(challenge, &digest.to_uppercase()));
        assert!(!plain.verify_cram_md5(b"<other@host>", digest));
        let context = CramMd5Context::from_password(b"tanstaaftanstaaf").to_hex();
        let stored = StoredPassword::parse(&format!("{{CRAM-MD5}}{context}"));
        assert!(stored.verify_cram_md5(challenge, digest));
        assert!(!stored.verify_apop(challenge, digest), "no plain text");
        // RFC 1939 section 7: the shared secret tanstaaf.
        let apop = StoredPassword::parse("{PLAIN}tanstaaf");
        let timestamp = b"<1896.697170952@dbc.mtview.ca.us>";
        assert!(apop.verify_apop(timestamp, "c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!apop.verify_apop(timestamp, "c4c9334bac560ecc979e58001b3e22fc"));
        let hashed = StoredPassword::parse(&hash_sha512_crypt(b"tanstaaf").unwrap());
        assert!(!hashed.verify_apop(timestamp, "c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!hashed.verify_cram_md5(challenge, digest));
    }

    // Each hash below was made by Dovecot 2.3's `doveadm pw -p secret`.
    const DOVECOT: &[&str] = &[
        "{SHA512-CRYPT}$6$w7N/XkNHE1zh.7UD$EGhUM9YOhxxu.wNoEnHTvhEzk05MD68q70upQ4QSlXHWbPBinfB4/.27L97oU0RqwCT/zVeeZvzPLiofKf58X1",
        "{SHA256-CRYPT}$5$OTPGQgtMVboAASv8$vdYZ5VA8GS2CYZq7zXbHUeO2ItcaBr3.yAhBTH2fLb.",
        "{MD5-CRYPT}$1$aFjZGkrY$Euk0VzFdHIDMVjr6x7RnR0",
        "{BLF-CRYPT}$2y$05$U2GEg.QkHHQlm9HGAtUvj.HXc2whrYlL/Y8hGHNlEgE1VF1gn5Ywe",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Ku25iPHr50dnSnTztADjTg$QTBr8baX8TD8jJvt+KcwC22EUO0Ki8um9LJBeudTgiM",
        "{CRYPT}$2y$05$mivuNw9imx2jZIXhA96I.O8/nWdRp9zCtvWAMyvQE4S3s/TXDSg8e",
        "{PLAIN}secret",
        "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56",
    ];

    #[test]
    fn dovecot_hashes_verify_the_right_password_only() {
        for field in DOVECOT {
            let stored = StoredPassword::parse(field);
            assert!(stored.is_supported(), "{field}");
            assert!(
                stored.verify(b"secret"),
                "{field} refused the right password"
            );
            assert!(!stored.verify(b"Secret"), "{field} took a wrong password");
            assert!(!stored.verify(b""), "{field} took an empty password");
        }
    }

    #[test]
    fn bare_crypt_strings_read_as_crypt() {
        // crypt(3) of Debian 12 (libxcrypt), yescrypt as shadow writes it
        let yescrypt = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0";
        let stored = StoredPassword::parse(yescrypt);
        assert!(matches!(stored, StoredPassword::Crypt(Crypt::Yescrypt, _)));
        assert!(stored.verify(b"secret"));
        assert!(!stored.verify(b"secreT"));
        let sha512 = DOVECOT[0].trim_start_matches("{SHA512-CRYPT}");
        assert!(StoredPassword::parse(sha512).verify(b"secret"));
    }

    #[test]
    fn written_hash_verifies_and_is_salted() {
        let a = hash_sha512_crypt(b"hunter2").unwrap();
        let b = hash_sha512_crypt(b"hunter2").unwrap();
        assert!(a.starts_with("{SHA512-CRYPT}$6$"), "{a}");
        assert_ne!(a, b);
        assert!(StoredPassword::parse(&a).verify(b"hunter2"));
        assert!(!StoredPassword::parse(&a).verify(b"hunter3"));
    }

    #[test]
    fn unknown_schemes_load_but_never_verify() {
        for field in ["{SSHA}abcd", "{CRAM-MD5}zz", "plainword", "{PLAIN", "$9$x"] {
            let stored = StoredPassword::parse(field);
            assert!(!stored.is_supported(), "{field}");
            assert!(!stored.verify(field.as_bytes()));
            assert!(!stored.verify(b"plainword"));
        }
    }

    #[test]
    fn mechanisms_follow_from_the_scheme() {
        let plain = StoredPassword::parse("{PLAIN}secret");
        let cram = StoredPassword::parse(DOVECOT[7]);
        let sha = StoredPassword::parse(DOVECOT[0]);
        assert!(plain.supports(Mechanism::Apop) && plain.supports(Mechanism::CramMd5));
        assert!(cram.supports(Mechanism::CramMd5) && !cram.supports(Mechanism::Apop));
        assert!(sha.supports(Mechanism::Cleartext) && !sha.supports(Mechanism::CramMd5));
        assert_eq!(plain.cram_md5_context(), cram.cram_md5_context());
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", StoredPassword::parse("{PLAIN}topsecret"));
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
