//! The host's SRS, as its settings name it: the one way the resolver (to
//! take back an SRS address) and postern-local (to rewrite a forward's
//! sender) read the secrets.

use postern_config::Settings;
use postern_srs::Srs;

/// The host's SRS; `Ok(None)` when `[srs] domain` is empty, an error
/// when the secrets cannot be read.
pub fn load(settings: &Settings) -> Result<Option<Srs>, String> {
    let srs = &settings.srs;
    if srs.domain.is_empty() {
        return Ok(None);
    }
    let path = &srs.secrets_file;
    let secrets = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the SRS secrets {}: {e}", path.display()))?;
    Srs::new(&secrets, &srs.domain.to_ascii_lowercase(), srs.max_age)
        .map(Some)
        .ok_or_else(|| format!("the SRS secrets {} hold no secret", path.display()))
}

/// Whether `domain` is the host's SRS domain.
pub fn is_srs_domain(settings: &Settings, domain: &str) -> bool {
    !settings.srs.domain.is_empty() && settings.srs.domain.eq_ignore_ascii_case(domain)
}
