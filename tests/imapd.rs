//! postern-imapd under `postern up`, with the clients people read mail
//! with: Python's imaplib for every read command over IMAP, STARTTLS and
//! IMAPS; mutt in batch mode over imap:// and imaps://; mbsync pulling a
//! folder tree twice; offlineimap; alpine; fetchmail and getmail6 over IMAP;
//! against a Maildir filled by postern-local and folders as Maildir++ has
//! them. Also, as root, the session's privileges before and after the
//! login, and the relay right a login gives (POP-before-SMTP).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pop3d::{deliver_to, hex, run_fetchmail, status_field, stored};
use crate::suite::{Suite, python};

/// What the tests read: a plain message, a multipart with an attachment,
/// and 8-bit text with an encoded subject.
pub(crate) const MESSAGES: [&[u8]; 3] = [
    b"Subject: first\nFrom: Alice <alice@example.org>\nTo: demo@example.test\n\
      Date: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <one@example.org>\n\n\
      Hello there.\n.dot line\n\nend\n",
    b"Subject: report\nFrom: Bob <bob@example.org>\nTo: demo@example.test\n\
      Date: Tue, 8 Dec 2026 11:00:00 +0100\nMIME-Version: 1.0\n\
      Content-Type: multipart/mixed; boundary=\"b1\"\n\n\
      preamble\n--b1\nContent-Type: text/plain; charset=us-ascii\n\nSee the figures.\n\
      --b1\nContent-Type: application/octet-stream; name=\"data.bin\"\n\
      Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"data.bin\"\n\n\
      AAECAwQFBgc=\n--b1--\n",
    b"Subject: =?utf-8?q?caf=C3=A9_cr=C3=A8me?=\nFrom: carol@example.org\n\
      Date: Wed, 9 Dec 2026 12:00:00 -0500\n\
      Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
      na\xc3\xafve caf\xc3\xa9\n",
];

pub(crate) fn deliver(s: &Suite, messages: &[&[u8]]) {
    deliver_to(s, "demo@example.test", messages);
}

