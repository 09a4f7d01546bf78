//! What the next hop answers, and how postern-remote takes it: a second
//! Postern as the other domain's server (refusing one recipient of
//! three, announcing a SIZE the message exceeds), Postfix's smtp-sink
//! without 8BITMIME, and hostile servers (Python, on 127.0.0.12) that
//! send endless replies, a 10 MB line, binary junk or nothing at all.

use std::process::Command;
use std::time::Duration;

use crate::outbound::{admin, message, queue_mail};
use crate::queue::{mailq, wait_for, wait_until_empty};
use crate::remote::{dump_ending, free_port, sink_at};
use crate::suite::Suite;
use crate::util::{messages, wait_until};

/// The demo mailbox's report for the message whose subject was `subject`:
/// its delivery-status part.
fn report_about(s: &Suite, subject: &str) -> String {
    let find = || {
        messages(&s.demo())
            .into_iter()
            .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
            .find(|m| {
                m.contains(&format!("Subject: {subject}")) && m.contains("message/delivery-status")
            })
    };
    wait_until(
        Duration::from_secs(30),
        || find().is_some(),
        || format!("no report about {subject}: {}", s.log_text()),
    );
    find().unwrap_or_default()
}

#[test]
fn one_refused_recipient_of_three_and_a_size_the_server_refuses() {
    // The other domain's server: a second Postern, remote.test's, taking
    // at most 3000 octets a message.
    let other = Suite::start(&["smtpd.max_message_size = 3000"]);
    admin(&other, &["domain", "add", "remote.test"]);
    let password = other.etc().join("demo.password").display().to_string();
    for user in ["friend", "pal"] {
        let address = format!("{user}@remote.test");
        admin(
            &other,
            &["mailbox", "add", &address, "--password-file", &password],
        );
    }
    let s = Suite::start(&[]);
    std::fs::write(
        s.etc().join("transport"),
        format!("remote.test [127.0.0.1]:{}\n", other.port("SMTP")),
    )
    .unwrap();
    let text = message("three");
    queue_mail(
        &s,
        &[
            "friend@remote.test",
            "nobody@remote.test",
            "pal@remote.test",
        ],
        &text,
    );
    for user in ["friend", "pal"] {
        let maildir = other.dir.join(format!("mail/remote.test/{user}/Maildir"));
        wait_for(&maildir, 1);
        let (_, bytes) = messages(&maildir).remove(0);
        assert!(String::from_utf8_lossy(&bytes).ends_with(&text));
    }
    let report = report_about(&s, "three");
    assert!(
        report.contains("Final-Recipient: rfc822; nobody@remote.test"),
        "{report}"
    );
    assert!(
        !report.contains("Final-Recipient: rfc822; friend@remote.test"),
        "{report}"
    );
    assert!(
        report.contains("Diagnostic-Code: smtp; 550 5.1.1"),
        "{report}"
    );
    // Too big for the other server: refused before it is sent (SIZE).
    let big = format!("Subject: big\n\n{}\n", "x".repeat(5000));
    queue_mail(&s, &["friend@remote.test"], &big);
    let report = report_about(&s, "big");
    assert!(report.contains("Status: 5.3.4"), "{report}");
    assert!(
        report.contains("exceeds the server's limit of 3000"),
        "{report}"
    );
    wait_until_empty(&s.etc());
    s.stop();
    other.stop();
}

#[test]
fn an_eight_bit_message_is_downgraded_for_a_server_without_8bitmime() {
    let sink = sink_at("127.0.0.10", free_port(), &["-8"]);
    let s = Suite::start(&[]);
    std::fs::write(
        s.etc().join("transport"),
        format!("remote.test [127.0.0.10]:{}\n", sink.port),
    )
    .unwrap();
    let text = "Subject: accents\nContent-Type: text/plain; charset=utf-8\n\nCaf\u{e9} cr\u{e8}me = good\n";
    queue_mail(&s, &["friend@remote.test"], text);
    // The submitted fields stay as they were, with the encoding's after
    // them; the body is quoted-printable.
    let dump = dump_ending(&sink.dump, b"\n\nCaf=C3=A9 cr=C3=A8me =3D good\n\n");
    assert!(dump.bytes().all(|b| b < 0x80), "{dump}");
    assert!(
        dump.contains("\nSubject: accents\nContent-Type: text/plain; charset=utf-8\n"),
        "{dump}"
    );
    assert!(
        dump.contains("\nContent-Transfer-Encoding: quoted-printable\n\nCaf="),
        "{dump}"
    );
    // A multipart one cannot be: it fails with 5.6.3.
    let multipart = "Subject: parts\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\n\n\u{e9}\n--b--\n";
    queue_mail(&s, &["friend@remote.test"], multipart);
    let report = report_about(&s, "parts");
    assert!(report.contains("Status: 5.6.3"), "{report}");
    s.stop();
}

/// Servers that misbehave, one a port: `endless` (a multi-line greeting
/// that never ends), `longline` (a 10 MB line), `junk` (binary noise),
/// `silent` (says nothing).
const HOSTILE: &str = r#"
import socket, sys, threading, os
modes = sys.argv[1:]
def serve(listener, mode):
    while True:
        conn, _ = listener.accept()
        def run(conn=conn):
            try:
                if mode == "endless":
                    for _ in range(200000):
                        conn.sendall(b"220-still greeting\r\n")
                elif mode == "longline":
                    conn.sendall(b"220 " + b"x" * (10 << 20))
                elif mode == "junk":
                    conn.sendall(os.urandom(1 << 16))
                conn.recv(1)
                threading.Event().wait(60)
            except OSError:
                pass
            finally:
                conn.close()
        threading.Thread(target=run, daemon=True).start()
