//! postern-smtpd under `postern up`, driven by swaks and Python's smtplib:
//! mail for local mailboxes lands in the Maildir through the queue; mail
//! for other hosts is taken only from a trusted address or one that
//! logged in within the relay window; every classic open-relay trick is
//! refused; the listener is not root.

use std::process::Command;

use crate::queue::{mailq, wait_for};
use crate::suite::{Suite, python, swaks};
use crate::util::{messages, success_text};

#[test]
fn swaks_mail_lands_byte_for_byte_through_the_queue() {
    let s = Suite::start(&[]);
    let body = "line one\nline two has trailing spaces   \n.leading dot\n\nlast line";
    let (code, out) = swaks(&[
        "--server",
        &s.server("SMTP"),
        "--from",
        "someone@example.org",
        "--to",
        "demo@example.test",
        "--header",
        "Subject: via swaks",
        "--body",
        body,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    wait_for(&s.demo(), 1);
    let got = messages(&s.demo());
    let text = String::from_utf8(got[0].1.clone()).unwrap();
    assert!(
        text.starts_with(
            "Return-Path: <someone@example.org>\nDelivered-To: demo@example.test\nReceived: from "
        ),
        "{text}"
    );
    assert!(
        text.contains("([127.0.0.1])\n\tby localhost (Postern) with ESMTP id "),
        "{text}"
    );
    assert!(text.contains("\n\tfor <demo@example.test>; "), "{text}");
    assert!(text.contains("\nSubject: via swaks\n"), "{text}");
    // swaks sends the body with CRLF and one empty line after it; the
    // Maildir holds it with LF, dot unstuffed, otherwise as sent.
    assert!(text.ends_with(&format!("\n\n{body}\n\n")), "{text}");
    // RCPT TO:<Postmaster>, without a domain (RFC 5321 4.5.1): the host's
    // postmaster, which the sandbox sends to the demo mailbox.
    let (code, out) = swaks(&["--server", &s.server("SMTP"), "--to", "Postmaster"]);
    assert_eq!(code, 0, "{out}");
    wait_for(&s.demo(), 2);
    let delivered: Vec<String> = messages(&s.demo())
        .into_iter()
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect();
    assert!(
        delivered.iter().any(|m| m.contains("\nTo: Postmaster\n")),
        "{delivered:?}"
    );
    s.stop();
}

const SMTPLIB_SESSION: &str = r#"
import smtplib, socket, sys
port = int(sys.argv[1])
c = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example")
c.ehlo("client.example")
assert c.has_extn("pipelining") and c.has_extn("chunking") and c.has_extn("smtputf8"), c.esmtp_features
assert c.has_extn("size") and c.esmtp_features["size"] == "2000", c.esmtp_features
# SIZE: refused when declared too big, and when it grows too big.
code, _ = c.mail("a@example.org", ["SIZE=5000"])
assert code == 552, code
c.rset()
assert c.mail("a@example.org")[0] == 250
assert c.rcpt("demo@example.test")[0] == 250
code, _ = c.data(b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n")
assert code == 552, code
c.rset()
# SMTPUTF8: a UTF-8 sender, and the message taken.
refused = c.sendmail("jöran@exämple.org", ["demo@example.test"], "Subject: utf8 ü\r\n\r\nü\r\n".encode(), mail_options=["SMTPUTF8"])
assert refused == {}, refused
# BDAT (RFC 3030) by hand: two chunks, the last empty.
c.putcmd("MAIL FROM:<b@example.org>")
assert c.getreply()[0] == 250
c.putcmd("RCPT TO:<demo@example.test>")
assert c.getreply()[0] == 250
chunk = b"Subject: chunked\r\n\r\nin chunks\r\n"
c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
assert c.getreply()[0] == 250
c.putcmd("BDAT 0 LAST")
code, text = c.getreply()
assert code == 250 and b"queued as" in text, (code, text)
c.quit()
print("ok")
"#;

#[test]
fn smtplib_size_smtputf8_and_bdat_on_25_587_and_an_extra_port() {
    // The sandbox's SMTP and submission ports, and one more (as hosts add
    // 5190 when an ISP blocks 25).
    let s = Suite::start(&[
        "smtpd.max_message_size = 2000",
        "smtpd.listen = [\"127.0.0.1:{SMTP}\", \"127.0.0.1:{submission} submission\", \"127.0.0.1:{PORT1}\"]",
    ]);
    let extra = s.extra_port(1);
    for port in [s.port("SMTP"), s.port("submission"), extra.to_string()] {
        python(SMTPLIB_SESSION, &[&port]);
    }
    wait_for(&s.demo(), 6);
    let texts: Vec<String> = messages(&s.demo())
        .into_iter()
        .map(|(_, bytes)| String::from_utf8(bytes).unwrap())
        .collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.ends_with("\n\nin chunks\n"))
            .count(),
        3
    );
    let utf8 = texts
        .iter()
        .find(|t| t.contains("Subject: utf8 ü"))
        .unwrap();
    assert!(
        utf8.starts_with("Return-Path: <jöran@exämple.org>\n"),
        "{utf8}"
    );
    assert!(utf8.contains(" with UTF8SMTP id "), "{utf8}");
    s.stop();
}

const PIPELINED: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.strip())
        if line[3:4] != "-":
            return lines