/// A Maildir++ folder `.NAME` of the demo mailbox holding `messages`
/// (files written as a shell user would, owned as the mailbox is).
pub(crate) fn make_folder(s: &Suite, name: &str, messages: &[&[u8]]) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let folder = s.demo().join(format!(".{name}"));
    let owner = std::fs::metadata(s.demo()).unwrap();
    for sub in ["", "cur", "new", "tmp"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
        std::os::unix::fs::chown(folder.join(sub), Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    for (n, message) in messages.iter().enumerate() {
        let file = folder.join(format!("cur/17000000{n:02}.M{n}P1.shell:2,S"));
        std::fs::write(&file, message).unwrap();
        std::os::unix::fs::chown(&file, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    folder
}

/// `message` as IMAP sends it: CRLF line ends.
pub(crate) fn crlf(message: &[u8]) -> Vec<u8> {
    message.iter().fold(Vec::new(), |mut out, &b| {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
        out
    })
}

/// Every read command of RFC 3501 through imaplib; prints each message's
/// BODY[] in hex, and asserts what only the session can tell.
const IMAPLIB: &str = r#"
import imaplib, ssl, sys, re
mode, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
if mode == "imaps":
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context)
else:
    m = imaplib.IMAP4("127.0.0.1", port)
    if mode == "starttls":
        assert "STARTTLS" in m.capabilities, m.capabilities
        m.starttls(ssl_context=context)
def ok(answer):
    typ, data = answer
    assert typ == "OK", (typ, data)
    return data
caps = ok(m.capability())[0].split()
for cap in [b"IMAP4rev1", b"LITERAL+", b"SASL-IR", b"ID", b"NAMESPACE", b"UNSELECT"]:
    assert cap in caps, caps
ok(m.noop())
typ, data = m.xatom("ID", '("name" "imaplib")')
assert typ == "OK", data
assert b'"name" "Postern"' in m.untagged_responses.pop("ID")[0]
if mode == "plain":
    ok(m.login("demo@example.test", password))
else:
    ok(m.authenticate("PLAIN", lambda _: b"\0demo@example.test\0" + password.encode()))
assert ok(m.namespace())[0] == b'(("" ".")) NIL NIL', m.namespace()
listed = sorted(ok(m.list()))
assert listed == [b'(\\HasChildren) "." "Work"', b'(\\HasNoChildren) "." "INBOX"',
                  b'(\\HasNoChildren) "." "Work.Sub"'], listed
assert sorted(ok(m.list('""', "%"))) == [b'(\\HasChildren) "." "Work"', b'(\\HasNoChildren) "." "INBOX"']
assert ok(m.lsub('""', "Work.*")) == [b'(\\HasNoChildren) "." "Work.Sub"']
status = ok(m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"))[0]
assert re.match(rb'"?INBOX"? \(MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY \d+ UNSEEN 3\)', status), status
assert ok(m.status("Work.Sub", "(MESSAGES UNSEEN)"))[0] == b'"Work.Sub" (MESSAGES 1 UNSEEN 0)'
# EXAMINE: read-only, a body fetch sets no flag.
assert ok(m.select("INBOX", readonly=True)) == [b"3"]
assert "READ-ONLY" in m.untagged_responses, m.untagged_responses
ok(m.fetch("1", "(BODY[TEXT])"))
assert b"\\Seen" not in ok(m.fetch("1", "(FLAGS)"))[0]
ok(m.close())
assert ok(m.select("INBOX")) == [b"3"]
meta = ok(m.fetch("1:*", "(UID RFC822.SIZE FLAGS INTERNALDATE)"))
# EXAMINE left \Recent alone; this SELECT has it.
assert len(meta) == 3 and all(b"\\Recent" in line for line in meta), meta
for n in range(1, 4):
    data = ok(m.fetch(str(n), "(RFC822.SIZE BODY.PEEK[])"))
    size = int(re.search(rb"RFC822.SIZE (\d+)", data[0][0]).group(1))
    body = data[0][1]
    assert size == len(body), (n, size, len(body))
    sys.stdout.write("%d %s\n" % (n, body.hex()))
# Sections and partials.
data = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"))
assert data[0][1] == b"Subject: first\r\nFrom: Alice <alice@example.org>\r\n\r\n", data
data = ok(m.fetch("1", "(BODY.PEEK[TEXT]<0.5>)"))
assert data[0][0].endswith(b"BODY[TEXT]<0> {5}") and data[0][1] == b"Hello", data
data = ok(m.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODYSTRUCTURE)"))
assert data[0][1] == b"See the figures.", data
assert data[1][1].startswith(b"Content-Type: application/octet-stream"), data
assert data[2].startswith(b' BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 '), data
assert b'"base64" 12 NIL ("attachment" ("filename" "data.bin"))' in data[2], data
data = ok(m.fetch("3", "(ENVELOPE)"))
assert b'"=?utf-8?q?caf=C3=A9_cr=C3=A8me?="' in data[0], data
data = ok(m.fetch("1", "(RFC822.HEADER)"))
assert data[0][1].startswith(b"Return-Path: <sender@example.org>\r\n"), data
# SEARCH, with MIME decoding and CHARSET UTF-8.
assert ok(m.search(None, "SUBJECT", "report")) == [b"2"]
m.literal = "caf\u00e9 CR\u00c8ME".encode()
assert ok(m.search("UTF-8", "SUBJECT")) == [b"3"]
assert ok(m.search(None, "FROM", "alice")) == [b"1"]
assert ok(m.search(None, "BODY", "figures")) == [b"2"]
assert ok(m.search(None, "OR", "FROM", "bob", "FROM", "carol")) == [b"2 3"]
assert ok(m.search(None, "NOT", "FROM", "bob", "UNSEEN")) == [b"1 3"]
assert ok(m.search(None, "SENTSINCE", "9-Dec-2026")) == [b"3"]
assert ok(m.search(None, "LARGER", "400")) == [b"2"]
assert ok(m.uid("SEARCH", None, "UID", "2:*")) == [b"2 3"]
# A body fetch sets \Seen, and says so.
data = ok(m.fetch("2", "(BODY[])"))
assert b"\\Seen" in data[0][0] or b"\\Seen" in data[1], data
data = ok(m.uid("FETCH", "2", "(FLAGS)"))
assert data == [b"2 (UID 2 FLAGS (\\Seen \\Recent))"], data
assert ok(m.search(None, "SEEN")) == [b"2"]
ok(m.check())
ok(m.unselect())
assert ok(m.select("Work.Sub")) == [b"1"]
ok(m.close())
bad = m.select("Nowhere")
assert bad[0] == "NO", bad
typ, data = m.logout()
assert typ == "BYE", (typ, data)
print("ok")
"#;

#[test]
fn imaplib_reads_every_message_exactly_over_imap_starttls_and_imaps() {
    let s = Suite::start(&[]);
    let password = s.password();
    make_folder(&s, "Work", &[]);
    make_folder(&s, "Work.Sub", &[MESSAGES[0]]);
    for mode in ["plain", "starttls", "imaps"] {
        // A fresh INBOX for each: three new messages, none seen.
        let _ = std::fs::remove_dir_all(s.demo().join("new"));
        let _ = std::fs::remove_dir_all(s.demo().join("cur"));
        for sub in ["new", "cur"] {
            std::fs::create_dir(s.demo().join(sub)).unwrap();
            let owner = std::fs::metadata(s.demo()).unwrap();
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(s.demo().join(sub), Some(owner.uid()), Some(owner.gid()))
                .unwrap();
        }
        for file in ["dovecot-uidlist", "postern-index", "postern-cache"] {
            let _ = std::fs::remove_file(s.demo().join(file));
        }
        deliver(&s, &MESSAGES);
        let expected = sorted(stored(&s).iter().map(|m| crlf(m)).collect());
        let service = if mode == "imaps" { "IMAPS" } else { "IMAP" };
        let out = python(IMAPLIB, &[mode, &s.port(service), &password]);
        let fetched = out
            .lines()
            .filter(|l| *l != "ok")
            .map(|l| hex(l.split_once(' ').unwrap().1))
            .collect();
        assert_eq!(sorted(fetched), expected, "{mode}");
        // Seen by the session: in cur/ with the S flag, the others still
        // new; the file's content untouched.
        let seen: Vec<String> = std::fs::read_dir(s.demo().join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(seen.len(), 1, "{mode}: {seen:?}");
        assert!(seen[0].ends_with(":2,S"), "{mode}: {seen:?}");
        assert_eq!(stored(&s).len(), 3);
    }
    s.stop();
}

/// Holds an IMAP session open (logged in when `login` is given) and
/// returns its process's /proc status.
fn held_session_status(s: &Suite, login: Option<(&str, &str)>) -> String {
    const HOLD: &str = r#"
import imaplib, sys, time
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
if sys.argv[2]:
    m.login(sys.argv[2], sys.argv[3])
    m.select("INBOX")
print("ready", flush=True)
time.sleep(30)
"#;
    crate::pop3d::hold_session(HOLD, &s.port("IMAP"), login, || {
        crate::pop3d::newest_session(s, "postern-imapd")
    })
}

#[test]
fn a_session_is_the_login_user_with_two_capabilities_then_the_owner_with_none() {
    if crate::util::skip_unless_root("imapd: a_session_is_the_login_user_then_the_owner") {
        return;
    }
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    let before = held_session_status(&s, None);
    let after = held_session_status(&s, Some(("demo@example.test", &s.password())));
    crate::pop3d::assert_login_user_then_owner(&s, &before, &after);
    // The listener itself reads no client byte; only it stays root.
    let listener = crate::pop3d::listener(&s, "postern-imapd");
    let status = std::fs::read_to_string(format!("/proc/{listener}/status")).unwrap();
    assert_eq!(status_field(&status, "Uid:"), "0 0 0 0");
    s.stop();
}

#[test]
fn an_imap_login_lets_the_client_relay_for_a_while() {
    let s = Suite::start(&[]);
    let relayers = s.dir().join("var/relay/relayers");
    let before = std::fs::read_to_string(&relayers).unwrap_or_default();
    assert!(!before.contains("127.0.0.1"), "{before}");
    python(
        r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("demo@example.test", sys.argv[2])
m.logout()
print("ok")
"#,
        &[&s.port("IMAP"), &s.password()],
    );
    s.wait_for_log("imap login: user=<demo@example.test>, ip=127.0.0.1");
    crate::util::wait_until(
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&relayers)
                .unwrap_or_default()
                .contains("127.0.0.1")
        },
        || "the IMAP login left no relay entry".into(),
    );
    s.stop();
}

/// A muttrc for the demo account over IMAP.
fn muttrc(dir: &Path, password: &str) -> PathBuf {
    let rc = dir.join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set imap_user = \"demo@example.test\"\nset imap_pass = \"{password}\"\n\
             set ssl_starttls = no\nset ssl_force_tls = no\nset ssl_verify_host = no\n\
             set certificate_file = \"{0}/certificates\"\nset folder = \"{0}\"\n\
             set mbox_type = mbox\nset confirmappend = no\nset confirmcreate = no\n\
             set move = no\nset wait_key = no\nset header_cache = \"\"\n\
             set message_cachedir = \"\"\nset imap_passive = no\nset mail_check = 0\n",
            dir.display()
        ),
    )
    .unwrap();
    rc
}

