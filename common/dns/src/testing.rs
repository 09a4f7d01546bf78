//! For tests of this crate and of the programs that use it: a real
//! authoritative server (nsd, which `make test` installs) serving a zone
//! on loopback. Built only with the `testing` feature.

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
        let address: SocketAddr = address.parse().expect("an ADDRESS:PORT");
        assert!(
            Path::new("/usr/sbin/nsd").exists(),
            "nsd is missing: make test installs it (apt-get install nsd)"
        );
        let dir = tempfile::tempdir().unwrap();
        let (ip, port) = (address.ip(), address.port());
        let path = |name: &str| dir.path().join(name).display().to_string();
        let zone = format!("{ZONE_HEAD}{records}");
        std::fs::write(dir.path().join("test.zone"), zone).unwrap();
        let config = format!(
            "server:\n  ip-address: {ip}@{port}\n  username: \"\"\n  chroot: \"\"\n  database: \"\"\n  \
         zonesdir: \"{dir}\"\n  pidfile: \"{pid}\"\n  xfrdfile: \"{xfrd}\"\n  zonelistfile: \"{list}\"\n  \
         logfile: \"{log}\"\n  server-count: 1\n  verbosity: 1\nremote-control:\n  control-enable: no\n\
         zone:\n  name: \"test.\"\n  zonefile: \"test.zone\"\n",
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
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "nsd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        nsd
    }
}
