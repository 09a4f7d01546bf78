//! The queue under `postern up`: postern-inject queues, postern-queue
//! schedules, postern-lspawn runs postern-local, the message lands once
//! and the queue empties; a killed queue manager comes back.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::sandbox::{init, sandbox_dir, start, stop};
use crate::util::{messages, program, run_with_input, wait_until};

pub fn submit(etc: &std::path::Path, message: &[u8]) {
    let mut command = Command::new(program("postern-inject"));
    command.arg("--config").arg(etc).args(["-t", "-i"]);
    let out = run_with_input(&mut command, message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (bounded) until the Maildir holds `count` messages.
pub fn wait_for(maildir: &std::path::Path, count: usize) {
    wait_until(
        Duration::from_secs(60),
        || messages(maildir).len() >= count,
        || format!("{count} messages never arrived in {}", maildir.display()),
    );
}

/// Waits (bounded) until `mailq` says the queue is empty.
pub fn wait_until_empty(etc: &std::path::Path) {
    wait_until(
        Duration::from_secs(60),
        || mailq(etc) == "Mail queue is empty\n",
        || format!("the queue never emptied: {}", mailq(etc)),
    );
}

/// `postern-queue --flush [ARGS]`: what it printed, once it succeeded.
pub fn flush(etc: &std::path::Path, args: &[&str]) -> String {
    crate::util::success_text(
        Command::new(program("postern-queue"))
            .arg("--config")
            .arg(etc)
            .arg("--flush")
            .args(args)
            .output()
            .unwrap(),
    )
}

pub fn mailq(etc: &std::path::Path) -> String {
    let out = Command::new(program("postern-inject"))
        .arg("--config")
        .arg(etc)
        .arg("-bp")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The pid of the sandbox's postern-queue (the manager), if it runs.
pub fn queue_pid(etc: &std::path::Path) -> Option<i32> {
    let out = Command::new("pgrep")
        .args(["-f", &format!("postern-queue --config {}", etc.display())])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .map(|p| p.parse::<i32>().unwrap())
}

#[test]
fn injected_mail_is_delivered_once_and_the_queue_empties() {
    let (_tmp, dir) = sandbox_dir();
    let up = start(&dir);
    let etc = dir.join("etc");
    let maildir = dir.join("mail/example.test/demo/Maildir");
    let body = b"first line\n\nlast line\n";
    submit(
        &etc,
        &[
            b"To: demo@example.test\nSubject: via the queue\n\n".as_slice(),
            body,
        ]
        .concat(),
    );
    wait_for(&maildir, 1);
    let got = messages(&maildir);
    assert_eq!(got.len(), 1);
    assert!(got[0].1.ends_with(body));
    assert!(got[0].1.starts_with(b"Return-Path: <"));
    // Named after the queue entry, so a retry would find it.
    assert!(got[0].0.contains(".Q"), "{}", got[0].0);
    wait_until_empty(&etc);
    assert_eq!(std::fs::read_dir(dir.join("queue/tmp")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(dir.join("queue/state")).unwrap().count(),
        0
    );
    stop(up);
}

#[test]
fn a_killed_queue_manager_is_restarted_and_delivers() {
    let (_tmp, dir) = sandbox_dir();
    let up = start(&dir);
    let etc = dir.join("etc");
    let maildir = dir.join("mail/example.test/demo/Maildir");
    submit(&etc, b"To: demo@example.test\nSubject: one\n\n1\n");
    wait_for(&maildir, 1);
    let first = queue_pid(&etc).expect("postern-queue runs");
    // SAFETY: kill(2) on a process of the suite this test started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    // postern-lspawn exits with it, and the supervisor starts both again.
    wait_until(
        Duration::from_secs(30),
        || queue_pid(&etc).is_some_and(|pid| pid != first),
        || "postern-queue was not restarted".to_string(),
    );
    submit(&etc, b"To: demo@example.test\nSubject: two\n\n2\n");
    wait_for(&maildir, 2);
    stop(up);
    assert_eq!(messages(&maildir).len(), 2);
}

#[test]
fn delivery_to_a_full_disk_defers_and_resumes_when_space_returns() {
    if crate::util::skip_unless_root(
        "delivery_to_a_full_disk_defers_and_resumes_when_space_returns",
    ) {
        return;
    }
    let (_tmp, dir) = sandbox_dir();
    let etc = dir.join("etc");
    init(&dir);
    // A mailbox on a file system of 256 KiB, owned by the mail owner.
    let small = dir.join("small");
    std::fs::create_dir(&small).unwrap();
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&small)
            .status()
            .unwrap()
            .success()
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let ids = std::fs::read_to_string(etc.join("ids")).unwrap();
    let mail: Vec<u32> = ids
        .lines()
        .find(|l| l.starts_with("mail "))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    std::os::unix::fs::chown(&small, Some(mail[0]), Some(mail[1])).unwrap();
    let accounts = std::fs::read_to_string(etc.join("accounts")).unwrap();
    std::fs::write(
        etc.join("accounts"),
        format!(
            "{accounts}box@example.test:{{PLAIN}}x:::::: userdb_mail=maildir:{}/Maildir\n",
            small.display()
        ),
    )
    .unwrap();
    let toml = std::fs::read_to_string(etc.join("postern.toml")).unwrap();
    std::fs::write(
        etc.join("postern.toml"),
        format!("{toml}retry_interval = 1\nmax_retry_interval = 1\n"),
    )
    .unwrap();
    // Leave less room than the message needs.
    let filler = small.join("filler");
    std::fs::write(&filler, vec![0u8; 200 * 1024]).unwrap();

    let up = start(&dir);
    let body = "z".repeat(100 * 1024);
    submit(
        &etc,
        format!("To: box@example.test\nSubject: big\n\n{body}\n").as_bytes(),
    );
    wait_until(
        Duration::from_secs(60),
        || mailq(&etc).contains("deferred: 4.3.1"),
        || format!("no deferral for the full disk: {}", mailq(&etc)),
    );
    let maildir = small.join("Maildir");
    assert!(messages(&maildir).is_empty());
    assert_eq!(
        std::fs::read_dir(maildir.join("tmp")).unwrap().count(),
        0,
        "a partial file stayed"
    );

    std::fs::remove_file(&filler).unwrap();
    wait_for(&maildir, 1);
    let got = messages(&maildir);
    assert_eq!(got.len(), 1);
    assert!(got[0].1.ends_with(format!("\n\n{body}\n").as_bytes()));
    wait_until_empty(&etc);
    stop(up);
}

#[test]
fn an_alias_to_an_outside_address_forwards_through_the_queue() {
    let (_tmp, dir) = sandbox_dir();
    let etc = dir.join("etc");
    init(&dir);
    let aliases = std::fs::read_to_string(etc.join("aliases")).unwrap();
    std::fs::write(
        etc.join("aliases"),
        format!("{aliases}team@example.test: demo@example.test, friend@remote.example\n"),
    )
    .unwrap();
    let up = start(&dir);
    let maildir = dir.join("mail/example.test/demo/Maildir");
    let mut command = Command::new(program("postern-inject"));
    command
        .arg("--config")
        .arg(&etc)
        .args(["-f", "origin@sender.example", "team@example.test"]);
    let out = run_with_input(&mut command, b"Subject: to the team\n\nhello\n");
    assert!(out.status.success());
    wait_for(&maildir, 1);
    // The team's message is done; what stays is the forward, a new message
    // with the original sender, deferred by postern-remote (the test's
    // DNS does not answer).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = mailq(&etc);
        let lines: Vec<&str> = listing.lines().collect();
        if lines.len() == 3
            && lines[0].contains("  origin@sender.example  (next attempt ")
            && lines[1].contains("friend@remote.example")
            && lines[1].contains("deferred: 4.4.3 DNS does not answer for remote.example")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no forward queued: {listing}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let queue = postern_queue_format::QueueDir::at(dir.join("queue"));
    let id = &queue.queued().unwrap()[0];
    let bytes = std::fs::read(queue.queue_file(id)).unwrap();
    let (_, offset) = queue.read_envelope(id).unwrap();
    let data = String::from_utf8_lossy(&bytes[offset as usize..]).into_owned();
    assert!(
        data.starts_with("Delivered-To: team@example.test\nReceived: "),
        "{data}"
    );
    assert!(data.ends_with("\n\nhello\n"));
    stop(up);
    assert_eq!(messages(&maildir).len(), 1);
}