/// mutt, given a terminal by `script`, runs `keys` on `url`.
fn mutt(rc: &Path, url: &str, keys: &str, home: &Path) -> String {
    let command = format!(
        "mutt -n -F {} -f '{url}' -e 'push \"{keys}\"'",
        rc.display()
    );
    let run = Command::new("timeout")
        .args(["60", "script", "-qec", &command, "/dev/null"])
        .env("TERM", "vt100")
        .env("HOME", home)
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{screen}");
    screen
}

#[test]
fn mutt_reads_the_mailbox_over_imap_and_imaps() {
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    let tmp = tempfile::tempdir().unwrap();
    let rc = muttrc(tmp.path(), &s.password());
    // mutt trusts the sandbox's self-signed certificate as one it
    // accepted before: in its certificate_file.
    std::fs::copy(
        s.dir().join("tls/cert.pem"),
        tmp.path().join("certificates"),
    )
    .unwrap();
    for (scheme, service) in [("imap", "IMAP"), ("imaps", "IMAPS")] {
        let saved = tmp.path().join(format!("saved-{scheme}"));
        // Every message tagged, then copied with one prompt.
        let keys = format!(
            "<tag-pattern>~A<enter><tag-prefix><copy-message>{}<enter><quit>",
            saved.display()
        );
        let url = format!("{scheme}://127.0.0.1:{}/INBOX", s.port(service));
        let screen = mutt(&rc, &url, &keys, tmp.path());
        let mbox = std::fs::read(&saved).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        let text = String::from_utf8_lossy(&mbox);
        assert_eq!(
            text.matches("\nReturn-Path: <sender@example.org>\n")
                .count(),
            3,
            "{scheme}: {text}\n{screen}"
        );
        for message in stored(&s) {
            let message = String::from_utf8_lossy(&message).into_owned();
            let (header, body) = message.split_once("\n\n").unwrap();
            for line in header.lines() {
                assert!(
                    text.contains(&format!("{line}\n")),
                    "{scheme}: {line} in {text}"
                );
            }
            assert!(
                text.contains(&format!("\n\n{body}")),
                "{scheme}: {body:?} in {text}"
            );
        }
    }
    // Copied, not read: mutt marks the messages it has shown as no longer
    // new with its keyword "Old", which the session kept as a Dovecot
    // keyword letter in each file's name.
    let cur: Vec<String> = std::fs::read_dir(s.demo().join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cur.len(), 3, "{cur:?}");
    assert!(cur.iter().all(|name| name.ends_with(":2,a")), "{cur:?}");
    assert_eq!(
        std::fs::read_to_string(s.demo().join("dovecot-keywords")).unwrap(),
        "0 Old\n"
    );
    // Read with <display-message>: \Seen, as the flag letter S.
    let keys = "<first-entry><display-message><exit><quit>";
    mutt(
        &rc,
        &format!("imap://127.0.0.1:{}/INBOX", s.port("IMAP")),
        keys,
        tmp.path(),
    );
    let seen = std::fs::read_dir(s.demo().join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(":2,Sa"))
        .count();
    assert_eq!(seen, 1);
    s.stop();
}

