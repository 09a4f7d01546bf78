//! postern-admin: the admin's one tool for Postern's configuration.
//!
//! Runs as root on a real host (the accounts file is readable by root
//! only), as the sandbox's user under `postern up`. Reads and rewrites the
//! maps in the configuration directory, each change atomic (temporary file,
//! fsync, rename, under the map's lock) and keeping every line it does not
//! change; creates and removes Maildirs as their owner, never as root.
//! Trusts its invoker, but never takes a password from argv, where every
//! user could read it in `ps`.
//!
//! Exit codes: 0 done, 1 refused (the change, a check that found errors, a
//! password that did not match), 2 bad usage, 78 the configuration cannot
//! be loaded.

mod alias;
mod auth_block;
mod auth_test;
mod check;
mod dkim;
mod domain;
mod explain;
mod mailbox;
mod maps;
mod masquerade;
mod password;
mod route;

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
    /// Show how an address resolves, step by step, with each rule's file:line
    Explain {
        address: String,
        /// Also say whether a client at IP may send to ADDRESS over SMTP,
        /// and by which rule
        #[arg(long, value_name = "IP", conflicts_with = "route")]
        relay: Option<std::net::IpAddr>,
        /// Show where mail for ADDRESS goes from here: the route, the next
        /// hop's hosts and addresses in DNS, the TLS it needs and why
        #[arg(long)]
        route: bool,
    },
    /// Local and virtual domains
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Virtual mailboxes
    #[command(subcommand)]
    Mailbox(MailboxCommand),
    /// Aliases: user@domain, bare names (local domains) and @domain
    #[command(subcommand)]
    Alias(AliasCommand),
    /// The catch-all of a virtual domain
    #[command(subcommand)]
    Catchall(CatchallCommand),
    /// Forwarding of an address elsewhere
    #[command(subcommand)]
    Forward(ForwardCommand),
    /// What the mail a local user submits goes out as
    #[command(subcommand)]
    Masquerade(MasqueradeCommand),
    /// Credentials
    #[command(subcommand)]
    Auth(AuthCommand),
    /// DKIM keys of the domains mail is sent from
    #[command(subcommand)]
    Dkim(DkimCommand),
}

#[derive(Subcommand, Debug)]
enum DkimCommand {
    /// Make a key for DOMAIN, where postern-remote signs with it, and print
    /// the DNS TXT record to publish
    Keygen {
        domain: String,
        /// The selector: the key's name in DNS (SELECTOR._domainkey.DOMAIN)
        #[arg(long, default_value = "postern")]
        selector: String,
        /// rsa (every receiver checks it) or ed25519 (RFC 8463; publish one
        /// of each, under two selectors, to offer both)
        #[arg(long, default_value = "rsa")]
        algorithm: String,
        /// The RSA key's size
        #[arg(long, default_value_t = 2048)]
        bits: u32,
    },
}

#[derive(Subcommand, Debug)]
enum MasqueradeCommand {
    /// Rewrite KEY (a login name, an address, or @domain) to TARGET (an
    /// address, or @domain for a @domain key) in submitted mail's sender
    /// and From:
    Set { key: String, target: String },
    /// Stop rewriting KEY
    Del { key: String },
    /// Show the rules
    List,
}

#[derive(Subcommand, Debug)]
enum DomainCommand {
    /// Add a domain (virtual unless --local)
    Add {
        domain: String,
        /// Addresses are system users
        #[arg(long)]
        local: bool,
    },
    /// Remove a domain that no mailbox or alias uses any more
    Del { domain: String },
    /// List the domains, the host's own name included
    List,
}

