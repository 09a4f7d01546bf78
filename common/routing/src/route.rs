//! Where a queued recipient's delivery goes, decided once, in
//! postern-queue, as Postfix's trivial-rewrite decides it: to
//! postern-local for the host's own name and the local and virtual
//! domains, else off the host, to the next hop the `transport` map or
//! `[remote] relayhost` names, or the domain's own MX hosts. Only
//! `postern.toml`, the domains map and the transport map decide; aliases,
//! accounts and `.forward` files are postern-local's to follow, as root,
//! for the local ones.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use postern_config::{DOMAINS_FILE, Domains, NextHop, TRANSPORT_FILE, Transport, TransportMap};
use postern_queue_format::Status;

use crate::REMOTE_DELIVERY;

/// A recipient's route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// postern-local delivers it (and may find it is an alias to
    /// elsewhere, which it queues again).
    Local,
    /// Another host's: postern-remote's, to `destination` (the domain
    /// itself for its MX hosts, or a next hop).
    Remote { domain: String, destination: String },
    /// Another host's, but the transport map's line for its domain is
    /// bad: deferred (4.3.5) until the line is fixed.
    Held(Status),
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
    transport: TransportMap,
    transport_stamp: Option<(i64, i64, u64)>,
    relayhost: Option<NextHop>,
    /// The SRS domain: its addresses are bounces postern-local sends back.
    srs_domain: String,
}

/// A file's change time and inode, to see that it changed.
fn stamp_of(path: &Path) -> Option<(i64, i64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ctime(), m.ctime_nsec(), m.ino()))
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
            transport: TransportMap::default(),
            transport_stamp: None,
            relayhost: None,
            srs_domain: String::new(),
        };
        router.refresh();
        router
    }

    /// The SRS domain, whose addresses postern-local takes back.
    pub fn with_srs_domain(mut self, domain: &str) -> Router {
        self.srs_domain = domain.to_ascii_lowercase();
        self
    }

    /// Every other host's mail through `relayhost`, but for the transport
    /// map's domains.
    pub fn with_relayhost(mut self, relayhost: Option<NextHop>) -> Router {
        self.relayhost = relayhost;
        self
    }

    /// Reads the domains map again if it changed since it was read
    /// (`postern-admin domain add`, an edit): a stat, most of the time.
    pub fn refresh(&mut self) {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let transport = stamp_of(&dir.join(TRANSPORT_FILE));
        if transport != self.transport_stamp {
            // A transport map that cannot be read holds every remote
            // domain's mail, as a bad line holds its domain's.
            self.transport = TransportMap::load(dir).unwrap_or_else(|_| TransportMap::unreadable());
            self.transport_stamp = transport;
        }
        let stamp = stamp_of(&self.path);
        if stamp.is_some() && stamp == self.stamp {
            return;
        }
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
            || (!self.srs_domain.is_empty() && domain == self.srs_domain)
            || self.domains.kind(&domain).is_some()
            || self.domains.is_broken(&domain)
            || !self.readable;
        if local {
            return Route::Local;
        }
        if self.transport.is_broken(&domain) {
            return Route::Held(Status::new(
                "4.3.5",
                format!("the transport map's line for {domain} is bad (postern-admin check)"),
            ));
        }
        let hop = match self.transport.get(&domain) {
            Some(Transport::Mx) => None,
            Some(Transport::Via(hop)) => Some(hop),
            None => self.relayhost.as_ref(),
        };
        let destination = hop.map_or_else(|| domain.clone(), ToString::to_string);
        Route::Remote {
            domain,
            destination,
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
                domain: "remote.example".into(),
                destination: "remote.example".into()
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
    fn the_transport_map_then_the_relayhost_name_the_next_hop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DOMAINS_FILE),
            "example.test virtual
",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(TRANSPORT_FILE),
            "partner.test [10.0.0.5]:2525
own.test mx
bad.test [oops
",
        )
        .unwrap();
        let relayhost = NextHop::parse("[smtp.isp.test]:587").unwrap();
        let router = Router::load(dir.path(), "mx.host.test").with_relayhost(Some(relayhost));
        let destination = |address: &str| match router.route(address) {
            Route::Remote { destination, .. } => destination,
            other => panic!("{other:?}"),
        };
        assert_eq!(destination("a@partner.test"), "[10.0.0.5]:2525");
        assert_eq!(destination("a@own.test"), "own.test");
        assert_eq!(destination("a@anywhere.test"), "[smtp.isp.test]:587");
        // A bad line holds its domain's mail, never sends it elsewhere.
        let Route::Held(status) = router.route("a@bad.test") else {
            panic!("not held");
        };
        assert_eq!(status.code.to_string(), "4.3.5");
        assert_eq!(router.route("a@example.test"), Route::Local);
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
