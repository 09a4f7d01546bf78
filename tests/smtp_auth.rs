//! SMTP AUTH, STARTTLS and implicit TLS under `postern up`, driven by
//! swaks and Python's smtplib: each mechanism with right and wrong
//! passwords, on and off TLS; relaying after AUTH; the plaintext injection
//! after STARTTLS; the failure throttle and the line fail2ban reads;
//! POP-before-SMTP through postern-auth's login record.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::queue::wait_for;
use crate::suite::{Suite, demo_auth, python, swaks};
use crate::util::{messages, program};

/// An account whose password is stored `{PLAIN}`, so CRAM-MD5 can check it.
const PLAIN_USER: &str = "plain@example.test";
const PLAIN_PASSWORD: &str = "tanstaaf tanstaaf";

fn with_plain_account(s: &Suite) {
    let accounts = s.etc().join("accounts");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&accounts)
        .unwrap();
    writeln!(file, "{PLAIN_USER}:{{PLAIN}}{PLAIN_PASSWORD}::::::").unwrap();
}

fn all_mechanisms() -> Suite {
    let s = Suite::start(&["smtpd.auth_mechanisms = [\"PLAIN\", \"LOGIN\", \"CRAM-MD5\"]"]);
    with_plain_account(&s);
    s
}

/// swaks on submission from the outsider 127.0.0.2, mail for elsewhere.
fn submit(s: &Suite, extra: &[&str]) -> (i32, String) {
    let server = s.server("submission");
    let mut args = vec![
        "--server",
        &server,
        "--local-interface",
        "127.0.0.2",
        "--from",
        PLAIN_USER,
        "--to",
        "friend@elsewhere.example",
    ];
    args.extend_from_slice(extra);
    swaks(&args)
}

#[test]
fn each_mechanism_with_right_and_wrong_passwords_on_and_off_tls() {
    let s = all_mechanisms();
    for mechanism in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let (code, out) = submit(
            &s,
            &[
                "--tls",
                "--auth",
                mechanism,
                "--auth-user",
                PLAIN_USER,
                "--auth-password",
                PLAIN_PASSWORD,
            ],
        );
        assert_eq!(code, 0, "{mechanism}: {out}");
        assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
        assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
        let (code, out) = submit(
            &s,
            &[
                "--tls",
                "--auth",
                mechanism,
                "--auth-user",
                PLAIN_USER,
                "--auth-password",
                "wrong",
            ],
        );
        assert_ne!(code, 0, "{mechanism}: {out}");
        assert!(out.contains("535 5.7.8"), "{out}");
    }
    // Without TLS only CRAM-MD5 is offered, and it works...
    let (code, out) = submit(
        &s,
        &[
            "--auth",
            "CRAM-MD5",
            "--auth-user",
            PLAIN_USER,
            "--auth-password",
            PLAIN_PASSWORD,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("250 AUTH CRAM-MD5\n") || out.contains("250 AUTH CRAM-MD5\r"),
        "{out}"
    );
    // ...while PLAIN, sent anyway, is refused before any check.
    python(
        r#"
import base64, smtplib, sys
smtp = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), source_address=("127.0.0.2", 0))
smtp.ehlo("client.example")
code, text = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + sys.argv[2].encode() + b"\0" + sys.argv[3].encode()).decode())
assert code == 538 and text.startswith(b"5.7.11"), (code, text)
print("ok")
"#,
        &[&s.port("submission"), PLAIN_USER, PLAIN_PASSWORD],
    );
    // A password stored as a one-way hash cannot answer CRAM-MD5.
    let password = s.password();
    let (code, out) = submit(
        &s,
        &[
            "--tls",
            "--auth",
            "CRAM-MD5",
            "--auth-user",
            "demo@example.test",
            "--auth-password",
            &password,
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("535 5.7.8"), "{out}");
    // Each failure is logged as Postfix logs it, and the stock fail2ban
    // filter, told the daemon's name, finds every one.
    let log = s.wait_for_log_count("authentication failed", 4);
    let failures = log
        .lines()
        .filter(|l| l.contains("SASL") && l.contains("authentication failed"))
        .count();
    assert_eq!(failures, 4, "{log}");
    let golden = include_str!("golden/smtp-auth-failures.log");
    if let Err(why) = postern_golden::log_lines(&log, golden) {
        panic!("{why}");
    }
    let out = Command::new("fail2ban-regex")
        .args(["--datepattern", "{NONE}"])
        .arg(&s.log)
        .arg("postfix[mode=auth, _daemon=postern-smtpd]")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(", 4 matched,"), "{text}");
    s.stop();
}

