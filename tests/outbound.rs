//! Mail leaving the host under `postern up`, as users send it: through
//! submission with AUTH and through POP-before-SMTP, routed by the queue
//! to postern-remote (run by postern-lspawn as its own user), which finds
//! the next hop through a real DNS server (nsd on loopback) and hands the
//! message to Postfix's smtp-sink on 127.0.0.10. What arrives is checked
//! byte for byte; a refusal comes back to the sender as an RFC 3464
//! report that quotes the other host, read with Python's `email`.

use std::process::Command;
use std::time::Duration;

use crate::queue::{flush, mailq, wait_for, wait_until_empty};
use crate::remote::{Sink, dump_ending, free_port, sink_at};
use crate::suite::{Suite, demo_auth, python, swaks};
use crate::util::{messages, program, success_text, wait_until};

/// remote.test's mail goes to mx.remote.test, at 127.0.0.10.
const ZONE: &str = "\
remote IN MX 10 mx.remote.test.
mx.remote IN A 127.0.0.10
";

/// A suite whose outbound mail is resolved by `nsd` and sent to `port`.
fn suite(nsd: &postern_dns::testing::Nsd, port: u16) -> Suite {
    Suite::start(&[
        &format!("remote.nameservers = [\"{}\"]", nsd.address),
        &format!("remote.port = {port}"),
    ])
}

/// A message with every field a submission server would add, so that
/// what arrives is it plus the trace fields.
pub fn message(subject: &str) -> String {
    format!(
        "Date: Mon, 07 Dec 2026 10:00:00 +0000\n\
         Message-ID: <{subject}@example.test>\n\
         From: demo@example.test\n\
         To: friend@remote.test\n\
         Subject: {subject}\n\
         \n\
         First line.\n\
         .A line with a leading dot.\n\
         Last line.\n"
    )
}

/// Queues `text` from demo@example.test to `recipients`, as sendmail
/// does.
pub fn queue_mail(s: &Suite, recipients: &[&str], text: &str) {
    let mut inject = Command::new(program("postern-inject"));
    inject
        .arg("--config")
        .arg(s.etc())
        .args(["-f", "demo@example.test"])
        .args(recipients);
    success_text(crate::util::run_with_input(&mut inject, text.as_bytes()));
}

/// What `postern-admin explain --route ADDRESS` prints.
pub fn explain_route(s: &Suite, address: &str) -> String {
    success_text(s.admin(&["explain", "--route", address]))
}

/// swaks sending `text` from 127.0.0.2 to `server`, with `extra`.
fn send(server: &str, text: &str, extra: &[&str]) -> (i32, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    // swaks ends the data with its own CRLF before the dot.
    let data = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .replace('\n', "\r\n");
    std::fs::write(file.path(), data).unwrap();
    let path = file.path().display().to_string();
    let mut args = vec![
        "--server",
        server,
        "--local-interface",
        "127.0.0.2",
        "--from",
        "demo@example.test",
        "--to",
        "friend@remote.test",
        "--data",
        &path,
    ];
    args.extend_from_slice(extra);
    swaks(&args)
}

/// What the sink took of the message that ends with `text`: the fields
/// Postern added before it (each sink's own go first, up to its
/// Received line).
pub fn added_fields(sink: &Sink, text: &str) -> String {
    let tail = format!("{text}\n");
    let dump = dump_ending(&sink.dump, tail.as_bytes());
    let before = &dump[..dump.len() - tail.len()];
    let lines: Vec<&str> = before.lines().collect();
    let sinks = lines
        .iter()
        .position(|l| l.starts_with("\tby smtp-sink"))
        .expect("the sink's Received field");
    let ours = lines[sinks + 1..]
        .iter()
        .skip_while(|l| l.starts_with('\t'))
        .map(|l| format!("{l}\n"));
    ours.collect()
}

