//! What mail to other hosts needs: the transport and tls_policy maps'
//! lines, and a credentials file that postern-remote can read and no one
//! else.

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
    if credentials.as_os_str().is_empty() {
        return errors;
    }
    let shown = credentials.display();
    match std::fs::metadata(credentials) {
        Err(e) => errors.push(format!("relayhost_credentials {shown}: {e}")),
        Ok(metadata) => {
            if metadata.mode() & 0o077 != 0 {
                errors.push(format!(
                    "relayhost_credentials {shown}: mode {:o}, but only its owner may read it (chmod 600): postern-remote does not use it so",
                    metadata.mode() & 0o777
                ));
            }
            let user = &settings.remote.user;
            if let Some((uid, _, _)) = user.resolve()
                && metadata.uid() != uid
            {
                errors.push(format!(
                    "relayhost_credentials {shown}: owned by uid {}, not by [remote] user \"{user}\", who must read it",
                    metadata.uid()
                ));
            }
        }
    }
    errors
}
