//! `|command` targets: run by `/bin/sh -c` as the mailbox owner (this
//! process has already become them), in their home, with a clean
//! environment, the message on stdin and a time limit. The exit status
//! follows sysexits, as in sendmail and Postfix: 0 delivered, 75 try
//! again later, anything else a permanent failure.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::status::Status;

/// How much of the command's output goes into the status text.
const OUTPUT_KEPT: usize = 200;

pub struct PipeContext<'a> {
    pub home: &'a Path,
    pub user: &'a str,
    pub sender: &'a str,
    pub recipient: &'a str,
    pub time_limit: Duration,
}

pub fn run(command: &str, context: &PipeContext<'_>, input: &[&[u8]]) -> Status {
    let spawned = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", context.home)
        .env("USER", context.user)
        .env("LOGNAME", context.user)
        .env("SHELL", "/bin/sh")
        .env("SENDER", context.sender)
        .env("RECIPIENT", context.recipient)
        .current_dir(context.home)
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Status::temporary(format!("run {command:?}: {e}")),
    };
    let message: Vec<u8> = input.concat();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A command may stop reading early (a filter that only wants the
    // header); that is its business, not an error. The thread is never
    // joined: if what the command left behind never reads, it is dropped
    // with this process.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&message);
    });
    let (sender, outputs) = std::sync::mpsc::channel();
    let streams: Vec<Box<dyn Read + Send>> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    let stream_count = streams.len();
    for mut stream in streams {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if kept.len() < OUTPUT_KEPT {
                    kept.extend_from_slice(&buffer[..n.min(OUTPUT_KEPT - kept.len())]);
                }
            }
            let _ = sender.send(kept);
        });
    }

    let deadline = Instant::now() + context.time_limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Status::temporary(format!("wait for {command:?}: {e}")),
        }
    };
    // As Postfix does, the command is done when its output ends, not when
    // the shell exits: a job it left in the background that holds the
    // output open runs on the same clock, and is killed with the group.
    let mut output = Vec::new();
    let mut timed_out = status.is_none();
    for _ in 0..stream_count {
        match outputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(kept) => output.extend(kept),
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    if timed_out {
        // SAFETY: kill(2) on the process group we made.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    }
    let Some(status) = status else {
        let _ = child.wait();
        return Status::temporary(format!(
            "command {command:?} killed after {} s",
            context.time_limit.as_secs()
        ));
    };
    if timed_out {
        return Status::temporary(format!(
            "command {command:?} left output open past {} s; killed",
            context.time_limit.as_secs()
        ));
    }
    let output = String::from_utf8_lossy(&output);
    let output = output
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string();
    let said = if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Status::delivered("delivered to command"),
        (Some(75), _) => Status::temporary(format!("command {command:?} deferred{said}")),
        (Some(code), _) => Status::new(
            "5.3.0",
            format!("command {command:?} failed with exit {code}{said}"),
        ),
        (None, signal) => Status::temporary(format!(
            "command {command:?} died by signal {}",
            signal.unwrap_or(0)
        )),
    }
}
