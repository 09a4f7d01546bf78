//! Where a queued recipient's delivery goes, decided once, in
//! postern-queue, as Postfix's trivial-rewrite decides it: to
//! postern-local for the host's own name and the local and virtual
//! domains, else off the host. Only `postern.toml`'s hostname and the
//! domains map decide; aliases, accounts and `.forward` files are
//! postern-local's to follow, as root, for the local ones.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use postern_config::{DOMAINS_FILE, Domains};
use postern_queue_format::Status;

use crate::REMOTE_DELIVERY;

/// A recipient's route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// postern-local delivers it (and may find it is an alias to
    /// elsewhere, which it queues again).
    Local,
    /// Another host's: outbound delivery's, to the domain's MX.
    Remote { domain: String },
}

/// The routing table: the host's name and its domains, read again when
/// the domains map changes.
pub struct Router {
    hostname: String,
    path: PathBuf,
    domains: Domains,
    /// The map's change time and inode when it was read.
    stamp: Option<(i64, i64, u64)>,
    /// Whether it could be read then.
    readable: bool,
}

impl Router {
    /// The router of the configuration in `dir`. A domains map that
    /// cannot be read routes everything locally, where postern-local
    /// defers it with the reason (a map that cannot be read is an error
    /// there, never an empty map).
    pub fn load(dir: &Path, hostname: &str) -> Router {
        let mut router = Router {
            hostname: hostname.to_ascii_lowercase(),
            path: dir.join(DOMAINS_FILE),
            domains: Domains::default(),
            stamp: None,
            readable: false,
        };
        router.refresh();
        router
    }

    /// Reads the domains map again if it changed since it was read
    /// (`postern-admin domain add`, an edit): a stat, most of the time.
    pub fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ctime(), m.ctime_nsec(), m.ino()));
        if stamp.is_some() && stamp == self.stamp {
            return;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let loaded = Domains::load(dir);
        self.readable = loaded.is_ok();
        self.domains = loaded.unwrap_or_default();
        self.stamp = stamp;
    }

    pub fn route(&self, address: &str) -> Route {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return Route::Local;
        };
        let domain = domain.to_ascii_lowercase();
        let local = domain == self.hostname
            || self.domains.kind(&domain).is_some()
            || self.domains.is_broken(&domain)
            || !self.readable;
        match local {
            true => Route::Local,
            false => Route::Remote { domain },
        }
    }
}

/// The status of a recipient of another host that reached postern-local
/// (the domains map changed after the queue routed it, or an admin ran
/// it by hand): deferred, and the queue routes it off the host at the
/// next try.
pub fn remote_deferral(address: &str) -> Status {
    Status::new(
        "4.3.0",
        format!(
            "<{address}> is not in a local or virtual domain, so postern-local does not deliver it: {REMOTE_DELIVERY}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hostname_and_the_maps_domains_are_local_and_the_rest_remote() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DOMAINS_FILE),
            "example.test virtual\nlocal.test local\nbad.test nonsense words\n",
        )
        .unwrap();
        let mut router = Router::load(dir.path(), "MX.Host.test");
        assert_eq!(router.route("a@example.test"), Route::Local);
        assert_eq!(router.route("a@LOCAL.test"), Route::Local);
        assert_eq!(router.route("root@mx.host.test"), Route::Local);
        assert_eq!(router.route("postmaster"), Route::Local);
        // A broken line's domain stays local: postern-local defers it
        // (4.3.5) until the line is fixed.
        assert_eq!(router.route("a@bad.test"), Route::Local);
        assert_eq!(
            router.route("friend@Remote.example"),
            Route::Remote {
                domain: "remote.example".into()
            }
        );
        // A domain added later is local from the next refresh on.
        std::fs::write(
            dir.path().join(DOMAINS_FILE),
            "example.test virtual\nremote.example virtual\n",
        )
        .unwrap();
        router.refresh();
        assert_eq!(router.route("friend@remote.example"), Route::Local);
    }

    #[test]
    fn an_unreadable_map_routes_everything_to_postern_local() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(DOMAINS_FILE)).unwrap();
        let router = Router::load(dir.path(), "mx.host.test");
        assert_eq!(router.route("friend@remote.example"), Route::Local);
    }

    #[test]
    fn remote_mail_is_deferred_with_the_common_words() {
        let status = remote_deferral("friend@remote.example");
        assert!(status.is_temporary());
        assert!(status.to_string().starts_with(
            "4.3.0 <friend@remote.example> is not in a local or virtual domain, so postern-local does not deliver it: such mail leaves the host"
        ));
    }
}
