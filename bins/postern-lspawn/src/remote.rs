//! qmail-rspawn's job: a remote batch (`RBATCH <tag> <destination> <n>`
//! and n request lines) run by `postern-remote --batch` as the
//! `[remote] user`, never root. The queue files are opened here, as root,
//! beneath the queue directory (a shared lock on each, as postern-local
//! takes, so a restarted manager sees the delivery), and handed over as
//! descriptors: postern-remote reads those messages and nothing else of
//! the queue. Each `M` line's file name becomes its descriptor's number
//! (`-` when it could not be opened: that message is deferred).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

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
                let fd = match opened {
                    Ok(file) => {
                        let fd = file.as_raw_fd().to_string();
                        files.push(file);
                        fd
                    }
                    Err(e) => {
                        eprintln!("postern-lspawn: open {}: {e}", fields[1]);
                        "-".to_string()
                    }
                };
                fields[1] = &fd;
                fields.join("\t")
            })
            .collect();
        RemoteBatch {
            destination,
            lines,
            files,
        }
    }

    /// The request lines each answer stands for: `(queue id, index)` of
    /// each `R` line, in order.
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

    /// Runs postern-remote over the batch; its answer lines, one per
    /// recipient, or a deferral for each when it could not answer.
    pub fn deliver(self, program: &Path, dir: &Path, settings: &Settings) -> Vec<String> {
        let expected = self.recipients();
        let answer = self.run(program, dir, settings);
        match answer {
            Ok(lines) if lines.len() == expected.len() => lines,
            outcome => {
                let why = match outcome {
                    Ok(lines) => format!(
                        "postern-remote answered {} of {} recipients",
                        lines.len(),
                        expected.len()
                    ),
                    Err(e) => format!("cannot run postern-remote: {e}"),
                };
                eprintln!("postern-lspawn: {why}");
                expected
                    .into_iter()
                    .map(|(id, index)| format!("{id}\t{index}\t75\t4.3.0 {why}"))
                    .collect()
            }
        }
    }

    fn run(&self, program: &Path, dir: &Path, settings: &Settings) -> std::io::Result<Vec<String>> {
        let mut command = Command::new(program);
        command
            .arg("--config")
            .arg(dir)
            .arg("--batch")
            .arg(&self.destination)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if postern_privilege::is_root() {
            let Some((uid, gid, _)) = settings.remote.user.resolve() else {
                return Err(std::io::Error::other(format!(
                    "[remote] user \"{}\" is not a user",
                    settings.remote.user
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
        let fds: Vec<i32> = self.files.iter().map(AsRawFd::as_raw_fd).collect();
        // SAFETY: between fork and exec only fcntl(2), which is
        // async-signal-safe, on descriptors this process owns: they stay
        // open across the exec, and only in the child.
        unsafe {
            command.pre_exec(move || {
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut input = self.lines.join("\n");
        input.push('\n');
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child.wait_with_output()?;
        let _ = writer.join();
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "postern-remote exited with {}",
                output.status
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }
}
