//! `postern up`: the sandbox it makes on first start, the password it
//! prints, delivery into it, a clean stop on SIGTERM — and, as root, the
//! separate uids that keep everything but the supervisor from being root.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{Delivery, messages, owned_by_root, program};

pub struct Up {
    child: Child,
    banner: Vec<String>,
}

/// Starts `postern up --dir DIR` and waits (at most a minute) for its
/// banner.
pub fn start(dir: &Path) -> Up {
    start_with(dir, Stdio::inherit())
}

/// `start`, with every program's log lines appended to `log`.
pub fn start_logged(dir: &Path, log: &Path) -> Up {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    start_with(dir, Stdio::from(file))
}

/// Makes the sandbox at `dir` without starting it (`postern init`), with
/// ports of its own and no DNS (`util::NO_DNS`), so a test can change its
/// configuration first.
pub fn init(dir: &Path) {
    let offset = take_port_slot(dir);
    let out = Command::new(program("postern"))
        .args(["init", "--port-offset", &offset.to_string(), "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postern init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = dir.join("etc/postern.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text + crate::util::NO_DNS).unwrap();
}

fn start_with(dir: &Path, stderr: Stdio) -> Up {
    start_program(&program("postern"), dir, stderr)
}

/// `start_with`, running the `postern` at `postern`.
pub fn start_program(postern: &Path, dir: &Path, stderr: Stdio) -> Up {
    let offset = match dir.join("etc/ports").exists() {
        true => port(dir, "SMTP") - standard_smtp_port(),
        false => take_port_slot(dir),
    };
    let mut child = Command::new(postern)
        .args(["up", "--port-offset", &offset.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(stderr)
        // Its own process group, so that a test that fails can end the
        // whole suite, not just the supervisor.
        .process_group(0)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = receiver.recv_timeout(left).unwrap_or_else(|_| {
            // SAFETY: kill(2) on the process group of the child we started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("no banner from postern up; got {banner:?}");
        });
        let done = line.starts_with("Running in the foreground");
        banner.push(line);
        if done {
            return Up { child, banner };
        }
    }
}

/// The uid `postern up` gave a role (its `etc/ids`).
pub fn role_uid(etc: &Path, role: &str) -> u32 {
    let ids = std::fs::read_to_string(etc.join("ids")).unwrap();
    ids.lines()
        .find_map(|l| l.strip_prefix(&format!("{role} ")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .unwrap_or_else(|| panic!("no role {role} in {ids}"))
}

/// `postern up`'s standard loopback ports (SMTP first), from the services
/// table; with the extra ones tests give instances and other listeners
/// (`extra_port`), the span a sandbox's port offset moves.
fn standard_ports() -> Vec<u16> {
    postern_config::services::ports()
        .iter()
        .map(|port| port.sandbox)
        .collect()
}

/// The sandbox's SMTP port before its offset.
fn standard_smtp_port() -> u16 {
    standard_ports()[0]
}

const EXTRA_PORTS: std::ops::RangeInclusive<u16> = 2601..=2609;
const SLOTS: usize = 20;

/// The sandbox directory each port offset was given to in this run.
static SLOT_OWNERS: std::sync::Mutex<[Option<PathBuf>; SLOTS]> =
    std::sync::Mutex::new([const { None }; SLOTS]);

/// A port offset for a new sandbox at `dir`. Sandboxes of tests that run
/// at once each get their own: offsets are 1000 apart, and one is given
/// again only when its sandbox's directory is gone and nothing listens on
/// its ports (a suite a failed test left behind keeps its slot). They
/// stay below 32768, where Linux's ephemeral ports begin, so no client's
/// outgoing connection holds one.
fn take_port_slot(dir: &Path) -> u16 {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut owners = SLOT_OWNERS.lock().unwrap_or_else(|e| e.into_inner());
        // Round the slots, so the one a test just left rests the longest.
        let first = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for i in (0..SLOTS).map(|n| (first + n) % SLOTS) {
            let offset = 10000 + 1000 * i as u16;
            let unowned = owners[i].as_ref().is_none_or(|owner| !owner.exists());
            let ports = standard_ports().into_iter().chain(EXTRA_PORTS);
            if unowned
                && ports
                    .map(|p| p + offset)
                    .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
            {
                owners[i] = Some(dir.to_path_buf());
                return offset;
            }
        }
        drop(owners);
        assert!(Instant::now() < deadline, "no free sandbox ports");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `n`th (1 to 9) extra loopback port of the sandbox at `dir`, free
/// for a test's own listener.
pub fn extra_port(dir: &Path, n: u16) -> u16 {
    assert!(EXTRA_PORTS.contains(&(EXTRA_PORTS.start() - 1 + n)));
    port(dir, "SMTP") - standard_smtp_port() + EXTRA_PORTS.start() - 1 + n
}

/// A sandbox's port for `service` (`SMTP`, `submission`, ...).
pub fn port(dir: &Path, service: &str) -> u16 {
    let text = std::fs::read_to_string(dir.join("etc/ports")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{service} ")))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {service} port in {text}"))
}

pub fn stop(mut up: Up) {
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(up.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = up.child.try_wait().unwrap() {
            assert!(status.success(), "postern up exited with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "postern up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test that fails before `stop` still ends the suite it started:
/// SIGTERM, then SIGKILL if it lingers.
impl Drop for Up {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: kill(2) on the child we started, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                // SAFETY: kill(2) on the process group of the child we
                // started (its own, by process_group(0)).
                unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn banner_value(up: &Up, key: &str) -> String {
    let line = up
        .banner
        .iter()
        .find(|l| l.trim_start().starts_with(key))
        .expect(key);
    line.trim_start()[key.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn deliver(etc: &Path, message: &[u8]) -> Delivery {
    let file = etc.parent().unwrap().join("test-message");
    std::fs::write(&file, message).unwrap();
    Command::new(program("postern-local"))
        .arg("--config")
        .arg(etc)
        .args(["-f", "visitor@example.org", "demo@example.test"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap()
        .into()
}

pub fn sandbox_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("run");
    (tmp, dir)
}

#[test]
fn up_makes_a_working_sandbox_and_stops_on_sigterm() {
    let (_tmp, dir) = sandbox_dir();
    let up = start(&dir);
    let etc = dir.join("etc");
    let password = banner_value(&up, "password");
    assert_eq!(
        std::fs::read_to_string(etc.join("demo.password")).unwrap(),
        format!("{password}\n")
    );
    assert!(password.len() >= 16);
    assert_eq!(
        std::fs::metadata(etc.join("demo.password")).unwrap().mode() & 0o777,
        0o600
    );
    assert!(up.banner.iter().any(|l| l.contains("demo@example.test")));
    let smtp = format!("SMTP 127.0.0.1:{}", port(&dir, "SMTP"));
    let imaps = format!("IMAPS 127.0.0.1:{}", port(&dir, "IMAPS"));
    assert!(
        up.banner
            .iter()
            .any(|l| l.trim_start().starts_with("serving") && l.contains(&smtp)),
        "{:?}",
        up.banner
    );
    assert!(up.banner.iter().any(|l| l.contains(&imaps)));
    // It says where mail for other hosts goes.
    assert!(
        up.banner.iter().any(|l| l.contains(&format!(
            "note      mail to other hosts: {}",
            postern_routing::REMOTE_DELIVERY
        ))),
        "{:?}",
        up.banner
    );
    for sub in ["etc", "queue", "mail", "tls", "log"] {
        assert!(dir.join(sub).is_dir(), "{sub}");
    }
    let cert = std::fs::read_to_string(dir.join("tls/cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    // As root the SMTP listener's group may read the key (to reload it).
    let key = std::fs::metadata(dir.join("tls/key.pem")).unwrap();
    let expected = if crate::util::is_root() { 0o640 } else { 0o600 };
    assert_eq!(key.mode() & 0o777, expected);
    assert!(
        std::fs::read_to_string(etc.join("domains"))
            .unwrap()
            .contains("example.test virtual")
    );
    let maildir = dir.join("mail/example.test/demo/Maildir");
    for sub in ["new", "cur", "tmp"] {
        assert!(maildir.join(sub).is_dir());
    }

    // The printed password opens the demo mailbox.
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let auth = Command::new(program("postern-admin"))
        .arg("--config")
        .arg(&etc)
        .args(["auth", "test", "demo@example.test", "--password-file"])
        .arg(&pw)
        .output()
        .unwrap();
    assert!(
        auth.status.success(),
        "{}",
        String::from_utf8_lossy(&auth.stdout)
    );

    deliver(&etc, b"Subject: hello sandbox\n\nhi\n").expect(0, "2.0.0");
    let got = messages(&maildir);
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .1
            .ends_with(b"Delivered-To: demo@example.test\nSubject: hello sandbox\n\nhi\n")
    );
    // postmaster and root reach demo, as the sandbox's aliases say.
    let check = crate::util::check_passes(&program("postern-admin"), &etc);
    assert!(check.contains("0 errors, 0 warnings"), "{check}");
    stop(up);

    // A second start keeps the sandbox and its password.
    let again = start(&dir);
    assert_eq!(banner_value(&again, "password"), password);
    assert!(again.banner[0].contains("existing"));
    stop(again);
    assert_eq!(messages(&maildir).len(), 1);
}

#[test]
fn as_root_only_the_supervisor_is_root() {
    if crate::util::skip_unless_root("as_root_only_the_supervisor_is_root") {
        return;
    }
    let (_tmp, dir) = sandbox_dir();
    let up = start(&dir);
    let supervisor = up.child.id();
    let ids = std::fs::read_to_string(dir.join("etc/ids")).unwrap();
    let mail_uid: u32 = ids
        .lines()
        .find(|l| l.starts_with("mail "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(mail_uid >= 5000);
    let role_uids: Vec<u32> = ids
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    let mut unique = role_uids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        role_uids.len(),
        "each role has its own uid: {ids}"
    );

    deliver(&dir.join("etc"), b"Subject: root sandbox\n\nhi\n").expect(0, "2.0.0");
    let maildir = dir.join("mail/example.test/demo/Maildir");
    let (name, _) = messages(&maildir).remove(0);
    let meta = std::fs::metadata(maildir.join("new").join(name)).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (mail_uid, 0o600));
    assert!(owned_by_root(&dir.join("mail")).is_empty());

    // Only the supervisor, postern-lspawn and the POP3 and IMAP listeners stay root
    // (DESIGN.md); every other process of the suite, postern-queue first,
    // runs as a role once it has started (a listener binds and reads its
    // key as root first).
    assert_eq!(process_uid(supervisor), Some(0));
    let may_be_root = |pid: u32| {
        let command = command_of(pid);
        command.contains("postern-lspawn")
            || ((command.contains("postern-pop3d") || command.contains("postern-imapd"))
                && parent_of(pid) == Some(supervisor))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let descendants = loop {
        let found = descendants_of(supervisor);
        let queue = found
            .iter()
            .any(|&pid| command_of(pid).contains("postern-queue"));
        let settled = found
            .iter()
            .all(|&pid| may_be_root(pid) || process_uid(pid) != Some(0));
        if queue && settled {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "postern-queue did not start, or a program stayed root"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for pid in descendants {
        let uid = process_uid(pid).unwrap();
        let command = command_of(pid);
        if may_be_root(pid) {
            assert_eq!(uid, 0, "{command}: the root spawner or listener");
            continue;
        }
        assert_ne!(uid, 0, "{command} ({pid}) runs as root");
        assert!(
            role_uids.contains(&uid),
            "{command} ({pid}) runs as uid {uid}, not a role's"
        );
    }
    stop(up);
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The suite's processes under `pid`, children and their children.
fn descendants_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for child in children_of(parent) {
            found.push(child);
            parents.push(child);
        }
    }
    found
}

fn command_of(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Real, effective, saved, filesystem: all must match for this check.
    let ids: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    Some(*ids.iter().max().unwrap())
}

fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let Ok(pid) = entry.unwrap().file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 4 (after the parenthesized command) is the parent pid.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        if after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(parent) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn up_refuses_a_directory_that_is_not_its_own_sandbox() {
    let (tmp, dir) = sandbox_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious"), b"data").unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
    for target in [&dir, &link] {
        let out = Command::new(program("postern"))
            .args(["up", "--dir"])
            .arg(target)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is not an empty directory of yours"),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let mode = std::fs::metadata(tmp.path()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

/// `make run` as root from a checkout in root's home (mode 0700 on
/// Debian): the sandbox's users can pass neither to the sandbox nor to
/// the programs, so both are kept where they can, and the banner says so.
#[test]
fn as_root_a_checkout_in_a_private_home_runs() {
    if crate::util::skip_unless_root("as_root_a_checkout_in_a_private_home_runs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("root");
    let built = home.join("postern/target/debug");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Every program the build made, as a checkout's target/ holds them.
    let target = program("postern").parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(&target).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let executable = entry.metadata().unwrap().mode() & 0o111 != 0;
        let program = name.starts_with("postern") && !name.contains('.');
        if program
            && executable
            && entry.path().is_file()
            && std::fs::hard_link(entry.path(), built.join(&name)).is_err()
        {
            std::fs::copy(entry.path(), built.join(&name)).unwrap();
        }
    }
    let dir = home.join("postern/run");
    /// The sandbox that lives elsewhere goes with the test.
    struct Elsewhere(PathBuf);
    impl Drop for Elsewhere {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let log = tmp.path().join("log");
    let stderr = std::fs::File::create(&log).unwrap();
    let up = start_program(&built.join("postern"), &dir, Stdio::from(stderr));
    let real = Elsewhere(std::fs::read_link(&dir).unwrap());
    assert_eq!(real.0.parent(), Some(Path::new("/var/tmp/postern-sandbox")));
    let notes: Vec<&String> = up.banner.iter().filter(|l| l.contains("note")).collect();
    assert!(
        notes.iter().any(|l| l.contains(&format!(
            "{} is a link to it: the sandbox's users cannot pass {} (mode 0700)",
            dir.display(),
            home.display()
        ))),
        "{:?}",
        up.banner
    );
    assert!(
        notes
            .iter()
            .any(|l| l.contains(&format!("runs the programs from {}/bin", real.0.display()))),
        "{:?}",
        up.banner
    );
    // Mail goes through the queue, whose manager runs as its own uid.
    let etc = dir.join("etc");
    crate::queue::submit(
        &etc,
        b"To: demo@example.test\nSubject: from root's home\n\nhi\n",
    );
    let maildir = dir.join("mail/example.test/demo/Maildir");
    crate::queue::wait_for(&maildir, 1);
    assert!(
        String::from_utf8_lossy(&messages(&maildir)[0].1).contains("Subject: from root's home")
    );
    stop(up);
    // A second start takes the same sandbox.
    let stderr = std::fs::File::options().append(true).open(&log).unwrap();
    let again = start_program(&built.join("postern"), &dir, Stdio::from(stderr));
    assert!(again.banner[0].contains("existing"), "{:?}", again.banner);
    stop(again);
}
