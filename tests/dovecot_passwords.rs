//! A passwd-file as a Dovecot host has it: one line per scheme, each hash
//! made by Dovecot's own `doveadm pw`, plus a yescrypt line as Debian's
//! shadow writes it. Postern must accept the right password for every line
//! and refuse a wrong one.

use std::process::Command;

use crate::util::Setup;

const SCHEMES: &[&str] = &[
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "MD5-CRYPT",
    "BLF-CRYPT",
    "ARGON2ID",
    "CRYPT",
    "PLAIN",
    "CRAM-MD5",
];

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (make test installs it)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn every_dovecot_scheme_verifies() {
    let s = Setup::new();
    let mut lines = String::from("# made by doveadm pw\n");
    let mut users = Vec::new();
    for (i, scheme) in SCHEMES.iter().enumerate() {
        let password = format!("Pw-{i}-{scheme}");
        let hash = run("doveadm", &["pw", "-s", scheme, "-p", &password]);
        assert!(hash.starts_with(&format!("{{{scheme}}}")), "{hash}");
        let user = format!("u{i}@example.test");
        lines.push_str(&format!("{user}:{hash}::::::\n"));
        users.push((user, password));
    }
    // No scheme prefix: crypt(3) form, yescrypt as Debian's shadow makes it.
    let yescrypt = run("mkpasswd", &["-m", "yescrypt", "Pw-shadow"]);
    assert!(yescrypt.starts_with("$y$"), "{yescrypt}");
    lines.push_str(&format!("shadow@example.test:{yescrypt}\n"));
    users.push(("shadow@example.test".into(), "Pw-shadow".into()));
    s.write("accounts", &lines);

    let check = s.admin(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    for (user, password) in &users {
        let file = s.path().join("pw");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let ok = s.admin(&[
            "auth",
            "test",
            user,
            "--password-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{user}: {}",
            String::from_utf8_lossy(&ok.stdout)
        );
        std::fs::write(&file, format!("{password}x\n")).unwrap();
        let bad = s.admin(&[
            "auth",
            "test",
            user,
            "--password-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(bad.status.code(), Some(1), "{user} took a wrong password");
    }
}

#[test]
fn the_hash_postern_writes_is_one_dovecot_accepts() {
    let s = Setup::new();
    s.add_mailbox("alice@example.test", &[]);
    let line = std::fs::read_to_string(s.etc.join("accounts")).unwrap();
    let hash = line.split(':').nth(1).unwrap();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");
    let verdict = run("doveadm", &["pw", "-t", hash, "-p", "secret"]);
    assert!(verdict.ends_with("(verified)"), "{verdict}");
}
