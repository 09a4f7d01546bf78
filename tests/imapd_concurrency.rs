//! A selected 10,000-message folder while the Maildir changes under it:
//! postern-local delivers 500 messages and a shell user renames and
//! deletes files. At its next NOOP the session reports exactly the new
//! messages (EXISTS) and the deleted ones (EXPUNGE, numbered as RFC 3501
//! §7.4.1 numbers them), no UID is given twice, and the index equals one
//! rebuilt from the Maildir.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use postern_mailstore::folder::Folder;

use crate::suite::Suite;

const HELD: usize = 10_000;
const DELIVERED: usize = 500;
const RENAMED: usize = 100;
const DELETED: usize = 50;

/// A raw IMAP session on stdin/stdout: a line `CMD` sends `tN CMD` and
/// prints every line up to the tagged answer, then `.`.
const SESSION: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
f.readline()
n = 0
for command in sys.stdin:
    n += 1
    tag = "t%d" % n
    s.sendall(("%s %s\r\n" % (tag, command.strip())).encode())
    while True:
        line = f.readline()
        if not line:
            sys.exit(1)
        sys.stdout.write(line.decode("utf-8", "replace").rstrip("\r\n") + "\n")
        if line.startswith(tag.encode() + b" "):
            break
    sys.stdout.write(".\n")
    sys.stdout.flush()
"#;

struct Held {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Held {
    fn ask(&mut self, command: &str) -> Vec<String> {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "{lines:?}");
            let line = line.trim_end().to_string();
            if line == "." {
                return lines;
            }
            lines.push(line);
        }
    }
}

fn uids(answer: &[String]) -> Vec<u32> {
    answer
        .iter()
        .filter_map(|l| l.strip_prefix("* SEARCH"))
        .flat_map(|l| l.split_whitespace().map(|n| n.parse::<u32>().unwrap()))
        .collect()
}

