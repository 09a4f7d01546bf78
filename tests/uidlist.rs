//! IMAP UIDs kept as Dovecot keeps them: a folder's `dovecot-uidlist`
//! that Dovecot's own imap (Debian's, run pre-authenticated on the
//! folder) wrote is read by postern-mailstore with the same UIDVALIDITY,
//! UIDs and next UID; a UID Postern gives a new message, under
//! Dovecot's lock protocol, is the one Dovecot then shows; and a message
//! Dovecot sees after that gets the next UID, none given twice.

use std::process::Command;

use postern_mailstore::uidlist::load;

/// Dovecot's imap, pre-authenticated on `dir/Maildir`, given `commands`
/// (one a line); what it answered.
fn dovecot(dir: &std::path::Path, commands: &str) -> String {
    dovecot_on(&dir.join("Maildir"), dir, (65534, 65534), commands)
}

/// Dovecot's imap on `maildir`, with its state in `state` (which it may
/// write), as `owner` when the tests run as root (Dovecot will not serve
/// mail as root); what it answered to `commands`.
pub(crate) fn dovecot_on(
    maildir: &std::path::Path,
    state: &std::path::Path,
    owner: (u32, u32),
    commands: &str,
) -> String {
    let config = state.join("dovecot.conf");
    std::fs::create_dir_all(state.join("run")).unwrap();
    std::fs::write(
        &config,
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/run\nlog_path = {d}/log\nfirst_valid_uid = 0\n\
             mail_location = maildir:{m}\n",
            d = state.display(),
            m = maildir.display()
        ),
    )
    .unwrap();
    let mut command = match crate::util::is_root() {
        true => {
            let _ = Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", owner.0, owner.1))
                .arg(state)
                .status();
            let mut setpriv = Command::new("setpriv");
            setpriv.arg(format!("--reuid={}", owner.0));
            setpriv.arg(format!("--regid={}", owner.1));
            setpriv.arg("--clear-groups");
            setpriv.arg("env");
            setpriv
        }
        false => Command::new("env"),
    };
    command
        .arg("-i")
        .arg("USER=tester")
        .arg(format!("HOME={}", state.display()))
        .arg(format!("MAIL=maildir:{}", maildir.display()))
        .args(["/usr/lib/dovecot/imap", "-c"])
        .arg(&config);
    let out =
        crate::util::run_with_input(&mut command, format!("{commands}\nz LOGOUT\n").as_bytes());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deliver(dir: &std::path::Path, name: &str) {
    std::fs::write(
        dir.join("Maildir/new").join(name),
        format!("Subject: {name}\n\nx\n"),
    )
    .unwrap();
}

#[test]
fn uid_lists_move_between_dovecot_and_postern_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for sub in ["cur", "new", "tmp", "run"] {
        let path = if sub == "run" {
            dir.join(sub)
        } else {
            dir.join("Maildir").join(sub)
        };
        std::fs::create_dir_all(path).unwrap();
    }
    for n in 1..=3 {
        deliver(dir, &format!("170000000{n}.M{n}P1.host"));
    }
    if crate::util::is_root() {
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let answer = dovecot(dir, "a SELECT INBOX");
    assert!(answer.contains("a OK"), "{answer}");
    let validity: u32 = answer
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap()
        .parse()
        .unwrap();
    let folder = dir.join("Maildir");
    let list = load(&folder).unwrap().expect("Dovecot wrote its uidlist");
    assert_eq!(list.validity, validity);
    assert_eq!(list.next, 4, "{list:?}");
    for n in 1..=3u32 {
        assert_eq!(list.uid_of(&format!("170000000{n}.M{n}P1.host")), Some(n));
    }
    // Postern syncs the folder after a delivery and a rename on the shell
    // (message 2 read and flagged): the new message gets UID 4, under
    // Dovecot's lock, and message 2 keeps its UID.
    deliver(dir, "1700000004.M4P1.host");
    std::fs::rename(
        folder.join("new/1700000002.M2P1.host"),
        folder.join("cur/1700000002.M2P1.host:2,S"),
    )
    .unwrap_or_else(|_| {
        std::fs::rename(
            folder.join("cur/1700000002.M2P1.host:2,"),
            folder.join("cur/1700000002.M2P1.host:2,S"),
        )
        .unwrap()
    });
    let synced = postern_mailstore::uidsync::sync(&folder, std::time::SystemTime::now()).unwrap();
    assert_eq!(synced.added, [4]);
    assert!(synced.expunged.is_empty());
    assert_eq!(synced.list.uid_of("1700000002.M2P1.host"), Some(2));
    if crate::util::is_root() {
        std::os::unix::fs::chown(folder.join("dovecot-uidlist"), Some(65534), Some(65534)).unwrap();
    }
    // Dovecot shows that UID, and gives the next message the next one.
    deliver(dir, "1700000005.M5P1.host");
    if crate::util::is_root() {
        let _ = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir)
            .status();
    }
    let answer = dovecot(
        dir,
        "a SELECT INBOX\nb UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    );
    assert!(
        answer.contains(&format!("[UIDVALIDITY {validity}]")),
        "{answer}"
    );
    for n in 1..=5u32 {
        assert!(
            answer.contains(&format!("* {n} FETCH (UID {n} ")),
            "UID {n} is not message {n}: {answer}"
        );
    }
    assert!(answer.contains("Subject: 1700000004.M4P1.host"), "{answer}");
    let after = load(&folder).unwrap().unwrap();
    assert_eq!(after.uid_of("1700000005.M5P1.host"), Some(5));
    assert!(after.next >= 6);
}
