//! postern-local into virtual mailboxes: what lands, byte for byte, and
//! what each refusal answers.

use crate::util::{Setup, messages};

/// A message with the things a careless writer would mangle: 8-bit text,
/// a `From ` line, trailing blanks, a lone dot, no final newline trouble.
const MESSAGE: &[u8] = b"From: Sender <sender@example.org>\n\
To: alice@example.test\n\
Subject: =?UTF-8?Q?caf=C3=A9?=\n\
\n\
First line, caf\xc3\xa9.\n\
From the start of a line.\n\
.\n\
trailing blanks   \n\
\tand a tab\n";

fn expected(return_path: &str, delivered_to: &str, message: &[u8]) -> Vec<u8> {
    let mut out =
        format!("Return-Path: <{return_path}>\nDelivered-To: {delivered_to}\n").into_bytes();
    out.extend_from_slice(message);
    out
}

#[test]
fn delivers_byte_for_byte_to_a_virtual_mailbox() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.local("sender@example.org", "alice@example.test", MESSAGE)
        .expect(0, "2.0.0 delivered to maildir");
    let got = messages(&s.maildir("alice@example.test"));
    assert_eq!(got.len(), 1);
    let (name, content) = &got[0];
    let want = expected("sender@example.org", "alice@example.test", MESSAGE);
    assert_eq!(content, &want);
    let lines = want.iter().filter(|&&b| b == b'\n').count();
    assert!(
        name.ends_with(&format!(
            ".{},S={},W={}",
            crate::util::HOST,
            want.len(),
            want.len() + lines
        )),
        "{name}"
    );
    // Dovecot's unique-name shape: <secs>.M<usec>P<pid>Q<n>.<host>
    let (secs, rest) = name.split_once('.').unwrap();
    assert!(
        secs.parse::<u64>().is_ok()
            && rest.starts_with('M')
            && rest.contains('P')
            && rest.contains('Q')
    );
    // Nothing stays behind in tmp/.
    assert_eq!(
        std::fs::read_dir(s.maildir("alice@example.test").join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn bounce_sender_and_piped_input() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.local_piped("", "alice@example.test", MESSAGE)
        .expect(0, "2.0.0");
    let got = messages(&s.maildir("alice@example.test"));
    assert_eq!(got[0].1, expected("", "alice@example.test", MESSAGE));
}

#[test]
fn crlf_input_is_stored_with_unix_line_ends() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.local(
        "a@example.org",
        "alice@example.test",
        b"Subject: x\r\n\r\nline\r\nbare\rcr\r\n",
    )
    .expect(0, "2.0.0");
    let got = messages(&s.maildir("alice@example.test"));
    assert_eq!(
        got[0].1,
        expected(
            "a@example.org",
            "alice@example.test",
            b"Subject: x\n\nline\nbare\rcr\n"
        )
    );
}

#[test]
fn alias_with_three_targets_gives_each_its_copy() {
    let s = Setup::new();
    for user in ["a", "b", "c"] {
        s.add_mailbox(&format!("{user}@example.test"), &[]);
    }
    s.write(
        "aliases",
        "# the team\nteam@example.test: a@example.test,\n  b@example.test, c@example.test\n",
    );
    s.local("boss@example.org", "team@example.test", MESSAGE)
        .expect(0, "2.0.0 delivered to 3 mailboxes");
    for user in ["a", "b", "c"] {
        let address = format!("{user}@example.test");
        let got = messages(&s.maildir(&address));
        assert_eq!(got.len(), 1, "{address}");
        assert_eq!(got[0].1, expected("boss@example.org", &address, MESSAGE));
    }
}

