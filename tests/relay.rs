//! postern-relay, the relayers file's tool, as admins and cron run it.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::util::{Setup, program};

fn setup() -> Setup {
    Setup::new()
}

fn relay(s: &Setup, args: &[&str]) -> Output {
    Command::new(program("postern-relay"))
        .arg("--config")
        .arg(&s.etc)
        .args(args)
        .output()
        .unwrap()
}

fn entries(s: &Setup) -> Vec<String> {
    crate::util::success_lines(relay(s, &["dump"]))
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .collect()
}

#[test]
fn the_commands_from_the_command_line() {
    let s = setup();
    let now = postern_config::unix_now();
    assert!(relay(&s, &["add", "192.0.2.1"]).status.success());
    let old = (now - 3600).to_string();
    assert!(relay(&s, &["add", "2001:db8::1", &old]).status.success());
    let listed = String::from_utf8(relay(&s, &["list"]).stdout).unwrap();
    assert!(listed.contains(&format!("2001:db8::1 {old}\n")), "{listed}");
    assert!(listed.starts_with("# timestamp (UTC): "), "{listed}");
    // Expire by the configured window (20 minutes): the old one goes.
    assert!(relay(&s, &["expire"]).status.success());
    let left = entries(&s);
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("192.0.2.1 "));
    // Bad arguments are usage errors, and change nothing.
    assert_eq!(relay(&s, &["add", "192.0.2.300"]).status.code(), Some(2));
    assert_eq!(relay(&s, &["delete"]).status.code(), Some(2));
    let deleted = relay(&s, &["delete", "192.0.2.1", "192.0.2.9"]);
    assert!(deleted.status.success());
    assert!(String::from_utf8_lossy(&deleted.stderr).contains("192.0.2.9 had no entry"));
    assert!(entries(&s).is_empty());
    // load reads standard input too.
    let mut load = Command::new(program("postern-relay"))
        .arg("--config")
        .arg(&s.etc)
        .args(["load", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    load.stdin
        .take()
        .unwrap()
        .write_all(b"# by hand\n198.51.100.4 1000\n")
        .unwrap();
    assert!(load.wait().unwrap().success());
    assert_eq!(entries(&s), ["198.51.100.4 1000"]);
}

#[test]
fn many_concurrent_writers_lose_nothing_and_readers_always_see_a_whole_file() {
    let s = setup();
    let file = s.relayers_file();
    let writing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while writing.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&file) {
                    postern_config::relayers::parse_strict(&text)
                        .unwrap_or_else(|e| panic!("a torn read: {e:?}"));
                    reads += 1;
                }
                // Reads enough to catch a torn file, and leaves the CPUs
                // to the writers and to the tests running beside this one.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            reads
        });
        let writers: Vec<_> = (0..20)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..100 {
                        let ip = format!("10.{w}.{i}.1");
                        let out = relay(s, &["add", &ip]);
                        assert!(
                            out.status.success(),
                            "{}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        writing.store(false, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    let all = entries(&s);
    assert_eq!(all.len(), 2000);
    for w in 0..20 {
        for i in 0..100 {
            let prefix = format!("10.{w}.{i}.1 ");
            assert!(all.iter().any(|e| e.starts_with(&prefix)), "{prefix} lost");
        }
    }
}

#[test]
fn writers_killed_mid_write_leave_a_whole_file() {
    let s = setup();
    let file = s.relayers_file();
    for round in 0..40u32 {
        let mut children: Vec<std::process::Child> = (0..4)
            .map(|w| {
                Command::new(program("postern-relay"))
                    .arg("--config")
                    .arg(&s.etc)
                    .args(["add", &format!("10.{round}.{w}.9")])
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Kill some at once, some a moment later, the rest not at all.
        std::thread::sleep(std::time::Duration::from_micros(u64::from(round % 8) * 400));
        for (w, child) in children.iter_mut().enumerate() {
            if !(w as u32 + round).is_multiple_of(3) {
                let _ = child.kill();
            }
        }
        for mut child in children {
            let _ = child.wait();
        }
        if let Ok(text) = std::fs::read_to_string(&file) {
            postern_config::relayers::parse_strict(&text)
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
    }
    // And the next writer goes on as usual.
    assert!(relay(&s, &["add", "192.0.2.77"]).status.success());
    assert!(entries(&s).iter().any(|e| e.starts_with("192.0.2.77 ")));
}
