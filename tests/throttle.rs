//! The failure throttle on a shell host: one local user's wrong password
//! locks out that user from loopback, not every local user; a refusal by
//! the throttle is logged as such, not as another failed password; and
//! `postern-admin auth blocked` / `auth unblock` show and lift it.

use crate::smtp_auth::auth_plain as auth;
use crate::suite::Suite;
use crate::util::code_and_text;

const OTHER_USER: &str = "other@example.test";
const OTHER_PASSWORD: &str = "other user's password";

fn admin(s: &Suite, args: &[&str]) -> (i32, String) {
    code_and_text(s.admin(args))
}

#[test]
fn one_local_users_wrong_password_locks_out_only_that_user() {
    let s = Suite::start(&[
        "auth.failure_delay_after = 2",
        "auth.failure_delay = \"3s\"",
        "auth.max_failures_per_ip = 3",
    ]);
    use std::io::Write;
    let mut accounts = std::fs::OpenOptions::new()
        .append(true)
        .open(s.etc().join("accounts"))
        .unwrap();
    writeln!(accounts, "{OTHER_USER}:{{PLAIN}}{OTHER_PASSWORD}::::::").unwrap();
    drop(accounts);
    let demo = "demo@example.test";
    let password = s.password();
    assert_eq!(admin(&s, &["auth", "blocked"]).1, "nothing is blocked\n");

    // demo mistypes three times from loopback, as mutt on the host would.
    for _ in 0..3 {
        assert_eq!(auth(&s, "127.0.0.1", demo, "wrong"), 535);
    }
    // Another local user is not shut out, nor slowed.
    let started = std::time::Instant::now();
    assert_eq!(auth(&s, "127.0.0.1", OTHER_USER, OTHER_PASSWORD), 235);
    // (A delayed answer would take the 3 s of failure_delay at least.)
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // demo is, from there, even with the right password.
    assert_eq!(auth(&s, "127.0.0.1", demo, &password), 454);

    // Three failed passwords logged for fail2ban; the refusal logged as
    // the throttle's, in words fail2ban does not count.
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert_eq!(
        log.matches("SASL PLAIN authentication failed").count(),
        3,
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "warning: unknown[127.0.0.1]: SASL PLAIN login throttled: too many failed logins, sasl_username={demo}"
        )),
        "{log}"
    );
    assert!(log.contains("smtp login throttled: user=<demo@example.test>, ip=127.0.0.1"));

    // The admin sees why and lifts it.
    let (code, blocked) = admin(&s, &["auth", "blocked"]);
    assert_eq!(code, 0, "{blocked}");
    let line = |kind: &str, key: &str| {
        blocked
            .lines()
            .find(|l| l.starts_with(kind) && l.contains(key))
            .unwrap_or_else(|| panic!("no {kind} {key} in {blocked}"))
            .to_string()
    };
    let pair = line("ip+account", &format!("127.0.0.1 {demo}"));
    assert!(pair.contains("  3 failures  refused until "), "{pair}");
    assert!(line("account", demo).contains("delayed"), "{blocked}");
    assert!(!blocked.contains(OTHER_USER), "{blocked}");
    let (code, said) = admin(&s, &["auth", "unblock", demo]);
    assert_eq!(
        (code, said.as_str()),
        (
            0,
            "demo@example.test: unblocked (2 throttle entries forgotten)\n"
        )
    );
    assert_eq!(auth(&s, "127.0.0.1", demo, &password), 235);
    assert_eq!(admin(&s, &["auth", "blocked"]).1, "nothing is blocked\n");
    assert_eq!(
        admin(&s, &["auth", "unblock", "192.0.2.1"]).1,
        "192.0.2.1: nothing was blocked\n"
    );
    s.stop();
}
