//! Whether an address takes mail here: the resolver of postern-local,
//! asked before a message is accepted, so an unknown user is refused at
//! RCPT rather than bounced later.

use postern_auth_protocol::Reply;
use postern_config::{Address, Config};
use postern_routing::{Destination, ResolveError};

pub fn lookup(config: &Config, text: &str) -> Reply {
    let address = match Address::parse(text) {
        Ok(address) => address,
        Err(e) => return Reply::Unknown(format!("5.1.3 bad address: {e}")),
    };
    let resolution = postern_routing::Resolver::of(config).resolve(&address);
    if let Some((_, error)) = resolution
        .failures
        .iter()
        .find(|(_, e)| matches!(e, ResolveError::BrokenMap(_) | ResolveError::Unavailable(_)))
    {
        let (code, text) = error.status();
        return Reply::Defer(format!("{code} {text}"));
    }
    if let [Destination::Remote(remote)] = resolution.destinations.as_slice()
        && *remote == address
    {
        return Reply::Remote;
    }
    let deliverable = resolution.destinations.iter().any(|d| match d {
        // A system user must exist in the passwd database.
        Destination::SystemUser { name, .. } => postern_privilege::lookup_user(name).is_some(),
        _ => true,
    });
    if deliverable {
        return Reply::Local;
    }
    match resolution.failures.first() {
        Some((_, error)) => {
            let (code, text) = error.status();
            Reply::Unknown(format!("{code} {text}"))
        }
        None => Reply::Unknown("5.1.1 user unknown".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(dir: &Path) -> Config {
        std::fs::write(
            dir.join("postern.toml"),
            "hostname = \"mx.example.test\"\nmail_root = \"/nonexistent\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("domains"),
            "example.test virtual\nbroken.test virtual\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("accounts"),
            "alice@example.test:{PLAIN}x::::::\nbad line for@broken.test\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("aliases"),
            "sales@example.test: alice@example.test\nfar@example.test: someone@elsewhere.example\n",
        )
        .unwrap();
        Config::load(dir).unwrap()
    }

    #[test]
    fn local_unknown_remote_and_deferred() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        assert_eq!(lookup(&config, "alice@example.test"), Reply::Local);
        assert_eq!(lookup(&config, "Alice+tag@Example.Test"), Reply::Local);
        assert_eq!(lookup(&config, "sales@example.test"), Reply::Local);
        // An alias that forwards elsewhere is taken: the forward goes out.
        assert_eq!(lookup(&config, "far@example.test"), Reply::Local);
        assert!(
            matches!(lookup(&config, "bob@example.test"), Reply::Unknown(t) if t.starts_with("5.1.1"))
        );
        assert_eq!(lookup(&config, "bob@elsewhere.example"), Reply::Remote);
        assert!(matches!(lookup(&config, "nonsense"), Reply::Unknown(t) if t.starts_with("5.1.3")));
        // The host's own name is a local domain of system users.
        assert!(matches!(
            lookup(&config, "no-such-user-here@mx.example.test"),
            Reply::Unknown(_)
        ));
        assert!(matches!(
            lookup(&config, "root@mx.example.test"),
            Reply::Local
        ));
    }
}
