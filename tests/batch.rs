//! `postern-local --batch`: the request lines the queue will send, the
//! answers in order, and the queue-derived names that make a retry safe.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{Setup, messages, program};

fn batch(s: &Setup, input: &str) -> Vec<String> {
    let mut child = Command::new(program("postern-local"))
        .arg("--config")
        .arg(&s.etc)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn answers_each_request_in_order() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.add_mailbox("bob@example.test", &[]);
    s.write(
        "aliases",
        "team@example.test: alice@example.test, bob@example.test\n",
    );
    let m1 = s.path().join("m1");
    std::fs::write(&m1, b"Subject: one\n\nfirst\n").unwrap();
    // A queue file: envelope first, the message from byte 16 on.
    let q = s.path().join("q");
    std::fs::write(&q, b"ENVELOPE STUFF\n\nSubject: two\n\nsecond\n").unwrap();
    let (m1, q) = (m1.display().to_string(), q.display().to_string());
    let input = format!(
        "{m1}\t0\tsender@example.org\talice@example.test\t-\t0\t0\n\
         {q}\t16\t\tteam@example.test\t-\t0\t0\n\
         {m1}\t0\tsender@example.org\tghost@example.test\t-\t0\t0\n\
         not a request\n\
         /nonexistent/file\t0\ts@example.org\talice@example.test\t-\t0\t0\n"
    );
    let answers = batch(&s, &input);
    assert_eq!(
        answers,
        [
            "alice@example.test\t0\t2.0.0 delivered to maildir",
            "team@example.test\t0\t2.0.0 delivered to 2 mailboxes",
            "ghost@example.test\t67\t5.1.1 user unknown: <ghost@example.test>",
            "-\t75\t4.3.0 bad batch request: expected 7 tab-separated fields",
            "alice@example.test\t75\t4.3.0 open /nonexistent/file: No such file or directory (os error 2)",
        ]
    );
    let alice = messages(&s.maildir("alice@example.test"));
    assert_eq!(alice.len(), 2);
    let bodies: Vec<&[u8]> = alice.iter().map(|(_, c)| c.as_slice()).collect();
    assert!(bodies.contains(&b"Return-Path: <sender@example.org>\nDelivered-To: alice@example.test\nSubject: one\n\nfirst\n".as_slice()));
    assert!(bodies.contains(
        &b"Return-Path: <>\nDelivered-To: alice@example.test\nSubject: two\n\nsecond\n".as_slice()
    ));
    assert_eq!(
        messages(&s.maildir("bob@example.test"))[0].1,
        b"Return-Path: <>\nDelivered-To: bob@example.test\nSubject: two\n\nsecond\n"
    );
}

#[test]
fn a_retry_of_a_queued_delivery_never_duplicates() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.add_mailbox("bob@example.test", &[]);
    s.write(
        "aliases",
        "team@example.test: alice@example.test, bob@example.test\n",
    );
    let m = s.path().join("m");
    std::fs::write(&m, b"Subject: once\n\nonly once\n").unwrap();
    let m = m.display().to_string();

    let first = batch(
        &s,
        &format!("{m}\t0\ts@example.org\tteam@example.test\tQ7A1\t1700000000\t0\n"),
    );
    assert_eq!(
        first,
        ["team@example.test\t0\t2.0.0 delivered to 2 mailboxes"]
    );
    let names: Vec<String> = messages(&s.maildir("alice@example.test"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names[0].starts_with("1700000000.QQ7A1R"), "{names:?}");

    // The queue lost its record (a crash) and retries: nothing doubles.
    let retry = batch(
        &s,
        &format!("{m}\t0\ts@example.org\tteam@example.test\tQ7A1\t1700000000\t1\n"),
    );
    assert_eq!(
        retry,
        ["team@example.test\t0\t2.0.0 delivered to 2 mailboxes"]
    );
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 1);
    assert_eq!(messages(&s.maildir("bob@example.test")).len(), 1);

    // The same through the single-delivery command line.
    s.local_args(
        &[
            "-f",
            "s@example.org",
            "--queue-id",
            "Q7A1",
            "--arrival",
            "1700000000",
            "--retry",
            "alice@example.test",
        ],
        b"x\n",
    )
    .expect(0, "2.0.0 already delivered to maildir");
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 1);
}
