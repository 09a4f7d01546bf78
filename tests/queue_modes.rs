//! Queue files the queue manager can read, whatever the umask of whoever
//! queued them (mutt sets 077 before it runs sendmail); and a queue file it
//! cannot read is logged, listed and reported, never forgotten.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use crate::queue::{mailq, wait_for};
use crate::sandbox::{sandbox_dir, start_logged, stop};
use crate::util::{messages, program, wait_until};

/// mutt in batch mode, sending through `sendmail` under umask 077.
fn mutt_sends(sendmail: &str, home: &std::path::Path, subject: &str, to: &str) {
    let body = home.join("mutt-body");
    std::fs::write(&body, "sent from mutt under umask 077\n").unwrap();
    let script = format!(
        "umask 077; exec mutt -n -F /dev/null -e 'set sendmail=\"{sendmail}\"' -e 'set use_envelope_from=yes' -s '{subject}' {to} < {}",
        body.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mutt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mail_from_mutt_under_umask_077_is_delivered() {
    // Only where the queue manager is another user can a 0600 queue file
    // stop it: as root, with the sandbox's role uids.
    if crate::util::skip_unless_root("mail_from_mutt_under_umask_077_is_delivered") {
        return;
    }
    let (tmp, dir) = sandbox_dir();
    let up = start_logged(&dir, &tmp.path().join("log"));
    let etc = dir.join("etc");
    let maildir = dir.join("mail/example.test/demo/Maildir");
    let sendmail = format!(
        "{} --config {}",
        program("postern-inject").display(),
        etc.display()
    );
    mutt_sends(&sendmail, tmp.path(), "umask", "demo@example.test");
    wait_for(&maildir, 1);
    let got = messages(&maildir);
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(text.contains("\nSubject: umask\n"), "{text}");
    assert!(
        text.ends_with("\n\nsent from mutt under umask 077\n"),
        "{text}"
    );
    crate::queue::wait_until_empty(&etc);
    stop(up);
}

#[test]
fn a_queue_file_the_manager_cannot_read_is_reported_and_kept() {
    let (tmp, dir) = sandbox_dir();
    let log = tmp.path().join("log");
    let up = start_logged(&dir, &log);
    let etc = dir.join("etc");
    let maildir = dir.join("mail/example.test/demo/Maildir");

    // A queue file made unreadable before the manager first sees it: built
    // beside the queue, then moved in and announced.
    let staging = tmp.path().join("staging");
    let side = postern_queue_format::QueueDir::create(&staging).unwrap();
    let envelope = postern_queue_format::Envelope {
        arrival: postern_config::unix_now(),
        sender: "someone@example.org".into(),
        recipients: vec![postern_queue_format::Recipient::new("demo@example.test")],
        ..Default::default()
    };
    let mut writer = side.begin(&envelope).unwrap();
    writer.write(b"Subject: locked out\n\nbody\n").unwrap();
    let id = writer.commit().unwrap();
    let staged = side.queue_file(&id);
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o000)).unwrap();
    let queue = postern_queue_format::QueueDir::at(dir.join("queue"));
    std::fs::rename(&staged, queue.queue_file(&id)).unwrap();
    queue.poke(&id);

    // The manager says so as an error, once, and keeps it.
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        Duration::from_secs(30),
        || logged().contains(&format!("error: {id}: cannot open the queue file")),
        || format!("no error logged for {id}: {}", logged()),
    );
    let listing = mailq(&etc);
    assert!(
        listing.contains(&format!("{id} ")) && listing.contains("(unreadable: mode 0000"),
        "{listing}"
    );
    let stats = Command::new(program("postern-queue"))
        .arg("--config")
        .arg(&etc)
        .arg("--stats")
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.contains("\nunreadable 1\n"), "{stats}");
    let check = Command::new(program("postern-admin"))
        .arg("--config")
        .arg(&etc)
        .arg("check")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "{}: mode 0000, owner uid ",
            queue.queue_file(&id).display()
        )) && report.contains("so it is never delivered"),
        "{report}"
    );

    // Mended as check says, it goes at the next look, without a restart.
    let queue_gid = std::fs::metadata(dir.join("queue/queue")).unwrap().gid();
    std::os::unix::fs::chown(queue.queue_file(&id), None, Some(queue_gid)).unwrap();
    std::fs::set_permissions(
        queue.queue_file(&id),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    wait_for(&maildir, 1);
    assert!(
        String::from_utf8_lossy(&messages(&maildir)[0].1)
            .ends_with("Subject: locked out\n\nbody\n")
    );
    assert_eq!(logged().matches("cannot open the queue file").count(), 1);
    crate::queue::wait_until_empty(&etc);
    stop(up);
}
