//! DANE against real parts on loopback: a DNSSEC-signed zone (signed by
//! ldns-signzone, served by nsd) checked by a validating unbound, which
//! `[remote] dnssec_resolver` names, and a second Postern as the MX, whose
//! certificate a test CA issued (and which sends the CA's certificate in
//! its chain). A TLSA 3 1 1 record of its key lets the mail go, and so
//! does a 2 0 1 record of the CA's certificate (the host's name checked);
//! a record of another key makes the same server's mail wait, with the
//! reason, never sent without the check.

use std::process::Command;
use std::time::Duration;

use crate::outbound::{admin, explain_route, message, queue_mail};
use crate::queue::{mailq, wait_for};
use crate::suite::Suite;
use crate::util::{messages, success_text, wait_until};

/// The SHA-256 of what `extract` (an OpenSSL pipeline reading the PEM
/// certificate at `cert`) gives, as hex.
fn sha256_of(cert: &std::path::Path, extract: &str) -> String {
    let script = format!(
        "openssl x509 -in {} {extract} | openssl dgst -sha256 -hex",
        cert.display()
    );
    success_text(Command::new("sh").args(["-c", &script]).output().unwrap())
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// TLSA selector 0, matching type 1: the whole certificate's hash.
fn cert_sha256(cert: &std::path::Path) -> String {
    sha256_of(cert, "-outform DER")
}

/// TLSA selector 1, matching type 1: its public key's hash.
fn spki_sha256(cert: &std::path::Path) -> String {
    sha256_of(cert, "-pubkey -noout | openssl pkey -pubin -outform DER")
}

#[test]
fn a_matching_tlsa_record_lets_mail_go_and_a_wrong_one_holds_it() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let files = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let names = ["mx.dane.test", "mx.badd.test", "mx.ta.test"].map(String::from);
    let leaf = CertificateParams::new(names.to_vec())
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let chain = files.path().join("chain.pem");
    std::fs::write(&chain, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    let key_file = files.path().join("key.pem");
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        for path in [files.path(), &chain, &key_file] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mx = Suite::start(&[
        &format!("tls.certificate = \"{}\"", chain.display()),
        &format!("tls.key = \"{}\"", key_file.display()),
    ]);
    let password = mx.etc().join("demo.password").display().to_string();
    for domain in ["dane.test", "badd.test", "ta.test"] {
        admin(&mx, &["domain", "add", domain]);
        let address = format!("friend@{domain}");
        admin(
            &mx,
            &["mailbox", "add", &address, "--password-file", &password],
        );
    }
    let port = mx.port("SMTP");
    let key = spki_sha256(&chain);
    let anchor_hash = cert_sha256(&ca_file);
    let wrong = "00".repeat(32);
    let (nsd, anchor) = postern_dns::testing::Nsd::start_signed(&format!(
        "dane IN MX 10 mx.dane.test.\n\
         mx.dane IN A 127.0.0.1\n\
         _{port}._tcp.mx.dane IN TLSA 3 1 1 {key}\n\
         badd IN MX 10 mx.badd.test.\n\
         mx.badd IN A 127.0.0.1\n\
         _{port}._tcp.mx.badd IN TLSA 3 1 1 {wrong}\n\
         ta IN MX 10 mx.ta.test.\n\
         mx.ta IN A 127.0.0.1\n\
         _{port}._tcp.mx.ta IN TLSA 2 0 1 {anchor_hash}\n"
    ));
    let unbound = postern_dns::testing::Unbound::start(nsd.address, &anchor);
    let s = Suite::start(&[
        &format!("remote.nameservers = [\"{}\"]", unbound.address),
        &format!("remote.dnssec_resolver = \"{}\"", unbound.address),
        &format!("remote.port = {port}"),
    ]);
    for to in ["friend@dane.test", "friend@badd.test", "friend@ta.test"] {
        queue_mail(&s, &[to], &message("dane"));
    }
    wait_for(&mx.dir.join("mail/dane.test/friend/Maildir"), 1);
    wait_for(&mx.dir.join("mail/ta.test/friend/Maildir"), 1);
    s.wait_for_log("Verified TLS connection established to mx.dane.test[127.0.0.1]");
    s.wait_for_log("Verified TLS connection established to mx.ta.test[127.0.0.1]");
    let expected =
        format!("deferred: 4.7.5 DANE TLSA of _{port}._tcp.mx.badd.test: TLS handshake failed");
    wait_until(
        Duration::from_secs(30),
        || mailq(&s.etc()).contains(&expected),
        || format!("mailq: {}\n{}", mailq(&s.etc()), s.log_text()),
    );
    assert!(messages(&mx.dir.join("mail/badd.test/friend/Maildir")).is_empty());
    let shown = explain_route(&s, "friend@dane.test");
    assert!(
        shown.contains("DANE: mx.dane.test has validated TLSA records (3 1 1): TLS required"),
        "{shown}"
    );
    s.stop();
    mx.stop();
}

#[test]
fn mail_waits_while_the_validating_resolver_cannot_answer() {
    let nsd = postern_dns::testing::Nsd::start(
        "remote IN MX 10 mx.remote.test.\n\
         mx.remote IN A 127.0.0.10\n",
    );
    let sink = crate::remote::sink_at("127.0.0.10", crate::remote::free_port(), &[]);
    // Nothing listens on the discard port: the resolver gives no answer,
    // so whether the MX answer is bogus cannot be known.
    let s = Suite::start(&[
        &format!("remote.nameservers = [\"{}\"]", nsd.address),
        "remote.dnssec_resolver = \"127.0.0.1:9\"",
        &format!("remote.port = {}", sink.port),
    ]);
    queue_mail(&s, &["friend@remote.test"], &message("unknown"));
    wait_until(
        Duration::from_secs(30),
        || mailq(&s.etc()).contains("DNSSEC resolver 127.0.0.1:9"),
        || format!("mailq: {}\n{}", mailq(&s.etc()), s.log_text()),
    );
    assert!(!sink.dump.exists(), "mail went without its DANE check");
    s.stop();
}
