//! Exactly once, whatever dies: 1,000 messages to several local mailboxes
//! while postern-queue, postern-lspawn and postern-local are killed with
//! SIGKILL at random moments; once the queue drains, every recipient holds
//! every message exactly once and nothing is left behind.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sandbox::{init, sandbox_dir, start, stop};
use crate::util::{messages, program, run_with_input};

const MESSAGES: usize = 1000;
const KILLS: usize = 20;
const MAILBOXES: [&str; 3] = ["demo", "alice", "bob"];

/// Which mailboxes message `n` goes to: one, two or all three.
fn recipients(n: usize) -> Vec<&'static str> {
    match n % 3 {
        0 => vec!["demo"],
        1 => vec!["demo", "alice"],
        _ => vec!["alice", "bob", "demo"],
    }
}

/// A small deterministic generator: the test must not depend on luck to
/// be repeatable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn suite_pids(etc: &std::path::Path) -> Vec<i32> {
    let pattern = format!("postern-(queue|lspawn|local) --config {}", etc.display());
    let out = Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn a_thousand_messages_survive_twenty_kills_exactly_once() {
    let (_tmp, dir) = sandbox_dir();
    let etc = dir.join("etc");
    // Make the sandbox, then retry deferred recipients every second.
    init(&dir);
    let toml = std::fs::read_to_string(etc.join("postern.toml")).unwrap();
    std::fs::write(
        etc.join("postern.toml"),
        format!("{toml}retry_interval = 1\nmax_retry_interval = 1\n"),
    )
    .unwrap();
    for user in ["alice", "bob"] {
        let out = Command::new(program("postern-admin"))
            .arg("--config")
            .arg(&etc)
            .args([
                "mailbox",
                "add",
                &format!("{user}@example.test"),
                "--password-file",
            ])
            .arg(etc.join("demo.password"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let up = start(&dir);

    let injecting = Arc::new(AtomicBool::new(true));
    let injector = {
        let etc = etc.clone();
        let injecting = injecting.clone();
        std::thread::spawn(move || {
            for n in 0..MESSAGES {
                let to: Vec<String> = recipients(n)
                    .iter()
                    .map(|u| format!("{u}@example.test"))
                    .collect();
                let mut command = Command::new(program("postern-inject"));
                command
                    .arg("--config")
                    .arg(&etc)
                    .args(["-i", "--"])
                    .args(&to);
                let message = format!("Subject: crash-{n}\n\nmessage {n}\n");
                let out = run_with_input(&mut command, message.as_bytes());
                assert!(out.status.success(), "injection {n} failed");
            }
            injecting.store(false, Ordering::SeqCst);
        })
    };

    let mut random = Lcg(u64::from(std::process::id()));
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while kills < KILLS || injecting.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "injection and kills took too long"
        );
        std::thread::sleep(Duration::from_millis(30 + random.next(200)));
        if kills >= KILLS {
            continue;
        }
        let pids = suite_pids(&etc);
        if pids.is_empty() {
            continue;
        }
        let victim = pids[random.next(pids.len() as u64) as usize];
        // SAFETY: kill(2) on a process of the suite this test started.
        if unsafe { libc::kill(victim, libc::SIGKILL) } == 0 {
            kills += 1;
        }
    }
    injector.join().unwrap();

    // Let the queue drain, then count.
    let expected: HashMap<&str, usize> = MAILBOXES
        .iter()
        .map(|m| {
            (
                *m,
                (0..MESSAGES).filter(|n| recipients(*n).contains(m)).count(),
            )
        })
        .collect();
    let maildir = |user: &str| dir.join(format!("mail/example.test/{user}/Maildir"));
    let drained = Instant::now() + Duration::from_secs(180);
    loop {
        let done = MAILBOXES
            .iter()
            .all(|m| messages(&maildir(m)).len() >= expected[m]);
        let queue_empty = std::fs::read_dir(dir.join("queue/queue")).unwrap().count() == 0;
        if done && queue_empty {
            break;
        }
        assert!(Instant::now() < drained, "the queue did not drain");
        std::thread::sleep(Duration::from_millis(200));
    }
    for mailbox in MAILBOXES {
        let mut seen: HashMap<usize, usize> = HashMap::new();
        for (_, content) in messages(&maildir(mailbox)) {
            let text = String::from_utf8_lossy(&content);
            let n: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: crash-"))
                .and_then(|n| n.parse().ok())
                .expect("a crash-test message");
            assert!(
                text.ends_with(&format!("\n\nmessage {n}\n")),
                "message {n} is not whole in {mailbox}"
            );
            *seen.entry(n).or_default() += 1;
        }
        for n in (0..MESSAGES).filter(|n| recipients(*n).contains(&mailbox)) {
            assert_eq!(
                seen.get(&n),
                Some(&1),
                "{mailbox} has message {n} {:?} times",
                seen.get(&n)
            );
        }
        assert_eq!(seen.len(), expected[mailbox]);
        assert_eq!(
            std::fs::read_dir(maildir(mailbox).join("tmp"))
                .unwrap()
                .count(),
            0,
            "{mailbox}/tmp"
        );
    }
    for sub in ["tmp", "queue", "state"] {
        assert_eq!(
            std::fs::read_dir(dir.join("queue").join(sub))
                .unwrap()
                .count(),
            0,
            "queue/{sub}"
        );
    }
    stop(up);
    assert!(kills >= KILLS);
}
