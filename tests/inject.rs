//! postern-inject as mutt, cron and scripts call sendmail: what reaches the
//! queue file, byte for byte where it matters.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use postern_queue_format::{Envelope, Notify, QueueDir, Ret};

use crate::util::{HOST, Setup, program, recipients, run_with_input};

fn inject(s: &Setup, args: &[&str], message: &[u8]) -> Output {
    let mut command = Command::new(program("postern-inject"));
    command.arg("--config").arg(&s.etc).args(args);
    run_with_input(&mut command, message)
}

fn split(data: &[u8]) -> (String, Vec<u8>) {
    let end = data.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    (
        String::from_utf8(data[..end].to_vec()).unwrap(),
        data[end..].to_vec(),
    )
}

#[test]
fn mutt_in_batch_mode() {
    let s = Setup::new();
    let body = b"Hello from mutt.\nA line with trailing blanks   \n\n-- \nsig\n";
    let body_file = s.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let sendmail = format!(
        "{} --config {}",
        program("postern-inject").display(),
        s.etc.display()
    );
    let out = Command::new("mutt")
        .env("HOME", s.path())
        .args(["-n", "-F", "/dev/null"])
        .args(["-e", &format!("set sendmail=\"{sendmail}\"")])
        .args(["-e", "set from=\"Tester <tester@example.org>\""])
        .args(["-e", "set dsn_notify=\"success,failure\""])
        .args(["-e", "set use_envelope_from=yes"])
        .args(["-s", "mutt subject", "alice@example.test"])
        .stdin(std::fs::File::open(&body_file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mutt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (envelope, data) = s.only_queued();
    // -N success,failure is a DSN request, not a recipient.
    assert_eq!(recipients(&envelope), ["alice@example.test"]);
    assert_eq!(envelope.sender, "tester@example.org");
    let (header, sent_body) = split(&data);
    assert_eq!(sent_body, body);
    assert!(
        header.starts_with(&format!("Received: by {HOST} (Postern, from userid ")),
        "{header}"
    );
    assert!(
        header.contains("\nSubject: mutt subject\n")
            && header.contains("\nFrom: Tester <tester@example.org>\n")
    );
    assert_eq!(
        header.matches("\nDate: ").count(),
        1,
        "mutt's own Date is kept, no second one: {header}"
    );
}

#[test]
fn mutts_command_line_keeps_options_and_recipients_apart() {
    let s = Setup::new();
    let out = inject(
        &s,
        &[
            "-oem",
            "-oi",
            "-f",
            "me@example.org",
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "env-17",
            "-B8BITMIME",
            "--",
            "a@example.test",
            "b@example.test",
        ],
        b"Subject: s\n\n.\nbody\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (envelope, data) = s.only_queued();
    assert_eq!(recipients(&envelope), ["a@example.test", "b@example.test"]);
    assert_eq!(envelope.sender, "me@example.org");
    // The DSN requests are kept for the reports: every recipient's NOTIFY,
    // RET and ENVID.
    let notify = Notify::parse("success,failure");
    assert!(envelope.recipients.iter().all(|r| r.notify == notify));
    assert_eq!(
        (envelope.ret, envelope.envid.as_deref()),
        (Some(Ret::Headers), Some("env-17"))
    );
    // -oi: the lone dot is data.
    assert!(data.ends_with(b"\n\n.\nbody\n"));
}

#[test]
fn sendmail_t_takes_recipients_from_the_header_and_drops_bcc() {
    let s = Setup::new();
    let message = b"To: Alice <alice@example.test>, bob@example.test\r\nCc: \"Doe, C\" <carol@example.test>\r\nBcc: secret@example.test\r\nSubject: from a script\r\n\r\nline one\r\n\r\nline three\r\n";
    let out = inject(&s, &["-t", "-i"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (envelope, data) = s.only_queued();
    assert_eq!(
        recipients(&envelope),
        [
            "alice@example.test",
            "bob@example.test",
            "carol@example.test",
            "secret@example.test"
        ]
    );
    let (header, body) = split(&data);
    assert!(!header.to_lowercase().contains("bcc"), "{header}");
    assert!(!header.contains("secret@"), "{header}");
    assert_eq!(body, b"line one\n\nline three\n");
    for field in ["\nDate: ", "\nMessage-ID: <", "\nFrom: "] {
        assert_eq!(header.matches(field).count(), 1, "{field}: {header}");
    }
}

#[test]
fn crons_command_line() {
    let s = Setup::new();
    let out = inject(
        &s,
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        b"Subject: Cron <root@host> run-parts\n\noutput\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (envelope, data) = s.only_queued();
    assert_eq!(recipients(&envelope), [format!("root@{HOST}").as_str()]);
    let (header, body) = split(&data);
    assert!(header.contains("\nFrom: CronDaemon <"), "{header}");
    assert_eq!(body, b"output\n");
}

#[test]
fn refusals_and_the_dot() {
    let s = Setup::new();
    let out = inject(&s, &[], b"Subject: x\n\nbody\n");
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recipients"));
    let out = inject(&s, &["bad address@x@y"], b"x\n");
    assert_eq!(out.status.code(), Some(65));
    let out = inject(&s, &["-f"], b"x\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(QueueDir::at(s.queue()).queued().unwrap().is_empty());
    // Without -i a lone dot ends the message, as in sendmail.
    let out = inject(
        &s,
        &["a@example.test"],
        b"Subject: dot\n\nkept\n.\nnot kept\n",
    );
    assert!(out.status.success());
    let (_, data) = s.only_queued();
    assert!(
        data.ends_with(b"\n\nkept\n"),
        "{}",
        String::from_utf8_lossy(&data)
    );
    assert_eq!(std::fs::read_dir(s.queue().join("tmp")).unwrap().count(), 0);
}

#[test]
fn mailq_lists_the_queue() {
    let s = Setup::new();
    let mailq = |s: &Setup| {
        let out = Command::new(program("postern-inject"))
            .arg("--config")
            .arg(&s.etc)
            .arg("-bp")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(mailq(&s), "Mail queue is empty\n");
    assert!(
        inject(&s, &["-f", "", "a@example.test", "b@example.test"], b"x\n")
            .status
            .success()
    );
    let listed = mailq(&s);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    assert!(lines[0].ends_with("  <>"), "{listed}");
    assert!(lines[1].trim_start().starts_with("a@example.test") && lines[1].ends_with("queued"));
    assert_eq!(lines[3], "-- 1 messages");
}

/// A tmpfs of a few pages, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_the_message_and_leaves_nothing() {
    if crate::util::skip_unless_root("a_full_disk_refuses_the_message_and_leaves_nothing") {
        return;
    }
    let s = Setup::new();
    let disk = SmallDisk::mount(s.path().join("small"), "64k");
    let queue = disk.0.join("queue");
    QueueDir::create(&queue).unwrap();
    let toml = std::fs::read_to_string(s.etc.join("postern.toml")).unwrap();
    let toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("queue_dir") {
                format!("queue_dir = \"{}\"\n", queue.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    s.write("postern.toml", &toml);
    let big = vec![b'x'; 200 * 1024];
    let out = inject(
        &s,
        &["-i", "a@example.test"],
        &[b"Subject: big\n\n".as_slice(), &big].concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"));
    assert_eq!(std::fs::read_dir(queue.join("tmp")).unwrap().count(), 0);
    assert!(QueueDir::at(&queue).queued().unwrap().is_empty());
    // A message that fits still goes in.
    let out = inject(&s, &["-i", "a@example.test"], b"Subject: small\n\nfits\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(QueueDir::at(&queue).queued().unwrap().len(), 1);
}

#[test]
fn a_killed_injection_leaves_a_whole_message_or_nothing() {
    let s = Setup::new();
    let body: Vec<u8> = (0..4000)
        .flat_map(|i| format!("line {i} of a long message\n").into_bytes())
        .collect();
    let mut pause = 0u64;
    for round in 0..20 {
        let mut child = Command::new(program("postern-inject"))
            .arg("--config")
            .arg(&s.etc)
            .args(["-i", "a@example.test"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let message = [format!("Subject: round {round}\n\n").as_bytes(), &body].concat();
        if round % 2 == 0 {
            // Killed while the message still arrives.
            let _ = stdin.write_all(&message[..message.len() / 2]);
        } else {
            // Killed somewhere between reading it all and exiting.
            let _ = stdin.write_all(&message);
            drop(stdin);
            std::thread::sleep(std::time::Duration::from_micros(pause));
            pause = (pause + 700) % 6000;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let queue = QueueDir::at(s.queue());
    for id in queue.queued().unwrap() {
        let bytes = std::fs::read(queue.queue_file(&id)).unwrap();
        let (_, offset) = Envelope::decode(&bytes).unwrap();
        assert!(bytes[offset..].ends_with(&body), "{id} is not whole");
    }
    assert_eq!(
        std::fs::read_dir(s.queue().join("tmp")).unwrap().count(),
        0,
        "something of a message stayed"
    );
}

#[test]
fn odd_messages_are_taken_as_they_are() {
    let s = Setup::new();
    // Empty: queued with the header fields it lacks.
    let out = inject(&s, &["-i", "a@example.test"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, data) = s.only_queued();
    let (header, body) = split(&data);
    assert!(
        header.contains("\nMessage-ID: <") && body.is_empty(),
        "{header}"
    );
    std::fs::remove_file(
        QueueDir::at(s.queue()).queue_file(&QueueDir::at(s.queue()).queued().unwrap()[0]),
    )
    .unwrap();

    // 8-bit header text and a 2,000-byte line: kept byte for byte.
    let long = "y".repeat(2000);
    let message = format!("Subject: caf\u{e9} \u{2603}\n\n{long}\n");
    let out = inject(&s, &["-i", "a@example.test"], message.as_bytes());
    assert!(out.status.success());
    let (_, data) = s.only_queued();
    let (header, body) = split(&data);
    assert!(header.contains("Subject: caf\u{e9} \u{2603}\n"));
    assert_eq!(body, format!("{long}\n").as_bytes());
}
