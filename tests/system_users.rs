//! System users of local domains, with real accounts made for the test
//! (as root; CI runs as root): `~/Maildir/`, `~/.forward` with each kind of
//! target, each run as the user, and root's mail.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::util::{HOST, Setup, messages, recipients, skip_unless_root};

/// useradd locks /etc/passwd: one at a time.
pub static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A system account that exists for one test.
struct TestUser {
    name: String,
    home: PathBuf,
    uid: u32,
}

impl TestUser {
    fn new(s: &Setup, tag: &str) -> TestUser {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("pt{}{tag}", std::process::id() % 100_000);
        let home = s.path().join("home").join(&name);
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        let status = Command::new("useradd")
            .args([
                "--create-home",
                "--shell",
                "/bin/sh",
                "--user-group",
                "--home-dir",
            ])
            .arg(&home)
            .arg(&name)
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        let uid = std::fs::metadata(&home).unwrap().uid();
        TestUser { name, home, uid }
    }

    fn address(&self) -> String {
        format!("{}@{HOST}", self.name)
    }

    /// Writes ~/.forward as the user would: theirs, mode 0644.
    fn forward(&self, text: &str) -> PathBuf {
        let path = self.home.join(".forward");
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.uid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

const MESSAGE: &[u8] =
    b"Subject: for a shell user\nMessage-ID: <1@example.org>\n\nplain body\nsecond line\n";

fn expected(to: &str) -> Vec<u8> {
    [
        format!("Return-Path: <x@example.org>\nDelivered-To: {to}\n").as_bytes(),
        MESSAGE,
    ]
    .concat()
}

#[test]
fn mail_lands_in_the_users_own_maildir() {
    if skip_unless_root("mail_lands_in_the_users_own_maildir") {
        return;
    }
    let s = Setup::new();
    let user = TestUser::new(&s, "a");
    assert!(!user.home.join("Maildir").exists());
    s.local("x@example.org", &user.address(), MESSAGE)
        .expect(0, "2.0.0 delivered to maildir");
    let maildir = user.home.join("Maildir");
    let meta = std::fs::metadata(&maildir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (user.uid, 0o700));
    let got = messages(&maildir);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, expected(&user.address()));
    let file = std::fs::metadata(maildir.join("new").join(&got[0].0)).unwrap();
    assert_eq!((file.uid(), file.mode() & 0o777), (user.uid, 0o600));
}

#[test]
fn forward_targets_each_deliver_as_the_user() {
    if skip_unless_root("forward_targets_each_deliver_as_the_user") {
        return;
    }
    let s = Setup::new();
    let user = TestUser::new(&s, "b");
    let mbox = user.home.join("mbox");
    let folder = user.home.join("Lists/");
    user.forward(&format!(
        "# where my mail goes\n\\{name}, {mbox}\n{folder}\n|/bin/cat > \"$HOME/piped.$RECIPIENT\"\n",
        name = user.name,
        mbox = mbox.display(),
        folder = folder.display()
    ));
    let d = s.local("x@example.org", &user.address(), MESSAGE);
    d.expect(0, "2.0.0 delivered by .forward to ");
    let want = expected(&user.address());

    // \user: the user's own Maildir.
    assert_eq!(messages(&user.home.join("Maildir"))[0].1, want);
    // A Maildir path.
    assert_eq!(messages(&folder)[0].1, want);
    // A command, run as the user in their home, the message on stdin.
    let piped = user.home.join(format!("piped.{}", user.address()));
    assert_eq!(std::fs::read(&piped).unwrap(), want);
    assert_eq!(std::fs::metadata(&piped).unwrap().uid(), user.uid);
    // An mbox, read back by Python's mailbox module.
    assert_eq!(std::fs::metadata(&mbox).unwrap().uid(), user.uid);
    let script = "import mailbox, sys\n\
                  box = mailbox.mbox(sys.argv[1])\n\
                  msgs = list(box)\n\
                  assert len(msgs) == 1, len(msgs)\n\
                  m = msgs[0]\n\
                  sys.stdout.write(m.get_from() + '|' + m['Subject'] + '|' + m['Delivered-To'] + '|' + m.get_payload())\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&mbox)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = read.splitn(4, '|').collect();
    assert!(fields[0].starts_with("x@example.org "), "{read}");
    assert_eq!(
        &fields[1..],
        [
            "for a shell user",
            user.address().as_str(),
            "plain body\nsecond line\n"
        ]
    );
}

#[test]
fn addresses_in_forward_are_queued_with_the_original_sender() {
    if skip_unless_root("addresses_in_forward_are_queued_with_the_original_sender") {
        return;
    }
    let s = Setup::new();
    let user = TestUser::new(&s, "c");
    user.forward(&format!(
        "someone@elsewhere.example, \\{}\nSomeone@Elsewhere.example\nfriend\n",
        user.name
    ));
    s.local("x@example.org", &user.address(), MESSAGE)
        .expect(0, "2.0.0 ");
    // The kept copy, and one new message to both addresses (once each).
    assert_eq!(messages(&user.home.join("Maildir")).len(), 1);
    let (envelope, data) = s.only_queued();
    assert_eq!(envelope.sender, "x@example.org");
    assert_eq!(
        recipients(&envelope),
        ["someone@elsewhere.example", &format!("friend@{HOST}")]
    );
    assert_eq!(
        data,
        [
            format!("Delivered-To: {}\n", user.address()).as_bytes(),
            MESSAGE
        ]
        .concat()
    );
    // Written as the queue's user, never as root or the forwarding user.
    let queue = postern_queue_format::QueueDir::at(s.queue());
    let id = &queue.queued().unwrap()[0];
    let meta = std::fs::metadata(queue.queue_file(id)).unwrap();
    assert_eq!(meta.uid(), s.owner.0);
}

#[test]
fn forwards_that_come_back_are_a_loop() {
    if skip_unless_root("forwards_that_come_back_are_a_loop") {
        return;
    }
    let s = Setup::new();
    let one = TestUser::new(&s, "l1");
    let two = TestUser::new(&s, "l2");
    one.forward(&format!("{}\n", two.address()));
    two.forward(&format!("{}\n", one.address()));
    s.local("x@example.org", &one.address(), MESSAGE)
        .expect(0, "2.0.0 forwarded by .forward; forwarded as ");
    let take = |s: &Setup| {
        let queue = postern_queue_format::QueueDir::at(s.queue());
        let (envelope, data) = s.queued().pop().unwrap();
        for id in queue.queued().unwrap() {
            queue.finish(&id).unwrap();
        }
        (envelope.recipients[0].address.clone(), data)
    };
    let (to, data) = take(&s);
    assert_eq!(to, two.address());
    s.local("x@example.org", &to, &data)
        .expect(0, "2.0.0 forwarded by .forward; forwarded as ");
    let (to, data) = take(&s);
    assert_eq!(to, one.address());
    s.local("x@example.org", &to, &data).expect(
        69,
        &format!("5.4.6 mail forwarding loop for <{}>", one.address()),
    );
    assert!(s.queued().is_empty());
    assert!(messages(&one.home.join("Maildir")).is_empty());
    assert!(messages(&two.home.join("Maildir")).is_empty());
}

#[test]
fn an_unsafe_forward_is_ignored_with_a_log_line() {
    if skip_unless_root("an_unsafe_forward_is_ignored_with_a_log_line") {
        return;
    }
    let s = Setup::new();
    let user = TestUser::new(&s, "d");
    let path = user.forward("|/bin/sh -c 'echo owned'\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let d = s.local("x@example.org", &user.address(), MESSAGE);
    d.expect(0, "2.0.0 delivered to maildir");
    assert!(
        d.stderr.contains(&format!(
            "ignoring .forward: {} is group- or world-writable",
            path.display()
        )),
        "{}",
        d.stderr
    );
    assert_eq!(messages(&user.home.join("Maildir")).len(), 1);
}

#[test]
fn commands_that_fail_or_hang_are_reported() {
    if skip_unless_root("commands_that_fail_or_hang_are_reported") {
        return;
    }
    let s = Setup::with_settings("command_time_limit = 1\n");
    let user = TestUser::new(&s, "e");
    user.forward("|echo no such list >&2; exit 67\n");
    s.local("x@example.org", &user.address(), MESSAGE).expect(
        69,
        "5.3.0 command \"echo no such list >&2; exit 67\" failed with exit 67: no such list",
    );
    user.forward("|exit 75\n");
    s.local("x@example.org", &user.address(), MESSAGE)
        .expect(75, "4.3.0 command \"exit 75\" deferred");
    user.forward("|sleep 30\n");
    s.local("x@example.org", &user.address(), MESSAGE)
        .expect(75, "4.3.0 command \"sleep 30\" killed after 1 s");
    // A job left in the background that holds the output open runs on
    // the same clock, and goes with its process group.
    user.forward("|sleep 30 & echo started\n");
    s.local("x@example.org", &user.address(), MESSAGE).expect(
        75,
        "4.3.0 command \"sleep 30 & echo started\" left output open past 1 s",
    );
    // Killed, that is: at most a zombie waiting for init to reap it, once
    // the kill has been delivered.
    let running = || -> Vec<String> {
        let left = Command::new("pgrep")
            .args(["-u", &user.name, "sleep"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&left.stdout)
            .split_whitespace()
            .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
            .filter(|stat| {
                let state = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .next();
                !matches!(state, None | Some("Z") | Some("X"))
            })
            .collect()
    };
    crate::util::wait_until(
        std::time::Duration::from_secs(5),
        || running().is_empty(),
        || format!("sleep still running: {:?}", running()),
    );
}

#[test]
fn root_mail_reaches_a_person_only_through_an_alias() {
    if skip_unless_root("root_mail_reaches_a_person_only_through_an_alias") {
        return;
    }
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let root = format!("root@{HOST}");
    s.local("x@example.org", &root, MESSAGE)
        .expect(75, "4.3.0 mail for root (uid 0) needs an alias");
    let check = String::from_utf8(s.admin(&["check"]).stdout).unwrap();
    assert!(
        check.contains(&format!("postmaster@{HOST} does not reach a person")),
        "{check}"
    );
    s.write("aliases", "root: alice@example.test\npostmaster: root\n");
    s.local("x@example.org", &root, MESSAGE).expect(0, "2.0.0");
    assert_eq!(
        messages(&s.maildir("alice@example.test"))[0].1,
        expected("alice@example.test")
    );
}

#[test]
fn explain_follows_a_forward_to_its_pipe() {
    if skip_unless_root("explain_follows_a_forward_to_its_pipe") {
        return;
    }
    let s = Setup::new();
    let user = TestUser::new(&s, "f");
    s.write("aliases", &format!("help: {}\n", user.name));
    let forward = user.forward(&format!(
        "\\{}\n|/usr/bin/procmail -f-\nnot an address@\n",
        user.name
    ));
    let out = s.admin(&["explain", &format!("help@{HOST}")]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let f = forward.display();
    let want = [
        format!("help@{HOST}"),
        format!(
            "  {}:1: help → {}",
            s.etc.join("aliases").display(),
            user.address()
        ),
        format!("    {}", user.address()),
        format!("      {HOST} is local: system user {}", user.name),
        format!("        uid {}, follows {f}", user.uid),
        format!("          {f}:3: skipped: \"not an address@\": empty domain"),
        format!(
            "          {f}:1: \\{}: kept in {}/",
            user.name,
            user.home.join("Maildir").display()
        ),
        format!(
            "          {f}:2: |/usr/bin/procmail -f-: run by /bin/sh as {}",
            user.name
        ),
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
}

#[test]
fn system_aliases_run_things_as_the_owner_of_the_file_that_named_them() {
    if skip_unless_root("system_aliases_run_things_as_the_owner_of_the_file_that_named_them") {
        return;
    }
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let user = TestUser::new(&s, "g");
    let nobody = postern_uid("nobody");
    // A drop box everyone may write, for the root-owned aliases' targets.
    let drop = s.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let list = user.home.join("staff.list");
    std::fs::write(
        &list,
        "# staff\nalice@example.test, \"|/usr/bin/id -u > $HOME/ran\"\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&list, Some(user.uid), Some(user.uid)).unwrap();
    s.write(
        "aliases",
        &format!(
            "log: \"|/usr/bin/id -u > {d}/who\", {d}/archive.mbox\nstaff: :include:{l}\nbad@example.test: \"|/bin/true\"\n",
            d = drop.display(),
            l = list.display()
        ),
    );
    // The aliases file is root's: its command and file are nobody's.
    s.local("x@example.org", &format!("log@{HOST}"), MESSAGE)
        .expect(0, "2.0.0 delivered to 2 mailboxes");
    assert_eq!(
        std::fs::read_to_string(drop.join("who")).unwrap().trim(),
        nobody.to_string()
    );
    let archive = std::fs::metadata(drop.join("archive.mbox")).unwrap();
    assert_eq!((archive.uid(), archive.mode() & 0o777), (nobody, 0o600));
    let mbox = std::fs::read_to_string(drop.join("archive.mbox")).unwrap();
    assert!(
        mbox.starts_with("From x@example.org ") && mbox.contains("plain body\nsecond line\n\n"),
        "{mbox}"
    );

    // The :include: list is the user's: its command runs as them.
    s.local("x@example.org", &format!("staff@{HOST}"), MESSAGE)
        .expect(0, "2.0.0 delivered to 2 mailboxes");
    assert_eq!(
        std::fs::read_to_string(user.home.join("ran"))
            .unwrap()
            .trim(),
        user.uid.to_string()
    );
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 1);

    // A customer's user@domain entry cannot run anything.
    let check = String::from_utf8(s.admin(&["check"]).stdout).unwrap();
    assert!(check.contains("not bad@example.test"), "{check}");
    s.local("x@example.org", "bad@example.test", MESSAGE)
        .expect(75, "4.3.5");

    // explain shows who runs what.
    let text = String::from_utf8(s.admin(&["explain", &format!("staff@{HOST}")]).stdout).unwrap();
    assert!(
        text.contains(&format!(
            "{} (uid {}) → alice@example.test, |/usr/bin/id -u > $HOME/ran",
            list.display(),
            user.uid
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "run by /bin/sh as uid {}, who owns {}",
            user.uid,
            list.display()
        )),
        "{text}"
    );
}

/// A user's uid from the passwd database.
fn postern_uid(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_setgid_sendmail_takes_another_config_only_when_etc_postern_allows_it() {
    if skip_unless_root("a_setgid_sendmail_takes_another_config_only_when_etc_postern_allows_it") {
        return;
    }
    let s = Setup::new();
    let user = TestUser::new(&s, "h");
    // postern-inject installed setgid, as make install does.
    let bin = s.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let inject = bin.join("sendmail");
    std::fs::copy(crate::util::program("postern-inject"), &inject).unwrap();
    std::os::unix::fs::chown(&inject, Some(0), Some(s.owner.1)).unwrap();
    std::fs::set_permissions(&inject, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let out = Command::new("su")
        .args(["-s", "/bin/sh", &user.name, "-c"])
        .arg(format!(
            "echo hi | {} --config {} -i someone@example.test",
            inject.display(),
            s.etc.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is not listed in alternate_config_directories"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        postern_queue_format::QueueDir::at(s.queue())
            .queued()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_forward_to_an_address_delivers_through_the_queue() {
    if skip_unless_root("a_forward_to_an_address_delivers_through_the_queue") {
        return;
    }
    let homes = Setup::new();
    let user = TestUser::new(&homes, "q");
    user.forward("demo@example.test\n");
    let (_tmp, dir) = crate::sandbox::sandbox_dir();
    let up = crate::sandbox::start(&dir);
    let mut command = Command::new(crate::util::program("postern-inject"));
    command.arg("--config").arg(dir.join("etc")).args([
        "-f",
        "origin@sender.example",
        &format!("{}@localhost", user.name),
    ]);
    let out = crate::util::run_with_input(&mut command, b"Subject: passed on\n\nbody\n");
    assert!(out.status.success());
    let maildir = dir.join("mail/example.test/demo/Maildir");
    crate::queue::wait_for(&maildir, 1);
    crate::sandbox::stop(up);
    let got = messages(&maildir);
    assert_eq!(got.len(), 1);
    let text = String::from_utf8(got[0].1.clone()).unwrap();
    // The original sender, the forwarding user's trace line, then the
    // message as it was queued the first time.
    let head = format!(
        "Return-Path: <origin@sender.example>\nDelivered-To: demo@example.test\nDelivered-To: {}@localhost\nReceived: ",
        user.name
    );
    assert!(text.starts_with(&head), "{text}");
    assert!(text.contains("\nSubject: passed on\n"), "{text}");
    assert!(text.ends_with("\n\nbody\n"), "{text}");
    assert!(messages(&user.home.join("Maildir")).is_empty());
}

#[test]
fn masquerading_rewrites_one_users_mail_as_mutt_sends_it() {
    if skip_unless_root("masquerading_rewrites_one_users_mail_as_mutt_sends_it") {
        return;
    }
    let s = Setup::new();
    let alice = TestUser::new(&s, "ma");
    let bob = TestUser::new(&s, "mb");
    let outward = format!("{}@her-domain.example", alice.name);
    let out = Command::new(crate::util::program("postern-admin"))
        .arg("--config")
        .arg(&s.etc)
        .args(["masquerade", "set", &alice.name, &outward])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both users may write the queue here (installed, postern-inject is
    // setgid postern instead).
    for sub in ["tmp", "queue"] {
        std::fs::set_permissions(s.queue().join(sub), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
    }
    let sendmail = format!(
        "{} --config {}",
        crate::util::program("postern-inject").display(),
        s.etc.display()
    );
    let body = s.path().join("body");
    std::fs::write(&body, "hello from the shell\n").unwrap();
    std::fs::set_permissions(&body, std::fs::Permissions::from_mode(0o644)).unwrap();
    for user in [&alice, &bob] {
        let out = Command::new("mutt")
            .uid(user.uid)
            .gid(user.uid)
            .env("HOME", &user.home)
            .args(["-n", "-F", "/dev/null"])
            .args(["-e", &format!("set sendmail=\"{sendmail}\"")])
            .args(["-e", &format!("set hostname={HOST}")])
            .args(["-e", &format!("set realname=\"{}\"", user.name)])
            .args(["-e", "set use_envelope_from=yes"])
            .args(["-s", "from the shell", "friend@example.org"])
            .stdin(std::fs::File::open(&body).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mutt as {}: {}",
            user.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let queued = s.queued();
    assert_eq!(queued.len(), 2);
    let find = |name: &str| {
        queued
            .iter()
            .find(|(_, data)| String::from_utf8_lossy(data).contains(&format!("From: {name} <")))
            .unwrap_or_else(|| panic!("no message from {name}"))
    };
    // alice: envelope and From rewritten, nothing of the shell address left
    // in either, and no trace field (the rewrite is the admin's).
    let (envelope, data) = find(&alice.name);
    let text = String::from_utf8_lossy(data);
    assert_eq!(envelope.sender, outward);
    assert!(
        text.contains(&format!("\nFrom: {} <{outward}>\n", alice.name)),
        "{text}"
    );
    assert!(!text.contains("X-Authenticated-Sender"), "{text}");
    assert!(text.ends_with("\n\nhello from the shell\n"));
    // bob: untouched.
    let (envelope, data) = find(&bob.name);
    let text = String::from_utf8_lossy(data);
    assert_eq!(envelope.sender, bob.address());
    assert!(
        text.contains(&format!("\nFrom: {} <{}>\n", bob.name, bob.address())),
        "{text}"
    );
    // explain shows the rule.
    let out = Command::new(crate::util::program("postern-admin"))
        .arg("--config")
        .arg(&s.etc)
        .args(["explain", &alice.address()])
        .output()
        .unwrap();
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(
        explained.contains(&format!("goes out as {outward} (")),
        "{explained}"
    );
}
