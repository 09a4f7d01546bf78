//! `sendmail -bs`, SMTP on stdin and stdout as alpine submits mail: driven
//! by Python's smtplib over a socket pair, and by alpine's own command
//! sequence over pipes. What reaches the queue is checked byte for byte.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use postern_queue_format::{Notify, Ret};

use crate::util::{HOST, Setup, program, recipients};

const SMTPLIB_CLIENT: &str = r#"
import smtplib, socket, subprocess, sys
inject, etc = sys.argv[1], sys.argv[2]
ours, theirs = socket.socketpair()
server = subprocess.Popen([inject, "--config", etc, "-bs"], stdin=theirs.fileno(), stdout=theirs.fileno())
theirs.close()
client = smtplib.SMTP()
client.sock = ours
code, _ = client.getreply()
assert code == 220, code
client.ehlo("workstation.example")
assert client.has_extn("pipelining") and client.has_extn("8bitmime"), client.esmtp_features
message = b"From: Alice <alice@example.org>\r\nSubject: via -bs\r\n\r\n.leading dot\r\nline two\r\n"
refused = client.sendmail("alice@example.org", ["bob@example.test", "Postmaster"], message,
                         mail_options=["RET=HDRS", "ENVID=abc+2Bdef"], rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;bob@example.org"])
assert refused == {}, refused
try:
    client.sendmail("alice@example.org", ["a b@example.test"], b"x\r\n")
    raise SystemExit("a bad recipient was taken")
except smtplib.SMTPRecipientsRefused as e:
    code = e.recipients["a b@example.test"][0]
    assert code == 501, e.recipients
client.quit()
assert server.wait(timeout=30) == 0
print("ok")
"#;

#[test]
fn pythons_smtplib_over_bs() {
    let s = Setup::new();
    let out = Command::new("python3")
        .args(["-c", SMTPLIB_CLIENT])
        .arg(program("postern-inject"))
        .arg(&s.etc)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (envelope, data) = s.only_queued();
    assert_eq!(envelope.sender, "alice@example.org");
    assert_eq!(
        recipients(&envelope),
        ["bob@example.test", &format!("postmaster@{HOST}")]
    );
    // DSN's parameters, kept in the envelope for the reports (ENVID
    // decoded from xtext).
    assert_eq!(
        (envelope.ret, envelope.envid.as_deref()),
        (Some(Ret::Headers), Some("abc+def"))
    );
    assert_eq!(
        envelope.recipients[0].notify,
        Notify::parse("success,delay")
    );
    assert_eq!(
        envelope.recipients[0].orcpt.as_deref(),
        Some("bob@example.org")
    );
    let text = String::from_utf8(data).unwrap();
    // Received first, the client's fields, what was missing; the body as
    // sent, unstuffed, with LF line ends.
    assert!(text.starts_with(&format!("Received: by {HOST} (Postern, from userid ")));
    assert!(
        text.contains("\nFrom: Alice <alice@example.org>\nSubject: via -bs\nDate: "),
        "{text}"
    );
    assert!(text.contains("\nMessage-ID: <"));
    assert!(text.ends_with("\n\n.leading dot\nline two\n"), "{text}");
}

/// The client's end of a `-bs` session over pipes.
struct Pipes<W: Write, R: BufRead> {
    to: W,
    from: R,
}

impl<W: Write, R: BufRead> Pipes<W, R> {
    fn send(&mut self, line: &str) {
        self.to.write_all(line.as_bytes()).unwrap();
        self.to.write_all(b"\r\n").unwrap();
        self.to.flush().unwrap();
    }

    /// The next reply's lines.
    fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.from.read_line(&mut line).unwrap() > 0, "no reply");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) == Some(&b' ');
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    fn command(&mut self, line: &str) -> Vec<String> {
        self.send(line);
        self.reply()
    }
}

#[test]
fn alpines_dialogue_over_pipes() {
    let s = Setup::new();
    // alpine's sendmail-path default: `sendmail -bs -odb -oem`.
    let mut child = Command::new(program("postern-inject"))
        .arg("--config")
        .arg(&s.etc)
        .args(["-bs", "-odb", "-oem"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = Pipes {
        to: child.stdin.take().unwrap(),
        from: BufReader::new(child.stdout.take().unwrap()),
    };
    assert!(client.reply()[0].starts_with(&format!("220 {HOST} ESMTP")));
    let ehlo = client.command("EHLO workstation");
    assert!(ehlo.contains(&"250-8BITMIME".to_string()), "{ehlo:?}");
    assert_eq!(
        client.command("MAIL FROM:<root@localhost>"),
        ["250 2.1.0 Ok"]
    );
    assert_eq!(
        client.command("RCPT TO:<dave@example.test>"),
        ["250 2.1.5 Ok"]
    );
    assert_eq!(
        client.command("DATA"),
        ["354 End data with <CR><LF>.<CR><LF>"]
    );
    for line in ["Subject: from alpine", "", "text", "..", "end"] {
        client.send(line);
    }
    let queued = client.command(".");
    assert!(
        queued[0].starts_with("250 2.0.0 Ok: queued as "),
        "{queued:?}"
    );
    assert_eq!(client.command("RSET"), ["250 2.0.0 Ok"]);
    assert_eq!(
        client.command("QUIT"),
        [format!("221 2.0.0 {HOST} closing connection")]
    );
    assert!(child.wait().unwrap().success());

    let (envelope, data) = s.only_queued();
    assert_eq!(envelope.sender, "root@localhost");
    assert_eq!(recipients(&envelope), ["dave@example.test"]);
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains("\nSubject: from alpine\n"), "{text}");
    assert!(text.ends_with("\n\ntext\n.\nend\n"), "{text}");
}
