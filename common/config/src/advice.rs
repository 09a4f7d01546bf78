//! Settings that load but will not do what they seem to: `postern-admin
//! check` warns of each, and the program concerned says the same at start.

use postern_listen::SmtpPort;
use postern_sasl::Mechanism;

use crate::Settings;

impl Settings {
    /// A submission port where no client can authenticate: no TLS, and no
    /// mechanism allowed in the clear (PLAIN and LOGIN need TLS unless
    /// `plaintext_auth`; CRAM-MD5 works without). Its clients can then
    /// send to local addresses only, seldom what it was opened for.
    pub fn submission_without_tls(&self) -> Option<String> {
        let smtpd = &self.smtpd;
        let in_the_clear = smtpd.auth_mechanisms.iter().any(|m| match m {
            Mechanism::CramMd5 => true,
            Mechanism::Plain | Mechanism::Login => smtpd.plaintext_auth,
        });
        if self.tls.is_configured() || in_the_clear {
            return None;
        }
        let spec = smtpd
            .listen
            .iter()
            .find(|listen| listen.kind == SmtpPort::Submission)?
            .to_string();
        Some(format!(
            "postern.toml: [smtpd] listen {spec:?}: without [tls] no client can authenticate there (PLAIN and LOGIN need TLS unless plaintext_auth), so it takes mail for local addresses only"
        ))
    }
}
