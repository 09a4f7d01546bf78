//! postern-admin: the admin's one tool for Postern's configuration.
//!
//! Runs as root on a real host (the accounts file is readable by root and
//! postern-auth only), as the sandbox's user under `postern up`. Reads and
//! rewrites the maps in the configuration directory, each change atomic
//! (temporary file, fsync, rename); creates Maildirs owned by the mail
//! owner. Trusts its invoker, but never takes a password from argv, where
//! every user could read it in `ps`.
//!
//! Exit codes: 0 done, 1 the check found errors or a password did not
//! match, 2 bad usage, 78 the configuration cannot be used.

mod auth_test;
mod check;
mod mailbox;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "postern-admin",
    version,
    about = "Manage Postern's domains, mailboxes and maps"
)]
struct Args {
    /// Configuration directory [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate postern.toml and every map; print `file:line: what is wrong`
    Check,
    /// Virtual mailboxes
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// Credentials
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(Subcommand, Debug)]
enum MailboxCommand {
    /// Add a virtual mailbox and create its Maildir
    Add {
        /// The mailbox address, in a virtual domain
        address: String,
        /// File whose first line is the password
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// Quota, like 500M or 2G
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Check a password against an account, as a login would
    Test {
        address: String,
        /// File whose first line is the password [default: read stdin]
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

pub const EXIT_CONFIG: i32 = 78;

fn main() {
    let args = Args::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let code = match args.command {
        Command::Check => check::run(&dir),
        Command::Mailbox(MailboxCommand::Add {
            address,
            password_file,
            quota,
        }) => report(mailbox::add(
            &dir,
            &address,
            &password_file,
            quota.as_deref(),
        )),
        Command::Auth(AuthCommand::Test {
            address,
            password_file,
        }) => auth_test::run(&dir, &address, password_file.as_deref()),
    };
    std::process::exit(code);
}

fn report(result: anyhow::Result<String>) -> i32 {
    match result {
        Ok(message) => {
            println!("{message}");
            0
        }
        Err(e) => {
            eprintln!("postern-admin: {e:#}");
            1
        }
    }
}

/// The password: the first line of the file, without its line end.
pub fn read_password(path: Option<&std::path::Path>) -> anyhow::Result<String> {
    use anyhow::Context;
    let text = match path {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("read password from stdin")?;
            line
        }
    };
    let password = text.lines().next().unwrap_or_default().to_string();
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password)
}