#[test]
fn a_selected_folder_sees_deliveries_renames_and_deletions_exactly() {
    let s = Suite::start(&[]);
    let maildir = s.demo();
    let owner = std::fs::metadata(&maildir).unwrap();
    for n in 0..HELD {
        let name = maildir.join(format!("cur/17000{n:05}.M{n}P1.shell:2,"));
        std::fs::write(
            &name,
            format!("From: user{n}@example.org\nSubject: message {n}\n\nbody {n}\n"),
        )
        .unwrap();
        std::os::unix::fs::chown(&name, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let mut child = Command::new("python3")
        .args(["-c", SESSION, &s.port("IMAP")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut held = Held { child, out };
    held.ask(&format!("LOGIN demo@example.test {}", s.password()));
    let selected = held.ask("SELECT INBOX");
    assert!(
        selected.contains(&format!("* {HELD} EXISTS")),
        "{selected:?}"
    );
    let before = uids(&held.ask("UID SEARCH ALL"));
    assert_eq!(before.len(), HELD);

    // The changes, at once: deliveries from one thread, mutt-like
    // renames and deletions from this one.
    let messages: Vec<Vec<u8>> = (0..DELIVERED)
        .map(|n| format!("Subject: delivered {n}\n\nnew\n").into_bytes())
        .collect();
    let delivering = {
        let s_etc = s.etc();
        std::thread::spawn(move || {
            for message in messages {
                let mut child = Command::new(crate::util::program("postern-local"))
                    .arg("--config")
                    .arg(&s_etc)
                    .args(["-f", "sender@example.org", "demo@example.test"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(&message).unwrap();
                assert!(child.wait().unwrap().success());
            }
        })
    };
    // Renamed: every 37th of the first 3,700 gets flagged; deleted:
    // every 101st from the 5,000th.
    let renamed: Vec<usize> = (0..RENAMED).map(|i| i * 37).collect();
    let deleted: Vec<usize> = (0..DELETED).map(|i| 5000 + i * 101).collect();
    for &n in &renamed {
        let from = maildir.join(format!("cur/17000{n:05}.M{n}P1.shell:2,"));
        std::fs::rename(
            &from,
            maildir.join(format!("cur/17000{n:05}.M{n}P1.shell:2,F")),
        )
        .unwrap();
    }
    for &n in &deleted {
        std::fs::remove_file(maildir.join(format!("cur/17000{n:05}.M{n}P1.shell:2,"))).unwrap();
    }
    delivering.join().unwrap();

    let noop = held.ask("NOOP");
    let expunged: Vec<usize> = noop
        .iter()
        .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXPUNGE")?.parse().ok())
        .collect();
    // Each EXPUNGE numbers the message as the client sees it then: the
    // deleted message's position minus those expunged before it.
    let mut sorted_deleted = deleted.clone();
    sorted_deleted.sort();
    let expected: Vec<usize> = sorted_deleted
        .iter()
        .enumerate()
        .map(|(before, &n)| n + 1 - before)
        .collect();
    assert_eq!(expunged, expected, "{noop:?}");
    let total = HELD - DELETED + DELIVERED;
    assert!(noop.contains(&format!("* {total} EXISTS")), "{noop:?}");
    let flag_changes = noop
        .iter()
        .filter(|l| l.contains(" FETCH (UID ") && l.ends_with(" FLAGS (\\Flagged \\Recent))"))
        .count();
    assert_eq!(flag_changes, RENAMED, "{noop:?}");
    assert!(noop.last().unwrap().starts_with("t4 OK"), "{noop:?}");
    // A second NOOP has nothing to tell.
    let quiet = held.ask("NOOP");
    assert_eq!(quiet.len(), 1, "{quiet:?}");

    // Every message read and described by the session, into its index.
    let described = held.ask("FETCH 1:* (RFC822.SIZE ENVELOPE)");
    assert_eq!(described.len(), total + 1);
    let after = uids(&held.ask("UID SEARCH ALL"));
    assert_eq!(after.len(), total);
    let kept: BTreeSet<u32> = before.iter().copied().collect();
    let new: Vec<u32> = after
        .iter()
        .copied()
        .filter(|u| !kept.contains(u))
        .collect();
    assert_eq!(new.len(), DELIVERED);
    assert!(
        new.iter().all(|&u| u > *before.last().unwrap()),
        "a UID reused"
    );
    let unique: BTreeSet<u32> = after.iter().copied().collect();
    assert_eq!(unique.len(), after.len());
    held.ask("LOGOUT");
    let _ = held.child.wait();

    // The index as the session left it equals one rebuilt from the
    // Maildir (UIDs from dovecot-uidlist, the rest from the files).
    let now = SystemTime::now() + Duration::from_secs(5);
    let describe = postern_imap::describe::DESCRIBE;
    let (kept_index, _) = Folder::open(&maildir, describe, false, now).unwrap();
    assert!((0..kept_index.len()).all(|i| kept_index.described(i)));
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", maildir.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["postern-index", "postern-cache"] {
        std::fs::remove_file(copy.path().join(file)).unwrap();
    }
    let (mut rebuilt, _) = Folder::open(copy.path(), describe, false, now).unwrap();
    let all: Vec<usize> = (0..rebuilt.len()).collect();
    rebuilt.describe(&all).unwrap();
    assert_eq!(kept_index.len(), rebuilt.len());
    assert_eq!(kept_index.validity(), rebuilt.validity());
    for i in 0..rebuilt.len() {
        let (a, b) = (
            kept_index.snapshot().record(i),
            rebuilt.snapshot().record(i),
        );
        assert_eq!(
            (a.uid, a.flags, a.keywords, a.size, a.internal_date),
            (b.uid, b.flags, b.keywords, b.size, b.internal_date),
            "message {i}"
        );
        assert_eq!(kept_index.snapshot().name(i), rebuilt.snapshot().name(i));
        for field in 0..=postern_imap::describe::SENT {
            assert_eq!(
                kept_index.field(i, field).unwrap(),
                rebuilt.field(i, field).unwrap(),
                "message {i}, field {field}"
            );
        }
    }
    s.stop();
}