#[test]
fn the_fail2ban_jail_sample_loads_with_the_stock_filters() {
    // The stock configuration, with only our jail enabled, reading a
    // mail log of its own.
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("fail2ban");
    let copied = Command::new("cp")
        .args(["-r", "/etc/fail2ban"])
        .arg(&conf)
        .status()
        .unwrap();
    assert!(copied.success());
    for entry in std::fs::read_dir(conf.join("jail.d")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let log = tmp.path().join("mail.log");
    std::fs::write(&log, "").unwrap();
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/fail2ban/postern.conf"),
    )
    .unwrap()
    .replace("enabled  = false", "enabled  = true")
    .replace("%(syslog_mail)s", &log.display().to_string());
    std::fs::write(conf.join("jail.d/postern.conf"), sample).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../etc/fail2ban/filter.d/postern-login.conf"),
        conf.join("filter.d/postern-login.conf"),
    )
    .unwrap();
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(&conf)
        .arg("-t")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("configuration test is successful"),
        "{text}"
    );
}

#[test]
fn relaying_follows_a_successful_auth_and_not_a_failed_one() {
    let s = all_mechanisms();
    python(
        r#"
import smtplib, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def session():
    smtp = smtplib.SMTP("127.0.0.1", port, source_address=("127.0.0.2", 0))
    smtp.ehlo("client.example")
    smtp.starttls()
    smtp.ehlo("client.example")
    return smtp
smtp = session()
try:
    smtp.login(user, "wrong")
    raise SystemExit("a wrong password logged in")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
smtp.mail("someone@example.org")
code, text = smtp.rcpt("friend@elsewhere.example")
assert code == 550 and text.startswith(b"5.7.1"), (code, text)
smtp.quit()
smtp = session()
smtp.login(user, password)
smtp.mail(user)
code, text = smtp.rcpt("friend@elsewhere.example")
assert code == 250, (code, text)
smtp.quit()
print("ok")
"#,
        &[&s.port("SMTP"), PLAIN_USER, PLAIN_PASSWORD],
    );
    s.stop();
}

#[test]
fn commands_pipelined_with_starttls_are_not_executed() {
    let s = Suite::start(&[]);
    python(
        r#"
import socket, ssl, sys
port = int(sys.argv[1])
raw = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
f = raw.makefile("rb")
def reply(stream):
    lines = []
    while True:
        line = stream.readline()
        lines.append(line)
        if line[3:4] != b"-":
            return lines
assert reply(f)[0].startswith(b"220")
raw.sendall(b"EHLO client.example\r\n")
assert any(l[4:].startswith(b"STARTTLS") for l in reply(f))
# The injection: in one packet with STARTTLS, a whole transaction.
raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
assert reply(f)[0].startswith(b"220 2.0.0"), "no 220"
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
# The server read the injected bytes with STARTTLS and dropped them, so
# the handshake finds a clean stream.
tls = context.wrap_socket(raw, server_hostname="localhost")
g = tls.makefile("rb")
tls.sendall(b"EHLO client.example\r\n")
lines = reply(g)
assert not any(b"STARTTLS" in l for l in lines), lines
# Had MAIL and RCPT run, DATA would now be taken; it is not.
tls.sendall(b"DATA\r\n")
first = reply(g)[0]
assert first.startswith(b"503"), first
print("ok")
"#,
        &[&s.port("SMTP")],
    );
    let log = s.log_text();
    assert!(!log.contains("evil@attacker.example"), "{log}");
    s.stop();
}

