//! postern-admin round trips: every kind of entry added, listed and
//! removed, with the hand-written parts of the maps left as they were.

use std::process::{Command, Output};

use crate::util::{Setup, program};

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn refused(out: Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(why), "wanted {why:?} in {stderr}");
}

#[test]
fn domains_mailboxes_aliases_catch_alls_and_forwards_round_trip() {
    let s = Setup::new();
    let note = "# Customer aliases: keep this note.\n";
    s.write(
        "aliases",
        &format!("{note}old@example.test: someone@elsewhere.example\n"),
    );
    let aliases = s.etc.join("aliases");
    let accounts = s.etc.join("accounts");
    let domains = s.etc.join("domains");

    // Domains.
    assert_eq!(
        ok(s.admin(&["domain", "add", "New.Example"])).trim(),
        format!("added new.example (virtual) at {}:3", domains.display())
    );
    ok(s.admin(&["domain", "add", "shell.example", "--local"]));
    refused(s.admin(&["domain", "add", "new.example"]), "already listed");
    let listed = ok(s.admin(&["domain", "list"]));
    assert_eq!(
        listed,
        "example.test virtual\nmx.example.test local\nnew.example virtual\nother.test virtual\nshell.example local\n"
    );

    // Mailboxes: password from a file, then from stdin as a script gives it.
    s.add_mailbox("alice@new.example", &["--quota", "10M"]);
    let mut command = Command::new(program("postern-admin"));
    command
        .arg("--config")
        .arg(&s.etc)
        .args(["mailbox", "add", "bob@new.example"]);
    ok(crate::util::run_with_input(&mut command, b"from-stdin\n"));
    refused(
        s.admin(&[
            "mailbox",
            "add",
            "alice@new.example",
            "--password-file",
            "/dev/null",
        ]),
        "already has a line",
    );
    refused(
        s.admin(&[
            "mailbox",
            "add",
            "x@nowhere.example",
            "--password-file",
            "/dev/null",
        ]),
        "not a virtual domain",
    );
    let listed = ok(s.admin(&["mailbox", "list", "new.example"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("alice@new.example quota=10485760 "),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("bob@new.example quota=none "),
        "{listed}"
    );
    let pw = s.path().join("pw");
    std::fs::write(&pw, "from-stdin\n").unwrap();
    ok(s.admin(&[
        "auth",
        "test",
        "bob@new.example",
        "--password-file",
        pw.to_str().unwrap(),
    ]));

    std::fs::write(&pw, "changed\n").unwrap();
    ok(s.admin(&[
        "mailbox",
        "passwd",
        "bob@new.example",
        "--password-file",
        pw.to_str().unwrap(),
    ]));
    ok(s.admin(&[
        "auth",
        "test",
        "bob@new.example",
        "--password-file",
        pw.to_str().unwrap(),
    ]));
    ok(s.admin(&["mailbox", "quota", "bob@new.example", "2G"]));
    ok(s.admin(&[
        "mailbox",
        "rights",
        "bob@new.example",
        "--imap-folders",
        "no",
        "--pop3-folders",
        "all",
        "--pop3-message-id",
        "strip",
        "--max-message-size",
        "5M",
    ]));
    let bob_line = std::fs::read_to_string(&accounts)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        bob_line.starts_with("bob@new.example:{SHA512-CRYPT}$6$"),
        "{bob_line}"
    );
    assert!(
        bob_line.ends_with("::::::userdb_quota_rule=*:bytes=2147483648 postern_imap_folders=no postern_pop3_folders=all postern_pop3_message_id=strip postern_max_message_size=5M"),
        "{bob_line}"
    );
    ok(s.admin(&["mailbox", "quota", "bob@new.example", "none"]));
    assert!(
        !std::fs::read_to_string(&accounts)
            .unwrap()
            .contains("bytes=2147483648")
    );

    // Aliases: add, grow, shrink, list, remove.
    ok(s.admin(&[
        "alias",
        "add",
        "team@new.example",
        "alice@new.example",
        "bob@new.example",
    ]));
    ok(s.admin(&[
        "alias",
        "add",
        "team@new.example",
        "carol@new.example",
        "alice@new.example",
    ]));
    assert_eq!(
        ok(s.admin(&["alias", "list", "new.example"])),
        "team@new.example: alice@new.example, bob@new.example, carol@new.example\n"
    );
    ok(s.admin(&["alias", "del", "team@new.example", "carol@new.example"]));
    refused(
        s.admin(&["alias", "add", "x@unknown.example", "alice@new.example"]),
        "neither a local nor a virtual domain",
    );
    refused(
        s.admin(&["alias", "add", "bad@new.example", "not an address@@"]),
        "target \"not an address@@\": empty domain",
    );
    // No value smuggles in a line, or a command where none may stand.
    refused(
        s.admin(&[
            "forward",
            "set",
            "bob@new.example",
            "a@new.example\nevil: \"|/bin/sh\"",
        ]),
        "control characters are not allowed",
    );
    refused(
        s.admin(&["alias", "add", "bob@new.example", "|/bin/sh"]),
        "commands, files and :include: are for the host's bare-name aliases",
    );

    // Catch-all and forward.
    ok(s.admin(&["catchall", "set", "new.example", "alice@new.example"]));
    let said = ok(s.admin(&[
        "forward",
        "set",
        "bob@new.example",
        "bob@elsewhere.example",
        "--keep-copy",
    ]));
    // It does not promise what does not exist yet.
    assert!(
        said.contains(&format!(
            "\nnote: bob@elsewhere.example is on another host: {}",
            postern_routing::REMOTE_DELIVERY
        )),
        "{said}"
    );
    let explained = ok(s.admin(&["explain", "friend@elsewhere.example"]));
    assert!(
        explained.contains(&format!(
            "elsewhere.example is neither a local nor a virtual domain: {}",
            postern_routing::REMOTE_DELIVERY
        )),
        "{explained}"
    );
    let local_only = ok(s.admin(&["forward", "set", "carol@new.example", "alice@new.example"]));
    assert!(!local_only.contains("note:"), "{local_only}");
    ok(s.admin(&["forward", "del", "carol@new.example"]));
    let text = std::fs::read_to_string(&aliases).unwrap();
    assert_eq!(
        text,
        format!(
            "{note}old@example.test: someone@elsewhere.example\n\
             team@new.example: alice@new.example, bob@new.example\n\
             @new.example: alice@new.example\n\
             bob@new.example: bob@new.example, bob@elsewhere.example\n"
        )
    );
    // The maps route as they read: bob keeps a copy, strangers reach alice.
    s.local(
        "x@example.org",
        "stranger@new.example",
        b"Subject: c\n\nc\n",
    )
    .expect(0, "2.0.0");
    assert_eq!(
        crate::util::messages(&s.maildir("alice@new.example")).len(),
        1
    );

    ok(s.admin(&["forward", "del", "bob@new.example"]));
    ok(s.admin(&["catchall", "del", "new.example"]));
    ok(s.admin(&["alias", "del", "team@new.example"]));
    refused(
        s.admin(&["domain", "del", "new.example"]),
        "still has 2 mailboxes",
    );
    let removed = ok(s.admin(&["mailbox", "del", "bob@new.example", "--purge"]));
    assert!(removed.contains("removed bob@new.example"), "{removed}");
    assert!(!s.maildir("bob@new.example").exists());
    let kept = ok(s.admin(&["mailbox", "del", "alice@new.example"]));
    assert!(kept.contains("its mail stays in"), "{kept}");
    assert!(s.maildir("alice@new.example").join("new").is_dir());
    ok(s.admin(&["domain", "del", "new.example"]));

    // Everything added is gone; everything written by hand is still there.
    assert_eq!(
        std::fs::read_to_string(&aliases).unwrap(),
        format!("{note}old@example.test: someone@elsewhere.example\n")
    );
    assert_eq!(std::fs::read_to_string(&accounts).unwrap(), "");
    assert_eq!(
        std::fs::read_to_string(&domains).unwrap(),
        "example.test virtual\nother.test virtual\nshell.example local\n"
    );
}

#[test]
fn a_hand_broken_line_survives_edits_and_check_names_it() {
    let s = Setup::new();
    s.write(
        "aliases",
        "# note\nbroken line without colon\nok@example.test: a@example.test\n",
    );
    ok(s.admin(&["alias", "add", "new@example.test", "a@example.test"]));
    ok(s.admin(&["alias", "del", "ok@example.test"]));
    assert_eq!(
        std::fs::read_to_string(s.etc.join("aliases")).unwrap(),
        "# note\nbroken line without colon\nnew@example.test: a@example.test\n"
    );
    let out = s.admin(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{}:2: no ':' after \"broken line without colon\"",
            s.etc.join("aliases").display()
        )),
        "{stdout}"
    );
}

