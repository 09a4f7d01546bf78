//! Least privilege, checked as root (CI runs as root): mailboxes are
//! written by their owners, nothing under the mail root belongs to root,
//! and a mailbox owned by root is never written.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::util::{Setup, messages, owned_by_root, skip_unless_root};

const MESSAGE: &[u8] = b"Subject: p\n\nprivate\n";

#[test]
fn deliveries_belong_to_the_mailbox_owner() {
    if skip_unless_root("deliveries_belong_to_the_mailbox_owner") {
        return;
    }
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.add_mailbox("bob@example.test", &["--quota", "1M"]);
    // A mailbox with its own uid, whose Maildir does not exist yet.
    let home = s.path().join("homes/carol");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(64102), Some(64102)).unwrap();
    let accounts = std::fs::read_to_string(s.etc.join("accounts")).unwrap();
    s.write(
        "accounts",
        &format!(
            "{accounts}carol@example.test:{{PLAIN}}x:64102:64102::{}::\n",
            home.display()
        ),
    );
    s.write(
        "aliases",
        "all@example.test: alice@example.test, bob@example.test, carol@example.test\n",
    );

    s.local("x@example.org", "all@example.test", MESSAGE)
        .expect(0, "2.0.0 delivered to 3 mailboxes");
    s.local_piped("x@example.org", "alice@example.test", MESSAGE)
        .expect(0, "2.0.0");

    for (maildir, uid) in [
        (s.maildir("alice@example.test"), s.owner.0),
        (s.maildir("bob@example.test"), s.owner.0),
        (home.join("Maildir"), 64102),
    ] {
        let files = messages(&maildir);
        assert!(!files.is_empty());
        for sub in ["new", "cur", "tmp"] {
            let meta = std::fs::metadata(maildir.join(sub)).unwrap();
            assert_eq!(
                (meta.uid(), meta.mode() & 0o777),
                (uid, 0o700),
                "{}",
                maildir.join(sub).display()
            );
        }
        for (name, _) in files {
            let meta = std::fs::metadata(maildir.join("new").join(&name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{name}");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
    }
    let bob_size = std::fs::metadata(s.maildir("bob@example.test").join("maildirsize")).unwrap();
    assert_eq!(bob_size.uid(), s.owner.0);
    let rooted = owned_by_root(&s.mail);
    assert!(rooted.is_empty(), "written as root: {rooted:?}");
    assert!(owned_by_root(&home).is_empty());
}

#[test]
fn a_mailbox_owned_by_root_is_never_written() {
    if skip_unless_root("a_mailbox_owned_by_root_is_never_written") {
        return;
    }
    let s = Setup::new();
    let home = s.path().join("roothome");
    s.write(
        "accounts",
        &format!("admin@example.test:{{PLAIN}}x:0:0::{}::\n", home.display()),
    );
    s.local("x@example.org", "admin@example.test", MESSAGE)
        .expect(75, "4.3.0 refusing to run as root");
    assert!(!home.exists());

    // Mail for the system user root is deferred unless an alias sends it
    // to a person.
    s.local(
        "x@example.org",
        &format!("root@{}", crate::util::HOST),
        MESSAGE,
    )
    .expect(75, "4.3.0 mail for root (uid 0) needs an alias");
}