assert reply()[0].startswith("220 ")
s.sendall(b"EHLO client.example\r\n")
reply()
# One write: the whole transaction, RFC 2920.
s.sendall(b"MAIL FROM:<p@example.org>\r\nRCPT TO:<demo@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n")
codes = [reply()[0][:3] for _ in range(4)]
assert codes == ["250", "250", "550", "354"], codes
s.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
assert reply()[0].startswith("250 2.0.0 Ok: queued as ")
assert reply()[0].startswith("221 ")
print("ok")
"#;

#[test]
fn a_pipelined_transaction() {
    let s = Suite::start(&[]);
    python(PIPELINED, &[&s.port("SMTP")]);
    wait_for(&s.demo(), 1);
    assert!(String::from_utf8_lossy(&messages(&s.demo())[0].1).ends_with("\n\nbody\n"));
    s.stop();
}

/// Tries each recipient from `source` in its own transaction; returns the
/// reply code of each RCPT.
const RCPT_CODES: &str = r#"
import smtplib, sys
port, source = int(sys.argv[1]), sys.argv[2]
c = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", source_address=(source, 0))
c.ehlo("client.example")
for address in sys.argv[3:]:
    c.rset()
    assert c.mail("someone@example.org")[0] == 250
    code, text = c.docmd("RCPT TO:" + address)
    print(code, address)
c.quit()
print("ok")
"#;

fn rcpt_codes(s: &Suite, source: &str, addresses: &[&str]) -> Vec<(u16, String)> {
    let port = s.port("SMTP");
    let mut args = vec![port.as_str(), source];
    args.extend_from_slice(addresses);
    python(RCPT_CODES, &args)
        .lines()
        .filter(|l| *l != "ok")
        .map(|l| {
            let (code, address) = l.split_once(' ').unwrap();
            (code.parse().unwrap(), address.to_string())
        })
        .collect()
}

