//! `--batch`: many deliveries in one process, as the queue feeds them.
//!
//! Each stdin line is one request, seven fields separated by tabs:
//! `FILE OFFSET SENDER RECIPIENT QUEUE-ID ARRIVAL RETRY` — the message is
//! FILE from byte OFFSET on; SENDER is empty for `<>`; QUEUE-ID `-` (and
//! ARRIVAL 0) when the message is not from the queue; RETRY is 1 on a
//! retry. Each request gets one stdout line, in order:
//! `RECIPIENT EXIT STATUS` (tab-separated; EXIT as in single mode).
//! Requests are taken in chunks, so results stream back while more come in;
//! the configuration is read again for each chunk, so a map edited while a
//! long batch runs counts from the next chunk on.
//!
//! SECURITY: started as root, FILE must lie beneath `queue_dir`, reached
//! without symlinks, and be a regular file: a feeder cannot make root open
//! /etc/shadow, a FIFO or a device for a mailbox owner to read.

use std::io::{BufRead, BufReader, Read, Write};

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use postern_config::{Config, Settings};

use crate::plan::{QueueRef, Request};
use crate::run::{deliver, envelope_sender, valid_queue_id};
use crate::status::{Reported, Status};

/// How many requests (and so open message files) are handled at once.
const CHUNK: usize = 256;
/// A request line longer than this is refused, not buffered.
const MAX_LINE: usize = 8192;

pub fn serve(dir: &Path) -> i32 {
    // Our own buffer over fd 0 (not std's stdin lock), so we can see
    // whether more requests are already waiting without blocking for them.
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return 75;
    };
    let mut input = BufReader::new(std::fs::File::from(fd));
    let stdout = std::io::stdout();
    loop {
        let mut lines = Vec::with_capacity(CHUNK);
        let mut at_end = false;
        while lines.len() < CHUNK {
            match read_request_line(&mut input) {
                Ok(Some(line)) => lines.push(line),
                Ok(None) | Err(_) => {
                    at_end = true;
                    break;
                }
            }
            // Answer what we have while a feeder waits for it.
            if input.buffer().is_empty() {
                break;
            }
        }
        if lines.is_empty() {
            return 0;
        }
        let answers = match Config::load(dir) {
            Ok(config) => answer_chunk(&config, &lines),
            Err(e) => {
                let status = Status::temporary(format!("configuration: {e}"));
                lines
                    .iter()
                    .map(|_| ("-".to_string(), status.clone()))
                    .collect()
            }
        };
        let mut out = stdout.lock();
        for (recipient, status) in answers {
            let _ = writeln!(out, "{recipient}\t{}\t{status}", status.exit_code());
        }
        if out.flush().is_err() {
            return 75;
        }
        if at_end {
            return 0;
        }
    }
}

/// One request line, at most `MAX_LINE` bytes kept: the rest of a longer
/// line is read and dropped, so it cannot turn into more requests.
fn read_request_line(input: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    if input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?
        == 0
    {
        return Ok(None);
    }
    if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = input
                .by_ref()
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)?;
            if n == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    Ok(Some(line))
}

fn answer_chunk(config: &Config, lines: &[Vec<u8>]) -> Vec<(String, Status)> {
    let mut answers: Vec<(String, Option<Status>)> = Vec::with_capacity(lines.len());
    let mut requests = Vec::new();
    let mut positions = Vec::new();
    let mut opened = HashMap::new();
    for line in lines {
        match parse_request(&config.settings, line, &mut opened) {
            Ok(request) => {
                answers.push((request.recipient.clone(), None));
                positions.push(answers.len() - 1);
                requests.push(request);
            }
            Err((recipient, status)) => answers.push((recipient, Some(status))),
        }
    }
    let statuses = deliver(config, requests, |_, _| {
        Err(Status::temporary("batch request without a message"))
    });
    for (position, status) in positions.into_iter().zip(statuses) {
        answers[position].1 = Some(status);
    }
    answers
        .into_iter()
        .map(|(recipient, status)| (recipient, status.expect("every request was answered")))
        .collect()
}

fn parse_request(
    settings: &Settings,
    line: &[u8],
    opened: &mut HashMap<String, Result<File, Status>>,
) -> Result<Request, (String, Status)> {
    let bad = |why: &str| {
        (
            "-".to_string(),
            Status::temporary(format!("bad batch request: {why}")),
        )
    };
    if line.len() > MAX_LINE {
        return Err(bad("line too long"));
    }
    let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
    let fields: Vec<&str> = line.trim_end_matches(['\n', '\r']).split('\t').collect();
    let [file, offset, sender, recipient, queue_id, arrival, retry] = fields[..] else {
        return Err(bad("expected 7 tab-separated fields"));
    };
    let with_recipient = |status: Status| (recipient.to_string(), status);
    let offset: u64 = offset
        .parse()
        .map_err(|_| with_recipient(bad("OFFSET is not a number").1))?;
    let sender = envelope_sender(sender).map_err(with_recipient)?;
    let queue = match queue_id {
        "-" => None,
        id if valid_queue_id(id) => Some(QueueRef {
            id: id.to_string(),
            arrival: arrival
                .parse()
                .map_err(|_| with_recipient(bad("ARRIVAL is not a number").1))?,
            retry: retry == "1",
        }),
        _ => return Err(with_recipient(bad("QUEUE-ID is not letters and digits").1)),
    };
    // One open file (and lock) per message file and group: a second open
    // would be a second lock holder, and refused.
    let message = opened
        .entry(file.to_string())
        .or_insert_with(|| open_message(settings, file, queue.is_some()))
        .as_ref()
        .map_err(|status| status.clone())
        .and_then(|file| {
            file.try_clone()
                .map_err(|e| Status::temporary(format!("dup: {e}")))
        })
        .map_err(with_recipient)?;
    if offset > message.metadata().map(|m| m.len()).unwrap_or(0) {
        return Err(with_recipient(Status::temporary(format!(
            "offset {offset} is past the end of {file}"
        ))));
    }
    Ok(Request {
        message: Some(message),
        offset,
        sender,
        recipient: recipient.to_string(),
        queue,
    })
}

/// Opens a request's message file for the delivery children to read. A
/// queued message is also locked (exclusive flock, held while any process
/// of this batch has it open): a queue manager restarted while this batch
/// still runs must not deliver the same message at the same time.
fn open_message(settings: &Settings, file: &str, queued: bool) -> Result<File, Status> {
    let opened = postern_queue_format::open_queued(&settings.queue_dir, file);
    let message = opened.map_err(|e| Status::temporary(format!("open {file}: {e}")))?;
    let metadata = message
        .metadata()
        .map_err(|e| Status::temporary(format!("stat {file}: {e}")))?;
    if !metadata.is_file() {
        return Err(Status::temporary(format!("{file} is not a regular file")));
    }
    // Shared: a remote delivery of the same message's other recipients
    // may hold it too; the manager's exclusive probe sees either.
    if queued && message.try_lock_shared().is_err() {
        return Err(Status::temporary(
            "another delivery of this message is running",
        ));
    }
    Ok(message)
}
