//! postern-remote: one message to one destination over SMTP, as
//! qmail-remote takes it — the destination, the sender and the recipients
//! on the command line, the message (LF line ends, as queued) on stdin,
//! and one line per recipient on stdout: `address<TAB>code<TAB>status
//! text`, the server's reply or the reason none came. The destination
//! is a domain, whose MX hosts (or the domain itself) are tried in turn,
//! or `[ADDRESS]` for one host. STARTTLS is used where offered
//! (opportunistic: no certificate is checked, RFC 7435).
//!
//! This is the first part of outbound delivery: the queue does not run it
//! yet (mail for other hosts is still deferred there).
//!
//! It parses what other hosts send, so it refuses to run as root: it
//! runs as the `postern-remote` user.
//!
//! Exit codes: 0 when each recipient has its line; 64 bad arguments or
//! started as root; 75 the message could not be read.

mod connection;
mod opportunistic;

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use postern_queue_format::status::{Class, Code};
use postern_smtp_client::{Message, Recipient};

/// Delivers one message to another host.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-remote", version, about)]
struct Args {
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
    destination: String,
    /// The envelope sender (empty for a bounce)
    sender: String,
    /// The recipients
    #[arg(required = true)]
    recipients: Vec<String>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("postern-remote: not as root; run it as the postern-remote user");
        std::process::exit(64);
    }
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut body) {
        eprintln!("postern-remote: read the message: {e}");
        std::process::exit(75);
    }
    let message = Message {
        sender: args.sender.clone(),
        recipients: args
            .recipients
            .iter()
            .map(|address| Recipient {
                address: address.clone(),
                ..Recipient::default()
            })
            .collect(),
        size: wire_size(&body),
        eight_bit: body.iter().any(|&b| b >= 0x80),
        needs_smtputf8: !args.sender.is_ascii() || args.recipients.iter().any(|r| !r.is_ascii()),
        ..Message::default()
    };
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
    let target = connection::Target {
        destination: args.destination,
        port: args.port,
        nameservers: args.nameservers,
        helo: args.helo,
        dns_timeout: Duration::from_secs(10),
    };
    let results = runtime.block_on(connection::deliver(&target, &message, &body));
    for (recipient, result) in message.recipients.iter().zip(results) {
        let reply = &result.reply;
        let class = Class::of_reply(reply.code).unwrap_or(Class::Permanent);
        let status = (reply.status.clone()).unwrap_or_else(|| Code::unspecified(class).to_string());
        let text = reply.lines.join(" ");
        println!("{}\t{}\t{status} {text}", recipient.address, reply.code);
    }
}

/// Octets on the wire: each LF becomes CRLF.
fn wire_size(body: &[u8]) -> u64 {
    let lfs = body.iter().filter(|&&b| b == b'\n').count();
    (body.len() + lfs) as u64
}