#[test]
fn relaying_follows_the_trusted_networks_and_the_relayers_window() {
    let s = Suite::start(&[]);
    let outside = "<friend@elsewhere.example>";
    // An outsider (127.0.0.2) may not relay; the trusted 127.0.0.1 may.
    assert_eq!(rcpt_codes(&s, "127.0.0.2", &[outside])[0].0, 550);
    assert_eq!(rcpt_codes(&s, "127.0.0.1", &[outside])[0].0, 250);
    // Local mail is taken from anyone; a mailbox added now counts at once
    // (postern-auth sees the accounts file change).
    let code = |address: &str| rcpt_codes(&s, "127.0.0.2", &[address])[0].0;
    assert_eq!(code("<demo@example.test>"), 250);
    assert_eq!(code("<late@example.test>"), 550);
    let password_file = s.etc().join("demo.password");
    let out = s.admin(&[
        "mailbox",
        "add",
        "late@example.test",
        "--password-file",
        &password_file.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code("<late@example.test>"), 250);
    // A login from 127.0.0.2 ten minutes ago: inside the 20-minute window.
    let now = postern_config::unix_now();
    let relayers = s.dir.join("var/relay/relayers");
    std::fs::write(&relayers, format!("# a login\n127.0.0.2 {}\n", now - 600)).unwrap();
    assert_eq!(rcpt_codes(&s, "127.0.0.2", &[outside])[0].0, 250);
    // When, in words people read: the date of the login.
    let login = postern_log::dates::rfc5322_secs(now - 600);
    let said = explain(&s, "127.0.0.2", "friend@elsewhere.example");
    assert!(
        said.contains(&format!("relayed: login from 127.0.0.2 at {login}")),
        "{said}"
    );
    // Half an hour ago: outside it.
    std::fs::write(&relayers, format!("127.0.0.2 {}\n", now - 1800)).unwrap();
    let refused = rcpt_codes(&s, "127.0.0.2", &[outside]);
    assert_eq!(refused[0].0, 550);
    // explain --relay says the same, and why.
    let said = explain(&s, "127.0.0.2", "friend@elsewhere.example");
    assert!(
        said.starts_with("client 127.0.0.2 → <friend@elsewhere.example>: refused (550 5.7.1): ")
            && said.contains("within the last 20 minutes"),
        "{said}"
    );
    assert!(
        explain(&s, "127.0.0.1", "friend@elsewhere.example")
            .contains("relayed: trusted network 127.0.0.1/32")
    );
    assert!(
        explain(&s, "127.0.0.2", "demo@example.test")
            .contains("taken from anyone: a local address")
    );
    assert!(
        explain(&s, "127.0.0.2", "victim%elsewhere.example@example.test")
            .contains("refused (550 5.7.1): a %-hack address")
    );
    s.stop();
}

fn explain(s: &Suite, ip: &str, address: &str) -> String {
    success_text(
        Command::new(crate::util::program("postern-admin"))
            .arg("--config")
            .arg(s.etc())
            .args(["explain", "--relay", ip, address])
            .output()
            .unwrap(),
    )
}

#[test]
fn open_relay_tricks_are_all_refused() {
    let s = Suite::start(&[]);
    let tricks = [
        "<victim@elsewhere.example>",
        "<victim%elsewhere.example@example.test>",
        "<victim%elsewhere.example@localhost>",
        "<elsewhere.example!victim@example.test>",
        "<example.test!elsewhere.example!victim>",
        "<\"victim@elsewhere.example\"@example.test>",
        "<\"victim%elsewhere.example\"@example.test>",
        "<\"elsewhere.example!victim\"@example.test>",
        "<@example.test:victim@elsewhere.example>",
        "<@example.test,@relay.example:victim@elsewhere.example>",
        "<victim@elsewhere.example@example.test>",
        "<victim@[192.0.2.1]>",
        "<victim@[127.0.0.1]>",
        "<victim@elsewhere.example.>",
        "<VICTIM@ELSEWHERE.EXAMPLE>",
        "<victim@example.test.elsewhere.example>",
        "<victim@elsewhere.example%example.test>",
        "<\"victim\"@elsewhere.example>",
        "<postmaster@elsewhere.example>",
        "victim@elsewhere.example",
        " <victim@elsewhere.example>",
        "<victim%elsewhere.example>",
        "<\"victim@elsewhere.example\">",
        "<victim@elsewhere.example> NOTIFY=NEVER",
        "<victim@localhost@elsewhere.example>",
    ];
    let codes = rcpt_codes(&s, "127.0.0.2", &tricks);
    assert_eq!(codes.len(), tricks.len());
    for (code, address) in &codes {
        assert!(*code >= 500, "{address} was taken ({code})");
    }
    // Nothing reached the queue.
    assert_eq!(mailq(&s.etc()), "Mail queue is empty\n");
    s.stop();
}

#[test]
fn the_listener_is_not_root() {
    if crate::util::skip_unless_root("the_listener_is_not_root") {
        return;
    }
    let s = Suite::start(&[]);
    // It answers: it has bound and dropped its privileges.
    let (code, out) = swaks(&["--server", &s.server("SMTP"), "--quit-after", "EHLO"]);
    assert_eq!(code, 0, "{out}");
    let etc = s.etc();
    let pid = pid_of(&format!("postern-smtpd --config {}", etc.display()));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| status_numbers(&status, key);
    assert!(ids("Uid:").iter().all(|&u| u != 0), "{status}");
    assert!(ids("Gid:").iter().all(|&g| g != 0), "{status}");
    // Its groups are the queue's and its own (to read the TLS key).
    use std::os::unix::fs::MetadataExt;
    let queue_gid = std::fs::metadata(s.dir.join("queue/queue")).unwrap().gid();
    let key_gid = std::fs::metadata(s.dir.join("tls/key.pem")).unwrap().gid();
    let mut groups = ids("Groups:");
    groups.sort_unstable();
    let mut expected = vec![queue_gid, key_gid];
    expected.sort_unstable();
    assert_eq!(groups, expected);
    // The accounts file is root's and postern-auth's group's alone: the
    // listener has neither its uid nor its group.
    let accounts = std::fs::metadata(etc.join("accounts")).unwrap();
    assert_eq!((accounts.uid(), accounts.mode() & 0o777), (0, 0o640));
    assert!(!groups.contains(&accounts.gid()));
    let auth = pid_of(&format!("postern-auth --config {}", etc.display()));
    let auth_status = std::fs::read_to_string(format!("/proc/{auth}/status")).unwrap();
    let auth_ids = |key: &str| status_numbers(&auth_status, key);
    assert!(auth_ids("Uid:").iter().all(|&u| u != 0), "{auth_status}");
    assert!(
        auth_ids("Gid:").iter().all(|&g| g == accounts.gid()),
        "{auth_status}"
    );
    assert!(
        auth_status.contains("\nCapEff:\t0000000000000000"),
        "{auth_status}"
    );
    // It keeps the relayers directory's group, to record logins.
    let relay_gid = std::fs::metadata(s.dir.join("var/relay")).unwrap().gid();
    assert!(auth_ids("Groups:").contains(&relay_gid), "{auth_status}");
    s.stop();
}

/// The numbers of a `/proc/PID/status` line (`Uid:`, `Groups:` ...).
pub fn status_numbers(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The pid of the process whose command line holds `pattern`, waiting
/// (bounded) for the supervisor to start it.
pub fn pid_of(pattern: &str) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = Command::new("pgrep")
            .args(["-f", pattern])
            .output()
            .unwrap();
        if let Some(pid) = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
        {
            return pid.parse().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no process {pattern}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn socket_activation_with_and_without_accept() {
    let s = Suite::start(&[]);
    let smtpd = crate::util::program("postern-smtpd");
    let etc = s.etc();
    // Accept=no: the listening socket is passed (LISTEN_FDS); Accept=yes,
    // inetd style: each connection on stdin and stdout.
    let (listening, _listening) = crate::util::socket_activated(&smtpd, &etc, false);
    let (per_connection, _per_connection) = crate::util::socket_activated(&smtpd, &etc, true);
    for port in [listening, per_connection] {
        let server = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (code, out) = swaks(&[
                "--server",
                &server,
                "--from",
                "someone@example.org",
                "--to",
                "demo@example.test",
                "--header",
                &format!("Subject: activated on {port}"),
            ]);
            if code == 0 {
                assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{out}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    wait_for(&s.demo(), 2);
    let subjects: Vec<String> = messages(&s.demo())
        .into_iter()
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect();
    for port in [listening, per_connection] {
        assert!(
            subjects
                .iter()
                .any(|m| m.contains(&format!("Subject: activated on {port}\n"))),
            "{subjects:?}"
        );
    }
    s.stop();
}

/// RFC 5321 §4.1.3: `user@[IP]` is a path like any other. It is no domain
/// of this host, so the relaying rules decide: refused for an outsider
/// (550, not a syntax error), taken from a trusted network.
#[test]
fn an_address_literal_is_a_path_and_the_relay_rules_decide() {
    let s = Suite::start(&[]);
    let rcpt = |ip: &str| {
        swaks(&[
            "--server",
            &s.server("SMTP"),
            "--local-interface",
            ip,
            "--from",
            "someone@example.org",
            "--to",
            "demo@[127.0.0.1]",
            "--quit-after",
            "RCPT",
        ])
    };
    let (code, out) = rcpt("127.0.0.2");
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("<** 550 5.7.1 <demo@[127.0.0.1]>: Relaying denied"),
        "{out}"
    );
    let (code, out) = rcpt("127.0.0.1");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("<-  250 2.1.5"), "{out}");
    s.stop();
}
