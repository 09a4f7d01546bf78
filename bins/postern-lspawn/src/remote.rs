//! qmail-rspawn's job: a remote batch (`RBATCH <tag> <destination> <n>`
//! and n request lines) delivered by a `postern-remote --batch` worker for
//! that destination, run as the `[remote] user`, never root. The queue
//! files are opened here, as root, beneath the queue directory (with a
//! shared lock, as postern-local takes, so a restarted manager sees the
//! delivery), and handed over with the batch as descriptors over the
//! worker's socket (postern-handoff): postern-remote reads those messages
//! and nothing else of the queue. Each `M` line's file name becomes `+`
//! (`-` when it could not be opened: that message is deferred).
//!
//! A worker whose batch is done waits, its connection open, for another
//! batch to the same destination for `connection_cache_time` (Postfix's
//! connection cache); lspawn gives it one only in the first half of that
//! time, so a batch never reaches a worker that is leaving.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_config::Settings;

/// The lines of one remote batch, with their queue files opened.
pub struct RemoteBatch {
    pub destination: String,
    lines: Vec<String>,
    files: Vec<File>,
}

impl RemoteBatch {
    /// Opens the files of a batch's `M` lines; a file that cannot be
    /// opened or locked is logged and its line says `-`.
    pub fn open(settings: &Settings, destination: String, requests: Vec<String>) -> RemoteBatch {
        let mut files = Vec::new();
        let lines = requests
            .into_iter()
            .map(|line| {
                let mut fields: Vec<&str> = line.split('\t').collect();
                if fields.first() != Some(&"M") || fields.len() < 2 {
                    return line;
                }
                let opened = postern_queue_format::open_queued(&settings.queue_dir, fields[1])
                    .and_then(|file| {
                        file.try_lock_shared()
                            .map_err(|_| std::io::Error::other("another delivery holds it"))?;
                        Ok(file)
                    });
                let mark = match opened {
                    Ok(file) if files.len() < postern_handoff::MAX_FDS => {
                        files.push(file);
                        "+"
                    }
                    Ok(_) => "-",
                    Err(e) => {
                        eprintln!("postern-lspawn: open {}: {e}", fields[1]);
                        "-"
                    }
                };
                fields[1] = mark;
                fields.join("\t")
            })
            .collect();
        RemoteBatch {
            destination,
            lines,
            files,
        }
    }

    /// The `(queue id, index)` of each `R` line, in order: what each
    /// answer line stands for.
    fn recipients(&self) -> Vec<(String, String)> {
        let mut id = String::new();
        let mut out = Vec::new();
        for line in &self.lines {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[..] {
                ["M", _, _, queue_id, ..] => id = queue_id.to_string(),
                ["R", index, ..] => out.push((id.clone(), index.to_string())),
                _ => {}
            }
        }
        out
    }

    /// The batch delivered by a worker; its answer lines, one per
    /// recipient, with a deferral for each it could not answer.
    pub fn deliver(self, workers: &Workers) -> Vec<String> {
        let expected = self.recipients();
        let fds: Vec<i32> = self.files.iter().map(AsRawFd::as_raw_fd).collect();
        let defer = |answered: Vec<String>, why: String| -> Vec<String> {
            eprintln!("postern-lspawn: {why}");
            let rest = expected[answered.len().min(expected.len())..]
                .iter()
                .map(|(id, index)| format!("{id}\t{index}\t75\t4.3.0 {why}"));
            answered.into_iter().chain(rest).collect()
        };
        // A cached worker that has gone since is no loss: the batch goes
        // to a fresh one, which nothing was sent through yet.
        let mut cached = workers.take(&self.destination);
        loop {
            let (mut worker, reused) = match cached.take() {
                Some(worker) => (worker, true),
                None => match workers.spawn(&self.destination) {
                    Ok(worker) => (worker, false),
                    Err(e) => return defer(Vec::new(), format!("cannot run postern-remote: {e}")),
                },
            };
            match worker.run(&self.lines, &fds) {
                Ok((answered, keep)) if answered.len() == expected.len() => {
                    match keep {
                        true => workers.put(&self.destination, worker),
                        false => workers.reap(worker),
                    }
                    return answered;
                }
                Ok((answered, _)) => {
                    let why = format!(
                        "postern-remote answered {} of {} recipients",
                        answered.len(),
                        expected.len()
                    );
                    workers.reap(worker);
                    return defer(answered, why);
                }
                Err(_) if reused => workers.reap(worker),
                Err(e) => {
                    workers.reap(worker);
                    return defer(Vec::new(), format!("postern-remote: {e}"));
                }
            }
        }
    }
}

