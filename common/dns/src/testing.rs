//! For tests of this crate and of the programs that use it: a real
//! authoritative server (nsd, which `make test` installs) serving a zone
//! on loopback, signed with DNSSEC when asked (ldns-signzone), and a
//! validating resolver (unbound) that trusts the zone's key. Built only
//! with the `testing` feature.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What every test zone starts with: its origin, SOA and name server.
const ZONE_HEAD: &str = "\
$ORIGIN test.
$TTL 300
@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300
@ IN NS ns.test.
ns IN A 127.0.0.1
";

pub struct Nsd {
    child: Child,
    /// Where it answers, UDP and TCP.
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port no one uses now, for UDP and TCP.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Nsd {
    /// nsd serving the zone `test.` with `records` (zone-file lines
    /// relative to `test.`, after its SOA and NS) on a free port of
    /// 127.0.0.1.
    pub fn start(records: &str) -> Nsd {
        Nsd::start_at(&format!("127.0.0.1:{}", free_port()), records)
    }

    /// `start`, on `address` (`127.0.0.60:53`, for a client that takes
    /// no port: the libc resolver).
    pub fn start_at(address: &str, records: &str) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("test.zone"),
            format!("{ZONE_HEAD}{records}"),
        )
        .unwrap();
        Nsd::serve(address, dir, "test.zone")
    }

    /// `start`, the zone signed (ECDSA P-256, a key-signing and a
    /// zone-signing key, NSEC): the nsd, and the key-signing key's
    /// DNSKEY record, for a validator's trust anchor.
    pub fn start_signed(records: &str) -> (Nsd, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("test.zone"),
            format!("{ZONE_HEAD}{records}"),
        )
        .unwrap();
        let keygen = |ksk: bool| -> String {
            let mut command = Command::new("ldns-keygen");
            command
                .current_dir(dir.path())
                .args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                command.arg("-k");
            }
            let out = command
                .arg("test.")
                .output()
                .expect("ldns-keygen (make test installs ldnsutils)");
            assert!(
                out.status.success(),
                "ldns-keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (zsk, ksk) = (keygen(false), keygen(true));
        let out = Command::new("ldns-signzone")
            .current_dir(dir.path())
            .args(["-f", "test.zone.signed", "test.zone", &zsk, &ksk])
            .output()
            .expect("ldns-signzone");
        assert!(
            out.status.success(),
            "ldns-signzone: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let anchor = std::fs::read_to_string(dir.path().join(format!("{ksk}.key")))
            .unwrap()
            .lines()
            .find(|l| l.contains("DNSKEY"))
            .unwrap()
            .split(';')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let nsd = Nsd::serve(
            &format!("127.0.0.1:{}", free_port()),
            dir,
            "test.zone.signed",
        );
        (nsd, anchor)
    }

    fn serve(address: &str, dir: tempfile::TempDir, zone: &str) -> Nsd {
        let address: SocketAddr = address.parse().expect("an ADDRESS:PORT");
        assert!(
            Path::new("/usr/sbin/nsd").exists(),
            "nsd is missing: make test installs it (apt-get install nsd)"
        );
        let (ip, port) = (address.ip(), address.port());
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            "server:\n  ip-address: {ip}@{port}\n  username: \"\"\n  chroot: \"\"\n  database: \"\"\n  \
         zonesdir: \"{dir}\"\n  pidfile: \"{pid}\"\n  xfrdfile: \"{xfrd}\"\n  zonelistfile: \"{list}\"\n  \
         logfile: \"{log}\"\n  server-count: 1\n  verbosity: 1\nremote-control:\n  control-enable: no\n\
         zone:\n  name: \"test.\"\n  zonefile: \"{zone}\"\n",
            dir = dir.path().display(),
            pid = path("nsd.pid"),
            xfrd = path("xfrd.state"),
            list = path("zone.list"),
            log = path("nsd.log"),
        );
        std::fs::write(dir.path().join("nsd.conf"), config).unwrap();
        let child = Command::new("/usr/sbin/nsd")
            .arg("-d")
            .arg("-c")
            .arg(dir.path().join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nsd = Nsd {
            child,
            address,
            _dir: dir,
        };
        // Serving once a TCP connection is taken.
        wait_for_tcp(address, "nsd");
        nsd
    }
}

/// unbound, validating: the zone `test.` is asked of `stub` and checked
/// against `anchor` (a DNSKEY record); its answers carry the AD bit when
/// they validate, and a bogus one is SERVFAIL.
pub struct Unbound {
    child: Child,
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    pub fn start(stub: SocketAddr, anchor: &str) -> Unbound {
        assert!(
            Path::new("/usr/sbin/unbound").exists(),
            "unbound is missing: make test installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-not-query-localhost: no\n  \
             username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  \
             use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: 1\n  \
             access-control: 127.0.0.0/8 allow\n  module-config: \"validator iterator\"\n  \
             trust-anchor: \"{anchor}\"\n  harden-dnssec-stripped: yes\n  \
             auto-trust-anchor-file: \"\"\n  local-zone: \"test.\" nodefault\nremote-control:\n  control-enable: no\n\
             stub-zone:\n  name: \"test.\"\n  stub-addr: {ip}@{stub_port}\n",
            dir = dir.path().display(),
            ip = stub.ip(),
            stub_port = stub.port(),
        );
        std::fs::write(dir.path().join("unbound.conf"), config).unwrap();
        let child = Command::new("/usr/sbin/unbound")
            .arg("-d")
            .arg("-c")
            .arg(dir.path().join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let unbound = Unbound {
            child,
            address,
            _dir: dir,
        };
        wait_for_tcp(address, "unbound");
        unbound
    }
}

/// Waits (up to 20 s) until `address` takes TCP connections: the server
/// `name` is serving.
fn wait_for_tcp(address: SocketAddr, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
