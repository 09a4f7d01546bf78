//! postern-lspawn: qmail-lspawn's job. Runs as root, tiny: it starts
//! `postern-queue` as the queue's user, connected to it by two pipes, and
//! for each delivery batch the queue asks for starts a root
//! `postern-local --batch`, which resolves the recipients and writes each
//! mailbox from a child that has become its owner.
//!
//! For mail to other hosts it is qmail-rspawn too (remote.rs): a batch
//! `RBATCH <tag> <destination> <n>` goes to a `postern-remote --batch`
//! worker for that destination, run as the `[remote] user`, with the
//! batch's queue files opened here and passed as descriptors; a worker
//! stays a moment, its connection open, for the destination's next batch.
//!
//! It parses nothing but its own framing: a batch is `BATCH <tag> <n>` and
//! n request lines, passed through unread (but for a remote batch's file
//! names); the answer is `RESULT <tag> <n>` and the n lines the delivery
//! printed. Nothing it handles is mail.
//!
//! Exits when the queue manager does (the supervisor restarts both);
//! exit 78 when the configuration cannot be used.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use postern_config::Settings;

mod remote;

/// Starts postern-queue and the root local deliveries it asks for.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-lspawn", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load_or_exit(&dir, "postern-lspawn");
    std::process::exit(run(&dir, &settings));
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run(dir: &Path, settings: &Settings) -> i32 {
    let mut queue = Command::new(sibling("postern-queue"));
    queue
        .arg("--config")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if postern_privilege::is_root() {
        let Some((uid, gid, _)) = settings.queue_user.resolve() else {
            eprintln!(
                "postern-lspawn: queue_user \"{}\" is not a user",
                settings.queue_user
            );
            return 78;
        };
        if uid == 0 {
            eprintln!("postern-lspawn: refusing to run postern-queue as root");
            return 78;
        }
        // SECURITY: the queue manager gets its own uid and gid and no
        // supplementary groups (std clears them when it sets the uid).
        queue.gid(gid).uid(uid);
    }
    let mut child = match queue.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("postern-lspawn: start postern-queue: {e}");
            return 75;
        }
    };
    let requests = BufReader::new(child.stdout.take().expect("piped"));
    let answers = Arc::new(Mutex::new(child.stdin.take().expect("piped")));
    let local = sibling("postern-local");
    let settings = Arc::new(settings.clone());
    let workers = remote::Workers::start(sibling("postern-remote"), dir, Arc::clone(&settings));
    let mut lines = requests.lines();
    while let Some(Ok(header)) = lines.next() {
        let fields: Vec<&str> = header.split(' ').collect();
        let (tag, destination, count) = match fields[..] {
            ["BATCH", tag, count] => (tag, None, count),
            ["RBATCH", tag, destination, count] => (tag, Some(destination.to_string()), count),
            _ => continue,
        };
        let (tag, Ok(count)) = (tag.to_string(), count.parse::<usize>()) else {
            continue;
        };
        let mut batch = Vec::with_capacity(count);
        for _ in 0..count {
            match lines.next() {
                Some(Ok(line)) => batch.push(line),
                _ => break,
            }
        }
        let answers = Arc::clone(&answers);
        let local = local.clone();
        let dir = dir.to_path_buf();
        let settings = Arc::clone(&settings);
        let workers = Arc::clone(&workers);
        // Batches run side by side; the queue manager bounds how many.
        std::thread::spawn(move || {
            let output = match destination {
                Some(destination) => {
                    remote::RemoteBatch::open(&settings, destination, batch).deliver(&workers)
                }
                None => {
                    let mut text = batch.join("\n");
                    text.push('\n');
                    deliver(&local, &dir, &text, count)
                }
            };
            let mut answer = format!("RESULT {tag} {}\n", output.len());
            for line in output {
                answer.push_str(&line);
                answer.push('\n');
            }
            if let Ok(mut pipe) = answers.lock() {
                let _ = pipe.write_all(answer.as_bytes());
                let _ = pipe.flush();
            }
        });
    }
    let status = child.wait().map(|s| s.code().unwrap_or(1)).unwrap_or(1);
    eprintln!("postern-lspawn: postern-queue exited ({status}); stopping");
    status
}

/// Runs one `postern-local --batch` over `batch` and returns its answer
/// lines; a failure to run it answers every request with a deferral.
fn deliver(local: &Path, dir: &Path, batch: &str, count: usize) -> Vec<String> {
    let spawned = Command::new(local)
        .arg("--config")
        .arg(dir)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let answer = spawned.and_then(|mut child| {
        let mut stdin = child.stdin.take().expect("piped");
        let input = batch.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child.wait_with_output()?;
        let _ = writer.join();
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>())
    });
    match answer {
        Ok(lines) if lines.len() == count => lines,
        Ok(lines) => {
            let why = format!("postern-local answered {} of {count} requests", lines.len());
            (0..count).map(|_| format!("-\t75\t4.3.0 {why}")).collect()
        }
        Err(e) => (0..count)
            .map(|_| format!("-\t75\t4.3.0 cannot run postern-local: {e}"))
            .collect(),
    }
}