/// A running `postern-remote --batch` and its end of the socket pair.
pub struct Worker {
    child: Child,
    socket: UnixStream,
    answers: BufReader<UnixStream>,
    idle_since: Instant,
}

impl Worker {
    /// One batch through the worker: its answer lines up to `END`, and
    /// whether it keeps a connection open for another (`END keep`). An
    /// error when it answered nothing (gone, or broken).
    fn run(&mut self, lines: &[String], fds: &[i32]) -> std::io::Result<(Vec<String>, bool)> {
        postern_handoff::send_batch(&self.socket, lines, fds)?;
        let mut answered = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.answers.read_line(&mut line)? == 0 {
                return match answered.is_empty() {
                    true => Err(std::io::ErrorKind::UnexpectedEof.into()),
                    false => Ok((answered, false)),
                };
            }
            let line = line.trim_end_matches('\n');
            if line == "END" || line == "END keep" {
                return Ok((answered, line == "END keep"));
            }
            answered.push(line.to_string());
        }
    }
}

/// The workers: how to start one, and those waiting with an open
/// connection, by destination.
pub struct Workers {
    program: PathBuf,
    dir: PathBuf,
    settings: Arc<Settings>,
    idle: Mutex<HashMap<String, Vec<Worker>>>,
    /// How long a worker is given batches after its last one: half its
    /// own wait, so it is never leaving when one arrives.
    reuse: Duration,
}

impl Workers {
    /// The pool, and a thread that lets go of workers past their time.
    pub fn start(program: PathBuf, dir: &Path, settings: Arc<Settings>) -> Arc<Workers> {
        let reuse = Duration::from_secs(settings.remote.connection_cache_time) / 2;
        let workers = Arc::new(Workers {
            program,
            dir: dir.to_path_buf(),
            settings,
            idle: Mutex::new(HashMap::new()),
            reuse,
        });
        let sweeper = Arc::clone(&workers);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                sweeper.sweep();
            }
        });
        workers
    }

    fn take(&self, destination: &str) -> Option<Worker> {
        let mut idle = self.idle.lock().ok()?;
        let waiting = idle.get_mut(destination)?;
        while let Some(worker) = waiting.pop() {
            if worker.idle_since.elapsed() < self.reuse {
                return Some(worker);
            }
            self.reap(worker);
        }
        None
    }

    fn put(&self, destination: &str, mut worker: Worker) {
        if self.reuse.is_zero() {
            return self.reap(worker);
        }
        worker.idle_since = Instant::now();
        match self.idle.lock() {
            Ok(mut idle) => idle
                .entry(destination.to_string())
                .or_default()
                .push(worker),
            Err(_) => self.reap(worker),
        }
    }

    /// Closes the worker's socket (it QUITs its connection and ends) and
    /// waits for it, away from the caller.
    fn reap(&self, worker: Worker) {
        let Worker { mut child, .. } = worker;
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }

    fn sweep(&self) {
        let stale: Vec<Worker> = match self.idle.lock() {
            Ok(mut idle) => {
                let mut stale = Vec::new();
                for waiting in idle.values_mut() {
                    let (keep, old): (Vec<Worker>, Vec<Worker>) = waiting
                        .drain(..)
                        .partition(|w| w.idle_since.elapsed() < self.reuse);
                    *waiting = keep;
                    stale.extend(old);
                }
                idle.retain(|_, waiting| !waiting.is_empty());
                stale
            }
            Err(_) => Vec::new(),
        };
        for worker in stale {
            self.reap(worker);
        }
    }

    /// A new worker for `destination`, as the `[remote] user`.
    fn spawn(&self, destination: &str) -> std::io::Result<Worker> {
        let (ours, theirs) = UnixStream::pair()?;
        let mut command = Command::new(&self.program);
        command
            .arg("--config")
            .arg(&self.dir)
            .arg("--batch")
            .arg(destination)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            // Never the queue manager's pipe: it carries its answers.
            .stdout(Stdio::null());
        if postern_privilege::is_root() {
            let remote = &self.settings.remote;
            let Some((uid, gid, _)) = remote.user.resolve() else {
                return Err(std::io::Error::other(format!(
                    "[remote] user \"{}\" is not a user",
                    remote.user
                )));
            };
            if uid == 0 {
                return Err(std::io::Error::other(
                    "refusing to run postern-remote as root",
                ));
            }
            // SECURITY: its own uid and gid, no supplementary groups (std
            // clears them when it sets the uid).
            command.gid(gid).uid(uid);
        }
        let child = command.spawn()?;
        let answers = BufReader::new(ours.try_clone()?);
        Ok(Worker {
            child,
            socket: ours,
            answers,
            idle_since: Instant::now(),
        })
    }
}
