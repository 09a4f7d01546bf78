//! DKIM signing, checked by two independent verifiers against the
//! records a real DNS server (nsd) serves: dkimpy (Debian's python3-dkim)
//! and OpenDKIM's opendkim-testmsg. Keys are made by `postern-admin dkim
//! keygen`, one RSA and one Ed25519, and each message postern-remote
//! sends from the domain carries both signatures.

use std::process::Command;

use crate::outbound::{message, queue_mail};
use crate::remote::{dump_ending, free_port, sink_at};
use crate::suite::Suite;
use crate::util::is_root;

/// `keygen`'s DNS record line.
fn keygen(s: &Suite, selector: &str, algorithm: &str) -> String {
    let out = s.admin(&[
        "dkim",
        "keygen",
        "example.test",
        "--selector",
        selector,
        "--algorithm",
        algorithm,
    ]);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.example.test. IN TXT")))
        .unwrap_or_else(|| panic!("no record in {printed}"))
        .to_string()
}

const DKIMPY: &str = r#"
import sys, dkim, dns.resolver
ip, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [ip]
resolver.port = port
def lookup(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    answer = resolver.resolve(name, "TXT")
    return b"".join(b"".join(r.strings) for r in answer)
message = open(path, "rb").read()
d = dkim.DKIM(message)
signatures = [h for h in dkim.rfc822_parse(message)[0] if h[0].lower() == b"dkim-signature"]
assert len(signatures) == 2, signatures
algorithms = set()
for i in range(2):
    assert d.verify(idx=i, dnsfunc=lookup), (i, d.signature_fields)
    algorithms.add(d.signature_fields[b"a"])
    assert d.signature_fields[b"d"] == b"example.test", d.signature_fields
    assert d.signature_fields[b"c"] == b"relaxed/relaxed", d.signature_fields
assert algorithms == {b"rsa-sha256", b"ed25519-sha256"}, algorithms
# A changed body fails (dkimpy says so with an exception).
try:
    changed = dkim.DKIM(message.replace(b"First line.", b"First line!")).verify(idx=0, dnsfunc=lookup)
except dkim.ValidationError:
    changed = False
assert not changed
print("ok")
"#;

#[test]
fn signed_mail_verifies_with_dkimpy_and_opendkim() {
    let sink = sink_at("127.0.0.10", free_port(), &[]);
    let s = Suite::start(&[]);
    std::fs::write(
        s.etc().join("transport"),
        format!("remote.test [127.0.0.10]:{}\n", sink.port),
    )
    .unwrap();
    let zone = format!(
        "{}\n{}\n",
        keygen(&s, "s1", "rsa"),
        keygen(&s, "e1", "ed25519")
    );
    // OpenDKIM asks the libc resolver, which knows no port: as root, the
    // test's DNS serves on port 53 of an address of its own.
    let nsd = match is_root() {
        true => postern_dns::testing::Nsd::start_at("127.0.0.60:53", &zone),
        false => postern_dns::testing::Nsd::start(&zone),
    };
    let text = message("signed");
    queue_mail(&s, &["friend@remote.test"], &text);
    let received = dump_ending(&sink.dump, format!("{text}\n").as_bytes());
    assert_eq!(
        received.matches("\nDKIM-Signature: ").count(),
        2,
        "{received}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &received).unwrap();
    let path = file.path().display().to_string();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", DKIMPY])
        .args([
            &nsd.address.ip().to_string(),
            &nsd.address.port().to_string(),
            &path,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.ends_with(b"ok\n"),
        "dkimpy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !is_root() {
        eprintln!("SKIP the OpenDKIM half: needs root for DNS on port 53");
        return;
    }
    // opendkim-testmsg in a mount namespace whose resolv.conf names nsd.
    let resolv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(resolv.path(), format!("nameserver {}\n", nsd.address.ip())).unwrap();
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec /usr/sbin/opendkim-testmsg < {path}",
        resolv.path().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "opendkim-testmsg: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it does fail a changed message.
    let changed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        changed.path(),
        received.replace("First line.", "First line!"),
    )
    .unwrap();
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec /usr/sbin/opendkim-testmsg < {}",
        resolv.path().display(),
        changed.path().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "opendkim-testmsg passed a changed message"
    );
    s.stop();
}