#[test]
fn catch_all_and_recipient_delimiter() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.add_mailbox("catch@example.test", &[]);
    s.add_mailbox("lists@example.test", &[]);
    s.write(
        "aliases",
        "@example.test: catch@example.test\nalice+lists@example.test: lists@example.test\n",
    );

    s.local("x@example.org", "nobody@example.test", MESSAGE)
        .expect(0, "2.0.0");
    assert_eq!(
        messages(&s.maildir("catch@example.test"))[0].1,
        expected("x@example.org", "catch@example.test", MESSAGE)
    );

    s.local("x@example.org", "alice+news@example.test", MESSAGE)
        .expect(0, "2.0.0");
    assert_eq!(
        messages(&s.maildir("alice@example.test"))[0].1,
        expected("x@example.org", "alice+news@example.test", MESSAGE)
    );
    // An alias for the full address wins over the delimiter.
    s.local("x@example.org", "alice+lists@example.test", MESSAGE)
        .expect(0, "2.0.0");
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 1);
    assert_eq!(messages(&s.maildir("lists@example.test")).len(), 1);
    assert_eq!(messages(&s.maildir("catch@example.test")).len(), 1);
}

#[test]
fn home_and_dovecot_mail_location_from_the_passwd_line() {
    let s = Setup::new();
    let (uid, gid) = s.owner;
    let homes = s.path().join("homes");
    for home in ["bob", "carol"] {
        std::fs::create_dir_all(homes.join(home)).unwrap();
        std::os::unix::fs::chown(homes.join(home), Some(uid), Some(gid)).unwrap();
    }
    // Lines as a Dovecot host has them; the Maildirs do not exist yet and
    // are made on first delivery, by the owner.
    s.write(
        "accounts",
        &format!(
            "bob@example.test:{{PLAIN}}pw:{uid}:{gid}::{home_bob}::\n\
             carol@example.test:{{PLAIN}}pw:{uid}:{gid}::{home_carol}::userdb_mail=maildir:~/store:LAYOUT=fs userdb_quota_rule=*:storage=10M\n",
            home_bob = homes.join("bob").display(),
            home_carol = homes.join("carol").display(),
        ),
    );
    s.local("x@example.org", "bob@example.test", MESSAGE)
        .expect(0, "2.0.0");
    s.local("x@example.org", "carol@example.test", MESSAGE)
        .expect(0, "2.0.0");
    assert_eq!(
        messages(&homes.join("bob/Maildir"))[0].1,
        expected("x@example.org", "bob@example.test", MESSAGE)
    );
    assert_eq!(
        messages(&homes.join("carol/store"))[0].1,
        expected("x@example.org", "carol@example.test", MESSAGE)
    );
    // carol's quota rule (10M in kilobytes-default Dovecot units) is on.
    let size = std::fs::read_to_string(homes.join("carol/store/maildirsize")).unwrap();
    assert!(size.starts_with("10485760S\n"), "{size}");
}

#[test]
fn refusals_answer_with_the_right_code_and_write_nothing() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.write(
        "accounts",
        &(std::fs::read_to_string(s.etc.join("accounts")).unwrap()
            + "small@example.test:{PLAIN}pw:::::: postern_max_message_size=100\n"),
    );
    s.local("x@example.org", "nobody@example.test", MESSAGE)
        .expect(67, "5.1.1 user unknown: <nobody@example.test>");
    s.local("x@example.org", "small@example.test", MESSAGE)
        .expect(69, "5.2.3 message too big");

    let looping = [b"Delivered-To: alice@example.test\n".as_slice(), MESSAGE].concat();
    s.local("x@example.org", "alice@example.test", &looping)
        .expect(69, "5.4.6 mail forwarding loop for <alice@example.test>");
    s.local("x@example.org", "someone@elsewhere.example", MESSAGE)
        .expect(
            75,
            "4.3.0 <someone@elsewhere.example> is not in a local or virtual domain",
        );
    s.local_args(&["-f", "bad sender@x", "alice@example.test"], MESSAGE)
        .expect(69, "5.1.7");
    assert!(messages(&s.maildir("alice@example.test")).is_empty());
    assert!(!s.maildir("small@example.test").exists());
}

