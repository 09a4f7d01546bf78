//! Settings that load but will not do what they seem to: `postern-admin
//! check` warns of each, and the program concerned says the same at start.

use crate::Settings;

impl Settings {
    /// A submission port where no client can authenticate: no TLS, and no
    /// mechanism allowed in the clear (PLAIN and LOGIN need TLS unless
    /// `plaintext_auth`; CRAM-MD5 works without). Its clients can then
    /// send to local addresses only, seldom what it was opened for.
    pub fn submission_without_tls(&self) -> Option<String> {
        let smtpd = &self.smtpd;
        let offered = |names: &[&str]| {
            smtpd
                .auth_mechanisms
                .iter()
                .any(|m| names.iter().any(|n| m.eq_ignore_ascii_case(n)))
        };
        let in_the_clear =
            offered(&["CRAM-MD5"]) || (smtpd.plaintext_auth && offered(&["PLAIN", "LOGIN"]));
        if self.tls.is_configured() || in_the_clear {
            return None;
        }
        let spec = smtpd
            .listen
            .iter()
            .find(|spec| spec.split_whitespace().nth(1) == Some("submission"))?;
        Some(format!(
            "postern.toml: [smtpd] listen {spec:?}: without [tls] no client can authenticate there (PLAIN and LOGIN need TLS unless plaintext_auth), so it takes mail for local addresses only"
        ))
    }
}
