//! What a destination asks of a connection: its TLS level (`[remote] tls`,
//! or the `tls_policy` map's line for it, or the domain's MTA-STS policy
//! when no line names it), the certificate check that level means, and
//! the SMTP AUTH login for it from `relayhost_credentials`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use postern_config::{NextHop, RemoteSettings, TlsLevel, TlsPolicies};
use postern_queue_format::Status;
use postern_smtp_client::{Login, Tls};

#[derive(Clone)]
pub struct Policy {
    pub level: TlsLevel,
    /// The TLS client configuration the level calls for.
    pub tls: Arc<rustls::ClientConfig>,
    pub login: Option<Login>,
    /// Whether a tls_policy line decided the level: it wins over MTA-STS.
    pub explicit: bool,
    /// What demands the level, when it is not the settings (`MTA-STS
    /// policy of example.org (enforce)`): named in each failure.
    pub source: Option<String>,
}

impl Policy {
    /// The policy for `destination` (as the queue named it) and its next
    /// hop; a failure is a deferral with the reason.
    pub fn for_destination(
        dir: &Path,
        settings: &RemoteSettings,
        destination: &str,
        hop: &NextHop,
    ) -> Result<Policy, Status> {
        let policies = TlsPolicies::load(dir)
            .map_err(|e| Status::new("4.3.5", format!("the tls_policy map: {e}")))?;
        let level = policies.level(destination, hop.host(), settings.tls);
        let explicit = policies.names(destination, hop.host());
        let tls = match level {
            TlsLevel::Verify => verified(&settings.ca_file)?,
            _ => crate::opportunistic::client_config()
                .map_err(|e| Status::new("4.7.5", format!("TLS: {e}")))?,
        };
        let login = match settings.relayhost_credentials.as_os_str().is_empty() {
            true => None,
            false => login_for(&settings.relayhost_credentials, destination, hop)?,
        };
        Ok(Policy {
            level,
            tls,
            login,
            explicit,
            source: None,
        })
    }

    /// This policy as an MTA-STS policy in `enforce` mode demands it: TLS
    /// with a certificate valid for each MX host.
    pub fn enforced_by(&self, source: String, ca_file: &Path) -> Result<Policy, Status> {
        Ok(Policy {
            level: TlsLevel::Verify,
            tls: verified(ca_file)?,
            source: Some(source),
            ..self.clone()
        })
    }

    /// No policy but opportunistic TLS: an admin's test from the command
    /// line.
    pub fn opportunistic() -> Result<Policy, Status> {
        let tls = crate::opportunistic::client_config()
            .map_err(|e| Status::new("4.7.5", format!("TLS: {e}")))?;
        Ok(Policy {
            level: TlsLevel::May,
            tls,
            login: None,
            explicit: false,
            source: None,
        })
    }

    /// What the client core is told.
    pub fn core_tls(&self) -> Tls {
        match self.level {
            TlsLevel::None => Tls::Never,
            TlsLevel::May => Tls::Opportunistic,
            TlsLevel::Encrypt | TlsLevel::Verify => Tls::Required,
        }
    }
}

/// The TLS configuration that checks certificates under `ca_file`.
pub fn verified(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, Status> {
    postern_tls::client_config(ca_file)
        .map(Arc::new)
        .map_err(|e| Status::new("4.7.5", format!("ca_file: {e}")))
}

/// The login for `destination` in the credentials file: `NEXTHOP
/// user:password` lines, NEXTHOP as the queue names the destination (or
/// its host alone). The file must be readable by its owner alone: a
/// password others could read is not used.
fn login_for(path: &Path, destination: &str, hop: &NextHop) -> Result<Option<Login>, Status> {
    let shown = path.display();
    let metadata = std::fs::metadata(path)
        .map_err(|e| Status::new("4.3.5", format!("relayhost_credentials {shown}: {e}")))?;
    if metadata.mode() & 0o077 != 0 {
        return Err(Status::new(
            "4.3.5",
            format!(
                "relayhost_credentials {shown} is readable by others than its owner (chmod 600)"
            ),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Status::new("4.3.5", format!("relayhost_credentials {shown}: {e}")))?;
    let wanted = [destination.to_ascii_lowercase(), hop.host().to_string()];
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, login)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if !wanted.contains(&key.to_ascii_lowercase()) {
            continue;
        }
        let Some((user, password)) = login.trim().split_once(':') else {
            return Err(Status::new(
                "4.3.5",
                format!(
                    "relayhost_credentials {shown}: the line for {key} is not `{key} user:password`"
                ),
            ));
        };
        return Ok(Some(Login {
            user: user.to_string(),
            password: password.to_string(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_login_by_next_hop_from_a_private_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "# next hop, user:password\n[smtp.isp.test]:587 me@isp.test:pass word:x\nother.test  u:p\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let hop = NextHop::parse("[smtp.isp.test]:587").unwrap();
        let login = login_for(&path, "[smtp.isp.test]:587", &hop)
            .unwrap()
            .unwrap();
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("me@isp.test", "pass word:x")
        );
        let other = NextHop::parse("other.test").unwrap();
        assert_eq!(
            login_for(&path, "other.test", &other)
                .unwrap()
                .unwrap()
                .user,
            "u"
        );
        let none = NextHop::parse("nobody.test").unwrap();
        assert!(login_for(&path, "nobody.test", &none).unwrap().is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = login_for(&path, "other.test", &other).unwrap_err();
        assert!(
            refused.text.contains("readable by others"),
            "{}",
            refused.text
        );
    }
}
