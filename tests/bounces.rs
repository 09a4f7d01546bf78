//! Delivery status reports under `postern up`: failures, expiry, delay
//! warnings, success reports, `<>` senders, a report that itself fails —
//! each report read back with Python's `email` package. Also the retry
//! schedule across a restart, and the admin's queue commands.
//!
//! The clock is the test's: a message's age is its envelope's arrival
//! time, so a queue file written here with an arrival days ago stands for
//! mail that has waited that long, without a real wait.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use postern_queue_format::{Envelope, QueueDir, Recipient, Records};

use crate::queue::{mailq, submit, wait_for};
use crate::sandbox::{Up, init, sandbox_dir, start_logged, stop};
use crate::util::{messages, program, run_with_input, wait_until};

/// Reads one report and checks it as a mail client would: prints
/// `kind action status recipient` per recipient, and `returned: SUBJECT`.
const READ_REPORT: &str = r#"
import email, sys
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.compat32)
assert msg.get_content_type() == "multipart/report", msg.get_content_type()
assert msg.get_param("report-type") == "delivery-status", msg.get_param("report-type")
assert msg["Auto-Submitted"] == "auto-replied", msg["Auto-Submitted"]
parts = msg.get_payload()
assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"], [p.get_content_type() for p in parts]
blocks = parts[1].get_payload()
assert blocks[0]["Reporting-MTA"].startswith("dns; "), blocks[0]["Reporting-MTA"]
assert blocks[0]["Arrival-Date"], "no Arrival-Date"
for block in blocks[1:]:
    print(block["Action"], block["Status"], block["Final-Recipient"])
returned = parts[2]
if returned.get_content_type() == "message/rfc822":
    print("returned:", returned.get_payload()[0]["Subject"])
else:
    assert returned.get_content_type() == "text/rfc822-headers", returned.get_content_type()
    print("returned:", email.message_from_string(returned.get_payload())["Subject"])
"#;

fn read_report(path: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", READ_REPORT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Sandbox {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    up: Option<Up>,
}

impl Sandbox {
    /// A sandbox with `settings` added to postern.toml, and mailboxes.
    fn new(settings: &str, mailboxes: &[(&str, Option<&str>)]) -> Sandbox {
        let (tmp, dir) = sandbox_dir();
        init(&dir);
        let toml = dir.join("etc/postern.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, format!("{text}{settings}")).unwrap();
        let sandbox = Sandbox { tmp, dir, up: None };
        for (address, quota) in mailboxes {
            let mut args = vec!["mailbox", "add", address, "--password-file"];
            let password = sandbox.etc().join("demo.password");
            let password = password.to_str().unwrap().to_string();
            args.push(&password);
            if let Some(quota) = quota {
                args.extend(["--quota", quota]);
            }
            sandbox.admin(&args);
        }
        sandbox
    }

    fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }

    fn start(mut self) -> Sandbox {
        self.up = Some(start_logged(&self.dir, &self.log_file()));
        self
    }

    fn log_file(&self) -> PathBuf {
        self.tmp.path().join("log")
    }