#[test]
fn submitted_and_pop_before_smtp_mail_reaches_the_other_host_byte_for_byte() {
    let nsd = postern_dns::testing::Nsd::start(ZONE);
    let sink = sink_at("127.0.0.10", free_port(), &[]);
    let s = suite(&nsd, sink.port);
    // A mailbox user on submission, with AUTH over STARTTLS.
    let first = message("submitted");
    let password = s.password();
    let (code, out) = send(&s.server("submission"), &first, &demo_auth(&password));
    assert_eq!(code, 0, "{out}");
    let added = added_fields(&sink, &first);
    assert!(added.starts_with("Received: from "), "{added}");
    assert!(
        added
            .lines()
            .all(|l| l.starts_with("Received:") || l.starts_with('\t') || l.starts_with(' ')),
        "{added}"
    );
    let log = s.wait_for_log("status=sent (250 2.0.0 Ok");
    let relay = format!("relay=mx.remote.test[127.0.0.10]:{}", sink.port);
    assert!(
        log.lines().any(|l| l.contains("to=<friend@remote.test>")
            && l.contains(&relay)
            && l.contains("dsn=2.0.0")
            && l.contains(", delays=")),
        "{log}"
    );
    // pflogsumm reads the lines as it reads Postfix's (their ident is
    // postern/smtp, as Postfix's client's is postfix/smtp).
    assert!(log.contains("postern/smtp["), "{log}");
    let syslog: String = log
        .lines()
        .filter(|l| l.starts_with("postern/"))
        .map(|l| format!("Dec  7 10:00:00 mx {l}\n"))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), syslog).unwrap();
    let out = Command::new("pflogsumm")
        .arg("--syslog-name=postern")
        .arg(file.path())
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("      1   delivered\n"), "{summary}");

    // POP-before-SMTP: a POP3 login from 127.0.0.2 (STLS, poplib), then
    // plain SMTP on port 25 from that address relays.
    python(
        r#"
import functools, poplib, socket, ssl, sys
poplib.socket.create_connection = functools.partial(
    socket.create_connection, source_address=("127.0.0.2", 0))
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
pop.stls(context)
pop.user("demo@example.test")
pop.pass_(sys.argv[2])
pop.quit()
print("ok")
"#,
        &[&s.port("POP3"), &password],
    );
    let second = message("pop-before-smtp");
    let (code, out) = send(&s.server("SMTP"), &second, &[]);
    assert_eq!(code, 0, "{out}");
    let added = added_fields(&sink, &second);
    assert!(added.starts_with("Received: from "), "{added}");
    wait_until_empty(&s.etc());
    s.stop();
}

#[test]
fn a_refusal_comes_back_to_the_sender_quoting_the_other_host() {
    let nsd = postern_dns::testing::Nsd::start(ZONE);
    let sink = sink_at("127.0.0.10", free_port(), &["-f", "RCPT"]);
    let s = suite(&nsd, sink.port);
    queue_mail(&s, &["friend@remote.test"], &message("refused"));
    wait_for(&s.demo(), 1);
    let (_, report) = messages(&s.demo()).remove(0);
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), &report).unwrap();
    python(
        r#"
import email, sys
from email import policy
report = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
assert report.get_content_type() == "multipart/report", report.get_content_type()
status = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"][0]
fields = status.get_payload()[1]
assert fields["Final-Recipient"] == "rfc822; friend@remote.test", fields
assert fields["Action"] == "failed", fields["Action"]
assert fields["Status"].startswith("5."), fields["Status"]
assert fields["Remote-MTA"] == "dns; mx.remote.test", fields["Remote-MTA"]
assert fields["Diagnostic-Code"].startswith("smtp; 5"), fields["Diagnostic-Code"]
print("ok")
"#,
        &[&path.path().display().to_string()],
    );
    let log = s.wait_for_log("status=bounced (host mx.remote.test said: 5");
    assert!(log.contains("to=<friend@remote.test>"), "{log}");
    s.stop();
}