#[test]
fn more_delivered_to_lines_than_allowed_is_a_loop() {
    let s = Setup::with_settings("max_delivered_to = 1\n");
    s.add_mailbox("alice@example.test", &[]);
    let once = [b"Delivered-To: alice@example.test\n".as_slice(), MESSAGE].concat();
    s.local("x@example.org", "alice@example.test", &once)
        .expect(0, "2.0.0");
    let twice = [b"Delivered-To: alice@example.test\n".as_slice(), &once].concat();
    s.local("x@example.org", "alice@example.test", &twice)
        .expect(69, "5.4.6");
}

#[test]
fn quota_is_enforced_and_maildirsize_kept_right() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &["--quota", "1k"]);
    let maildir = s.maildir("alice@example.test");
    let message = vec![b'x'; 300];
    let mut body = b"Subject: q\n\n".to_vec();
    body.extend_from_slice(&message);
    body.push(b'\n');
    let size = expected("x@example.org", "alice@example.test", &body).len();

    s.local("x@example.org", "alice@example.test", &body)
        .expect(0, "2.0.0");
    s.local("x@example.org", "alice@example.test", &body)
        .expect(0, "2.0.0");
    // A third would pass 1,024 bytes: refused whole, temporarily.
    s.local("x@example.org", "alice@example.test", &body)
        .expect(75, "4.2.2 mailbox full");
    assert_eq!(messages(&maildir).len(), 2);
    let sum = |text: &str| -> (i64, i64) {
        text.lines().skip(1).fold((0, 0), |(b, c), line| {
            let mut f = line.split_whitespace().map(|n| n.parse::<i64>().unwrap());
            (b + f.next().unwrap(), c + f.next().unwrap())
        })
    };
    let text = std::fs::read_to_string(maildir.join("maildirsize")).unwrap();
    assert!(text.starts_with("1024S\n"), "{text}");
    assert_eq!(sum(&text), (2 * size as i64, 2));

    // A reader expunges one message: maildirsize follows, and there is
    // room again.
    let md = postern_maildir::Maildir::at(&maildir);
    let first = md.messages().unwrap().remove(0);
    md.remove(&first).unwrap();
    let text = std::fs::read_to_string(maildir.join("maildirsize")).unwrap();
    assert_eq!(sum(&text), (size as i64, 1));
    assert!(text.ends_with(&format!("-{size} -1\n")), "{text}");
    s.local("x@example.org", "alice@example.test", &body)
        .expect(0, "2.0.0");

    // Lost maildirsize: recomputed from the file names.
    std::fs::remove_file(maildir.join("maildirsize")).unwrap();
    s.local("x@example.org", "alice@example.test", &body)
        .expect(75, "4.2.2");
    let text = std::fs::read_to_string(maildir.join("maildirsize")).unwrap();
    assert_eq!(text, format!("1024S\n{} 2\n", 2 * size));
}

#[test]
fn quota_can_be_a_permanent_failure() {
    let s = Setup::with_settings("quota_exceeded = \"permanent\"\n");
    let size = expected("x@example.org", "alice@example.test", MESSAGE).len();
    let quota = (size * 3 / 2).to_string();
    s.add_mailbox("alice@example.test", &["--quota", &quota]);
    s.local("x@example.org", "alice@example.test", MESSAGE)
        .expect(0, "2.0.0");
    s.local("x@example.org", "alice@example.test", MESSAGE)
        .expect(69, "5.2.2 mailbox full");
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 1);
}

#[test]
fn a_message_larger_than_the_whole_quota_fails_at_once() {
    // quota_exceeded is "temporary": a full mailbox defers, but a message
    // that could never fit must not wait days for room.
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &["--quota", "1k"]);
    let mut big = b"Subject: big\n\n".to_vec();
    big.extend_from_slice(&[b'x'; 2000]);
    big.push(b'\n');
    let size = expected("x@example.org", "alice@example.test", &big).len();
    s.local("x@example.org", "alice@example.test", &big).expect(
        69,
        &format!(
            "5.2.2 message too large for the mailbox ({size} bytes; its whole quota is 1024 bytes)"
        ),
    );
    assert!(messages(&s.maildir("alice@example.test")).is_empty());
    // A small one still fits.
    s.local("x@example.org", "alice@example.test", MESSAGE)
        .expect(0, "2.0.0");
}
