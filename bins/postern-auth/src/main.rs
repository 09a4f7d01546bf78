//! postern-auth: answers, over a Unix socket, whether an address takes
//! mail here (docs/AUTH.md), for postern-smtpd, which may not read the
//! accounts file. Credential checks for smtpd, pop3d and imapd join it
//! later on the same socket.
//!
//! Started as root (by `postern up` or systemd), it binds its socket, makes
//! it reachable by the suite's programs, and becomes `[auth] user` for
//! good before it reads a request; run by an ordinary user (the sandbox) it
//! stays that user. It reads postern.toml and the maps, afresh for each
//! request, so an edit counts at once. Requests are distrusted: lines are
//! capped, and one connection's slowness holds only its own thread.
//!
//! Exit codes: 0 on SIGTERM; 71 cannot bind or drop privileges; 78 bad
//! configuration.

mod login;
mod lookup;
mod serve;
mod throttle;

use std::path::PathBuf;

use postern_config::Settings;

/// Address lookups over a Unix socket, for postern-smtpd.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-auth", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load_or_exit(&dir, "postern-auth");
    settings.init_log("postern-auth");
    std::process::exit(serve::run(&settings, &dir));
}