#[test]
fn explain_walks_aliases_catch_alls_and_extensions_line_by_line() {
    let s = Setup::new();
    s.add_mailbox("bob@example.test", &[]);
    s.add_mailbox("admin@example.test", &[]);
    s.write(
        "aliases",
        "# chain\nalice@example.test: bob@example.test, carol@other.test\n@other.test: admin@example.test\n",
    );
    let aliases = s.etc.join("aliases");
    let accounts = s.etc.join("accounts");
    let out = ok(s.admin(&["explain", "Alice+News@example.test"]));
    let want = [
        "alice+news@example.test".to_string(),
        "  recipient delimiter \"+\": nothing for alice+news@example.test, trying alice@example.test".into(),
        format!("  {}:2: alice@example.test → bob@example.test, carol@other.test", aliases.display()),
        "    bob@example.test".into(),
        format!(
            "      {}:1: mailbox bob@example.test → {}/",
            accounts.display(),
            s.maildir("bob@example.test").display()
        ),
        "    carol@other.test".into(),
        format!("      {}:3: @other.test (catch-all) → admin@example.test", aliases.display()),
        "        admin@example.test".into(),
        format!(
            "          {}:2: mailbox admin@example.test → {}/",
            accounts.display(),
            s.maildir("admin@example.test").display()
        ),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    let out = ok(s.admin(&["explain", "nobody@example.test"]));
    assert_eq!(
        out,
        "nobody@example.test\n  no alias, mailbox or catch-all\n  5.1.1 user unknown\n"
    );
    // A bare name is that user at the host's name, as sendmail reads it.
    s.write("aliases", "root: bob@example.test\n");
    let out = ok(s.admin(&["explain", "root"]));
    assert!(
        out.starts_with(&format!("root@{}\n", crate::util::HOST))
            && out.contains("bob@example.test"),
        "{out}"
    );
}