#[test]
fn a_temporary_refusal_is_retried_and_mailq_shows_the_reply() {
    let nsd = postern_dns::testing::Nsd::start(ZONE);
    let port = free_port();
    let refusing = sink_at("127.0.0.10", port, &["-r", "RCPT"]);
    let s = suite(&nsd, port);
    let text = message("retried");
    queue_mail(&s, &["friend@remote.test"], &text);
    wait_until(
        Duration::from_secs(30),
        || mailq(&s.etc()).contains("mx.remote.test said: 4"),
        || format!("mailq never showed the reply: {}", mailq(&s.etc())),
    );
    // The server takes mail again; a flush of its domain sends it now.
    drop(refusing);
    let sink = sink_at("127.0.0.10", port, &[]);
    assert_eq!(
        flush(&s.etc(), &["remote.test"]),
        "postern-queue: flushing the mail for remote.test\n"
    );
    added_fields(&sink, &text);
    wait_until_empty(&s.etc());
    s.stop();
}

#[test]
fn postern_remote_runs_as_its_own_user_and_cannot_read_the_accounts() {
    if crate::util::skip_unless_root("postern_remote_runs_as_its_own_user") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let nsd = postern_dns::testing::Nsd::start(ZONE);
    // The sink waits before it answers the message: time to look at the
    // delivery while it runs.
    let sink = sink_at("127.0.0.10", free_port(), &["-w", "3"]);
    let s = suite(&nsd, sink.port);
    let text = message("watched");
    queue_mail(&s, &["friend@remote.test"], &text);
    let etc = s.etc();
    let pid = crate::smtpd::pid_of(&format!(
        "postern-remote --config {} --batch remote.test",
        etc.display()
    ));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| crate::smtpd::status_numbers(&status, key);
    let uid = crate::sandbox::role_uid(&etc, "postern-remote");
    assert!(uid != 0);
    assert!(ids("Uid:").iter().all(|&u| u == uid), "{status}");
    assert!(ids("Gid:").iter().all(|&g| g != 0), "{status}");
    assert!(ids("Groups:").is_empty(), "{status}");
    assert!(status.contains("\nCapEff:\t0000000000000000"), "{status}");
    // The accounts file is root's and postern-auth's group's: postern-remote
    // has neither, and no other group.
    let accounts = std::fs::metadata(etc.join("accounts")).unwrap();
    assert_eq!((accounts.uid(), accounts.mode() & 0o007), (0, 0));
    assert!(!ids("Gid:").contains(&accounts.gid()));
    let read = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={}", ids("Gid:")[0]))
        .arg("--clear-groups")
        .arg("cat")
        .arg(etc.join("accounts"))
        .output()
        .unwrap();
    assert!(
        !read.status.success(),
        "postern-remote's ids read the accounts"
    );
    added_fields(&sink, &text);
    s.stop();
}

/// `postern-admin` of a suite, which must succeed.
pub fn admin(s: &Suite, args: &[&str]) {
    success_text(s.admin(args));
}

/// A file postern-remote alone may read (and the directory it is in).
fn private_file(
    dir: &std::path::Path,
    name: &str,
    text: &str,
    etc_of_owner: Option<&std::path::Path>,
) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some(etc) = etc_of_owner.filter(|_| crate::util::is_root()) {
        let uid = crate::sandbox::role_uid(etc, "postern-remote");
        std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
    }
    path.display().to_string()
}

