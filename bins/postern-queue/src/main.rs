//! postern-queue: the queue manager, run as the `postern` user by
//! postern-lspawn, which is connected to its stdin and stdout.
//!
//! It reads envelopes and per-recipient records, never message bodies. It
//! learns of new messages at once (injectors write their ids to the
//! `trigger` FIFO) and scans `queue/` at start and every few seconds as a
//! safety net; sends the pending recipients of one or more messages to
//! postern-lspawn as one batch (the delivery holds an exclusive lock on
//! each queue file while it runs, and a locked message is left alone);
//! records each outcome (docs/QUEUE.md, step 3); retries deferred
//! recipients every `retry_interval` seconds; and removes a message when
//! every recipient is done or failed. At most `max_deliveries` batches run
//! at once, and at most `max_deliveries_per_domain` for one recipient
//! domain when that is set.
//!
//! Exits 0 when postern-lspawn closes its end; 78 on a bad configuration.

mod clock;
mod control;
mod destinations;
mod notices;
mod schedule;
mod settle;

use std::path::PathBuf;

use postern_config::Settings;

/// The queue manager (started by postern-lspawn).
#[derive(clap::Parser, Debug)]
#[command(name = "postern-queue", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// Show the queue and exit
    #[arg(long)]
    list: bool,
    /// Print counts for monitoring (name value lines) and exit
    #[arg(long)]
    stats: bool,
    /// Try every message now (or the one named, or those for a domain),
    /// whatever its schedule
    #[arg(long, value_name = "ID|DOMAIN", num_args = 0..=1, default_missing_value = "")]
    flush: Option<String>,
    /// Remove a message without a report to its sender
    #[arg(long, value_name = "ID")]
    delete: Option<String>,
    /// Park a message: it is not tried until released
    #[arg(long, value_name = "ID")]
    hold: Option<String>,
    /// Let a held message go, and try it now
    #[arg(long, value_name = "ID")]
    release: Option<String>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load_or_exit(&dir, "postern-queue");
    let queue = postern_queue_format::QueueDir::at(&settings.queue_dir);
    let command = if let Some(id) = &args.flush {
        Some(control::flush(
            &queue,
            Some(id.as_str()).filter(|id| !id.is_empty()),
        ))
    } else if let Some(id) = &args.delete {
        Some(control::delete(&queue, id))
    } else if let Some(id) = &args.hold {
        Some(control::hold(&queue, id))
    } else {
        args.release.as_ref().map(|id| control::release(&queue, id))
    };
    match command {
        Some(Ok(done)) => {
            println!("postern-queue: {done}");
            return;
        }
        Some(Err((code, why))) => {
            eprintln!("postern-queue: {why}");
            std::process::exit(code);
        }
        None => {}
    }
    if args.stats {
        match postern_queue_format::stats(&queue, postern_config::unix_now()) {
            Ok(stats) => print!("{stats}"),
            Err(e) => {
                eprintln!("postern-queue: {}: {e}", settings.queue_dir.display());
                std::process::exit(75);
            }
        }
        return;
    }
    if args.list {
        match postern_queue_format::list(&queue, postern_log::dates::rfc5322_secs) {
            Ok(listing) => print!("{listing}"),
            Err(e) => {
                eprintln!("postern-queue: {}: {e}", settings.queue_dir.display());
                std::process::exit(75);
            }
        }
        return;
    }
    settings.init_log("postern-queue");
    std::process::exit(schedule::run(&settings, &dir));
}
