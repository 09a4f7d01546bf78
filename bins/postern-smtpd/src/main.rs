//! postern-smtpd: the SMTP listener. It takes mail for the host's local
//! and virtual domains from anyone, and for other hosts only from clients
//! that may relay (the trusted networks, or a POP3/IMAP login within the
//! relay window); it writes each accepted message into the queue with the
//! queue writer and answers 250 only once the message is durable.
//!
//! Started as root, it binds `[smtpd] listen` and becomes `[smtpd] user`,
//! with the queue directory's group as its only group, for good, before it
//! reads a byte from a client. It never reads the accounts file: addresses
//! are looked up by postern-auth. Everything a client sends is distrusted:
//! the protocol core (common/smtp) caps lines, counts errors and frames
//! DATA; this program caps connections, in total and per IP, and times
//! sessions out.
//!
//! It starts three ways: standalone, binding `[smtpd] listen`; by systemd
//! socket activation (`LISTEN_FDS`, `Accept=no`); or for one connection
//! handed over by inetd or systemd `Accept=yes` (`--inetd`, or the one
//! `LISTEN_FDS` socket being a connection).
//!
//! Exit codes: 0 on SIGTERM (sessions get 421) or after a handed-over
//! session; 64 `--inetd` without a connection; 71 cannot bind or drop
//! privileges; 78 bad configuration.

mod connection;
mod incoming;
mod listeners;
mod relay;
mod serve;
mod transport;

use std::path::PathBuf;

use postern_config::Settings;
use postern_queue_format::QueueDir;

use relay::RelayRules;

/// The SMTP listener.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-smtpd", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// Serve the one connection on standard input (inetd, systemd
    /// Accept=yes with StandardInput=socket)
    #[arg(long)]
    inetd: bool,
}

/// What every session shares.
pub struct Context {
    pub settings: Settings,
    pub queue: QueueDir,
    pub rules: RelayRules,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// `[tls]`, when configured: reloaded when its files change.
    pub tls: Option<std::cell::RefCell<postern_tls::Certificates>>,
    /// `[smtpd] auth_mechanisms`, read.
    pub mechanisms: Vec<postern_sasl::Mechanism>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load_or_exit(&dir, "postern-smtpd");
    settings.init_log("postern-smtpd");
    std::process::exit(serve::run(settings, args.inetd));
}