#[test]
fn a_smarthost_takes_the_mail_after_auth_over_a_verified_tls() {
    // The ISP's server: another Postern, whose submission port takes mail
    // for remote.test (a domain of its own) after AUTH.
    let isp = Suite::start(&[]);
    admin(&isp, &["domain", "add", "remote.test"]);
    let password_file = isp.etc().join("demo.password").display().to_string();
    admin(
        &isp,
        &[
            "mailbox",
            "add",
            "friend@remote.test",
            "--password-file",
            &password_file,
        ],
    );
    let hop = format!("[127.0.0.1]:{}", isp.port("submission"));
    let files = tempfile::tempdir().unwrap();
    let credentials_line = format!("{hop} demo@example.test:{}\n", isp.password());
    // The trusted authorities: at first a certificate that did not sign
    // the ISP's.
    let bundle = files.path().join("ca.pem");
    let wrong = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&bundle, wrong.cert.pem()).unwrap();
    let s = Suite::start(&[
        &format!("remote.relayhost = \"{hop}\""),
        &format!("remote.ca_file = \"{}\"", bundle.display()),
        "remote.tls = \"verify\"",
    ]);
    let credentials = private_file(
        files.path(),
        "credentials",
        &credentials_line,
        Some(&s.etc()),
    );
    let toml = s.etc().join("postern.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    // Read by each postern-remote run, so no restart is needed.
    std::fs::write(
        &toml,
        format!("{text}remote.relayhost_credentials = \"{credentials}\"\n"),
    )
    .unwrap();
    let text = message("smarthost");
    queue_mail(&s, &["friend@remote.test"], &text);
    // A certificate the trusted authorities did not sign: deferred, and
    // said so.
    wait_until(
        Duration::from_secs(30),
        || mailq(&s.etc()).contains("4.7.5 TLS handshake failed: invalid peer certificate"),
        || format!("mailq never showed the TLS failure: {}", mailq(&s.etc())),
    );
    // Trusting the ISP's certificate, the flushed message goes.
    std::fs::copy(isp.dir.join("tls/cert.pem"), &bundle).unwrap();
    flush(&s.etc(), &[]);
    let maildir = isp.dir.join("mail/remote.test/friend/Maildir");
    wait_for(&maildir, 1);
    let (_, bytes) = messages(&maildir).remove(0);
    let arrived = String::from_utf8(bytes).unwrap();
    assert!(arrived.ends_with(&text), "{arrived}");
    assert!(
        arrived.contains("(Authenticated sender: demo@example.test)"),
        "{arrived}"
    );
    assert!(arrived.contains("with ESMTPSA"), "{arrived}");
    let log = s.wait_for_log("Verified TLS connection established to 127.0.0.1[127.0.0.1]:");
    assert!(
        log.contains(&format!(
            "relay=127.0.0.1[127.0.0.1]:{}",
            isp.port("submission")
        )),
        "{log}"
    );
    wait_until_empty(&s.etc());
    s.stop();
    isp.stop();
}

#[test]
fn the_transport_map_splits_delivery_and_a_tls_policy_holds_cleartext_mail() {
    // No DNS at all: the transport map alone names the next hop.
    let sink = sink_at("127.0.0.10", free_port(), &[]);
    let s = Suite::start(&[]);
    std::fs::write(
        s.etc().join("transport"),
        format!("# split delivery\nremote.test [127.0.0.10]:{}\n", sink.port),
    )
    .unwrap();
    // smtp-sink offers no STARTTLS: a policy that demands TLS holds the mail.
    std::fs::write(s.etc().join("tls_policy"), "127.0.0.10 encrypt\n").unwrap();
    let text = message("split");
    queue_mail(&s, &["friend@remote.test"], &text);
    wait_until(
        Duration::from_secs(30),
        || {
            mailq(&s.etc())
                .contains("4.7.4 TLS is required, and the server does not offer STARTTLS")
        },
        || {
            format!(
                "mailq never showed the policy's deferral: {}",
                mailq(&s.etc())
            )
        },
    );
    assert!(!sink.dump.exists(), "mail went in cleartext");
    // Opportunistic again: the flushed message goes in cleartext.
    std::fs::write(s.etc().join("tls_policy"), "127.0.0.10 may\n").unwrap();
    flush(&s.etc(), &[]);
    added_fields(&sink, &text);
    s.wait_for_log(&format!("relay=127.0.0.10[127.0.0.10]:{}", sink.port));
    wait_until_empty(&s.etc());
    s.stop();
}

#[test]
fn check_names_bad_routing_lines_and_credentials_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let setup = crate::util::Setup::new();
    setup.write(
        "transport",
        "partner.test [mx.partner.test]:2525\nbad.test [oops\n",
    );
    setup.write("tls_policy", "bank.test verify\npartner.test sometimes\n");
    let credentials = setup.path().join("credentials");
    std::fs::write(&credentials, "[smtp.isp.test]:587 me:secret\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let toml = setup.path().join("etc/postern.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!(
            "{text}remote.relayhost_credentials = \"{}\"\n",
            credentials.display()
        ),
    )
    .unwrap();
    let out = setup.admin(&["check"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("transport:2: "), "{printed}");
    assert!(
        printed.contains("tls_policy:2: partner.test: expected one level"),
        "{printed}"
    );
    assert!(
        printed.contains("mode 644, but only its owner may read it"),
        "{printed}"
    );
    assert!(!printed.contains("transport:1"), "{printed}");
}

