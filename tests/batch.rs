//! `postern-local --batch`: the request lines the queue will send, the
//! answers in order, and the queue-derived names that make a retry safe.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{Setup, messages, program};

/// `postern-local --batch` with piped stdin and stdout.
fn start_batch(s: &Setup, stderr: Stdio) -> std::process::Child {
    Command::new(program("postern-local"))
        .arg("--config")
        .arg(&s.etc)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn batch(s: &Setup, input: &str) -> Vec<String> {
    let mut command = Command::new(program("postern-local"));
    command.arg("--config").arg(&s.etc).arg("--batch");
    crate::util::success_lines(crate::util::run_with_input(&mut command, input.as_bytes()))
}

/// alice and bob, and team@ for both.
fn team() -> Setup {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.add_mailbox("bob@example.test", &[]);
    s.write(
        "aliases",
        "team@example.test: alice@example.test, bob@example.test\n",
    );
    s
}

#[test]
fn answers_each_request_in_order() {
    let s = team();
    let m1 = s.queue_file("m1", b"Subject: one\n\nfirst\n");
    // A queue file: envelope first, the message from byte 16 on.
    let q = s.queue_file("q", b"ENVELOPE STUFF\n\nSubject: two\n\nsecond\n");
    let (m1, q) = (m1.display().to_string(), q.display().to_string());
    let missing = s.queue().join("missing").display().to_string();
    let input = format!(
        "{m1}\t0\tsender@example.org\talice@example.test\t-\t0\t0\n\
         {q}\t16\t\tteam@example.test\t-\t0\t0\n\
         {m1}\t0\tsender@example.org\tghost@example.test\t-\t0\t0\n\
         not a request\n\
         {missing}\t0\ts@example.org\talice@example.test\t-\t0\t0\n"
    );
    let answers = batch(&s, &input);
    assert_eq!(
        answers,
        [
            "alice@example.test\t0\t2.0.0 delivered to maildir".to_string(),
            "team@example.test\t0\t2.0.0 delivered to 2 mailboxes".into(),
            "ghost@example.test\t67\t5.1.1 user unknown: <ghost@example.test>".into(),
            "-\t75\t4.3.0 bad batch request: expected 7 tab-separated fields".into(),
            format!(
                "alice@example.test\t75\t4.3.0 open {missing}: No such file or directory (os error 2)"
            ),
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
    let s = team();
    let m = s
        .queue_file("m", b"Subject: once\n\nonly once\n")
        .display()
        .to_string();

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

#[test]
fn answers_stream_back_while_the_feeder_waits() {
    use std::io::{BufRead, BufReader};
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let m = s.queue_file("m", b"Subject: stream\n\nx\n");
    let request = format!(
        "{}\t0\ts@example.org\talice@example.test\t-\t0\t0\n",
        m.display()
    );
    let mut child = start_batch(&s, Stdio::null());
    let mut stdin = child.stdin.take().unwrap();
    let (sender, answers) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = sender.send(line.unwrap());
        }
    });
    let wait = std::time::Duration::from_secs(30);
    for _ in 0..2 {
        stdin.write_all(request.as_bytes()).unwrap();
        stdin.flush().unwrap();
        // The answer comes while stdin is still open.
        let answer = answers
            .recv_timeout(wait)
            .expect("no answer while the feeder waits");
        assert_eq!(answer, "alice@example.test\t0\t2.0.0 delivered to maildir");
    }
    // A request line longer than 8 KiB is one refusal, not many.
    let long = format!(
        "{}\t0\ts@example.org\t{}@example.test\t-\t0\t0\n",
        m.display(),
        "a".repeat(20000)
    );
    stdin.write_all(long.as_bytes()).unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    drop(stdin);
    assert_eq!(
        answers.recv_timeout(wait).unwrap(),
        "-\t75\t4.3.0 bad batch request: line too long"
    );
    assert_eq!(
        answers.recv_timeout(wait).unwrap(),
        "alice@example.test\t0\t2.0.0 delivered to maildir"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 3);
}

#[test]
fn message_files_must_be_regular_and_offsets_inside() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let m = s.queue_file("m", b"Subject: x\n\nx\n");
    let fifo = s.queue().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let answers = batch(
        &s,
        &format!(
            "{fifo}\t0\ts@example.org\talice@example.test\t-\t0\t0\n{m}\t999\ts@example.org\talice@example.test\t-\t0\t0\n",
            fifo = fifo.display(),
            m = m.display()
        ),
    );
    assert_eq!(
        answers[0],
        format!(
            "alice@example.test\t75\t4.3.0 {} is not a regular file",
            fifo.display()
        )
    );
    assert_eq!(
        answers[1],
        format!(
            "alice@example.test\t75\t4.3.0 offset 999 is past the end of {}",
            m.display()
        )
    );
    assert!(messages(&s.maildir("alice@example.test")).is_empty());
}

#[test]
fn as_root_only_files_beneath_the_queue_are_read() {
    if crate::util::skip_unless_root("as_root_only_files_beneath_the_queue_are_read") {
        return;
    }
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let outside = s.path().join("secret");
    std::fs::write(&outside, b"root:$6$hash\n").unwrap();
    std::os::unix::fs::symlink(&outside, s.queue().join("link")).unwrap();
    let q = s.queue().display().to_string();
    let answers = batch(
        &s,
        &format!(
            "{o}\t0\ts@example.org\talice@example.test\t-\t0\t0\n\
             {q}/link\t0\ts@example.org\talice@example.test\t-\t0\t0\n\
             {q}/../secret\t0\ts@example.org\talice@example.test\t-\t0\t0\n",
            o = outside.display()
        ),
    );
    assert_eq!(answers.len(), 3);
    for answer in &answers {
        assert!(
            answer.starts_with("alice@example.test\t75\t4.3.0 open "),
            "{answer}"
        );
    }
    assert!(
        answers[0].contains("outside the queue directory"),
        "{}",
        answers[0]
    );
    assert!(messages(&s.maildir("alice@example.test")).is_empty());
}
