//! postern-local: local delivery.
//!
//! Resolves each recipient through the maps (recipient delimiter, aliases,
//! virtual mailboxes, system users, catch-alls), then writes each mailbox
//! as its owner: started as root (by postern-lspawn, an admin or a test),
//! it forks one child per mailbox owner, and that child gives up root
//! before it reads the message; started by an ordinary user, it writes only
//! mailboxes that user owns. It never writes anything as root.
//!
//! Reads: the configuration directory (as root: the accounts file too), the
//! message on stdin or in the files named by `--batch` requests. Writes:
//! Maildirs and their `maildirsize`. Distrusts: the message (only its
//! header's `Delivered-To:` lines are read, for loop detection) and every
//! recipient address.
//!
//! Exit codes (single delivery): 0 delivered, 75 any 4.x.x, 67 for 5.1.1,
//! 69 any other 5.x.x, 64 bad usage. The last line on stderr is the status:
//! the RFC 3463 code, a space, and the reason.

mod batch;
mod delivery;
mod forward;
mod message;
mod pipe;
mod plan;
mod requeue;
mod run;
mod status;
mod writer;

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use clap::Parser;
use postern_config::Config;

use crate::plan::{QueueRef, Request};
use crate::status::{EXIT_USAGE, Reported, Status};

/// Delivers a message on stdin to a local or virtual address.
#[derive(Parser, Debug)]
#[command(name = "postern-local", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// Envelope sender; empty or "<>" for a bounce
    #[arg(short = 'f', value_name = "SENDER", default_value = "")]
    sender: String,
    /// Queue id the message comes from: names the Maildir file so a retry
    /// can see a delivery that already landed
    #[arg(long, value_name = "ID", requires = "arrival")]
    queue_id: Option<String>,
    /// Arrival time of the queue entry, in seconds since the epoch
    #[arg(long, value_name = "SECS", requires = "queue_id")]
    arrival: Option<u64>,
    /// This is a retry: skip mailboxes the message already reached
    #[arg(long, requires = "queue_id")]
    retry: bool,
    /// Read delivery requests from stdin, one a line (see docs/DELIVERY.md)
    #[arg(long, conflicts_with_all = ["recipient", "queue_id", "sender"])]
    batch: bool,
    /// The recipient address
    #[arg(required_unless_present = "batch")]
    recipient: Option<String>,
}

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            let _ = e.print();
            std::process::exit(EXIT_USAGE);
        }
    };
    let dir = postern_config::config_dir(args.config.as_deref());
    let config = match Config::load(&dir) {
        Ok(config) => config,
        Err(e) => {
            // The message stays queued until the configuration is fixed.
            eprintln!("{}", Status::temporary(format!("configuration: {e}")));
            std::process::exit(status::EXIT_TEMPFAIL);
        }
    };
    config.settings.init_log("postern-local");
    if args.batch {
        std::process::exit(batch::serve(&dir));
    }
    let status = deliver_stdin(&config, &args);
    eprintln!("{status}");
    std::process::exit(status.exit_code());
}

fn deliver_stdin(config: &Config, args: &Args) -> Status {
    let recipient = args.recipient.clone().unwrap_or_default();
    let sender = match run::envelope_sender(&args.sender) {
        Ok(sender) => sender,
        Err(status) => return status,
    };
    let queue = match &args.queue_id {
        Some(id) if !run::valid_queue_id(id) => {
            return Status::new(
                "5.5.4",
                format!("bad queue id {:?}: letters and digits only", id),
            );
        }
        Some(id) => Some(QueueRef {
            id: id.clone(),
            arrival: args.arrival.unwrap_or_default(),
            retry: args.retry,
        }),
        None => None,
    };
    let request = Request {
        message: None,
        offset: 0,
        sender,
        recipient,
        queue,
    };
    run::deliver(config, vec![request], stdin_message)
        .pop()
        .expect("one request gives one outcome")
}

/// stdin as a file the delivery children can read at an offset: itself when
/// it is a regular file, else a copy in memory made as `owner`.
fn stdin_message(owner: &plan::Owner, limit: Option<u64>) -> Result<(std::fs::File, u64), Status> {
    // try_clone_to_owned duplicates close-on-exec: commands run for a
    // .forward must not inherit the message descriptor.
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Status::temporary(format!("dup stdin: {e}")))?;
    // SAFETY: lseek on our own descriptor has no memory effects.
    let position = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR) };
    if position >= 0 {
        return Ok((fd.into(), position as u64));
    }
    run::copy_to_memory(fd, owner, limit).map(|copy| (copy.into(), 0))
}
