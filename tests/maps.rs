//! Bad lines in the maps and in postern.toml: `file:line:` messages, and
//! the documented behaviour — a map keeps its good lines, an address whose
//! own line is bad is deferred, postern.toml refuses to load.

use crate::util::{Setup, messages, program};

const MESSAGE: &[u8] = b"Subject: maps\n\nbody\n";

#[test]
fn a_bad_alias_line_is_reported_and_defers_only_its_address() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.write(
        "aliases",
        "good@example.test: alice@example.test\n\
         broken@example.test: alice@exa/mple\n\
         postmaster alice@example.test\n",
    );
    let out = s.admin(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let aliases = s.etc.join("aliases");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:2: alias broken@example.test: target \"alice@exa/mple\": bad character in domain",
            aliases.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}:3: no ':' after \"postmaster alice@example.test\"",
            aliases.display()
        )),
        "{stdout}"
    );

    s.local("x@example.org", "good@example.test", MESSAGE)
        .expect(0, "2.0.0");
    s.local("x@example.org", "broken@example.test", MESSAGE)
        .expect(75, "4.3.5 bad map line at aliases for broken@example.test");
    s.local("x@example.org", "unknown@example.test", MESSAGE)
        .expect(67, "5.1.1");
    assert_eq!(messages(&s.maildir("alice@example.test")).len(), 1);
}

#[test]
fn a_bad_accounts_line_defers_that_mailbox_only() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let accounts = std::fs::read_to_string(s.etc.join("accounts")).unwrap();
    s.write(
        "accounts",
        &format!("{accounts}bob@example.test:{{PLAIN}}pw:notanumber\n"),
    );
    let out = s.admin(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{}:2: bob@example.test: uid \"notanumber\" is not a number",
            s.etc.join("accounts").display()
        )),
        "{stdout}"
    );
    s.local("x@example.org", "bob@example.test", MESSAGE)
        .expect(75, "4.3.5");
    s.local("x@example.org", "alice@example.test", MESSAGE)
        .expect(0, "2.0.0");
}

#[test]
fn a_bad_domains_line_defers_the_domain() {
    let s = Setup::new();
    s.write("domains", "example.test virtual\nbroken.test virtaul\n");
    s.local("x@example.org", "a@broken.test", MESSAGE)
        .expect(75, "4.3.5");
    let out = s.admin(&["check"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("domains:2: kind \"virtaul\" for broken.test")
    );
}

#[test]
fn a_map_change_takes_effect_on_the_next_delivery() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.local("x@example.org", "sales@example.test", MESSAGE)
        .expect(67, "5.1.1");
    s.write("aliases", "sales@example.test: alice@example.test\n");
    s.local("x@example.org", "sales@example.test", MESSAGE)
        .expect(0, "2.0.0");
}

#[test]
fn a_bad_or_missing_postern_toml_stops_with_one_clear_error() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let toml = s.etc.join("postern.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    s.write("postern.toml", &format!("{good}mail_rot = \"/x\"\n"));
    let d = s.local("x@example.org", "alice@example.test", MESSAGE);
    let error = format!(
        "{}:{}: unknown key `mail_rot` (did you mean `mail_root`?)",
        toml.display(),
        good.lines().count() + 1
    );
    d.expect(75, &format!("4.3.0 configuration: {error}"));
    assert_eq!(d.stderr.lines().count(), 1, "{}", d.stderr);
    // check says the same, and goes on to check the rest.
    let out = s.admin(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with(&format!("{error}\n")), "{stdout}");
    assert!(stdout.contains(": 1 errors, "), "{stdout}");

    std::fs::remove_file(&toml).unwrap();
    s.local("x@example.org", "alice@example.test", MESSAGE)
        .expect(
            75,
            &format!("4.3.0 configuration: {}: No such file", toml.display()),
        );
    let out = std::process::Command::new(program("postern-local"))
        .args(["--config", "/nonexistent/postern", "alice@example.test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("4.3.0 configuration: /nonexistent/postern/postern.toml:")
    );
    assert!(messages(&s.maildir("alice@example.test")).is_empty());
}

#[test]
fn check_warns_about_what_loads_but_misroutes() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    s.write(
        "aliases",
        "team@example.test: alice@example.test, ghost@example.test\n@other.test: nobody-here@example.test\n",
    );
    let out = s.admin(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "aliases:1: team@example.test reaches ghost@example.test: 5.1.1 user unknown"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("aliases:2: @other.test reaches nobody-here@example.test: 5.1.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("postmaster@example.test does not reach a person"),
        "{stdout}"
    );
}

/// Settings that once passed `check` and then stopped a daemon: check
/// names each at its line in words a person reads, and the daemon that
/// would use it refuses to start with the same words.
#[test]
fn check_and_every_daemon_refuse_a_setting_alike() {
    let s = Setup::new();
    let toml = s.etc.join("postern.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    let base = good.lines().count();
    s.write(
        "postern.toml",
        &format!(
            "{good}smtpd.listen = [\"127.0.0.1:2525 mxx\"]\n\
             smtpd.trusted_networks = [\"127.0.0.1/33\"]\n\
             smtpd.auth_mechanisms = [\"PLAIN\", \"NTLM\"]\n\
             pop3d.access = \"some\"\n"
        ),
    );
    let at = |n: usize| format!("{}:{}: ", toml.display(), base + n);
    let wants = [
        format!(
            "{}\"127.0.0.1:2525 mxx\": kind \"mxx\": expected mx, submission or smtps",
            at(1)
        ),
        format!("{}\"127.0.0.1/33\": prefix length must be 0 to 32", at(2)),
        format!(
            "{}mechanism \"NTLM\" is not one of PLAIN, LOGIN or CRAM-MD5",
            at(3)
        ),
        format!("{}\"some\" is not one of any, allow or allow+lan", at(4)),
    ];
    let out = s.admin(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for want in &wants {
        assert!(stdout.lines().any(|l| l == want), "{want} in {stdout}");
    }
    assert!(stdout.contains(": 4 errors, "), "{stdout}");
    let smtpd = std::process::Command::new(program("postern-smtpd"))
        .arg("--config")
        .arg(&s.etc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&smtpd.stderr);
    assert_eq!(smtpd.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains(&wants[0]), "{stderr}");

    // A user that does not exist is named as the file spells it, not in
    // Rust's debug form; a submission port nobody can log in to is said.
    s.write(
        "postern.toml",
        &good.replace(
            &format!("mail_owner = \"{}:{}\"", s.owner.0, s.owner.1),
            "mail_owner = \"nosuchuser\"",
        ),
    );
    let out = s.admin(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("postern.toml: mail_owner \"nosuchuser\" is not a user on this host"),
        "{stdout}"
    );
    assert!(!stdout.contains("Name("), "{stdout}");
    s.write(
        "postern.toml",
        &format!("{good}smtpd.listen = [\"127.0.0.1:2587 submission\"]\n"),
    );
    let stdout = String::from_utf8(s.admin(&["check"]).stdout).unwrap();
    assert!(
        stdout.contains("warning: postern.toml: [smtpd] listen \"127.0.0.1:2587 submission\": without [tls] no client can authenticate there"),
        "{stdout}"
    );
}
