//! MTA-STS against real parts on loopback: nsd serving the `_mta-sts` TXT
//! records, MX and address records, an HTTPS server (Python's, with a
//! certificate from a test CA that `[remote] ca_file` trusts) serving the
//! policies, and a second Postern as the MX, whose certificate the test
//! CA issued for mx.sts.test. sts.test's policy names that host: the mail
//! goes, verified. bad.test's names mx.bad.test, which the same server
//! answers for with a certificate not valid for that name: enforce mode
//! defers the mail, saying why, instead of sending it anyway.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::outbound::{admin, explain_route, message, queue_mail};
use crate::queue::{mailq, wait_for};
use crate::suite::Suite;
use crate::util::{messages, wait_until};

const POLICY_SERVER: &str = r#"
import http.server, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
policies = {
    "mta-sts.sts.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n",
    "mta-sts.bad.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.bad.test\r\nmax_age: 86400\r\n",
}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = policies.get(self.headers.get("Host", "").split(":")[0])
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.13", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.timeout = 1
for _ in range(120):
    server.handle_request()
"#;

/// A leaf certificate for `names` from the CA; its PEM and key's PEM.
fn leaf(names: &[&str], ca: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn an_enforced_policy_sends_only_over_verified_tls_to_the_hosts_it_names() {
    let files = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        path.display().to_string()
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let ca_file = write("ca.pem", &ca_cert.pem());
    let (https_cert, https_key) = leaf(&["mta-sts.sts.test", "mta-sts.bad.test"], &ca);
    let (https_cert, https_key) = (
        write("https.pem", &https_cert),
        write("https.key", &https_key),
    );
    let (mx_cert, mx_key) = leaf(&["mx.sts.test"], &ca);
    let (mx_cert, mx_key) = (write("mx.pem", &mx_cert), write("mx.key", &mx_key));

    let mut https = Command::new("python3")
        .args(["-c", POLICY_SERVER, &https_cert, &https_key])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(https.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let https_port: u16 = line.trim().parse().unwrap();

    // The MX: a Postern with the CA's certificate for mx.sts.test.
    let mx = Suite::start(&[
        &format!("tls.certificate = \"{mx_cert}\""),
        &format!("tls.key = \"{mx_key}\""),
    ]);
    let password = mx.etc().join("demo.password").display().to_string();
    for domain in ["sts.test", "bad.test"] {
        admin(&mx, &["domain", "add", domain]);
        let address = format!("friend@{domain}");
        admin(
            &mx,
            &["mailbox", "add", &address, "--password-file", &password],
        );
    }
    let nsd = postern_dns::testing::Nsd::start(
        "sts IN MX 10 mx.sts.test.\n\
         mx.sts IN A 127.0.0.1\n\
         _mta-sts.sts IN TXT \"v=STSv1; id=20261207\"\n\
         mta-sts.sts IN A 127.0.0.13\n\
         bad IN MX 10 mx.bad.test.\n\
         mx.bad IN A 127.0.0.1\n\
         _mta-sts.bad IN TXT \"v=STSv1; id=20261207\"\n\
         mta-sts.bad IN A 127.0.0.13\n",
    );
    let s = Suite::start(&[
        &format!("remote.nameservers = [\"{}\"]", nsd.address),
        &format!("remote.port = {}", mx.port("SMTP")),
        &format!("remote.ca_file = \"{ca_file}\""),
        &format!("remote.mta_sts_port = {https_port}"),
    ]);
    for to in ["friend@sts.test", "friend@bad.test"] {
        queue_mail(&s, &[to], &message("sts"));
    }
    wait_for(&mx.dir.join("mail/sts.test/friend/Maildir"), 1);
    let log = s.wait_for_log("Verified TLS connection established to mx.sts.test[127.0.0.1]");
    assert!(
        log.contains("MTA-STS policy of sts.test (id 20261207): Enforce"),
        "{log}"
    );
    wait_until(
        Duration::from_secs(30),
        || {
            mailq(&s.etc()).contains(
                "deferred: 4.7.5 MTA-STS policy of bad.test (enforce): TLS handshake failed: invalid peer certificate",
            )
        },
        || format!("mailq: {}\n{}", mailq(&s.etc()), s.log_text()),
    );
    assert!(messages(&mx.dir.join("mail/bad.test/friend/Maildir")).is_empty());
    // The policies are cached, for restarts and outages.
    let cached = std::fs::read_to_string(s.dir.join("var/remote/mta-sts/sts.test")).unwrap();
    assert!(cached.starts_with("id 20261207\n"), "{cached}");
    let shown = explain_route(&s, "friend@sts.test");
    assert!(
        shown.contains("MTA-STS: the cached policy of sts.test says mode enforce, mx mx.sts.test"),
        "{shown}"
    );
    let _ = https.kill();
    let _ = https.wait();
    s.stop();
    mx.stop();
}
