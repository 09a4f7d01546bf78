//! postern-relay: the POP-before-SMTP relayers file, with vsmtprelay's
//! commands (docs/RELAY.md). postern-auth adds an IP at each POP3 or IMAP
//! login; postern-smtpd lets an IP relay for `relay_window` after its
//! entry's time. Nothing expires unless told: `expire` is for cron.
//!
//! Exit codes: 0 done; 64 bad arguments; 65 a `load` file that does not
//! read (nothing changed); 75 the file cannot be read or written; 78 bad
//! configuration.

mod commands;

use std::net::IpAddr;
use std::path::PathBuf;

use postern_config::Settings;

/// The POP-before-SMTP relayers file.
#[derive(clap::Parser, Debug)]
#[command(name = "postern-relay", version, about)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Record IP with the current time, or with TICKS (seconds since the
    /// epoch); an IP already there gets the new time.
    Add { ip: IpAddr, ticks: Option<u64> },
    /// Remove the entries of these IPs.
    #[command(alias = "del")]
    Delete {
        #[arg(required = true)]
        ips: Vec<IpAddr>,
    },
    /// Remove entries older than MINUTES [default: the relay window].
    Expire { minutes: Option<u64> },
    /// Print the entries at least MINUTES old [default: 0, every entry
    /// not in the future].
    List { minutes: Option<u64> },
    /// Print every entry, future times too, in the form `load` reads.
    Dump,
    /// Replace every entry by those of FILE (`-` for standard input), as
    /// `dump` prints them or as edited by hand.
    Load { file: PathBuf },
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let settings = Settings::load_or_exit(&dir, "postern-relay");
    let context = commands::Context {
        file: settings.smtpd.relayers_file.clone(),
        window: settings.smtpd.relay_window,
        now: postern_config::unix_now(),
    };
    match commands::run(&context, args.command, &mut std::io::stdout().lock()) {
        Ok(()) => {}
        Err((code, why)) => {
            eprintln!("postern-relay: {why}");
            std::process::exit(code);
        }
    }
}