#[test]
fn implicit_tls_and_starttls_sessions_deliver_with_an_esmtpsa_trace() {
    let s = Suite::start(&[]);
    let password = s.password();
    python(
        r#"
import smtplib, ssl, sys
smtps, submission, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
message = b"From: demo@example.test\r\nTo: demo@example.test\r\nSubject: %s\r\n\r\nover TLS\r\n"
smtp = smtplib.SMTP_SSL("127.0.0.1", smtps, context=context, source_address=("127.0.0.2", 0))
smtp.ehlo("client.example")
assert not smtp.has_extn("starttls")
smtp.login("demo@example.test", password)
smtp.sendmail("demo@example.test", ["demo@example.test"], message % b"implicit")
smtp.quit()
smtp = smtplib.SMTP("127.0.0.1", submission, source_address=("127.0.0.2", 0))
smtp.starttls(context=context)
smtp.login("demo@example.test", password)
smtp.sendmail("demo@example.test", ["demo@example.test"], message % b"starttls")
smtp.quit()
print("ok")
"#,
        &[&s.port("SMTPS"), &s.port("submission"), &password],
    );
    wait_for(&s.demo(), 2);
    let texts: Vec<String> = messages(&s.demo())
        .into_iter()
        .map(|(_, bytes)| String::from_utf8(bytes).unwrap())
        .collect();
    for text in &texts {
        assert!(text.contains("with ESMTPSA id "), "{text}");
        assert!(text.contains("(using TLSv1.3 with cipher "), "{text}");
        assert!(
            text.contains("(Authenticated sender: demo@example.test)"),
            "{text}"
        );
        assert!(text.ends_with("\n\nover TLS\n"), "{text:?}");
    }
    s.stop();
}

#[test]
fn submission_needs_auth_from_outsiders_only() {
    let s = Suite::start(&[]);
    let script = r#"
import smtplib, sys
smtp = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), source_address=(sys.argv[2], 0))
smtp.ehlo("client.example")
code, text = smtp.mail("someone@example.org")
assert code == int(sys.argv[3]), (code, text)
print("ok")
"#;
    python(script, &[&s.port("submission"), "127.0.0.2", "530"]);
    python(script, &[&s.port("submission"), "127.0.0.1", "250"]);
    // Port 25 takes mail from anyone (for its local recipients).
    python(script, &[&s.port("SMTP"), "127.0.0.2", "250"]);
    s.stop();
}

#[test]
fn failures_are_delayed_then_refused_for_that_ip_only() {
    let s = Suite::start(&[
        "auth.failure_delay_after = 1",
        "auth.failure_delay = \"1s\"",
        "auth.max_failures_per_ip = 3",
    ]);
    with_plain_account(&s);
    let attempt = |ip: &str, password: &str| -> (u16, Duration) {
        let started = Instant::now();
        let code = auth_plain(&s, ip, PLAIN_USER, password);
        (code, started.elapsed())
    };
    // The first failure is answered at once; from the second on, each
    // only after the delay; after the third, the IP is refused even with
    // the right password.
    assert_eq!(attempt("127.0.0.3", "wrong").0, 535);
    let (code, took) = attempt("127.0.0.3", "wrong");
    assert_eq!(code, 535);
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(attempt("127.0.0.3", "wrong").0, 535);
    assert_eq!(attempt("127.0.0.3", PLAIN_PASSWORD).0, 454);
    // Another IP logs in with the right password.
    assert_eq!(attempt("127.0.0.4", PLAIN_PASSWORD).0, 235);
    s.stop();
}

