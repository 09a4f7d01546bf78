//! postern-imapd: IMAP4rev1 (RFC 3501) and IMAPS on the Maildirs
//! (docs/IMAP.md).
//!
//! The listener, started as root, only accepts: each connection gets a
//! forked process which, before it reads a byte, becomes `[imapd]
//! login_user` keeping only CAP_SETUID and CAP_SETGID; once postern-auth
//! accepts the login it becomes the mailbox's owner for good, with no
//! capability, and only then opens the Maildir. Started by inetd or systemd
//! `Accept=yes` (`--inetd`, or one `LISTEN_FDS` connection) it serves that
//! one session the same way; with `Accept=no` sockets it forks as
//! standalone.
//!
//! Exit codes: 0 on SIGTERM or after a session; 64 `--inetd` without a
//! connection; 71 cannot bind or drop privileges; 78 bad configuration.

mod serve;
mod session;

use std::path::PathBuf;

use postern_config::Settings;

/// The IMAP server.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-imapd", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// Serve the one connection on standard input (inetd, systemd
    /// Accept=yes).
    #[arg(long)]
    inetd: bool,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load_or_exit(&dir, "postern-imapd");
    settings.init_log("postern-imapd");
    std::process::exit(serve::run(settings, args.inetd));
}
