//! Keeps the suite's long-running programs up: starts each, passes its
//! output on with the program's name in front, restarts it when it dies
//! (after 100 ms, doubling to at most 2 s, back to 100 ms once it has run
//! for 10 s), and stops them all when asked. It never reads mail or network
//! input: it only moves the children's log lines to stderr.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);
const STABLE_AFTER: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A child that exits this many times in a row at start, each time with
/// an exit code that says trying again at once cannot help, is tried only
/// every `GIVEN_UP_RETRY` after (or at once on a reload): its cause may go
/// away by itself (an address the host gets later, a port another program
/// frees), but not in milliseconds.
const FATAL_TRIES: u32 = 5;
const GIVEN_UP_RETRY: Duration = Duration::from_secs(60);
/// sysexits' EX_OSERR (a port that cannot be bound, a user that does not
/// exist) and EX_CONFIG (a configuration the program cannot use).
const FATAL_CODES: [i32; 2] = [71, 78];

/// A program to keep running.
#[derive(Clone, Debug)]
pub struct ChildSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// uid and gid to run as (the supervisor is root), or `None` to run as
    /// the supervisor's own user.
    pub user: Option<(u32, u32)>,
}

/// The restart delay after a child dies.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_DELAY }
    }
}

impl Backoff {
    /// The delay before the next start, given how long the child ran.
    pub fn after_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= STABLE_AFTER {
            self.next = FIRST_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

struct Slot {
    spec: ChildSpec,
    child: Option<(Child, Instant)>,
    start_at: Instant,
    backoff: Backoff,
    starts: u64,
    /// Fatal exits at start in a row.
    fatal: u32,
}

/// What a reload asks of the supervisor.
pub enum Reload {
    /// Nothing changed that a restart would take up.
    Nothing,
    /// Stop every program and start these, at once.
    Restart(Vec<ChildSpec>),
}

fn slot(spec: ChildSpec, start_at: Instant) -> Slot {
    Slot {
        spec,
        child: None,
        start_at,
        backoff: Backoff::default(),
        starts: 0,
        fatal: 0,
    }
}

/// Runs `specs` until `stop` is set, then stops every child (SIGTERM, then
/// SIGKILL after 5 s). When `reload` is set, `on_reload` says what to do:
/// a restart stops every child and starts the new list at once. Returns
/// how often each of the last list was started.
pub fn supervise(
    specs: Vec<ChildSpec>,
    stop: &AtomicBool,
    reload: &AtomicBool,
    mut on_reload: impl FnMut() -> Reload,
) -> Vec<u64> {
    let now = Instant::now();
    let mut slots: Vec<Slot> = specs.into_iter().map(|spec| slot(spec, now)).collect();
    while !stop.load(Ordering::SeqCst) {
        if reload.swap(false, Ordering::SeqCst) {
            match on_reload() {
                Reload::Restart(specs) => {
                    stop_all(&mut slots);
                    let now = Instant::now();
                    slots = specs.into_iter().map(|spec| slot(spec, now)).collect();
                }
                // What was given up is tried again at once: its cause may
                // be gone (the other server that held the port stopped).
                Reload::Nothing => {
                    for slot in slots.iter_mut().filter(|s| s.fatal >= FATAL_TRIES) {
                        slot.fatal = 0;
                        slot.backoff = Backoff::default();
                        slot.start_at = Instant::now();
                    }
                }
            }
        }
        for slot in &mut slots {
            poll(slot);
        }
        std::thread::sleep(POLL);
    }
    stop_all(&mut slots);
    slots.iter().map(|s| s.starts).collect()
}

/// SIGTERM to every child, then SIGKILL to what is left after 5 s.
fn stop_all(slots: &mut [Slot]) {
    for slot in slots.iter_mut() {
        if let Some((child, _)) = &slot.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for slot in slots.iter_mut() {
        if let Some((mut child, _)) = slot.child.take() {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(POLL);
            }
            if matches!(child.try_wait(), Ok(None)) {
                say(&format!(
                    "{} did not stop in {STOP_GRACE:?}; killing it",
                    slot.spec.name
                ));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn poll(slot: &mut Slot) {
    if let Some((child, started)) = &mut slot.child {
        match child.try_wait() {
            Ok(None) => return,
            Ok(Some(status)) => {
                let uptime = started.elapsed();
                let delay = slot.backoff.after_exit(uptime);
                slot.child = None;
                let fatal = status.code().is_some_and(|c| FATAL_CODES.contains(&c));
                slot.fatal = if fatal && uptime < STABLE_AFTER {
                    slot.fatal + 1
                } else {
                    0
                };
                if slot.fatal >= FATAL_TRIES {
                    if slot.fatal == FATAL_TRIES {
                        say(&format!(
                            "error: {} cannot start ({status}, {FATAL_TRIES} times in a row): trying it again only every {GIVEN_UP_RETRY:?}; fix what it logged above, then `postern reload` tries at once",
                            slot.spec.name
                        ));
                    }
                    slot.start_at = Instant::now() + GIVEN_UP_RETRY;
                    return;
                }
                say(&format!(
                    "{} exited ({status}) after {uptime:.1?}; restarting in {delay:?}",
                    slot.spec.name
                ));
                slot.start_at = Instant::now() + delay;
            }
            Err(e) => {
                say(&format!("{}: wait: {e}", slot.spec.name));
                return;
            }
        }
    }
    if Instant::now() < slot.start_at {
        return;
    }
    match spawn(&slot.spec) {
        Ok(child) => {
            slot.starts += 1;
            slot.child = Some((child, Instant::now()));
        }
        Err(e) => {
            let delay = slot.backoff.after_exit(Duration::ZERO);
            say(&format!(
                "cannot start {}: {e}; trying again in {delay:?}",
                slot.spec.name
            ));
            slot.start_at = Instant::now() + delay;
        }
    }
}

fn spawn(spec: &ChildSpec) -> std::io::Result<Child> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = spec.user {
        // SECURITY: std sets the gid, then (being root) clears the
        // supplementary groups and sets the uid, in that order, before exec.
        command.gid(gid).uid(uid);
    }
    let mut child = command.spawn()?;
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let name = spec.name.clone();
        std::thread::spawn(move || relay_lines(&name, stream));
    }
    Ok(child)
}

/// Copies a child's output to stderr a line at a time, naming the program
/// unless the line already names one of the suite's (`postern-...[pid]:`,
/// which a program's own children write through it).
fn relay_lines(name: &str, stream: Box<dyn std::io::Read + Send>) {
    let own_prefix = "postern";
    for line in BufReader::new(stream).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let mut err = std::io::stderr().lock();
        let _ = if line.starts_with(own_prefix) {
            writeln!(err, "{line}")
        } else {
            writeln!(err, "{name}: {line}")
        };
    }
}

pub fn say(text: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "postern[{}]: {text}",
        std::process::id()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn backoff_doubles_to_two_seconds_and_resets_after_ten() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..7).map(|_| b.after_exit(quick).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.after_exit(Duration::from_secs(11)), FIRST_DELAY);
        assert_eq!(b.after_exit(quick), Duration::from_millis(200));
    }

    /// How many lines a child has written to `log`: one per start.
    fn lines_in(log: &std::path::Path) -> usize {
        std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
    }

    #[test]
    fn a_child_that_cannot_start_waits_a_minute_or_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("starts");
        let broken = ChildSpec {
            name: "broken".into(),
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!("echo start >> {}; exit 71", log.display()).into(),
            ],
            user: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let (flag, again) = (stop.clone(), reload.clone());
        let runner =
            std::thread::spawn(move || supervise(vec![broken], &flag, &again, || Reload::Nothing));
        // 100 + 200 + 400 + 800 ms of backoff, then nothing for a minute.
        std::thread::sleep(Duration::from_millis(4500));
        assert_eq!(lines_in(&log), FATAL_TRIES as usize);
        reload.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines_in(&log) <= FATAL_TRIES as usize {
            assert!(Instant::now() < deadline, "not tried again after a reload");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap();
    }

    #[test]
    fn restarts_a_dying_child_and_stops_a_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("starts");
        let pidfile = dir.path().join("pid");
        let dying = ChildSpec {
            name: "dying".into(),
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!("echo start >> {}; exit 3", log.display()).into(),
            ],
            user: None,
        };
        let steady = ChildSpec {
            name: "steady".into(),
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!("echo $$ > {}; exec sleep 60", pidfile.display()).into(),
            ],
            user: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let runner = std::thread::spawn(move || {
            supervise(vec![dying, steady], &flag, &AtomicBool::new(false), || {
                Reload::Nothing
            })
        });
        // Wait (bounded) until the dying child has been restarted twice.
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines_in(&log) < 3 {
            assert!(Instant::now() < deadline, "no restarts");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        let starts = runner.join().unwrap();
        assert!(starts[0] >= 3, "{starts:?}");
        assert_eq!(starts[1], 1);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The steady child got SIGTERM and was reaped: it no longer exists.
        assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
    }
}