/// SMTP AUTH PLAIN from `ip` on submission after STARTTLS, with smtplib;
/// the reply code.
pub fn auth_plain(s: &Suite, ip: &str, user: &str, password: &str) -> u16 {
    let out = Command::new("python3")
        .args([
            "-c",
            r#"
import base64, smtplib, ssl, sys
port, ip, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
smtp = smtplib.SMTP("127.0.0.1", port, source_address=(ip, 0))
smtp.starttls(context=context)
smtp.ehlo("client.example")
code, text = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode())
print(code)
"#,
            &s.port("submission"),
            ip,
            user,
            password,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Asks postern-auth directly, as postern-pop3d will: a POP3 login.
fn pop3_login(s: &Suite, ip: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let mut socket = UnixStream::connect(s.dir.join("var/auth.sock")).unwrap();
    writeln!(socket, "PASS pop3 {ip} {} {}", b64(user), b64(password)).unwrap();
    let mut answer = String::new();
    BufReader::new(socket).read_line(&mut answer).unwrap();
    answer
}

#[test]
fn pop_before_smtp_opens_relaying_for_the_window_only() {
    let s = Suite::start(&[]);
    let relay_from = |ip: &str| -> i32 {
        swaks(&[
            "--server",
            &s.server("SMTP"),
            "--local-interface",
            ip,
            "--from",
            "demo@example.test",
            "--to",
            "friend@elsewhere.example",
        ])
        .0
    };
    assert_ne!(relay_from("127.0.0.5"), 0);
    // A failed login records nothing; a good one records the IP.
    assert!(pop3_login(&s, "127.0.0.5", "demo@example.test", "wrong").starts_with("FAIL "));
    assert_ne!(relay_from("127.0.0.5"), 0);
    let answer = pop3_login(&s, "127.0.0.5", "demo@example.test", &s.password());
    assert!(answer.starts_with("OK "), "{answer}");
    assert_eq!(relay_from("127.0.0.5"), 0);
    // Half an hour ago, as postern-relay can say: outside the window.
    let old = (postern_config::unix_now() - 1800).to_string();
    let out = Command::new(program("postern-relay"))
        .arg("--config")
        .arg(s.etc())
        .args(["add", "127.0.0.5", &old])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(relay_from("127.0.0.5"), 0);
    s.stop();
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = Suite::start(&[]);
    let served = || -> String {
        let out = Command::new("python3")
            .args([
                "-c",
                r#"
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
    with context.wrap_socket(raw) as tls:
        print(tls.getpeercert(binary_form=True).hex())
"#,
                &s.port("SMTPS"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let hex = |text: &str| text.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    assert!(served().contains(&hex("localhost")));
    // A renewal: the new pair written beside, then renamed over the old,
    // with the key's owner and mode kept.
    let tls = s.dir.join("tls");
    let key = std::fs::metadata(tls.join("key.pem")).unwrap();
    let renewed = rcgen::generate_simple_self_signed(vec!["renewed.example".to_string()]).unwrap();
    std::fs::write(tls.join("cert.new"), renewed.cert.pem()).unwrap();
    std::fs::write(tls.join("key.new"), renewed.signing_key.serialize_pem()).unwrap();
    std::os::unix::fs::chown(tls.join("key.new"), Some(key.uid()), Some(key.gid())).unwrap();
    std::fs::set_permissions(
        tls.join("key.new"),
        std::fs::Permissions::from_mode(key.mode()),
    )
    .unwrap();
    std::fs::rename(tls.join("key.new"), tls.join("key.pem")).unwrap();
    std::fs::rename(tls.join("cert.new"), tls.join("cert.pem")).unwrap();
    assert!(served().contains(&hex("renewed.example")));
    s.stop();
}

#[test]
fn auth_is_a_temporary_failure_while_postern_auth_cannot_be_reached() {
    let s = Suite::start(&[]);
    // The socket gone (postern-auth itself goes on, unreachable), once
    // postern-auth has made it.
    let socket = s.dir.join("var/auth.sock");
    crate::util::wait_until(
        Duration::from_secs(20),
        || socket.exists(),
        || "no socket".into(),
    );
    std::fs::remove_file(&socket).unwrap();
    let password = s.password();
    let (code, out) = submit(&s, &demo_auth(&password));
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("454 4.7.0 Temporary authentication failure"),
        "{out}"
    );
    s.stop();
}

#[test]
fn only_the_suites_login_clients_may_check_passwords() {
    if crate::util::skip_unless_root("only_the_suites_login_clients_may_check_passwords") {
        return;
    }
    let s = Suite::start(&[]);
    let socket = s.dir.join("var/auth.sock");
    let ask = |uid: &str, line: &str| -> String {
        let out = Command::new("setpriv")
            .args([
                "--reuid",
                uid,
                "--regid",
                uid,
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
            ])
            .arg(
                r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline().strip())
"#,
            )
            .arg(&socket)
            .arg(line)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // nobody may ask whether an address exists, not check a password or
    // record a "login" for relaying.
    assert_eq!(ask("65534", "LOOKUP demo@example.test"), "LOCAL");
    let pass = "PASS pop3 127.0.0.9 ZGVtb0BleGFtcGxlLnRlc3Q= eA==";
    assert!(
        ask("65534", pass).starts_with("ERROR "),
        "{}",
        ask("65534", pass)
    );
    // The SMTP listener's uid may.
    let smtpd_uid = crate::sandbox::role_uid(&s.etc(), "postern-smtpd").to_string();
    assert!(ask(&smtpd_uid, pass).starts_with("FAIL "));
    s.stop();
}