ports = []
for mode in modes:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.12", 0))
    listener.listen(8)
    ports.append(str(listener.getsockname()[1]))
    threading.Thread(target=serve, args=(listener, mode), daemon=True).start()
print(" ".join(ports), flush=True)
threading.Event().wait(120)
"#;

#[test]
fn hostile_servers_get_a_deferral_with_the_reason_and_never_a_crash() {
    use std::io::{BufRead, BufReader};
    let modes = ["endless", "longline", "junk", "silent"];
    let mut server = Command::new("python3")
        .args(["-c", HOSTILE])
        .args(modes)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(ports.len(), modes.len(), "{line}");
    // A silent server is given two seconds here, not RFC 5321's five
    // minutes.
    let s = Suite::start(&["remote.reply_timeout = \"2s\""]);
    let transport: String = modes
        .iter()
        .zip(&ports)
        .map(|(mode, port)| format!("{mode}.test [127.0.0.12]:{port}\n"))
        .collect();
    std::fs::write(s.etc().join("transport"), transport).unwrap();
    let recipients: Vec<String> = modes.iter().map(|m| format!("x@{m}.test")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    queue_mail(&s, &refs, &message("hostile"));
    let expected = [
        ("x@endless.test", "4.5.0 protocol error"),
        ("x@longline.test", "4.5.0 protocol error"),
        ("x@junk.test", "4.5.0 protocol error"),
        ("x@silent.test", "4.4.2"),
    ];
    wait_until(
        Duration::from_secs(60),
        || {
            let listing = mailq(&s.etc());
            expected.iter().all(|(address, status)| {
                listing
                    .lines()
                    .any(|l| l.contains(address) && l.contains(&format!("deferred: {status}")))
            })
        },
        || format!("mailq: {}\nlog: {}", mailq(&s.etc()), s.log_text()),
    );
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
    let _ = server.kill();
    let _ = server.wait();
    s.stop();
}

/// An SMTP server that offers no DSN (smtp-sink does): it takes every
/// message and says nothing more.
const NO_DSN_SERVER: &str = r#"
import socket, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.12", 0))
listener.listen(8)
print(listener.getsockname()[1], flush=True)
def serve(conn):
    f = conn.makefile("rb")
    conn.sendall(b"220 nodsn ESMTP\r\n")
    data = False
    for line in f:
        if data:
            if line == b".\r\n":
                data = False
                conn.sendall(b"250 2.0.0 taken\r\n")
            continue
        verb = line[:4].upper()
        if verb == b"EHLO":
            conn.sendall(b"250-nodsn\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            data = True
            conn.sendall(b"354 go on\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            break
        elif b"NOTIFY=" in line.upper() or b"RET=" in line.upper() or b"ENVID=" in line.upper():
            conn.sendall(b"555 5.5.4 no DSN here\r\n")
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")
    conn.close()
listener.settimeout(90)
try:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
except socket.timeout:
    pass
"#;

#[test]
fn a_success_notice_is_passed_on_where_dsn_is_offered_and_reported_relayed_where_not() {
    use std::io::{BufRead, BufReader};
    let mut nodsn = Command::new("python3")
        .args(["-c", NO_DSN_SERVER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(nodsn.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let nodsn_port: u16 = line.trim().parse().unwrap();
    // dsn.test's server: a second Postern, which offers DSN.
    let other = Suite::start(&[]);
    admin(&other, &["domain", "add", "dsn.test"]);
    let password = other.etc().join("demo.password").display().to_string();
    admin(
        &other,
        &[
            "mailbox",
            "add",
            "friend@dsn.test",
            "--password-file",
            &password,
        ],
    );
    let s = Suite::start(&[]);
    std::fs::write(
        s.etc().join("transport"),
        format!(
            "nodsn.test [127.0.0.12]:{nodsn_port}\ndsn.test [127.0.0.1]:{}\n",
            other.port("SMTP")
        ),
    )
    .unwrap();
    crate::suite::python(
        r#"
import smtplib, sys
smtp = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
smtp.ehlo("client.example")
message = b"From: demo@example.test\r\nSubject: notify me\r\n\r\nplease tell me\r\n"
refused = smtp.sendmail("demo@example.test", ["friend@nodsn.test", "friend@dsn.test"], message,
                        rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
assert not refused, refused
smtp.quit()
print("ok")
"#,
        &[&s.port("SMTP")],
    );
    // Ours: friend@nodsn.test relayed; nothing of friend@dsn.test, whose
    // server reports itself.
    let report = report_about(&s, "notify me");
    assert!(
        report.contains("Final-Recipient: rfc822; friend@nodsn.test\nAction: relayed\nStatus: 2."),
        "{report}"
    );
    assert!(!report.contains("friend@dsn.test"), "{report}");
    // The other server's: delivered, to its own demo@example.test.
    let maildir = other.demo();
    wait_until(
        Duration::from_secs(30),
        || {
            messages(&maildir).iter().any(|(_, m)| {
                let m = String::from_utf8_lossy(m);
                m.contains("Final-Recipient: rfc822; friend@dsn.test")
                    && m.contains("Action: delivered")
            })
        },
        || format!("no report from dsn.test's server: {}", other.log_text()),
    );
    let _ = nodsn.kill();
    let _ = nodsn.wait();
    s.stop();
    other.stop();
}
