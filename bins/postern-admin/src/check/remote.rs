//! What mail to other hosts needs: the transport and tls_policy maps'
//! lines, and secrets — the relayhost credentials and the DKIM keys —
//! that postern-remote can read and no one else.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use postern_config::{Settings, TlsPolicies, TransportMap};

pub fn errors(dir: &Path, settings: &Settings) -> Vec<String> {
    let mut errors = Vec::new();
    match TransportMap::load_checked(dir) {
        Ok((_, lines)) => errors.extend(lines.iter().map(ToString::to_string)),
        Err(e) => errors.push(e.to_string()),
    }
    match TlsPolicies::load_checked(dir) {
        Ok((_, lines)) => errors.extend(lines.iter().map(ToString::to_string)),
        Err(e) => errors.push(e.to_string()),
    }
    let credentials = &settings.remote.relayhost_credentials;
    if !credentials.as_os_str().is_empty() {
        secret(settings, "relayhost_credentials", credentials, &mut errors);
    }
    let keys = dir.join("dkim");
    for domain in std::fs::read_dir(&keys).into_iter().flatten().flatten() {
        for key in std::fs::read_dir(domain.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            secret(settings, "DKIM key", &key.path(), &mut errors);
        }
    }
    errors
}

/// A file only the `[remote] user` may read: its own, mode 0600 or 0400.
fn secret(settings: &Settings, what: &str, path: &Path, errors: &mut Vec<String>) {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) => return errors.push(format!("{what} {shown}: {e}")),
    };
    if metadata.mode() & 0o077 != 0 {
        errors.push(format!(
            "{what} {shown}: mode {:o}, but only its owner may read it (chmod 600)",
            metadata.mode() & 0o777
        ));
    }
    let user = &settings.remote.user;
    if let Some((uid, _, _)) = user.resolve()
        && metadata.uid() != uid
    {
        errors.push(format!(
            "{what} {shown}: owned by uid {}, not by [remote] user \"{user}\", who must read it",
            metadata.uid()
        ));
    }
}