fn mbsyncrc(dir: &Path, s: &Suite) -> PathBuf {
    let rc = dir.join("mbsyncrc");
    let local = dir.join("mail");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount postern\nHost 127.0.0.1\nPort {}\nUser demo@example.test\nPass {}\n\
             SSLType IMAPS\nCertificateFile {}\n\n\
             IMAPStore remote\nAccount postern\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel all\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSync Pull\n\
             SyncState *\nExpunge None\n",
            s.port("IMAPS"),
            s.password(),
            s.dir().join("tls/cert.pem").display(),
            local.display(),
            local.display(),
        ),
    )
    .unwrap();
    rc
}

fn mbsync(rc: &Path) -> String {
    let mut command = Command::new("timeout");
    command
        .args(["120", "mbsync", "-V", "-c"])
        .arg(rc)
        .arg("all");
    client_run(&mut command)
}

/// A client's run, at most two minutes: what it printed, once it has
/// succeeded.
fn client_run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// The messages of a Maildir folder as mbsync or offlineimap stored them,
/// sorted, with their line ends as stored.
fn pulled(folder: &Path) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(folder.join(sub)).into_iter().flatten())
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    found.sort();
    found
}

/// Messages a client stored, as they were delivered: LF line ends, and
/// without the fields it adds (lines starting with `added`); sorted.
fn as_pulled(messages: Vec<Vec<u8>>, added: &[&str]) -> Vec<Vec<u8>> {
    let delivered = messages.iter().map(|m| {
        let text = String::from_utf8_lossy(m).replace('\r', "");
        let kept: Vec<&str> = text
            .split_inclusive('\n')
            .filter(|line| !added.iter().any(|start| line.starts_with(start)))
            .collect();
        kept.concat().into_bytes()
    });
    sorted(delivered.collect())
}

