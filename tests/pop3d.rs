//! postern-pop3d under `postern up`, with the clients people fetch mail
//! with: Python's poplib, fetchmail and getmail6, plain, STLS and POP3S,
//! against a Maildir filled by postern-local; deletions only at QUIT; one
//! session per mailbox, with takeover of an idle one; Dovecot's UIDLs kept;
//! and, as root, the session's privileges before and after the login.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::suite::{Suite, python};
use crate::util::{messages, program};

/// The messages the tests fetch: dots at line starts, an empty body line,
/// 8-bit text.
const MESSAGES: [&[u8]; 3] = [
    b"Subject: one\nFrom: a@example.org\n\nfirst\n.dot\n..two dots\n\nend\n",
    b"Subject: two\n\n.\nlone dot above\n",
    b"Subject: three\nContent-Type: text/plain; charset=utf-8\n\nna\xc3\xafve caf\xc3\xa9\n",
];

/// A CR of its own inside a line: sent as it is (fetchmail and getmail
/// each make something else of it, so only poplib reads this one).
const LONE_CR: &[u8] = b"Subject: four\n\nbefore\rafter\n";

pub(crate) fn deliver_all(s: &Suite) {
    deliver(s, &MESSAGES);
}

fn deliver(s: &Suite, messages: &[&[u8]]) {
    deliver_to(s, "demo@example.test", messages);
}

pub(crate) fn deliver_to(s: &Suite, address: &str, messages: &[&[u8]]) {
    for message in messages {
        let mut child = Command::new(program("postern-local"))
            .arg("--config")
            .arg(s.etc())
            .args(["-f", "sender@example.org", address])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        assert!(child.wait().unwrap().success());
    }
}

/// An account LOCAL@example.test stored `{PLAIN}tanstaaf`, as APOP
/// needs, with `extra` fields.
pub(crate) fn add_plain_account(s: &Suite, local: &str, extra: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(s.etc().join("accounts"))
        .unwrap();
    writeln!(file, "{local}@example.test:{{PLAIN}}tanstaaf::::::{extra}").unwrap();
}

/// Waits for a second server's port.
pub(crate) fn wait_for_port(port: u16) {
    crate::util::wait_until(
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        || format!("nothing listened on {port}"),
    );
}

/// The messages as the Maildir holds them, oldest first.
pub(crate) fn stored(s: &Suite) -> Vec<Vec<u8>> {
    let mut found = messages(&s.demo());
    found.sort();
    found.into_iter().map(|(_, bytes)| bytes).collect()
}

const POPLIB: &str = r#"
import poplib, ssl, sys
mode, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
if mode == "pop3s":
    pop = poplib.POP3_SSL("127.0.0.1", port, context=context)
else:
    pop = poplib.POP3("127.0.0.1", port)
    if mode == "stls":
        pop.stls(context=context)
pop.user("demo@example.test")
pop.pass_(password)
count, size = pop.stat()
total = 0
for n in range(1, count + 1):
    _, lines, octets = pop.retr(n)
    # RFC 1939 section 11: LIST's size is the message with CRLF ends.
    listed = int(pop.list(n).split()[2])
    body = b"\r\n".join(lines) + b"\r\n"
    assert listed == len(body), (n, listed, len(body))
    total += listed
    sys.stdout.buffer.write(b"%d %s\n" % (len(body), body.hex().encode()))
assert total == size, (total, size)
pop.quit()
print("ok")
"#;

#[test]
fn poplib_reads_every_message_exactly_over_plain_stls_and_pop3s() {
    let s = Suite::start(&[]);
    deliver_all(&s);
    deliver(&s, &[LONE_CR]);
    let expected: Vec<Vec<u8>> = stored(&s)
        .iter()
        .map(|m| {
            // As sent: CRLF line ends (a CR of its own stays text).
            m.iter().fold(Vec::new(), |mut out, &b| {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
                out
            })
        })
        .collect();
    let password = s.password();
    for (mode, service) in [("plain", "POP3"), ("stls", "POP3"), ("pop3s", "POP3S")] {
        let out = python(POPLIB, &[mode, &s.port(service), &password]);
        let fetched: Vec<Vec<u8>> = out
            .lines()
            .filter(|l| *l != "ok")
            .map(|l| hex(l.split_once(' ').unwrap().1))
            .collect();
        assert_eq!(fetched, expected, "{mode}");
    }
    // Read, but left on the server: now in cur/.
    assert_eq!(std::fs::read_dir(s.demo().join("new")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(s.demo().join("cur")).unwrap().count(), 4);
    s.stop();
}

/// A fetchmail run against the sandbox, each message handed to an MDA
/// that writes it into `out`; fetchmail's own output. Its UIDL records
/// stay in `out`'s parent, from run to run, as a user's do.
fn fetchmail(s: &Suite, out: &Path, options: &str) -> String {
    std::fs::create_dir_all(out).unwrap();
    let home = out.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let rc = home.join(".fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 service {} protocol pop3 uidl\n  user \"demo@example.test\" password \"{}\" is root here\n  {options} no sslcertck\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n",
            s.port("POP3"),
            s.password(),
            out.display()
        ),
    )
    .unwrap();
    run_fetchmail(
        &home,
        &rc,
        &["-i", &home.join("fetchids").to_string_lossy()],
    )
}