    /// The `delay=` of the log line for `to` that has `status`.
    fn logged_delay(&self, to: &str, status: &str) -> f64 {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let line = log
            .lines()
            .find(|l| l.contains(&format!("to=<{to}>")) && l.contains(status))
            .unwrap_or_else(|| panic!("no {status} line for {to} in {log}"));
        line.split("delay=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn admin(&self, args: &[&str]) {
        let out = Command::new(program("postern-admin"))
            .arg("--config")
            .arg(self.etc())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn maildir(&self, address: &str) -> PathBuf {
        let (local, domain) = address.split_once('@').unwrap();
        self.dir
            .join("mail")
            .join(domain)
            .join(local)
            .join("Maildir")
    }

    fn queue(&self) -> QueueDir {
        QueueDir::at(self.dir.join("queue"))
    }

    /// `postern-queue --config ETC ARGS`: exit code and output.
    fn control(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(program("postern-queue"))
            .arg("--config")
            .arg(self.etc())
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// `sendmail` with these arguments and this message.
    fn sendmail(&self, args: &[&str], message: &[u8]) {
        let mut command = Command::new(program("postern-inject"));
        command.arg("--config").arg(self.etc()).args(args);
        let out = run_with_input(&mut command, message);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Queues a message as if it had arrived `age` ago (the queue's
    /// files are written as postern-inject writes them).
    fn queue_aged(&self, sender: &str, recipient: &str, age: Duration, message: &[u8]) {
        let arrival = postern_config::unix_now() - age.as_secs();
        let envelope = Envelope {
            arrival,
            sender: sender.into(),
            recipients: vec![Recipient::new(recipient)],
            ..Envelope::default()
        };
        let queue = self.queue();
        let mut writer = queue.begin(&envelope).unwrap();
        writer.write(message).unwrap();
        let id = writer.commit().unwrap();
        queue.poke(&id);
    }

    fn wait_until_empty(&self) {
        crate::queue::wait_until_empty(&self.etc());
    }

    /// Waits (bounded) until the listing shows `text`.
    fn wait_for_listing(&self, text: &str) -> String {
        self.wait_for_listing_count(text, 1)
    }

    /// Waits until the queue listing holds `text` `count` times.
    fn wait_for_listing_count(&self, text: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listing = mailq(&self.etc());
            if listing.matches(text).count() >= count {
                return listing;
            }
            assert!(
                Instant::now() < deadline,
                "never listed {text:?} {count} times: {listing}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) {
        if let Some(up) = self.up.take() {
            stop(up);
        }
    }
}

/// The Maildir file names of the messages in `maildir`.
fn files(maildir: &Path) -> Vec<PathBuf> {
    messages(maildir)
        .into_iter()
        .map(|(name, _)| {
            let new = maildir.join("new").join(&name);
            if new.exists() {
                new
            } else {
                maildir.join("cur").join(&name)
            }
        })
        .collect()
}

/// A running sandbox with a mailbox `sender@` and a mailbox `full@` whose
/// 6 KiB quota already holds one message of 5 KiB: a message of `big()`
/// would fit the empty mailbox, but not this one until room is made.
fn over_quota(settings: &str) -> Sandbox {
    let s = Sandbox::new(
        settings,
        &[
            ("sender@example.test", None),
            ("full@example.test", Some("6K")),
        ],
    );
    let filler = [b"Subject: filler\n\n".as_slice(), &vec![b'f'; 5000], b"\n"].concat();
    let mut local = Command::new(program("postern-local"));
    local
        .arg("--config")
        .arg(s.etc())
        .args(["-f", "x@example.org", "full@example.test"]);
    let out = crate::util::run_with_input(&mut local, &filler);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(messages(&s.maildir("full@example.test")).len(), 1);
    s.start()
}

/// The original message, grown past 4 KiB.
fn big() -> Vec<u8> {
    [ORIGINAL, &vec![b'x'; 4096], b"\n"].concat()
}

const ORIGINAL: &[u8] = b"Subject: the original\nFrom: sender@example.test\n\nhello\n";

#[test]
fn an_unknown_user_bounces_once_to_the_sender() {
    let s = Sandbox::new("", &[("sender@example.test", None)]).start();
    s.sendmail(
        &["-f", "sender@example.test", "nobody@example.test"],
        ORIGINAL,
    );
    let inbox = s.maildir("sender@example.test");
    wait_for(&inbox, 1);
    s.wait_until_empty();
    let reports = files(&inbox);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        read_report(&reports[0]),
        "failed 5.1.1 rfc822; nobody@example.test\nreturned: the original\n"
    );
    let text = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(text.contains("Return-Path: <>\n"), "{text}");
    assert!(text.contains("\nSubject: Undelivered Mail Returned to Sender\n"));
    s.stop();
}

#[test]
fn null_senders_and_notify_never_get_no_report() {
    let s = Sandbox::new("", &[("sender@example.test", None)]).start();
    s.sendmail(&["-f", "<>", "nobody@example.test"], ORIGINAL);
    s.sendmail(
        &[
            "-f",
            "sender@example.test",
            "-N",
            "never",
            "nobody@example.test",
        ],
        ORIGINAL,
    );
    s.wait_until_empty();
    // Time for a report to arrive, had one been made.
    std::thread::sleep(Duration::from_millis(1500));
    s.wait_until_empty();
    assert!(messages(&s.maildir("sender@example.test")).is_empty());
    // postmaster (the demo mailbox) heard nothing either.
    assert!(messages(&s.maildir("demo@example.test")).is_empty());
    s.stop();
}

#[test]
fn a_report_that_fails_goes_to_postmaster_once() {
    let s = Sandbox::new("", &[]).start();
    // The sender does not exist: its report fails in turn.
    s.sendmail(
        &["-f", "ghost@example.test", "nobody@example.test"],
        ORIGINAL,
    );
    let postmaster = s.maildir("demo@example.test");
    wait_for(&postmaster, 1);
    s.wait_until_empty();
    std::thread::sleep(Duration::from_millis(1500));
    s.wait_until_empty();
    let notices = files(&postmaster);
    assert_eq!(notices.len(), 1, "one notice, no loop");
    assert_eq!(
        read_report(&notices[0]),
        "failed 5.1.1 rfc822; ghost@example.test\nreturned: Undelivered Mail Returned to Sender\n"
    );
    let text = std::fs::read_to_string(&notices[0]).unwrap();
    assert!(text.contains("\nSubject: Undelivered Delivery Status Report\n"));
    s.stop();
}

#[test]
fn notify_success_reports_the_delivery() {
    let s = Sandbox::new("", &[("sender@example.test", None)]).start();
    s.sendmail(
        &[
            "-f",
            "sender@example.test",
            "-N",
            "success,failure",
            "demo@example.test",
        ],
        ORIGINAL,
    );
    let inbox = s.maildir("sender@example.test");
    wait_for(&inbox, 1);
    s.wait_until_empty();
    assert_eq!(messages(&s.maildir("demo@example.test")).len(), 1);
    let reports = files(&inbox);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        read_report(&reports[0]),
        "delivered 2.0.0 rfc822; demo@example.test\nreturned: the original\n"
    );
    s.stop();
}

#[test]
fn over_quota_until_the_queue_lifetime_ends_in_a_failure_report() {
    let s = over_quota("");
    let big = big();
    // Six days in the queue, past the lifetime of five.
    s.queue_aged(
        "sender@example.test",
        "full@example.test",
        Duration::from_secs(6 * 86400),
        &big,
    );
    let inbox = s.maildir("sender@example.test");
    wait_for(&inbox, 1);
    s.wait_until_empty();
    let reports = files(&inbox);
    assert_eq!(
        read_report(&reports[0]),
        "failed 4.2.2 rfc822; full@example.test\nreturned: the original\n"
    );
    let text = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(
        text.contains("gave up: still failing after 5 days in the queue"),
        "{text}"
    );
    assert_eq!(messages(&s.maildir("full@example.test")).len(), 1);
    // Logged as every bounce is, with the time since arrival, as Postfix.
    let delay = s.logged_delay("full@example.test", "status=bounced (4.2.2 mailbox full");
    assert!(delay >= (6 * 86400) as f64, "{delay}");
    s.stop();
}

#[test]
fn a_delay_is_reported_once_and_then_the_message_is_delivered() {
    let s = over_quota("retry_interval = \"1h\"\n");
    let big = big();
    // Five hours in the queue: past the delay warning of four.
    s.queue_aged(
        "sender@example.test",
        "full@example.test",
        Duration::from_secs(5 * 3600),
        &big,
    );
    let inbox = s.maildir("sender@example.test");
    wait_for(&inbox, 1);
    let reports = files(&inbox);
    assert_eq!(
        read_report(&reports[0]),
        "delayed 4.2.2 rfc822; full@example.test\nreturned: the original\n"
    );
    // Room in the mailbox, and a flush: delivered, and no second report.
    s.admin(&["mailbox", "quota", "full@example.test", "1M"]);
    let (code, text) = s.control(&["--flush"]);
    assert_eq!(code, 0, "{text}");
    wait_for(&s.maildir("full@example.test"), 2);
    s.wait_until_empty();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(messages(&inbox).len(), 1);
    // delay= is the time since arrival, five hours here.
    let delay = s.logged_delay("full@example.test", "status=sent");
    assert!(delay >= (5 * 3600) as f64, "{delay}");
    s.stop();
}

/// The `next` record of the one message in the queue.
fn next_attempt(s: &Sandbox) -> (postern_queue_format::QueueId, Records) {
    let queue = s.queue();
    let id = queue.queued().unwrap()[0].clone();
    let (envelope, _) = queue.read_envelope(&id).unwrap();
    let records = Records::read(&queue, &id, envelope.recipients.len()).unwrap();
    (id, records)
}

#[test]
fn the_retry_schedule_backs_off_and_survives_a_restart() {
    let s = over_quota("retry_interval = 2\nmax_retry_interval = \"1h\"\n");
    submit(
        &s.etc(),
        &[b"To: full@example.test\n".as_slice(), &big()].concat(),
    );
    // Attempts at 0, 2 and 2 + 4 seconds: each wait twice the one before.
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let (_, records) = next_attempt(&s);
        // The third attempt's outcome is in once `next` follows it.
        if records.rounds.len() >= 3 && records.next.is_some_and(|n| n > records.rounds[2]) {
            break records;
        }
        assert!(Instant::now() < deadline, "{records:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The lower bounds are the schedule; the upper ones leave a busy
    // machine two seconds for an attempt and the manager's wake-up.
    let gaps: Vec<u64> = records.rounds.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        (2..=4).contains(&gaps[0]) && (4..=7).contains(&gaps[1]) && gaps[1] > gaps[0],
        "{gaps:?}"
    );
    let next = records.next.unwrap();
    // 8 seconds after the third attempt's end (which may fall a second
    // or two after its start).
    assert!(
        (8..=11).contains(&(next - records.rounds[2])),
        "{records:?}"
    );
    let listing = mailq(&s.etc());
    assert!(listing.contains("(next attempt "), "{listing}");
    assert!(listing.contains("deferred: 4.2.2"), "{listing}");

    // A restarted manager keeps to the recorded time rather than trying
    // at once; a flush tries now.
    let etc = s.etc();
    let pid = crate::queue::queue_pid(&etc).expect("postern-queue runs");
    // SAFETY: kill(2) on a process of the suite this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(
        Duration::from_secs(30),
        || crate::queue::queue_pid(&etc).is_some_and(|p| p != pid),
        || "postern-queue was not restarted".to_string(),
    );
    let (id, after) = next_attempt(&s);
    if next > postern_config::unix_now() + 1 {
        std::thread::sleep(Duration::from_millis(1000));
        let (_, later) = next_attempt(&s);
        assert_eq!(
            later.rounds.len(),
            after.rounds.len(),
            "tried before its time"
        );
    }
    let (code, text) = s.control(&["--flush", id.as_str()]);
    assert_eq!(code, 0, "{text}");
    wait_until(
        Duration::from_secs(30),
        || next_attempt(&s).1.rounds.len() > after.rounds.len(),
        || "--flush did not try the message".to_string(),
    );
    s.stop();
}

#[test]
fn hold_release_delete_and_stats() {
    let s = over_quota("retry_interval = \"1h\"\n");
    let big = big();
    s.sendmail(&["-f", "sender@example.test", "full@example.test"], &big);
    s.wait_for_listing("deferred: 4.2.2");
    s.sendmail(&["-f", "sender@example.test", "full@example.test"], &big);
    // Both tried and deferred: one still in its first attempt could not
    // be deleted yet ("being delivered now").
    let listing = s.wait_for_listing_count("deferred: 4.2.2", 2);
    assert!(listing.contains("-- 2 messages"), "{listing}");
    let queue = s.queue();
    let ids = queue.queued().unwrap();
    assert_eq!(ids.len(), 2, "{listing}");
    let (held, doomed) = (ids[0].as_str(), ids[1].as_str());

    let (code, text) = s.control(&["--hold", held]);
    assert_eq!(
        (code, text.trim()),
        (0, format!("postern-queue: {held}: held").as_str())
    );
    assert!(mailq(&s.etc()).contains(&format!("{held} ")));
    assert!(mailq(&s.etc()).contains("  (held)\n"));
    let (code, stats) = s.control(&["--stats"]);
    assert_eq!(code, 0);
    assert!(
        stats.starts_with("messages 2\nheld 1\nunreadable 0\n"),
        "{stats}"
    );
    assert!(stats.contains("\noldest_age_seconds "), "{stats}");
    // The admin's listing is mailq's, with dates people read.
    let (code, listing) = s.control(&["--list"]);
    assert_eq!(code, 0);
    let (envelope, _) = queue.read_envelope(&ids[0]).unwrap();
    let arrival = postern_log::dates::rfc5322_secs(envelope.arrival);
    assert!(
        listing.contains(&format!("{held} ")) && listing.contains(&arrival),
        "{listing}"
    );
    assert!(
        !listing.contains(&envelope.arrival.to_string()),
        "{listing}"
    );

    // Deleted: gone, and no report.
    let (code, text) = s.control(&["--delete", doomed]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(queue.queued().unwrap().len(), 1);
    let (code, _) = s.control(&["--delete", doomed]);
    assert_eq!(code, 67);

    // Room in the mailbox: a flush leaves the held message alone, a
    // release delivers it.
    s.admin(&["mailbox", "quota", "full@example.test", "1M"]);
    assert_eq!(s.control(&["--flush"]).0, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(messages(&s.maildir("full@example.test")).len(), 1);
    let (code, text) = s.control(&["--release", held]);
    assert_eq!(code, 0, "{text}");
    wait_for(&s.maildir("full@example.test"), 2);
    s.wait_until_empty();
    assert!(messages(&s.maildir("sender@example.test")).is_empty());
    s.stop();
}

#[test]
fn ret_hdrs_returns_the_header_only() {
    let s = Sandbox::new("", &[("sender@example.test", None)]).start();
    s.sendmail(
        &[
            "-f",
            "sender@example.test",
            "-R",
            "hdrs",
            "-V",
            "tracking-7",
            "nobody@example.test",
        ],
        ORIGINAL,
    );
    let inbox = s.maildir("sender@example.test");
    wait_for(&inbox, 1);
    s.wait_until_empty();
    let reports = files(&inbox);
    assert_eq!(
        read_report(&reports[0]),
        "failed 5.1.1 rfc822; nobody@example.test\nreturned: the original\n"
    );
    let text = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(
        text.contains("Content-Type: text/rfc822-headers\n"),
        "{text}"
    );
    assert!(
        text.contains("\nOriginal-Envelope-Id: tracking-7\n"),
        "{text}"
    );
    assert!(!text.contains("\nhello\n"), "the body came back: {text}");
    s.stop();
}