/// Messages in a stable order, to compare as sets.
fn sorted(messages: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut messages = messages;
    messages.sort();
    messages
}

#[test]
fn mbsync_pulls_the_folder_tree_and_a_second_run_changes_nothing() {
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    make_folder(&s, "Lists", &[MESSAGES[0]]);
    make_folder(&s, "Lists.Rust", &[MESSAGES[1], MESSAGES[2]]);
    let tmp = tempfile::tempdir().unwrap();
    let rc = mbsyncrc(tmp.path(), &s);
    let first = mbsync(&rc);
    let local = tmp.path().join("mail");
    // mbsync stores LF line ends and adds its own X-TUID field while it
    // syncs; the rest is the message as delivered.
    let strip = |v: Vec<Vec<u8>>| as_pulled(v, &["X-TUID: "]);
    assert_eq!(
        strip(pulled(&local.join("INBOX"))),
        sorted(stored(&s)),
        "{first}"
    );
    assert_eq!(
        strip(pulled(&local.join("Lists"))),
        sorted(vec![MESSAGES[0].to_vec()])
    );
    assert_eq!(
        strip(pulled(&local.join("Lists/Rust"))),
        sorted(vec![MESSAGES[1].to_vec(), MESSAGES[2].to_vec()]),
        "{first}"
    );
    // The second run finds nothing new: not a file of the local copy
    // changes (a message pulled again, or a flag, would).
    let before = local_files(&local);
    let second = mbsync(&rc);
    assert_eq!(local_files(&local), before, "{second}");
    s.stop();
}