/// Runs fetchmail on `rc` with `home` as its home; its output. Each run
/// gets its own lock file: as root, fetchmail would otherwise share
/// /var/run/fetchmail.pid with every other test's run and refuse to start
/// while one is going.
pub(crate) fn run_fetchmail(home: &Path, rc: &Path, args: &[&str]) -> String {
    std::fs::set_permissions(rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run = Command::new("fetchmail")
        .args(["--nodetach", "--invisible", "--nosyslog", "--pidfile"])
        .arg(home.join("fetchmail.pid"))
        .arg("-f")
        .arg(rc)
        .args(args)
        .env("HOME", home)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    )
}

pub(crate) fn fetched(out: &Path) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("msg."))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    found.sort();
    found
}

#[test]
fn fetchmail_keeps_fetches_only_new_mail_and_deletes_at_quit() {
    let s = Suite::start(&[]);
    deliver_all(&s);
    let mut expected = stored(&s);
    expected.sort();
    let tmp = tempfile::tempdir().unwrap();
    // keep: all three, byte for byte, and left on the server.
    let first = tmp.path().join("first");
    let log = fetchmail(&s, &first, "keep");
    assert_eq!(fetched(&first), expected, "{log}");
    assert_eq!(stored(&s).len(), 3);
    // keep again, UIDL-based "only new": nothing.
    let again = tmp.path().join("again");
    let log = fetchmail(&s, &again, "keep");
    assert!(fetched(&again).is_empty(), "{log}");
    // A new message: only it comes.
    deliver(&s, &[b"Subject: four\n\nlate\n"]);
    let newer = tmp.path().join("newer");
    let log = fetchmail(&s, &newer, "keep");
    assert_eq!(fetched(&newer), [b"Return-Path: <sender@example.org>\nDelivered-To: demo@example.test\nSubject: four\n\nlate\n".to_vec()], "{log}");
    // no keep (fetchall): everything, then deleted at QUIT.
    let all = tmp.path().join("all");
    let log = fetchmail(&s, &all, "no keep fetchall");
    assert_eq!(fetched(&all).len(), 4, "{log}");
    assert!(stored(&s).is_empty());
    s.stop();
}

#[test]
fn getmail6_fetches_into_a_maildir_byte_for_byte() {
    let s = Suite::start(&[]);
    deliver_all(&s);
    let expected = stored(&s);
    let tmp = tempfile::tempdir().unwrap();
    let (maildir, user) = getmail_maildir(tmp.path());
    let rc = tmp.path().join("getmailrc");
    std::fs::write(
        &rc,
        format!(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\nport = {}\nusername = demo@example.test\npassword = {}\n\n[destination]\ntype = Maildir\npath = {}/\n{user}\n[options]\ndelete = true\ndelivered_to = false\nreceived = false\nread_all = true\n",
            s.port("POP3S"),
            s.password(),
            maildir.display()
        ),
    )
    .unwrap();
    let run = Command::new("getmail")
        .arg("--getmaildir")
        .arg(tmp.path())
        .arg("--rcfile")
        .arg(&rc)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{log}");
    let mut got: Vec<Vec<u8>> = messages(&maildir).into_iter().map(|(_, b)| b).collect();
    got.sort();
    let mut want = expected;
    want.sort();
    // getmail puts its Return-Path first; the rest is the message itself.
    let without = |m: &Vec<u8>| without_lines(m, &["Return-Path:"]);
    assert_eq!(
        got.iter().map(without).collect::<Vec<_>>(),
        want.iter().map(without).collect::<Vec<_>>(),
        "{log}"
    );
    // delete = true: gone from the server after its QUIT.
    assert!(stored(&s).is_empty());
    s.stop();
}

