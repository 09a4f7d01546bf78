//! Editing a running host's configuration: a typo in postern.toml takes
//! no mail down (lookups, logins and sendmail go on; deliveries wait for
//! the fix), `postern reload` refuses a file that does not load and takes
//! up one that does; and a listener that cannot bind says why, with a
//! hint, and is tried only once a minute instead of every 2 s for ever.

use std::process::Command;
use std::time::Duration;

use crate::queue::{flush, mailq, wait_for};
use crate::sandbox::{port, sandbox_dir, start_logged, stop};
use crate::suite::{Suite, swaks};
use crate::util::{code_and_text, program, run_with_input, wait_until};

fn reload(s: &Suite) -> (i32, String) {
    code_and_text(
        Command::new(program("postern"))
            .args(["reload", "--dir"])
            .arg(&s.dir)
            .output()
            .unwrap(),
    )
}

fn log(s: &Suite) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

/// swaks from the outsider 127.0.0.2 to a remote address: the session,
/// whose RCPT is refused (or, while the listener restarts, not answered).
fn relay_attempt(s: &Suite) -> String {
    swaks(&[
        "--server",
        &s.server("SMTP"),
        "--local-interface",
        "127.0.0.2",
        "--from",
        "someone@example.org",
        "--to",
        "friend@elsewhere.example",
        "--quit-after",
        "RCPT",
    ])
    .1
}

#[test]
fn a_typo_takes_no_mail_down_and_reload_takes_up_only_a_file_that_loads() {
    let s = Suite::start(&[]);
    let toml = s.etc().join("postern.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    let demo = "demo@example.test";

    // A typo, as an admin saves it half-edited.
    std::fs::write(&toml, format!("mail_rot = \"/x\"\n{good}")).unwrap();
    let typo = format!(
        "{}:1: unknown key `mail_rot` (did you mean `mail_root`?)",
        toml.display()
    );
    // postern-auth logs it once and answers with what it had: RCPT and
    // AUTH work as before.
    let (code, out) = swaks(&[
        "--server",
        &s.server("SMTP"),
        "--from",
        "someone@example.org",
        "--to",
        demo,
        "--quit-after",
        "RCPT",
    ]);
    assert_eq!(code, 0, "{out}");
    wait_until(
        Duration::from_secs(10),
        || log(&s).contains(&typo),
        || format!("postern-auth did not log the typo: {}", log(&s)),
    );
    let (code, out) = swaks(&[
        "--server",
        &s.server("submission"),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        demo,
        "--auth-password",
        &s.password(),
        "--quit-after",
        "AUTH",
    ]);
    assert_eq!(code, 0, "{out}");

    // The maps still count as they change: an account added during the
    // typo logs in (and one removed would not).
    let mut accounts = std::fs::OpenOptions::new()
        .append(true)
        .open(s.etc().join("accounts"))
        .unwrap();
    std::io::Write::write_all(&mut accounts, b"late@example.test:{PLAIN}late pass::::::\n")
        .unwrap();
    drop(accounts);
    assert_eq!(
        crate::smtp_auth::auth_plain(&s, "127.0.0.1", "late@example.test", "late pass"),
        235
    );

    // sendmail as cron calls it queues, saying what it left out.
    let mut cron = Command::new(program("postern-inject"));
    cron.arg("--config")
        .arg(s.etc())
        .args(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", demo]);
    let out = run_with_input(&mut cron, b"Subject: cron output\n\nran\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "sendmail: {typo} (left out; queued with the rest)"
        )),
        "{stderr}"
    );
    // A typo on the line of the queue itself is refused: its default
    // would queue the message elsewhere.
    for queue_typo in ["queue_dir = \"relative\"", "queue_dri = \"/srv/queue\""] {
        std::fs::write(&toml, format!("{queue_typo}\n{good}")).unwrap();
        let out = run_with_input(&mut cron, b"Subject: not queued\n\nx\n");
        assert_eq!(out.status.code(), Some(78), "{queue_typo}");
    }
    std::fs::write(&toml, format!("mail_rot = \"/x\"\n{good}")).unwrap();

    // A reload is refused where the admin sees it, and nothing restarts.
    let (code, said) = reload(&s);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(&typo), "{said}");
    // The same through the signal systemd sends, on the supervisor.
    let pid: i32 = std::fs::read_to_string(s.dir.join("var/postern.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the supervisor this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until(
        Duration::from_secs(10),
        || log(&s).contains("error: reload refused, every program keeps running as it was"),
        || format!("no refused reload in {}", log(&s)),
    );
    assert!(!log(&s).contains("restarting the programs"));

    // The message waits for the fix (a delivery never runs on a file that
    // does not load), and goes once it is fixed.
    assert!(mailq(&s.etc()).contains(demo), "{}", mailq(&s.etc()));
    // (The sandbox's postern.toml has dotted keys only.)
    let changed = format!("{good}smtpd.relay_refusal = \"Relaying denied here\"\n");
    std::fs::write(&toml, &changed).unwrap();
    flush(&s.etc(), &[]);
    wait_for(&s.dir.join("mail/example.test/demo/Maildir"), 1);

    // The fixed and changed file: a reload restarts the listeners with it.
    let before = relay_attempt(&s);
    assert!(
        before.contains("<** 550 5.7.1") && !before.contains("Relaying denied here"),
        "{before}"
    );
    let (code, said) = reload(&s);
    assert_eq!(code, 0, "{said}");
    wait_until(
        Duration::from_secs(20),
        || relay_attempt(&s).contains(">: Relaying denied here"),
        || format!("the change was not taken up: {}", log(&s)),
    );
    assert!(log(&s).contains("reload: postern.toml changed and loads; restarting the programs"));
    // Unchanged, a second reload restarts nothing.
    assert_eq!(reload(&s).0, 0);
    wait_until(
        Duration::from_secs(10),
        || log(&s).contains("reload: postern.toml is unchanged"),
        || log(&s),
    );
    s.stop();
}

#[test]
fn a_listener_whose_port_is_taken_is_given_up_with_a_hint() {
    let (tmp, dir) = sandbox_dir();
    let log = tmp.path().join("log");
    stop(start_logged(&dir, &log));
    // Another program holds the sandbox's SMTP port.
    let smtp = port(&dir, "SMTP");
    let _holder = std::net::TcpListener::bind(("127.0.0.1", smtp)).unwrap();
    let up = start_logged(&dir, &log);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        Duration::from_secs(30),
        || text().contains("error: postern-smtpd cannot start"),
        || format!("postern-smtpd was not given up: {}", text()),
    );
    let text = text();
    assert!(
        text.contains(&format!(
            "error: cannot listen on 127.0.0.1:{smtp}: Address already in use"
        )) && text.contains("`postern up --port-offset N`"),
        "{text}"
    );
    assert!(text.contains(
        "trying it again only every 60s; fix what it logged above, then `postern reload` tries at once"
    ));
    let tries = text.matches("cannot listen on").count();
    std::thread::sleep(Duration::from_secs(3));
    let later = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(later.matches("cannot listen on").count(), tries, "{later}");
    // The rest of the suite serves on.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port(&dir, "POP3"))).is_ok());
    stop(up);
}