#[derive(Subcommand, Debug)]
enum MailboxCommand {
    /// Add a virtual mailbox and create its Maildir
    Add {
        address: String,
        /// File whose first line is the password [default: prompt, or stdin]
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Quota, like 500M or 2G
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
    /// Remove a mailbox; its Maildir stays unless --purge
    Del {
        address: String,
        #[arg(long)]
        purge: bool,
    },
    /// List mailboxes with their quota and Maildir
    List { domain: Option<String> },
    /// Set a new password
    Passwd {
        address: String,
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Set the quota (a size like 500M, or "none")
    Quota { address: String, size: String },
    /// Set per-account rights and limits
    Rights {
        address: String,
        /// May create, rename and delete IMAP folders
        #[arg(long, value_parser = ["yes", "no"])]
        imap_folders: Option<String>,
        /// Which folders POP3 shows
        #[arg(long, value_parser = ["inbox", "all"])]
        pop3_folders: Option<String>,
        /// POP3 by APOP only, or by any login
        #[arg(long, value_parser = ["apop", "any"])]
        pop3_login: Option<String>,
        /// POP3 leaves out invalid Message-ID fields
        #[arg(long, value_parser = ["strip", "keep"])]
        pop3_message_id: Option<String>,
        /// Largest message accepted (a size, or "none" for the default)
        #[arg(long, value_name = "SIZE")]
        max_message_size: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AliasCommand {
    /// Add an alias, or more targets to one
    Add {
        key: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove an alias, or only the targets named
    Del { key: String, targets: Vec<String> },
    /// List aliases, of one domain or all
    List { domain: Option<String> },
}

#[derive(Subcommand, Debug)]
enum CatchallCommand {
    /// Send mail for every unknown address of DOMAIN to the targets
    Set {
        domain: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove the catch-all: unknown addresses bounce again
    Del { domain: String },
}

#[derive(Subcommand, Debug)]
enum ForwardCommand {
    /// Forward mail for ADDRESS to the targets
    Set {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
        /// Also keep a copy in ADDRESS's own mailbox
        #[arg(long)]
        keep_copy: bool,
    },
    /// Stop forwarding ADDRESS
    Del { address: String },
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Check a password against an account, as a login would
    Test {
        address: String,
        /// File whose first line is the password [default: prompt, or stdin]
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Show the addresses and accounts whose logins the failure throttle
    /// delays or refuses now
    Blocked,
    /// Lift the failure throttle from an IP address or an account
    Unblock {
        /// An IP address, or an account (user@domain, or a system user)
        key: String,
    },
}

pub const EXIT_CONFIG: i32 = 78;

fn main() {
    let args = Args::parse();
    let dir = postern_config::config_dir(args.config.as_deref());
    let dir = dir.as_path();
    let result = match args.command {
        Command::Check => std::process::exit(check::run(dir)),
        Command::Auth(AuthCommand::Test {
            address,
            password_file,
        }) => std::process::exit(auth_test::run(dir, &address, password_file.as_deref())),
        Command::Auth(AuthCommand::Blocked) => std::process::exit(auth_block::blocked(dir)),
        Command::Auth(AuthCommand::Unblock { key }) => {
            std::process::exit(auth_block::unblock(dir, &key))
        }
        Command::Explain {
            address,
            relay,
            route,
        } => match (relay, route) {
            (Some(ip), _) => explain::relay(dir, ip, &address),
            (None, true) => route::run(dir, &address),
            (None, false) => explain::run(dir, &address),
        },
        Command::Domain(DomainCommand::Add { domain, local }) => domain::add(dir, &domain, local),
        Command::Domain(DomainCommand::Del { domain }) => domain::del(dir, &domain),
        Command::Domain(DomainCommand::List) => domain::list(dir),
        Command::Mailbox(MailboxCommand::Add {
            address,
            password_file,
            quota,
        }) => mailbox::add(dir, &address, password_file.as_deref(), quota.as_deref()),
        Command::Mailbox(MailboxCommand::Del { address, purge }) => {
            mailbox::del(dir, &address, purge)
        }
        Command::Mailbox(MailboxCommand::List { domain }) => mailbox::list(dir, domain.as_deref()),
        Command::Mailbox(MailboxCommand::Passwd {
            address,
            password_file,
        }) => mailbox::passwd(dir, &address, password_file.as_deref()),
        Command::Mailbox(MailboxCommand::Quota { address, size }) => {
            mailbox::quota(dir, &address, &size)
        }
        Command::Mailbox(MailboxCommand::Rights {
            address,
            imap_folders,
            pop3_folders,
            pop3_login,
            pop3_message_id,
            max_message_size,
        }) => mailbox::rights(
            dir,
            &address,
            &mailbox::Rights {
                imap_folders: imap_folders.as_deref(),
                pop3_folders: pop3_folders.as_deref(),
                pop3_login: pop3_login.as_deref(),
                pop3_message_id: pop3_message_id.as_deref(),
                max_message_size: max_message_size.as_deref(),
            },
        ),
        Command::Alias(AliasCommand::Add { key, targets }) => alias::add(dir, &key, &targets),
        Command::Alias(AliasCommand::Del { key, targets }) => alias::del(dir, &key, &targets),
        Command::Alias(AliasCommand::List { domain }) => alias::list(dir, domain.as_deref()),
        Command::Catchall(CatchallCommand::Set { domain, targets }) => {
            alias::catchall_set(dir, &domain, &targets)
        }
        Command::Catchall(CatchallCommand::Del { domain }) => {
            alias::del(dir, &format!("@{domain}"), &[])
        }
        Command::Forward(ForwardCommand::Set {
            address,
            targets,
            keep_copy,
        }) => alias::forward_set(dir, &address, &targets, keep_copy),
        Command::Forward(ForwardCommand::Del { address }) => alias::del(dir, &address, &[]),
        Command::Masquerade(MasqueradeCommand::Set { key, target }) => {
            masquerade::set(dir, &key, &target)
        }
        Command::Masquerade(MasqueradeCommand::Del { key }) => masquerade::del(dir, &key),
        Command::Masquerade(MasqueradeCommand::List) => masquerade::list(dir),
        Command::Dkim(DkimCommand::Keygen {
            domain,
            selector,
            algorithm,
            bits,
        }) => dkim::keygen(
            dir,
            &dkim::Keygen {
                domain: &domain,
                selector: &selector,
                algorithm: &algorithm,
                bits,
            },
        ),
    };
    match result {
        Ok(message) => {
            if !message.is_empty() {
                println!("{message}");
            }
        }
        Err(e) => {
            eprintln!("postern-admin: {e:#}");
            let config_error = e.downcast_ref::<postern_config::ConfigError>().is_some();
            std::process::exit(if config_error { EXIT_CONFIG } else { 1 });
        }
    }
}
