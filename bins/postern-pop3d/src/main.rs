//! postern-pop3d: POP3 (RFC 1939) and POP3S on the Maildirs (docs/POP3.md).
//!
//! The listener, started as root, only accepts: each connection gets a
//! forked process which, before it reads a byte, becomes `[pop3d]
//! login_user` keeping only CAP_SETUID and CAP_SETGID; once postern-auth
//! accepts the login it becomes the mailbox's owner for good, with no
//! capability, and only then opens the Maildir. Started by inetd or systemd
//! `Accept=yes` (`--inetd`, or one `LISTEN_FDS` connection) it serves that
//! one session the same way; with `Accept=no` sockets it forks as
//! standalone.
//!
//! `--instance NAME` runs one of `[pop3d.instances]` instead of `[pop3d]`
//! itself: its own ports, limits, access and options.
//!
//! Exit codes: 0 on SIGTERM or after a handed-over session; 64 `--inetd`
//! without a connection; 71 cannot bind or drop privileges; 78 bad
//! configuration.

mod context;
mod proxied;
mod proxy;
mod serve;
mod session;

use std::path::PathBuf;

use postern_config::Settings;

/// The POP3 server.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-pop3d", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    /// Serve the one connection on standard input (inetd, systemd
    /// Accept=yes).
    #[arg(long)]
    inetd: bool,
    /// Run `[pop3d.instances.NAME]`: its listen addresses and settings,
    /// the rest from `[pop3d]`.
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let mut settings = Settings::load_or_exit(&dir, "postern-pop3d");
    if let Some(name) = &args.instance {
        match settings.pop3d.instance(name) {
            Ok(instance) => settings.pop3d = instance,
            Err(why) => {
                eprintln!("postern-pop3d: {why}");
                std::process::exit(78);
            }
        }
    }
    settings.init_log("postern-pop3d");
    std::process::exit(serve::run(settings, args.inetd));
}