#[test]
fn messages_in_quick_succession_share_one_connection() {
    let sink = sink_at("127.0.0.10", free_port(), &["-v"]);
    let s = Suite::start(&[]);
    std::fs::write(
        s.etc().join("transport"),
        format!("remote.test [127.0.0.10]:{}\n", sink.port),
    )
    .unwrap();
    let texts: Vec<String> = (0..3).map(|n| message(&format!("cached-{n}"))).collect();
    for text in &texts {
        queue_mail(&s, &["friend@remote.test"], text);
        // Each goes on its own, after the last one's connection is idle.
        s.wait_for_log_count(
            "status=sent",
            texts.iter().position(|t| t == text).unwrap() + 1,
        );
    }
    added_fields(&sink, &texts[2]);
    // One connection, besides the probe that saw the sink start.
    let log = std::fs::read_to_string(&sink.log).unwrap();
    assert_eq!(log.matches("connect (").count(), 2, "{log}");
    // The later ones had no connection to set up.
    let log = s.log_text();
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("status=sent"))
        .filter_map(|l| l.split("delays=").nth(1))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent[2].split('/').nth(2) == Some("0.00"), "{sent:?}");
    s.stop();
}

#[test]
fn explain_route_prints_the_decision_chain() {
    let nsd = postern_dns::testing::Nsd::start(ZONE);
    let s = suite(&nsd, 25);
    let explain = |address: &str| explain_route(&s, address);
    let shown = explain("friend@remote.test");
    for line in [
        "  route: another host's, to remote.test (the domain's own mail servers)\n",
        "  hosts: the MX hosts of remote.test, by preference",
        "       10 mx.remote.test: 127.0.0.10\n",
        "  TLS: may ([remote] tls): STARTTLS where offered",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    std::fs::write(s.etc().join("transport"), "remote.test [127.0.0.11]:2525\n").unwrap();
    std::fs::write(s.etc().join("tls_policy"), "[127.0.0.11]:2525 encrypt\n").unwrap();
    let shown = explain("friend@remote.test");
    for line in [
        "  route: another host's, to [127.0.0.11]:2525 (the transport map's line for remote.test)\n",
        "    127.0.0.11: 127.0.0.11\n",
        "  TLS: encrypt (the tls_policy map): STARTTLS required",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    assert!(explain("demo@example.test").contains("  route: this host (postern-local)"));
    s.stop();
}

#[test]
fn many_recipients_go_in_transactions_of_the_set_size_on_one_connection() {
    let sink = sink_at("127.0.0.10", free_port(), &["-v"]);
    let s = Suite::start(&["remote.max_recipients_per_transaction = 2"]);
    std::fs::write(
        s.etc().join("transport"),
        format!("remote.test [127.0.0.10]:{}\n", sink.port),
    )
    .unwrap();
    let recipients: Vec<String> = (1..=5).map(|n| format!("r{n}@remote.test")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let text = message("five");
    queue_mail(&s, &refs, &text);
    s.wait_for_log_count("status=sent", 5);
    wait_until_empty(&s.etc());
    // Three transactions (2, 2 and 1 recipients), each the whole message.
    let dump = std::fs::read_to_string(&sink.dump).unwrap();
    let transactions: Vec<&str> = dump.split("X-Client-Addr: ").skip(1).collect();
    let sizes: Vec<usize> = transactions
        .iter()
        .map(|t| t.matches("X-Rcpt-Args: ").count())
        .collect();
    assert_eq!(sizes, [2, 2, 1], "{dump}");
    assert!(
        transactions
            .iter()
            .all(|t| t.ends_with(&format!("{text}\n")))
    );
    // Over one connection, besides the probe that saw the sink start.
    let log = std::fs::read_to_string(&sink.log).unwrap();
    assert_eq!(log.matches("connect (").count(), 2, "{log}");
    s.stop();
}