/// Every message file under `dir`, by path.
fn local_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .parent()
                .is_some_and(|p| p.ends_with("cur") || p.ends_with("new"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn offlineimap_pulls_every_folder() {
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    make_folder(&s, "Archive", &[MESSAGES[1]]);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("mail");
    let rc = tmp.path().join("offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\naccounts = demo\nmetadata = {meta}\nui = basic\n\n\
             [Account demo]\nlocalrepository = local\nremoterepository = remote\n\n\
             [Repository local]\ntype = Maildir\nlocalfolders = {local}\n\n\
             [Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {port}\n\
             remoteuser = demo@example.test\nremotepass = {password}\nssl = no\nstarttls = no\n\
             readonly = True\n",
            meta = tmp.path().join("meta").display(),
            local = local.display(),
            port = s.port("IMAP"),
            password = s.password(),
        ),
    )
    .unwrap();
    let run = |label: &str| {
        let mut command = Command::new("timeout");
        command
            .args(["120", "offlineimap", "-o", "-c"])
            .arg(&rc)
            .env("HOME", tmp.path());
        let text = client_run(&mut command);
        assert!(!text.contains("ERROR"), "{label}: {text}");
        text
    };
    let first = run("first");
    let strip = |v: Vec<Vec<u8>>| as_pulled(v, &[]);
    assert_eq!(
        strip(pulled(&local.join("INBOX"))),
        sorted(stored(&s)),
        "{first}"
    );
    assert_eq!(
        strip(pulled(&local.join("Archive"))),
        vec![MESSAGES[1].to_vec()],
        "{first}"
    );
    let second = run("second");
    assert_eq!(pulled(&local.join("INBOX")).len(), 3, "{second}");
    s.stop();
}

#[test]
fn fetchmail_and_getmail6_fetch_over_imap_byte_for_byte() {
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    let expected = sorted(stored(&s));
    let tmp = tempfile::tempdir().unwrap();
    // fetchmail, keeping the mail on the server, each message to an MDA
    // that writes it to a file of its own.
    let out = tmp.path().join("fetched");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let rc = home.join(".fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 service {} protocol IMAP\n  user \"demo@example.test\" password \"{}\" is root here\n  keep fetchall no sslcertck\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n",
            s.port("IMAP"),
            s.password(),
            out.display()
        ),
    )
    .unwrap();
    let log = run_fetchmail(&home, &rc, &[]);
    let fetched = crate::pop3d::fetched(&out);
    // fetchmail hands the MDA LF line ends and puts its own Received:
    // field on top: each stored message follows it exactly.
    assert_eq!(fetched.len(), 3, "{log}");
    for message in &expected {
        assert!(
            fetched.iter().any(|f| f.ends_with(message)),
            "{} not fetched whole: {log}",
            String::from_utf8_lossy(message)
        );
    }
    // Kept, and now seen: fetchmail stores \Seen after each.
    let cur: Vec<String> = std::fs::read_dir(s.demo().join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cur.len(), 3, "{cur:?}");
    assert!(cur.iter().all(|name| name.ends_with(":2,S")), "{cur:?}");
    // getmail6 into a Maildir, over IMAPS.
    let (maildir, user) = crate::pop3d::getmail_maildir(tmp.path());
    let getmailrc = tmp.path().join("getmailrc");
    std::fs::write(
        &getmailrc,
        format!(
            "[retriever]\ntype = SimpleIMAPSSLRetriever\nserver = 127.0.0.1\nport = {}\n\
             username = demo@example.test\npassword = {}\nmailboxes = (\"INBOX\",)\n\n\
             [destination]\ntype = Maildir\npath = {}/\n{user}\n\
             [options]\nread_all = true\ndelete = false\n\
             delivered_to = false\nreceived = false\n",
            s.port("IMAPS"),
            s.password(),
            maildir.display()
        ),
    )
    .unwrap();
    let log = client_run(
        Command::new("timeout")
            .args(["60", "getmail", "--getmaildir"])
            .arg(tmp.path())
            .arg("--rcfile")
            .arg(&getmailrc),
    );
    // getmail puts its own Return-Path first and names the folder it
    // read; the rest is the message.
    let added = ["Return-Path:", "X-getmail-retrieved-from-mailbox:"];
    let without_return_path = |m: &Vec<u8>| crate::pop3d::without_lines(m, &added);
    let got: Vec<Vec<u8>> = pulled(&maildir).iter().map(without_return_path).collect();
    let want: Vec<Vec<u8>> = expected.iter().map(without_return_path).collect();
    assert_eq!(sorted(got), sorted(want), "{log}");
    s.stop();
}

