//! The admin's commands: `--flush`, `--delete`, `--hold`, `--release`,
//! `--stats`. They work on the queue's files and talk to a running manager
//! through its trigger, so they need no other channel to it; run them as
//! root or as the queue's user.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use postern_queue_format::{Event, QueueDir, QueueId, Records};

/// Exit codes: 0 done; 67 no such message; 75 try again (being delivered,
/// or the manager is not running to hear a flush).
pub const NO_SUCH_MESSAGE: i32 = 67;
pub const TRY_AGAIN: i32 = 75;

fn message(queue: &QueueDir, text: &str) -> Result<QueueId, (i32, String)> {
    let id =
        QueueId::parse(text).ok_or((NO_SUCH_MESSAGE, format!("{text:?} is not a queue id")))?;
    if !queue.queue_file(&id).exists() {
        return Err((
            NO_SUCH_MESSAGE,
            format!("{id}: no such message in the queue"),
        ));
    }
    Ok(id)
}

/// Writes one line to the manager's trigger; it must be running.
fn tell_manager(queue: &QueueDir, line: &str) -> Result<(), (i32, String)> {
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(queue.trigger())
        .map_err(|e| {
            (
                TRY_AGAIN,
                format!("postern-queue is not running to hear it ({e})"),
            )
        })?;
    fifo.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| (TRY_AGAIN, format!("{}: {e}", queue.trigger().display())))
}

/// Every message (or one, or those for one domain) is tried now,
/// whatever its schedule says.
pub fn flush(queue: &QueueDir, id: Option<&str>) -> Result<String, (i32, String)> {
    match id {
        None => tell_manager(queue, "flush").map(|()| "flushing the queue".to_string()),
        Some(text) if QueueId::parse(text).is_none() && crate::notices::is_domain(text) => {
            let domain = text.to_ascii_lowercase();
            tell_manager(queue, &format!("flush-domain {domain}"))
                .map(|()| format!("flushing the mail for {domain}"))
        }
        Some(text) => {
            let id = message(queue, text)?;
            tell_manager(queue, &format!("flush {id}")).map(|()| format!("{id}: flushing"))
        }
    }
}

/// Parks a message: it is not tried until released.
pub fn hold(queue: &QueueDir, text: &str) -> Result<String, (i32, String)> {
    let id = message(queue, text)?;
    Records::note(queue, &id, &[Event::Hold]).map_err(|e| (TRY_AGAIN, format!("{id}: {e}")))?;
    Ok(format!("{id}: held"))
}

/// Lets a held message go, and asks for an attempt now.
pub fn release(queue: &QueueDir, text: &str) -> Result<String, (i32, String)> {
    let id = message(queue, text)?;
    Records::note(queue, &id, &[Event::Release]).map_err(|e| (TRY_AGAIN, format!("{id}: {e}")))?;
    // A manager that is not running finds it released when it starts.
    let _ = tell_manager(queue, &format!("flush {id}"));
    Ok(format!("{id}: released"))
}

/// Removes a message, without a report to its sender. One being
/// delivered (its queue file locked) is left alone: try again.
pub fn delete(queue: &QueueDir, text: &str) -> Result<String, (i32, String)> {
    let id = message(queue, text)?;
    let file = std::fs::File::open(queue.queue_file(&id))
        .map_err(|e| (NO_SUCH_MESSAGE, format!("{id}: {e}")))?;
    if file.try_lock().is_err() {
        return Err((TRY_AGAIN, format!("{id}: being delivered now; try again")));
    }
    queue
        .finish(&id)
        .map_err(|e| (TRY_AGAIN, format!("{id}: {e}")))?;
    Ok(format!("{id}: deleted"))
}
