//! SRS against the reference: postsrsd (Debian's, libsrs2's format) and
//! postern-srs, given the same secret and domain, must write the same
//! addresses, and each must take back what the other wrote.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::remote::free_port;

struct Postsrsd {
    child: Child,
    forward: u16,
    reverse: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Postsrsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn postsrsd(secrets: &str, domain: &str) -> Postsrsd {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets");
    std::fs::write(&file, secrets).unwrap();
    let (forward, reverse) = (free_port(), free_port());
    let mut command = Command::new("/usr/sbin/postsrsd");
    command
        .arg(format!("-s{}", file.display()))
        .arg(format!("-d{domain}"))
        .args(["-l127.0.0.10", "-4"])
        .arg(format!("-f{forward}"))
        .arg(format!("-r{reverse}"));
    if crate::util::is_root() {
        command.arg("-unobody");
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.10", reverse)).is_err() {
        assert!(Instant::now() < deadline, "postsrsd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Postsrsd {
        child,
        forward,
        reverse,
        _dir: dir,
    }
}

/// A Postfix tcp_table lookup: `get KEY`, answered `200 VALUE` (or 500).
fn get(port: u16, key: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.10", port)).unwrap();
    writeln!(stream, "get {key}").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn postern_writes_and_reads_srs_as_postsrsd_does() {
    let secrets = "first secret\nsecond secret\n";
    let reference = postsrsd(secrets, "srs.host.test");
    let ours = postern_srs::Srs::new(secrets, "srs.host.test", 21).unwrap();
    let now = postern_config::unix_now();
    for sender in [
        "alice@example.org",
        "Mixed.Case@Example.ORG",
        "SRS0=abcd=AB=orig.test=bob@first.test",
        "SRS1=wxyz=first.test==abcd=AB=orig.test=bob@second.test",
    ] {
        let theirs = get(reference.forward, sender);
        let mine = ours.forward(sender, now).unwrap();
        assert_eq!(theirs, format!("200 {mine}"), "{sender}");
        // Each takes back what the other wrote.
        let back = get(reference.reverse, &mine);
        let original = ours.reverse(&mine, now).unwrap();
        assert_eq!(back, format!("200 {original}"), "{mine}");
    }
    // A forged address: both refuse it.
    let forged = ours
        .forward("alice@example.org", now)
        .unwrap()
        .replacen("SRS0=", "SRS0=Q", 1);
    assert!(get(reference.reverse, &forged).starts_with("500"));
    assert!(ours.reverse(&forged, now).is_err());
    // Made under the second secret (a rolled-over key): both accept it.
    let older = postern_srs::Srs::new("second secret\n", "srs.host.test", 21).unwrap();
    let made = older.forward("carol@example.net", now).unwrap();
    assert_eq!(get(reference.reverse, &made), "200 carol@example.net");
    assert_eq!(ours.reverse(&made, now).unwrap(), "carol@example.net");
}

#[test]
fn a_forward_leaves_from_an_srs_address_and_its_bounce_comes_home() {
    use crate::outbound::{admin, message};
    use crate::remote::{dump_ending, sink_at};
    use crate::suite::{Suite, python};
    let forwarded_to = sink_at("127.0.0.10", free_port(), &[]);
    let origin = sink_at("127.0.0.11", free_port(), &[]);
    // The secrets: root's and postern-auth's (which checks SRS recipients).
    let files = tempfile::tempdir().unwrap();
    let secrets = files.path().join("srs-secrets");
    std::fs::write(&secrets, "a secret of this host\n").unwrap();
    let s = Suite::start(&[
        "srs.domain = \"srs.example.test\"",
        &format!("srs.secrets_file = \"{}\"", secrets.display()),
    ]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if crate::util::is_root() {
            let auth = crate::sandbox::role_uid(&s.etc(), "postern-auth");
            std::os::unix::fs::chown(&secrets, Some(0), Some(auth)).unwrap();
        }
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    std::fs::write(
        s.etc().join("transport"),
        format!(
            "remote.test [127.0.0.10]:{}\norigin.test [127.0.0.11]:{}\n",
            forwarded_to.port, origin.port
        ),
    )
    .unwrap();
    admin(
        &s,
        &["forward", "set", "demo@example.test", "friend@remote.test"],
    );
    // Mail from another domain's sender, forwarded on to a third.
    let mut inject = Command::new(crate::util::program("postern-inject"));
    inject
        .arg("--config")
        .arg(s.etc())
        .args(["-f", "alice@origin.test", "demo@example.test"]);
    let text = message("forwarded");
    assert!(
        crate::util::run_with_input(&mut inject, text.as_bytes())
            .status
            .success()
    );
    let dump = dump_ending(&forwarded_to.dump, format!("{text}\n").as_bytes());
    let sender = dump
        .lines()
        .find_map(|l| l.strip_prefix("X-Mail-Args: <"))
        .and_then(|l| l.split('>').next())
        .unwrap()
        .to_string();
    assert!(
        sender.starts_with("SRS0=") && sender.ends_with("=origin.test=alice@srs.example.test"),
        "{sender}"
    );
    // The final host bounces it to that address: it comes back to alice.
    // A forged one is refused at RCPT.
    python(
        r#"
import smtplib, sys
port, srs = int(sys.argv[1]), sys.argv[2]
smtp = smtplib.SMTP("127.0.0.1", port)
smtp.ehlo("mx.remote.test")
smtp.mail("")
forged = srs.replace("SRS0=", "SRS0=Q", 1)
code, text = smtp.rcpt(forged)
assert code == 550 and text.startswith(b"5.7.1"), (code, text)
code, text = smtp.rcpt(srs)
assert code == 250, (code, text)
code, text = smtp.data(b"From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered Mail\r\n\r\nfriend is gone\r\n")
assert code == 250, (code, text)
smtp.quit()
print("ok")
"#,
        &[&s.port("SMTP"), &sender],
    );
    let bounce = dump_ending(&origin.dump, b"friend is gone\n\n");
    assert!(bounce.contains("X-Mail-Args: <>"), "{bounce}");
    assert!(
        bounce.contains("X-Rcpt-Args: <alice@origin.test>"),
        "{bounce}"
    );
    s.stop();
}
