//! postern-remote: mail to another host over SMTP, as qmail-remote and
//! Postfix's smtp(8) deliver it.
//!
//! `--batch DESTINATION` is how the queue runs it (through
//! postern-lspawn, as the `postern-remote` user): the messages for one
//! destination as requests on stdin (requests.rs) and their queue files
//! as descriptors lspawn opened; all of them go over as few connections
//! as the destination allows, and stdout gets one line per recipient:
//! `QUEUE-ID<TAB>INDEX<TAB>EXIT<TAB>STATUS`, where EXIT is 0 (delivered),
//! 75 (try again) or 100 (failed for good) and STATUS the outcome as the
//! queue's records keep it (with the remote server's name and reply code
//! when a server gave it). Each attempt is also logged, one Postfix-style
//! line per recipient.
//!
//! Without `--batch` it delivers one message from stdin to the recipients
//! on the command line and prints `address<TAB>code<TAB>status text`, for
//! an admin's test of a route.
//!
//! The destination is a domain, whose MX hosts (or the domain itself) are
//! tried in turn, or `[ADDRESS]` for one host. STARTTLS is used where
//! offered (opportunistic: no certificate is checked, RFC 7435).
//!
//! It parses what other hosts send, so it refuses to run as root.
//!
//! Exit codes: 0 when each recipient has its line; 64 bad arguments or
//! started as root; 75 the requests or the message could not be read;
//! 78 a bad configuration.

mod connection;
mod dane;
mod dkim;
mod job;
mod mta_sts;
mod opportunistic;
mod outcome;
mod policy;
mod requests;
mod worker;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use postern_config::NextHop;
use postern_queue_format::Status;
use postern_smtp_client::Recipient;

use connection::Target;
use job::{Body, Job};

/// Delivers mail to another host.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-remote", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// Deliver the queue's requests on stdin to DESTINATION
    #[arg(long, value_name = "DESTINATION", conflicts_with_all = ["destination", "sender", "recipients"])]
    batch: Option<String>,
    /// The name EHLO gives
    #[arg(long, default_value = "localhost")]
    helo: String,
    /// The SMTP port of every host tried
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// A name server to ask instead of resolv.conf's (ADDRESS:PORT);
    /// may be given more than once
    #[arg(long = "nameserver", value_name = "ADDRESS:PORT")]
    nameservers: Vec<SocketAddr>,
    /// A domain, or [ADDRESS] for one host
    #[arg(required_unless_present = "batch")]
    destination: Option<String>,
    /// The envelope sender (empty for a bounce)
    #[arg(required_unless_present = "batch")]
    sender: Option<String>,
    /// The recipients
    recipients: Vec<String>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("postern-remote: not as root; run it as the postern-remote user");
        std::process::exit(64);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("postern-remote: {e}");
            std::process::exit(75);
        }
    };
    let code = match args.batch.clone() {
        Some(destination) => {
            let dir = postern_config::config_dir(args.config.as_deref());
            worker::run(&dir, destination, &runtime)
        }
        None => single(args, &runtime),
    };
    std::process::exit(code);
}

/// One message from stdin, for an admin's test.
fn single(args: Args, runtime: &tokio::runtime::Runtime) -> i32 {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut body) {
        eprintln!("postern-remote: read the message: {e}");
        return 75;
    }
    let recipients: Vec<Recipient> = args
        .recipients
        .iter()
        .map(|address| Recipient {
            address: address.clone(),
            ..Recipient::default()
        })
        .collect();
    if recipients.is_empty() {
        eprintln!("postern-remote: no recipients");
        return 64;
    }
    let mut jobs = vec![Job {
        id: "-".to_string(),
        arrival: 0,
        sender: args.sender.clone().unwrap_or_default(),
        ret: None,
        envid: None,
        indices: (0..recipients.len()).collect(),
        recipients,
        body: Body::Bytes(body),
    }];
    let destination = args.destination.clone().unwrap_or_default();
    let prepared = NextHop::parse(&destination)
        .map_err(|why| Status::new("5.1.2", why))
        .and_then(|hop| Ok((hop, policy::Policy::opportunistic()?)));
    let (hop, policy) = match prepared {
        Ok(prepared) => prepared,
        Err(status) => {
            eprintln!("postern-remote: {status}");
            return 64;
        }
    };
    let target = Target {
        destination,
        hop,
        policy,
        port: args.port,
        nameservers: args.nameservers.clone(),
        helo: args.helo.clone(),
        dns_timeout: Duration::from_secs(10),
        timeouts: connection::Timeouts::of(&postern_config::RemoteSettings::default()),
        per_transaction: 100,
        per_connection: 1,
        keep: false,
        signer: None,
        mta_sts: None,
        dnssec_resolver: None,
        dane: Default::default(),
    };
    let results = runtime.block_on(connection::deliver(&target, &mut jobs, &mut None));
    for (recipient, delivered) in jobs[0].recipients.iter().zip(&results[0]) {
        let status = outcome::status_of(delivered);
        let reply = &delivered.result.reply;
        println!(
            "{}\t{}\t{} {}",
            recipient.address, reply.code, status.code, status.text
        );
    }
    0
}