#[test]
fn connection_limits_access_and_the_greeting_of_a_refused_client() {
    let s = Suite::start(&[
        "imapd.max_connections = 3",
        "imapd.max_connections_per_ip = 2",
    ]);
    let port: u16 = s.port("IMAP").parse().unwrap();
    let greet = |ip: &str| crate::pop3d::greeting_at(port, ip);
    let (a, first) = greet("127.0.0.1");
    assert!(first.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{first}");
    let (b, _) = greet("127.0.0.1");
    let (_, third) = greet("127.0.0.1");
    assert!(third.starts_with("* BYE [UNAVAILABLE]"), "{third}");
    let (c, other) = greet("127.0.0.2");
    assert!(other.starts_with("* OK"), "{other}");
    let (_, full) = greet("127.0.0.3");
    assert!(full.starts_with("* BYE [UNAVAILABLE]"), "{full}");
    drop((a, b, c));
    s.stop();
}

#[test]
fn a_quiet_session_is_logged_out_after_the_idle_timeout() {
    let s = Suite::start(&["imapd.idle_timeout = \"2s\""]);
    let mut stream = std::net::TcpStream::connect(s.server("IMAP")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    assert!(text.starts_with("* OK"), "{text}");
    assert!(
        text.ends_with("* BYE Autologout; idle for too long\r\n"),
        "{text}"
    );
    s.stop();
}

#[test]
fn a_maildir_left_by_dovecot_keeps_its_uidvalidity_uids_flags_and_keywords() {
    use std::os::unix::fs::MetadataExt;
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    let maildir = s.demo();
    let meta = std::fs::metadata(&maildir).unwrap();
    let owner = (meta.uid(), meta.gid());
    let state = tempfile::tempdir().unwrap();
    // Dovecot's imap serves the Maildir first: it numbers the messages,
    // and a client flags one and gives another a keyword.
    let dovecot = crate::uidlist::dovecot_on(
        &maildir,
        state.path(),
        owner,
        "a SELECT INBOX\nb UID STORE 2 +FLAGS (\\Flagged \\Seen)\nc UID STORE 3 +FLAGS ($Work)\n\
         d UID FETCH 1:* (FLAGS)",
    );
    assert!(dovecot.contains("d OK"), "{dovecot}");
    let validity = dovecot
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap()
        .to_string();
    // What a server showed for each UID: its flags as a set, without
    // \Recent (which belongs to one session); the last answer for each.
    let flags_of = |answer: &str| -> std::collections::BTreeMap<u32, Vec<String>> {
        answer
            .lines()
            .filter_map(|l| {
                let rest = l.split(" FETCH (UID ").nth(1)?;
                let (uid, rest) = rest.split_once(' ')?;
                let list = rest.split_once("FLAGS (")?.1.split(')').next()?;
                let mut flags: Vec<String> = list
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .map(str::to_string)
                    .collect();
                flags.sort();
                Some((uid.parse().ok()?, flags))
            })
            .collect()
    };
    let expected = flags_of(&dovecot);
    assert_eq!(expected.len(), 3, "{dovecot}");
    assert_eq!(expected[&3], ["$Work"], "{dovecot}");
    let answer = python(
        r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("demo@example.test", sys.argv[2])
typ, data = m.select("INBOX")
print("UIDVALIDITY", m.untagged_responses["UIDVALIDITY"][0].decode())
typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
for line in data:
    print("* " + line.decode().replace(" (", " FETCH (", 1))
m.logout()
print("ok")
"#,
        &[&s.port("IMAP"), &s.password()],
    );
    assert!(
        answer.contains(&format!("UIDVALIDITY {validity}\n")),
        "{answer}\n{dovecot}"
    );
    // Postern's FETCH answers put the UID first, as Dovecot's do.
    assert_eq!(flags_of(&answer), expected, "{answer}\n{dovecot}");
    s.stop();
}

/// alpine in a terminal (a pty): it logs in (the password typed at its
/// prompt), lists INBOX and exports the message to a file. (The pinerc
/// says this alpine has run before, so no greeting comes first.)
const ALPINE: &str = r#"
import os, pty, sys, time, select, re, termios
home, pinerc, password, subject = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    os.environ["HOME"] = home
    os.environ["TERM"] = "vt100"
    os.execvp("alpine", ["alpine", "-p", pinerc])
seen = b""
def wait_for(text, limit=60):
    global seen
    end = time.time() + limit
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if text in re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen):
            seen = b""
            return
    sys.exit("alpine never showed %r: %r" % (text, seen[-600:]))
wait_for(b"PASSWORD:")
# Typed only once alpine has turned echo off for it.
end = time.time() + 60
while termios.tcgetattr(fd)[3] & termios.ECHO:
    assert time.time() < end, "alpine never turned echo off"
    time.sleep(0.05)
os.write(fd, password.encode() + b"\r")
wait_for(b"Preserve password")
os.write(fd, b"n")
wait_for(b"INBOX")
os.write(fd, b"i")
wait_for(subject.encode())
os.write(fd, b"e")
wait_for(b"EXPORT:")
os.write(fd, b"exported\r")
wait_for(b"exported to file")
os.write(fd, b"q")
wait_for(b"Alpine finished")
os.waitpid(pid, 0)
print("ok")
"#;

#[test]
fn alpine_lists_the_inbox_and_exports_a_message() {
    let s = Suite::start(&[]);
    deliver(&s, &[MESSAGES[0]]);
    let tmp = tempfile::tempdir().unwrap();
    let pinerc = tmp.path().join("pinerc");
    std::fs::write(
        &pinerc,
        format!(
            "inbox-path={{127.0.0.1:{}/user=demo@example.test/notls}}INBOX\n\
             feature-list=quit-without-confirm\nincoming-folders=\ndefault-fcc=\n\
             user-domain=example.test\npersonal-name=Test\n\
             last-version-used=6.26\n",
            s.port("IMAP")
        ),
    )
    .unwrap();
    let home = tmp.path().display().to_string();
    let pinerc = pinerc.display().to_string();
    python(ALPINE, &[&home, &pinerc, &s.password(), "first"]);
    // alpine writes the header fields it shows and the body as stored.
    let exported = std::fs::read_to_string(tmp.path().join("exported")).unwrap();
    assert!(exported.contains("\nSubject: first\n"), "{exported}");
    assert!(
        exported.ends_with("\n\nHello there.\n.dot line\n\nend\n")
            || exported.ends_with("\n\nHello there.\n.dot line\n\nend\n\n"),
        "{exported:?}"
    );
    s.stop();
}

#[test]
fn socket_activation_with_and_without_accept() {
    let s = Suite::start(&[]);
    deliver(&s, &[MESSAGES[0]]);
    let imapd = crate::util::program("postern-imapd");
    let etc = s.etc();
    let (listening, _listening) = crate::util::socket_activated(&imapd, &etc, false);
    let (per_connection, _per_connection) = crate::util::socket_activated(&imapd, &etc, true);
    for port in [listening, per_connection] {
        crate::pop3d::wait_for_port(port);
        python(
            r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("demo@example.test", sys.argv[2])
assert m.select("INBOX") == ("OK", [b"1"])
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert data[0][1] == b"Subject: first\r\n\r\n", data
m.logout()
print("ok")
"#,
            &[&port.to_string(), &s.password()],
        );
    }
    s.stop();
}

#[test]
fn mutt_deletes_a_message_and_the_file_goes_at_its_sync() {
    let s = Suite::start(&[]);
    deliver(&s, &MESSAGES);
    let tmp = tempfile::tempdir().unwrap();
    let rc = muttrc(tmp.path(), &s.password());
    std::fs::write(
        &rc,
        std::fs::read_to_string(&rc).unwrap() + "set delete = yes\nset sort = date\n",
    )
    .unwrap();
    // The first message by date is MESSAGES[0], "first".
    let url = format!("imap://127.0.0.1:{}/INBOX", s.port("IMAP"));
    mutt(
        &rc,
        &url,
        "<first-entry><delete-message><sync-mailbox><quit>",
        tmp.path(),
    );
    let left = stored(&s);
    assert_eq!(left.len(), 2);
    assert!(
        left.iter()
            .all(|m| !String::from_utf8_lossy(m).contains("Subject: first\n")),
        "{left:?}"
    );
    s.stop();
}