/// A Maildir for getmail under `dir`, and the getmailrc line it needs:
/// as root getmail delivers only as a named user, nobody, who owns it.
pub(crate) fn getmail_maildir(dir: &Path) -> (PathBuf, &'static str) {
    let maildir = dir.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    if !crate::util::is_root() {
        return (maildir, "");
    }
    for sub in ["", "new", "cur", "tmp"] {
        std::os::unix::fs::chown(maildir.join(sub), Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (maildir, "user = nobody\n")
}

/// A message's text without the lines that start with any of `starts`
/// (fields a client adds), lines joined by LF.
pub(crate) fn without_lines(message: &[u8], starts: &[&str]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message).into_owned();
    text.lines()
        .filter(|line| !starts.iter().any(|start| line.starts_with(start)))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

const SESSION: &str = r#"
import poplib, sys, time
port, password, action = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pop = poplib.POP3("127.0.0.1", port)
pop.user("demo@example.test")
try:
    pop.pass_(password)
except poplib.error_proto as e:
    print(e.args[0].decode())
    raise SystemExit
print("in", pop.stat()[0])
sys.stdout.flush()
if action == "dele-and-hang":
    pop.dele(1)
    time.sleep(60)
elif action == "hang":
    time.sleep(60)
else:
    pop.quit()
print("ok")
"#;

fn session(s: &Suite, action: &str) -> std::process::Child {
    Command::new("python3")
        .args(["-c", SESSION, &s.port("POP3"), &s.password(), action])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

#[test]
fn one_session_per_mailbox_a_dropped_one_deletes_nothing_and_an_idle_one_is_taken_over() {
    // A takeover time that a busy machine's client start-up cannot reach.
    let s = Suite::start(&["pop3d.lock_takeover = \"5s\""]);
    deliver_all(&s);
    // A session that deletes, then dies without QUIT.
    let mut first = session(&s, "dele-and-hang");
    assert_eq!(first_line(&mut first), "in 3");
    // The second is refused while the first is busy...
    let mut second = session(&s, "quit");
    assert!(first_line(&mut second).starts_with("-ERR [IN-USE]"));
    second.wait().unwrap();
    // ...and once the first is killed, the next gets in at once (well
    // before any takeover: the server's side of the first has only to
    // see the connection close), with nothing deleted.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed = std::time::Instant::now();
    let third = loop {
        let mut third = session(&s, "quit");
        let line = first_line(&mut third);
        third.wait().unwrap();
        if !line.starts_with("-ERR [IN-USE]") || killed.elapsed() > Duration::from_millis(2000) {
            break line;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(third, "in 3");
    // A session idle past lock_takeover (5 s) gives way to a new login.
    let mut idle = session(&s, "hang");
    assert_eq!(first_line(&mut idle), "in 3");
    std::thread::sleep(Duration::from_millis(5500));
    let mut taker = session(&s, "quit");
    assert_eq!(first_line(&mut taker), "in 3");
    taker.wait().unwrap();
    let _ = idle.kill();
    idle.wait().unwrap();
    assert_eq!(stored(&s).len(), 3);
    s.stop();
}

#[test]
fn a_maildir_from_dovecot_keeps_its_uidls() {
    let s = Suite::start(&[]);
    let maildir: PathBuf = s.demo();
    // As Dovecot left it: two messages and its uidlist, owned by the
    // mailbox's owner.
    let owner = std::fs::metadata(&maildir).unwrap();
    let files = [
        (
            "cur/1700000001.M1P1.oldhost,S=20:2,S",
            "Subject: a\n\nfirst\n",
        ),
        (
            "cur/1700000002.M2P2.oldhost,S=21:2,",
            "Subject: b\n\nsecond\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(maildir.join(name), text).unwrap();
    }
    std::fs::write(
        maildir.join("dovecot-uidlist"),
        "3 V1700000000 N3 G0123456789abcdef0123456789abcdef\n1 :1700000001.M1P1.oldhost,S=20\n2 P00000007migrated :1700000002.M2P2.oldhost,S=21\n",
    )
    .unwrap();
    for entry in [
        "cur/1700000001.M1P1.oldhost,S=20:2,S",
        "cur/1700000002.M2P2.oldhost,S=21:2,",
        "dovecot-uidlist",
    ] {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(maildir.join(entry), Some(owner.uid()), Some(owner.gid()))
            .unwrap();
    }
    let out = python(
        r#"
import poplib, sys
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
pop.user("demo@example.test")
pop.pass_(sys.argv[2])
print(pop.uidl()[1])
pop.quit()
print("ok")
"#,
        &[&s.port("POP3"), &s.password()],
    );
    assert!(
        out.contains("b'1 000000016553F100', b'2 00000007migrated'"),
        "{out}"
    );
    s.stop();
}

/// The `/proc` status of the sandbox's newest POP3 session, taken while
/// a poplib client holds it: logged in with `login` (user, password), or
/// with `None` only connected.
pub(crate) fn held_session_status(s: &Suite, login: Option<(&str, &str)>) -> String {
    const HOLD: &str = r#"
import poplib, sys, time
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
if sys.argv[2]:
    pop.user(sys.argv[2])
    pop.pass_(sys.argv[3])
print("ready", flush=True)
time.sleep(30)
"#;
    hold_session(HOLD, &s.port("POP3"), login, || newest_pop3_session(s))
}

/// Runs `script` (a client that logs in with the credentials given, if
/// any, says "ready" and waits) against `port`, and returns the /proc
/// status of the session `newest` then names.
pub(crate) fn hold_session(
    script: &str,
    port: &str,
    login: Option<(&str, &str)>,
    newest: impl Fn() -> String,
) -> String {
    let (user, password) = login.unwrap_or_default();
    let mut child = Command::new("python3")
        .args(["-c", script, port, user, password])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line(&mut child), "ready");
    let pid = newest();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let _ = child.kill();
    child.wait().unwrap();
    status
}

/// A `/proc` status field's values, joined by spaces.
pub(crate) fn status_field(status: &str, key: &str) -> String {
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_session_is_the_login_user_with_two_capabilities_then_the_owner_with_none() {
    if crate::util::skip_unless_root("a_session_is_the_login_user_then_the_owner") {
        return;
    }
    let s = Suite::start(&[]);
    let before = held_session_status(&s, None);
    let after = held_session_status(&s, Some(("demo@example.test", &s.password())));
    assert_login_user_then_owner(&s, &before, &after);
    s.stop();
}

/// A session's /proc status before its login (`before`: the login user,
/// with CAP_SETUID and CAP_SETGID alone) and after it (`after`: the demo
/// mailbox's owner, with no capability).
pub(crate) fn assert_login_user_then_owner(s: &Suite, before: &str, after: &str) {
    let id_of = |role: &str| crate::sandbox::role_uid(&s.etc(), role);
    let login = id_of("postern-login");
    assert_eq!(
        status_field(before, "Uid:"),
        format!("{login} {login} {login} {login}"),
        "{before}"
    );
    // CAP_SETGID (6) and CAP_SETUID (7), nothing else.
    assert_eq!(status_field(before, "CapEff:"), "00000000000000c0");
    assert_eq!(status_field(before, "CapPrm:"), "00000000000000c0");
    let mail = id_of("mail");
    assert_eq!(
        status_field(after, "Uid:"),
        format!("{mail} {mail} {mail} {mail}"),
        "{after}"
    );
    assert_eq!(status_field(after, "Groups:"), mail.to_string());
    assert_eq!(status_field(after, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(after, "CapPrm:"), "0000000000000000");
}

#[test]
fn mutt_reads_the_mailbox_over_pop() {
    let s = Suite::start(&[]);
    deliver_all(&s);
    let tmp = tempfile::tempdir().unwrap();
    let rc = tmp.path().join("muttrc");
    let saved = tmp.path().join("saved");
    std::fs::write(
        &rc,
        format!(
            "set pop_user = \"demo@example.test\"\nset pop_pass = \"{}\"\nset ssl_starttls = no\nset ssl_force_tls = no\nset mbox_type = mbox\nset confirmappend = no\nset confirmcreate = no\nset move = no\nset pop_delete = no\nset wait_key = no\nset header_cache = \"\"\nset message_cachedir = \"\"\n",
            s.password()
        ),
    )
    .unwrap();
    // mutt reads with a terminal: `script` gives it one; the pushed keys
    // copy each message into an mbox and quit.
    let copy = format!("<copy-message>{}<enter>", saved.display());
    let keys = format!("{copy}<next-entry>{copy}<next-entry>{copy}<quit>");
    let command = format!(
        "mutt -n -F {} -f pop://127.0.0.1:{}/ -e 'push \"{keys}\"'",
        rc.display(),
        s.port("POP3")
    );
    let run = Command::new("timeout")
        .args(["60", "script", "-qec", &command, "/dev/null"])
        .env("TERM", "vt100")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let mbox = std::fs::read(&saved).unwrap();
    let text = String::from_utf8_lossy(&mbox);
    assert_eq!(
        text.matches("\nReturn-Path: <sender@example.org>\n")
            .count(),
        3,
        "{text}"
    );
    // Each message's header and body, as stored (mutt adds its mbox
    // separator and Content-Length/Lines).
    for message in stored(&s) {
        let message = String::from_utf8(message).unwrap();
        let (header, body) = message.split_once("\n\n").unwrap();
        for line in header.lines() {
            assert!(text.contains(&format!("{line}\n")), "{line} in {text}");
        }
        assert!(text.contains(&format!("\n\n{body}")), "{body:?} in {text}");
    }
    // pop_delete = no: all still on the server.
    assert_eq!(stored(&s).len(), 3);
    s.stop();
}

#[test]
fn a_system_user_logs_in_by_name_to_their_own_maildir_over_pop3_and_imap() {
    if crate::util::skip_unless_root("a_system_user_logs_in_by_name_to_their_own_maildir") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let s = Suite::start(&[]);
    let name = format!("pp{}", std::process::id() % 100_000);
    let home = s.dir.join("home").join(&name);
    let password = "shell pass 7";
    {
        let _guard = crate::system_users::ACCOUNTS
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        let made = Command::new("useradd")
            .args(["--create-home", "--user-group", "--home-dir"])
            .arg(&home)
            .arg(&name)
            .status()
            .unwrap();
        assert!(made.success());
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(chpasswd.stdin.take().unwrap(), "{name}:{password}").unwrap();
        assert!(chpasswd.wait().unwrap().success());
    }
    // Mail in ~/Maildir, as postern-local leaves it, the user's.
    let uid = std::fs::metadata(&home).unwrap().uid();
    let maildir = home.join("Maildir");
    for sub in ["", "new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
        std::os::unix::fs::chown(maildir.join(sub), Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(
            maildir.join(sub),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
    }
    let message = maildir.join("new/1700000001.P1.host");
    std::fs::write(&message, "Subject: shell\n\nfor you\n").unwrap();
    std::os::unix::fs::chown(&message, Some(uid), Some(uid)).unwrap();
    let result = std::panic::catch_unwind(|| {
        python(
            r#"
import poplib, sys
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
pop.user(sys.argv[2])
pop.pass_(sys.argv[3])
assert pop.retr(1)[1] == [b"Subject: shell", b"", b"for you"]
pop.quit()
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
pop.user(sys.argv[2])
try:
    pop.pass_("wrong")
    raise SystemExit("a wrong password logged in")
except poplib.error_proto as e:
    assert e.args[0].startswith(b"-ERR [AUTH]"), e
import imaplib
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[4]))
m.login(sys.argv[2], sys.argv[3])
assert m.select("INBOX") == ("OK", [b"1"])
typ, data = m.fetch("1", "(BODY[TEXT])")
assert data[0][1] == b"for you\r\n", data
m.logout()
print("ok")
"#,
            &[&s.port("POP3"), &name, password, &s.port("IMAP")],
        );
    });
    let _guard = crate::system_users::ACCOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let _ = Command::new("userdel").arg(&name).status();
    drop(_guard);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // Read: moved to cur/ by the POP3 session and marked \Seen by the
    // IMAP one, each running as the user (a session of another uid could
    // not have renamed it in 0700 dirs, nor written the IMAP index).
    assert!(maildir.join("cur/1700000001.P1.host:2,S").exists());
    let index = std::fs::metadata(maildir.join("postern-index")).unwrap();
    assert_eq!(index.uid(), uid);
    s.stop();
}

#[test]
fn fetchmail_logs_in_by_apop_and_by_cram_md5_and_an_apop_account_refuses_pass() {
    let s = Suite::start(&["pop3d.apop = true", "pop3d.cram_md5 = true"]);
    // Accounts whose passwords are stored in the clear, as APOP needs; one
    // set to APOP only (RFC 1939 section 13).
    add_plain_account(&s, "plain", "");
    add_plain_account(&s, "strict", " postern_pop3_login=apop");
    for account in ["plain", "strict"] {
        deliver_to(
            &s,
            &format!("{account}@example.test"),
            &[b"Subject: proved\n\nno password sent\n"],
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |account: &str, method: &str| -> (Vec<Vec<u8>>, String) {
        let out = tmp
            .path()
            .join(format!("{account}-{}", method.replace(' ', "-")));
        std::fs::create_dir_all(&out).unwrap();
        let home = out.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let rc = home.join(".fetchmailrc");
        std::fs::write(
            &rc,
            format!(
                "poll 127.0.0.1 service {} {method}\n  user \"{account}@example.test\" password \"tanstaaf\" is root here\n  keep no sslcertck sslproto ''\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n",
                s.port("POP3"),
                out.display()
            ),
        )
        .unwrap();
        let log = run_fetchmail(&home, &rc, &["-v"]);
        (fetched(&out), log)
    };
    let (got, log) = run("plain", "protocol APOP");
    assert_eq!(got.len(), 1, "{log}");
    assert!(log.contains("> APOP plain@example.test "), "{log}");
    let (got, log) = run("plain", "protocol pop3 auth cram-md5");
    assert_eq!(got.len(), 1, "{log}");
    assert!(log.contains("> AUTH CRAM-MD5"), "{log}");
    // The APOP-only account: APOP works, USER/PASS does not.
    let (got, log) = run("strict", "protocol APOP");
    assert_eq!(got.len(), 1, "{log}");
    let (got, log) = run("strict", "protocol pop3 auth password");
    assert!(got.is_empty(), "{log}");
    assert!(log.contains("-ERR [AUTH]"), "{log}");
    s.stop();
}

/// Opens a connection from `ip` and returns it with the greeting.
fn greeting(s: &Suite, ip: &str) -> (std::net::TcpStream, String) {
    greeting_at(s.port("POP3").parse().unwrap(), ip)
}

/// The greeting of 127.0.0.1:`port` to a client at `ip`.
pub(crate) fn greeting_at(port: u16, ip: &str) -> (std::net::TcpStream, String) {
    use std::io::BufRead;
    let socket = connect_from(ip, port);
    // A server that never greets fails the test rather than hanging it.
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(socket.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    (socket, line)
}

/// A TCP connection to 127.0.0.1:`port` from `ip` (another loopback
/// address): std cannot bind a socket before it connects, so libc does.
pub(crate) fn connect_from(ip: &str, port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let address: std::net::Ipv4Addr = ip.parse().unwrap();
    // SAFETY: plain socket calls on a fresh descriptor; results checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        local.sin_family = libc::AF_INET as libc::sa_family_t;
        local.sin_addr.s_addr = u32::from(address).to_be();
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), size),
            0
        );
        let mut remote: libc::sockaddr_in = std::mem::zeroed();
        remote.sin_family = libc::AF_INET as libc::sa_family_t;
        remote.sin_port = port.to_be();
        remote.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), size),
            0
        );
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// pgrep's answer: pids, one a line.
fn pgrep(args: &[&str]) -> String {
    let out = Command::new("pgrep").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The pid of the sandbox's listener of `program` (`postern-pop3d`,
/// `postern-imapd`; not an instance's).
pub(crate) fn listener(s: &Suite, program: &str) -> String {
    let listener = pgrep(&[
        "-o",
        "-f",
        &format!("{program} --config {}$", s.etc().display()),
    ]);
    assert!(!listener.is_empty(), "no {program} listener");
    listener
}

fn pop3_listener(s: &Suite) -> String {
    listener(s, "postern-pop3d")
}

/// The pid of the newest session of `program`'s listener.
pub(crate) fn newest_session(s: &Suite, program: &str) -> String {
    pgrep(&["-n", "-P", &listener(s, program)])
}

fn newest_pop3_session(s: &Suite) -> String {
    newest_session(s, "postern-pop3d")
}

/// Waits until the sandbox's POP3 listener has at most `count` sessions.
fn wait_for_sessions(s: &Suite, count: usize) {
    let listener = pop3_listener(s);
    crate::util::wait_until(
        Duration::from_secs(10),
        || pgrep(&["-P", &listener]).lines().count() <= count,
        || format!("the POP3 listener kept more than {count} sessions"),
    );
}

#[test]
fn the_25th_connection_is_served_the_26th_refused_and_one_ip_has_its_own_limit() {
    let s = Suite::start(&[
        "pop3d.max_connections = 25",
        "pop3d.max_connections_per_ip = 20",
    ]);
    let mut open = Vec::new();
    // 20 from 127.0.0.1 (its own limit), then 5 from 127.0.0.3: 25.
    for i in 0..25 {
        let ip = if i < 20 { "127.0.0.1" } else { "127.0.0.3" };
        let (socket, line) = greeting(&s, ip);
        assert!(line.starts_with("+OK"), "connection {}: {line}", i + 1);
        open.push(socket);
    }
    let (_, line) = greeting(&s, "127.0.0.4");
    assert!(line.starts_with("-ERR [SYS/TEMP]"), "{line}");
    // One gone: the next is served again, once the listener has seen
    // its session end.
    drop(open.pop());
    wait_for_sessions(&s, 24);
    let (socket, line) = greeting(&s, "127.0.0.4");
    assert!(line.starts_with("+OK"), "{line}");
    open.push(socket);
    drop(open);
    // Per IP: a 21st from 127.0.0.1 is refused while 20 are open.
    wait_for_sessions(&s, 0);
    let mut mine: Vec<_> = (0..20).map(|_| greeting(&s, "127.0.0.1").0).collect();
    let (_, line) = greeting(&s, "127.0.0.1");
    assert!(line.starts_with("-ERR [SYS/TEMP]"), "{line}");
    let (_, line) = greeting(&s, "127.0.0.5");
    assert!(line.starts_with("+OK"), "{line}");
    mine.clear();
    s.stop();
}

#[test]
fn access_control_modes_and_the_idle_timeout() {
    let s = Suite::start(&[
        "pop3d.access = \"allow\"",
        "pop3d.allow = [\"127.0.0.1/32\"]",
        "pop3d.lan_networks = [\"127.0.0.2/32\"]",
        "pop3d.idle_timeout = \"2s\"",
    ]);
    assert!(greeting(&s, "127.0.0.1").1.starts_with("+OK"));
    assert_eq!(greeting(&s, "127.0.0.2").1, "-ERR Access denied\r\n");
    // Idle past the timeout: told, and closed.
    let (socket, _) = greeting(&s, "127.0.0.1");
    let mut rest = String::new();
    use std::io::Read;
    let started = std::time::Instant::now();
    std::io::BufReader::new(socket)
        .read_to_string(&mut rest)
        .unwrap();
    assert_eq!(rest, "-ERR Disconnected for inactivity\r\n");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    s.stop();
    // allow+lan: the LAN's networks too.
    let s = Suite::start(&[
        "pop3d.access = \"allow+lan\"",
        "pop3d.allow = [\"127.0.0.1/32\"]",
        "pop3d.lan_networks = [\"127.0.0.2/32\"]",
    ]);
    assert!(greeting(&s, "127.0.0.2").1.starts_with("+OK"));
    assert_eq!(greeting(&s, "127.0.0.3").1, "-ERR Access denied\r\n");
    s.stop();
}

#[test]
fn an_account_set_to_all_folders_sees_folder_mail_through_pop3() {
    use std::os::unix::fs::MetadataExt;
    let s = Suite::start(&[]);
    deliver_all(&s);
    // demo's line, with the option that shows every folder.
    let accounts = s.etc().join("accounts");
    let text = std::fs::read_to_string(&accounts).unwrap();
    let text = text.replace("::::::", ":::::: postern_pop3_folders=all");
    std::fs::write(&accounts, text).unwrap();
    // A message in the folder .Archive, owned as postern-local would.
    let owner = std::fs::metadata(s.demo()).unwrap();
    let folder = s.demo().join(".Archive");
    for sub in ["", "cur", "new", "tmp"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
        std::os::unix::fs::chown(folder.join(sub), Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let archived = folder.join("cur/1600000000.P1.old,S=27:2,S");
    std::fs::write(&archived, "Subject: archived\n\nfrom 2020\n").unwrap();
    std::os::unix::fs::chown(&archived, Some(owner.uid()), Some(owner.gid())).unwrap();
    let out = python(
        r#"
import poplib, sys
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
pop.user("demo@example.test")
pop.pass_(sys.argv[2])
count = pop.stat()[0]
assert count == 4, count
assert pop.retr(4)[1][-3:] == [b"Subject: archived", b"", b"from 2020"], pop.retr(4)
print(pop.uidl(4).decode())
pop.dele(4)
pop.quit()
print("ok")
"#,
        &[&s.port("POP3"), &s.password()],
    );
    assert!(
        out.contains("+OK 4 .Archive/1600000000.P1.old,S=27"),
        "{out}"
    );
    assert!(!archived.exists(), "deleted at QUIT");
    assert_eq!(stored(&s).len(), 3, "INBOX untouched");
    s.stop();
}

#[test]
fn invalid_message_ids_are_left_out_with_list_sizes_still_exact() {
    let s = Suite::start(&[]);
    let accounts = s.etc().join("accounts");
    let text = std::fs::read_to_string(&accounts).unwrap();
    let text = text.replace("::::::", ":::::: postern_pop3_message_id=strip");
    std::fs::write(&accounts, text).unwrap();
    deliver(
        &s,
        &[
            b"Subject: broken\nMessage-ID: not an id\nFrom: a@example.org\n\nbody\nMessage-ID: in the body\n",
            b"Subject: folded\nmessage-id:\n <half@open\n\tstill open\nTo: b@example.org\n\nbody\n",
            b"Subject: fine\nMessage-ID: <ok.1@example.org> (kept)\n\nbody\n",
        ],
    );
    let out = python(
        r#"
import poplib, sys
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
pop.user("demo@example.test")
pop.pass_(sys.argv[2])
count, size = pop.stat()
total = 0
for n in range(1, count + 1):
    _, lines, _ = pop.retr(n)
    body = b"\r\n".join(lines) + b"\r\n"
    listed = int(pop.list(n).split()[2])
    assert listed == len(body), (n, listed, len(body))
    total += listed
    top = b"\r\n".join(pop.top(n, 0)[1])
    assert body.startswith(top), (top, body)
    sys.stdout.buffer.write(b"%s\n" % body.hex().encode())
assert total == size, (total, size)
pop.quit()
print("ok")
"#,
        &[&s.port("POP3"), &s.password()],
    );
    let fetched: Vec<Vec<u8>> = out.lines().filter(|l| *l != "ok").map(hex).collect();
    let expected: Vec<Vec<u8>> = stored(&s)
        .iter()
        .map(|m| {
            let text = String::from_utf8(m.clone()).unwrap().replace('\n', "\r\n");
            text.replace("Message-ID: not an id\r\n", "")
                .replace("message-id:\r\n <half@open\r\n\tstill open\r\n", "")
                .into_bytes()
        })
        .collect();
    assert_eq!(fetched.len(), 3, "{out}");
    assert_eq!(fetched, expected);
    // What was cut is said once, in the cache, not found at each login.
    let cache = std::fs::read_to_string(s.demo().join("postern-pop3-cache")).unwrap();
    assert_eq!(
        cache.lines().filter(|l| l.contains(" 23 ")).count(),
        1,
        "{cache}"
    );
    s.stop();
}

pub(crate) fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_second_instance_serves_its_own_port_with_its_own_settings() {
    use std::io::{BufRead, BufReader};
    let s = Suite::start(&[
        "pop3d.instances.staff = { listen = [\"127.0.0.1:{PORT1}\"], access = \"allow\", \
         allow = [\"127.0.0.2/32\"], apop = true, cleartext_networks = [\"127.0.0.0/8\"] }",
    ]);
    let port = s.extra_port(1);
    wait_for_port(port);
    // [pop3d] itself: anyone, no APOP.
    let (_, line) = greeting(&s, "127.0.0.1");
    assert!(line.starts_with("+OK") && !line.contains('<'), "{line}");
    // The instance: its own access list, and APOP's timestamp.
    assert_eq!(greeting_at(port, "127.0.0.1").1, "-ERR Access denied\r\n");
    let (mut socket, line) = greeting_at(port, "127.0.0.2");
    assert!(line.starts_with("+OK") && line.contains('<'), "{line}");
    // A cleartext login from 127.0.0.2, which only the instance allows.
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    let mut ask = |command: String| {
        socket.write_all(command.as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        answer
    };
    assert!(ask("USER demo@example.test\r\n".into()).starts_with("+OK"));
    let answer = ask(format!("PASS {}\r\n", s.password()));
    assert!(answer.starts_with("+OK"), "{answer}");
    assert_eq!(ask("STAT\r\n".into()), "+OK 0 0\r\n");
    assert!(ask("QUIT\r\n".into()).starts_with("+OK"));
    // The same cleartext login on [pop3d]'s port is refused.
    let (mut socket, _) = greeting(&s, "127.0.0.2");
    socket.write_all(b"USER demo@example.test\r\n").unwrap();
    let mut answer = String::new();
    BufReader::new(socket).read_line(&mut answer).unwrap();
    assert!(answer.starts_with("-ERR"), "{answer}");
    s.stop();
}

#[test]
fn failed_pop3_logins_are_delayed_then_refused_for_that_ip() {
    let s = Suite::start(&[
        "auth.failure_delay_after = 1",
        "auth.failure_delay = \"1s\"",
        "auth.max_failures_per_ip = 3",
        "pop3d.cleartext_networks = [\"127.0.0.0/8\"]",
    ]);
    let attempt_as = |ip: &str, user: &str| -> (String, Duration) {
        let started = std::time::Instant::now();
        let out = pop_from(&s, ip, user, "wrong");
        (out.lines().next().unwrap().to_string(), started.elapsed())
    };
    let attempt = |ip: &str, password: &str| -> (String, Duration) {
        let started = std::time::Instant::now();
        let out = pop_from(&s, ip, "demo@example.test", password);
        (out.lines().next().unwrap().to_string(), started.elapsed())
    };
    let (answer, _) = attempt("127.0.0.3", "wrong");
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
    let (answer, took) = attempt("127.0.0.3", "wrong");
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    attempt("127.0.0.3", "wrong");
    let (answer, _) = attempt("127.0.0.3", &s.password());
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "{answer}");
    let (answer, _) = attempt("127.0.0.4", &s.password());
    assert!(answer.starts_with("+OK"), "{answer}");
    // A user name made to look like another address in the log line.
    let forged = "x>, ip=203.0.113.9, method=password, reason=y";
    let (answer, _) = attempt_as("127.0.0.3", forged);
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
    // The sample jail's filter counts the four wrong passwords, not the
    // throttle's refusal, and only ever the real address.
    let conf = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg("/etc/fail2ban")
        .arg(conf.path().join("fail2ban"))
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../etc/fail2ban/filter.d/postern-login.conf"),
        conf.path().join("fail2ban/filter.d/postern-login.conf"),
    )
    .unwrap();
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        log.contains("pop3 login throttled: user=<demo@example.test>, ip=127.0.0.3"),
        "{log}"
    );
    let golden = include_str!("golden/pop3-login-failures.log");
    if let Err(why) = postern_golden::log_lines(&log, golden) {
        panic!("{why}");
    }
    let out = Command::new("fail2ban-regex")
        .arg("-c")
        .arg(conf.path().join("fail2ban"))
        .args(["-v", "--datepattern", "{NONE}"])
        .arg(&s.log)
        .arg("postern-login")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(", 4 matched,"), "{text}");
    assert!(!text.contains("|      203.0.113.9"), "{text}");
    assert_eq!(text.matches("|      127.0.0.3 ").count(), 4, "{text}");
    s.stop();
}

/// poplib from `ip` to the sandbox's POP3 port: the answer to PASS, then,
/// if it was +OK, each message in hex on a line; then "ok".
pub(crate) fn pop_from(s: &Suite, ip: &str, user: &str, password: &str) -> String {
    pop_at(&s.port("POP3"), ip, user, password)
}

/// `pop_from`, to 127.0.0.1:`port`.
pub(crate) fn pop_at(port: &str, ip: &str, user: &str, password: &str) -> String {
    python(
        r#"
import functools, poplib, socket, sys
poplib.socket.create_connection = functools.partial(
    socket.create_connection, source_address=(sys.argv[2], 0))
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
try:
    pop.user(sys.argv[3])
    print(pop.pass_(sys.argv[4]).decode())
except poplib.error_proto as e:
    print(e.args[0].decode())
    print("ok")
    sys.exit(0)
count, size = pop.stat()
for n in range(1, count + 1):
    _, lines, _ = pop.retr(n)
    sys.stdout.write((b"\r\n".join(lines) + b"\r\n").hex() + "\n")
pop.quit()
print("ok")
"#,
        &[port, ip, user, password],
    )
}

/// fetchmail as the README has it trust the sandbox: its certificate as
/// the one CA, checked, the server named `localhost` as the certificate
/// says; and a certificate it does not vouch for is refused.
#[test]
fn fetchmail_checks_the_sandbox_certificate_as_the_readme_says() {
    let s = Suite::start(&[]);
    deliver_all(&s);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let rc = tmp.path().join("fetchmailrc");
    let poll = |ca: &Path| {
        std::fs::write(
            &rc,
            format!(
                "poll localhost service {} protocol pop3\n  user \"demo@example.test\" password \"{}\" is root here\n  ssl sslcertfile {} sslcertck keep\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n",
                s.port("POP3S"),
                s.password(),
                ca.display(),
                out.display()
            ),
        )
        .unwrap();
        run_fetchmail(tmp.path(), &rc, &[])
    };
    // Another self-signed certificate: refused before any login.
    let other = tmp.path().join("other.pem");
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&other, stranger.cert.pem()).unwrap();
    let refused = poll(&other);
    assert!(
        refused.contains("Server certificate verification error"),
        "{refused}"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    // The sandbox's own: all three messages.
    let said = poll(&s.dir.join("tls/cert.pem"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3, "{said}");
    s.stop();
}
