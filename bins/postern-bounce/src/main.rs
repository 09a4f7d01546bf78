//! postern-bounce: makes one delivery status report (RFC 3464) about a
//! queued message and queues it. Run by postern-queue, as the queue's
//! user: it reads the message reported on (the queue manager never reads
//! message data) and writes the report through the queue writer.
//!
//! A report goes to the message's envelope sender from `<>`, marked in the
//! envelope as a report, so its own failure is told to postmaster once and
//! never bounces back in a loop (docs/QUEUE.md).
//!
//! Prints the report's queue id. Exit codes: 0 queued; 64 bad usage or
//! nothing to report to; 75 the queue cannot take it now; 78 configuration.

mod report;

use std::path::PathBuf;

use postern_config::Settings;
use std::io::{Read, Seek};

use postern_queue_format::{
    Envelope, QueueDir, QueueId, Recipient, Records, Report, ReportKind as Kind, read_envelope_from,
};

use report::Input;

/// Make and queue a delivery status report (run by postern-queue).
#[derive(clap::Parser, Debug)]
#[command(name = "postern-bounce", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// failure, delay, success, or postmaster (a report that failed)
    #[arg(long)]
    kind: String,
    /// The queue id of the message reported on
    id: String,
    /// The recipients the report covers: indices, comma-separated
    recipients: String,
}

fn fail(code: i32, why: &str) -> ! {
    eprintln!("postern-bounce: {why}");
    std::process::exit(code);
}

fn cannot(e: std::io::Error) -> ! {
    fail(75, &format!("cannot queue the report: {e}"))
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load(&dir).unwrap_or_else(|e| fail(78, &e.to_string()));
    let kind = Kind::parse(&args.kind)
        .unwrap_or_else(|| fail(64, &format!("--kind {:?}: not a kind of report", args.kind)));
    let id = QueueId::parse(&args.id)
        .unwrap_or_else(|| fail(64, &format!("{:?} is not a queue id", args.id)));
    let queue = QueueDir::at(&settings.queue_dir);
    let mut file = std::fs::File::open(queue.queue_file(&id))
        .unwrap_or_else(|e| fail(75, &format!("{id}: {e}")));
    let (envelope, offset) =
        read_envelope_from(&id, &mut file).unwrap_or_else(|e| fail(75, &format!("{id}: {e}")));
    // The envelope was read in chunks: back to where the data starts.
    file.seek(std::io::SeekFrom::Start(offset))
        .unwrap_or_else(|e| fail(75, &format!("{id}: {e}")));
    // No more of the message than a report can return: one octet past the
    // limit is enough to know it is too big, and its header comes first.
    let mut message = Vec::new();
    std::io::Read::take(&mut file, report::MAX_RETURNED as u64 + 1)
        .read_to_end(&mut message)
        .unwrap_or_else(|e| fail(75, &format!("{id}: {e}")));
    let records = Records::read(&queue, &id, envelope.recipients.len())
        .unwrap_or_else(|e| fail(75, &format!("{id}: records: {e}")));
    let indices: Vec<usize> = args
        .recipients
        .split(',')
        .filter_map(|i| i.trim().parse().ok())
        .filter(|&i| i < envelope.recipients.len())
        .collect();
    if indices.is_empty() {
        fail(64, "no recipients to report on");
    }
    let to = match kind {
        Kind::Postmaster => format!("postmaster@{}", settings.hostname),
        _ if envelope.sender.is_empty() => fail(64, "a message from <> gets no report"),
        _ => envelope.sender.clone(),
    };
    let now = postern_config::unix_now();
    let report_envelope = Envelope {
        arrival: now,
        sender: String::new(),
        recipients: vec![Recipient::new(&to)],
        report: Some(match kind {
            Kind::Postmaster => Report::Postmaster,
            _ => Report::Dsn,
        }),
        ..Envelope::default()
    };
    let mut writer = queue.begin(&report_envelope).unwrap_or_else(|e| cannot(e));
    let report_id = writer.id().clone();
    // Recipients of other hosts were relayed: delivered to a server that
    // did not take the DSN request (RFC 3464 §2.3.3).
    let router = postern_routing::Router::load(&dir, &settings.hostname)
        .with_srs_domain(&settings.srs.domain);
    let relayed: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| {
            matches!(
                router.route(&envelope.recipients[i].address),
                postern_routing::Route::Remote { .. }
            )
        })
        .collect();
    let message = report::build(&Input {
        kind,
        relayed: &relayed,
        hostname: &settings.hostname,
        queue_id: id.as_str(),
        report_id: report_id.as_str(),
        envelope: &envelope,
        records: &records,
        indices: &indices,
        message: &message,
        retry_until: Some(envelope.arrival.saturating_add(settings.queue_lifetime)),
        now,
        to: &to,
    });
    writer.write(&message).unwrap_or_else(|e| cannot(e));
    let report_id = writer.commit().unwrap_or_else(|e| cannot(e));
    queue.poke(&report_id);
    println!("{report_id}");
}
