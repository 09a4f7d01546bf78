//! `--batch DESTINATION`: a worker for one destination. Batches come from
//! postern-lspawn over the socket pair on standard input
//! (postern-handoff), each answered with a line per recipient and `END`
//! (`END keep` when its last connection stays open for the next batch,
//! the connection cache); the worker ends after a batch that leaves no
//! connection, when no batch comes for `connection_cache_time`, or at the
//! end of its input.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime};

use postern_config::{NextHop, Settings};
use postern_handoff::{Batch, Receiver};
use postern_queue_format::Status;
use tokio::sync::mpsc;

use crate::connection::{self, Target};
use crate::job::Job;
use crate::{outcome, policy, requests};

/// The log lines' program name.
pub const LOG_IDENT: &str = "postern/smtp";

/// How long a new worker waits for its first batch.
const FIRST_BATCH: Duration = Duration::from_secs(60);

pub fn run(dir: &Path, destination: String, runtime: &tokio::runtime::Runtime) -> i32 {
    let settings = Settings::load_or_exit(dir, "postern-remote");
    // Postfix's ident for its SMTP client, under the name `postern`: log
    // readers such as pflogsumm (`--syslog-name=postern`) count these
    // lines as they count Postfix's.
    settings.init_log(LOG_IDENT);
    // SAFETY: descriptor 0 is the socket lspawn gave this process, owned
    // by nothing else here (stdin is never read through std).
    let socket = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
    let mut answers = match socket.try_clone() {
        Ok(writer) => writer,
        Err(e) => {
            eprintln!("postern-remote: standard input is not lspawn's socket: {e}");
            return 75;
        }
    };
    let (sender, mut batches) = mpsc::channel::<std::io::Result<Batch>>(1);
    // The descriptors come only through recvmsg, which blocks: a thread
    // reads, the deliveries wait on the channel.
    std::thread::spawn(move || {
        let mut receiver = Receiver::new(socket);
        loop {
            let next = receiver.next_batch().transpose();
            let stop = !matches!(next, Some(Ok(_)));
            if let Some(next) = next
                && sender.blocking_send(next).is_err()
            {
                return;
            }
            if stop {
                return;
            }
        }
    });
    let remote = &settings.remote;
    let helo = match remote.helo_name.as_str() {
        "" => settings.hostname.clone(),
        name => name.to_string(),
    };
    let prepared = NextHop::parse(&destination)
        .map_err(|why| Status::new("4.3.5", format!("destination {why}")))
        .and_then(|hop| {
            let policy = policy::Policy::for_destination(dir, remote, &destination, &hop)?;
            Ok((hop, policy))
        });
    let idle_time = Duration::from_secs(remote.connection_cache_time);
    let target = prepared.map(|(hop, policy)| Target {
        destination,
        hop,
        policy,
        port: remote.port,
        nameservers: remote.nameservers.clone(),
        helo,
        dns_timeout: Duration::from_secs(remote.dns_timeout.max(1)),
        timeouts: connection::Timeouts::of(remote),
        per_transaction: remote.max_recipients_per_transaction,
        per_connection: remote.max_messages_per_connection,
        keep: !idle_time.is_zero(),
        signer: Some(std::cell::RefCell::new(crate::dkim::Signer::new(dir))),
        mta_sts: remote.mta_sts.then(|| connection::MtaSts {
            port: remote.mta_sts_port,
            state_dir: remote.state_dir.clone(),
            ca_file: remote.ca_file.clone(),
            found: std::cell::RefCell::new(None),
        }),
        dnssec_resolver: remote.dnssec_resolver,
        dane: Default::default(),
    });
    runtime.block_on(async {
        let mut cache = None;
        let mut wait = FIRST_BATCH;
        loop {
            let batch = match tokio::time::timeout(wait, batches.recv()).await {
                Ok(Some(Ok(batch))) => batch,
                Ok(Some(Err(e))) => {
                    eprintln!("postern-remote: {e}");
                    break;
                }
                Ok(None) | Err(_) => break,
            };
            wait = idle_time;
            let started = SystemTime::now();
            let mut jobs = match jobs_of(batch) {
                Ok(jobs) => jobs,
                Err(e) => {
                    eprintln!("postern-remote: {e}");
                    break;
                }
            };
            let mut text = Vec::new();
            match &target {
                Ok(target) => {
                    let results = connection::deliver(target, &mut jobs, &mut cache).await;
                    outcome::answer(&mut text, &jobs, results, started);
                }
                Err(status) => outcome::answer_all(&mut text, &jobs, status, started),
            }
            // `END keep`: a connection is open for the next batch; with
            // none, there is nothing to wait for.
            let keep = cache.is_some();
            text.extend_from_slice(if keep { b"END keep\n" } else { b"END\n" });
            if answers.write_all(&text).is_err() || !keep {
                break;
            }
        }
        if let Some(idle) = cache {
            idle.close().await;
        }
    });
    0
}

/// A batch's jobs, each `+` message line taking the next descriptor.
fn jobs_of(batch: Batch) -> Result<Vec<Job>, String> {
    let requests = requests::parse(&batch.lines.join("\n"))?;
    let mut fds = batch.fds.into_iter();
    Ok(requests
        .into_iter()
        .map(|request| {
            let file = request
                .passed
                .then(|| fds.next().map(std::fs::File::from))
                .flatten();
            Job::from_request(request, file)
        })
        .collect())
}
