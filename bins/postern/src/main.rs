//! postern: `postern up` makes (on first start) and runs a whole Postern
//! suite from one configuration, in the foreground, until SIGINT or
//! SIGTERM.
//!
//! Runs as root on a real host, or as the invoking user in a sandbox. It is
//! one of the few processes that stay root, so it reads neither mail nor
//! network input: it creates directories and config files, starts the
//! suite's programs under their own uids and relays their log lines.
//!
//! `postern reload` (SIGUSR1; SIGHUP too when not on a terminal, as from
//! `systemctl reload postern`) checks the
//! configuration and, if it loads and postern.toml changed, restarts the
//! programs with it; if it does not load, everything keeps running as it
//! was.
//!
//! Exit codes: 0 after a clean stop, 1 when the sandbox or configuration
//! cannot be set up (or, for reload, no suite runs), 2 bad usage.

mod placement;
mod reload;
mod sandbox;
mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use postern_config::{Config, Settings};

use crate::sandbox::{DEMO_ADDRESS, Sandbox};
use crate::supervisor::{ChildSpec, Reload, say, supervise};

#[derive(Parser, Debug)]
#[command(name = "postern", version, about = "Run the Postern mail suite")]
struct Args {
    /// Configuration directory of a real host [default: $POSTERN_CONFIG or /etc/postern]
    #[arg(long, value_name = "DIR", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the suite in the foreground; without --config, in a sandbox
    Up {
        /// Sandbox directory, made on first start
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Added to every port of a sandbox made now (2525 + N, ...), so
        /// that sandboxes can run side by side
        #[arg(long, value_name = "N", default_value_t = 0)]
        port_offset: u16,
    },
    /// Make the sandbox that `up` would start, and stop there: its
    /// configuration can be changed before the first start
    Init {
        /// Sandbox directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Added to every port of the sandbox (2525 + N, ...)
        #[arg(long, value_name = "N", default_value_t = 0)]
        port_offset: u16,
    },
    /// Make the running suite take up its changed configuration
    Reload {
        /// Sandbox directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn request_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

fn main() {
    let args = Args::parse();
    let result = match args.command {
        Command::Up { dir, port_offset } => match (dir, &args.config) {
            (None, Some(config)) => up_real(config),
            (dir, _) => up_sandbox(&dir.unwrap_or_else(|| PathBuf::from("run")), port_offset),
        },
        Command::Init { dir, port_offset } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("run"));
            init_sandbox(&dir, port_offset)
        }
        Command::Reload { dir } => {
            let config = match (dir, &args.config) {
                (None, Some(config)) => config.clone(),
                (dir, _) => dir.unwrap_or_else(|| PathBuf::from("run")).join("etc"),
            };
            reload::signal(&config).map(|said| println!("{said}"))
        }
    };
    if let Err(e) = result {
        eprintln!("postern: {e:#}");
        std::process::exit(1);
    }
}

fn install_signal_handlers() -> anyhow::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
    }
    let reload = SigAction::new(
        SigHandler::Handler(request_reload),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: as above.
    unsafe { sigaction(Signal::SIGUSR1, &reload) }?;
    // SIGHUP is a service's reload (systemd's ExecReload sends it), but on
    // a terminal it says the terminal went away (`make run` in a closed
    // window), which stops the suite as it always did.
    // SAFETY: isatty reads a descriptor's state.
    let on_terminal = unsafe { libc::isatty(0) } == 1;
    let hangup = if on_terminal { &action } else { &reload };
    // SAFETY: as above.
    unsafe { sigaction(Signal::SIGHUP, hangup) }?;
    Ok(())
}

/// Runs the suite of `config` until stopped, taking up a changed
/// configuration on reload, with its pid where `postern reload` finds it.
fn run_suite(dir: &Path, config: &Config) {
    let pid_file = reload::PidFile::write(&config.settings);
    let mut loaded = reload::Loaded::now(dir);
    supervise(
        suite(dir, &config.settings),
        &STOP,
        &RELOAD,
        || match loaded.changed() {
            Some(config) => Reload::Restart(suite(dir, &config.settings)),
            None => Reload::Nothing,
        },
    );
    drop(pid_file);
}

fn up_sandbox(dir: &Path, port_offset: u16) -> anyhow::Result<()> {
    install_signal_handlers()?;
    let sandbox = sandbox::open_or_create(dir, port_offset)?;
    // Load it as every program will, so a broken sandbox shows now.
    let config = Config::load(&sandbox.etc())?;
    print_banner(&sandbox);
    run_suite(&sandbox.etc(), &config);
    say("stopped");
    Ok(())
}

fn init_sandbox(dir: &Path, port_offset: u16) -> anyhow::Result<()> {
    let sandbox = sandbox::open_or_create(dir, port_offset)?;
    Config::load(&sandbox.etc())?;
    println!(
        "postern: the sandbox in {} is ready; `postern up --dir {}` starts it",
        sandbox.dir.display(),
        sandbox.dir.display()
    );
    Ok(())
}

fn up_real(config: &Path) -> anyhow::Result<()> {
    install_signal_handlers()?;
    let loaded = match Config::load(config) {
        Ok(loaded) => loaded,
        Err(e) => {
            // Every bad line, so that one start shows all there is to fix.
            if let postern_config::ConfigError::Settings(errors) = &e {
                for error in errors {
                    say(&format!("error: {error}"));
                }
            }
            return Err(e.into());
        }
    };
    say(&format!("running the suite of {}", config.display()));
    run_suite(config, &loaded);
    say("stopped");
    Ok(())
}

/// The long-running programs of the suite. postern-lspawn stays root and
/// starts postern-queue as the queue's user itself (they talk over pipes);
/// postern-auth and postern-smtpd start as root, bind, and drop to their
/// own users; the POP3 and IMAP listeners fork a process per session.
fn suite(config: &Path, settings: &Settings) -> Vec<ChildSpec> {
    let spec = |name: &str| ChildSpec {
        name: name.to_string(),
        program: sandbox::sibling_program(name).unwrap_or_else(|_| PathBuf::from(name)),
        args: vec!["--config".into(), config.as_os_str().to_owned()],
        user: None,
    };
    let mut specs: Vec<ChildSpec> = postern_config::services::programs()
        .iter()
        .filter(|program| program.under_postern_up())
        .map(|program| spec(program.name))
        .collect();
    // Each further POP3 server is a process of its own, with its own
    // limits.
    for instance in settings.pop3d.instances.keys() {
        let mut pop3d = spec("postern-pop3d");
        pop3d.name = format!("postern-pop3d --instance {instance}");
        pop3d.args.extend(["--instance".into(), instance.into()]);
        specs.push(pop3d);
    }
    specs
}

fn print_banner(sandbox: &Sandbox) {
    let etc = sandbox.etc();
    let local = sandbox::sibling_program("postern-local")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "postern-local".into());
    let mut text = String::new();
    text.push_str(&format!(
        "Postern sandbox in {} ({})\n",
        sandbox.dir.display(),
        if sandbox.created {
            "created now"
        } else {
            "existing"
        }
    ));
    for why in &sandbox.placement {
        text.push_str(&format!("  note      {why}\n"));
    }
    text.push_str(&format!("  mailbox   {DEMO_ADDRESS}\n"));
    text.push_str(&format!(
        "  password  {}   (kept in {})\n",
        sandbox.password,
        etc.join("demo.password").display()
    ));
    text.push_str(&format!(
        "  Maildir   {}\n",
        sandbox
            .dir
            .join("mail")
            .join(sandbox::DEMO_DOMAIN)
            .join("demo")
            .join("Maildir")
            .display()
    ));
    text.push_str(&format!(
        "  deliver   {local} --config {} -f you@example.org {DEMO_ADDRESS} < message.eml\n",
        etc.display()
    ));
    text.push_str(&format!(
        "  submit    {} --config {} -t < message.eml   (the queue delivers it)\n",
        local.replace("postern-local", "postern-inject"),
        etc.display()
    ));
    text.push_str(&format!(
        "  check     {} --config {} check\n",
        local.replace("postern-local", "postern-admin"),
        etc.display()
    ));
    let served: Vec<&str> = postern_config::services::programs()
        .iter()
        .filter(|program| program.under_postern_up())
        .flat_map(|program| program.ports.iter().map(|port| port.service))
        .collect();
    let port_list = |serving: bool| -> Vec<String> {
        sandbox
            .ports
            .iter()
            .filter(|(name, _)| served.contains(&name.as_str()) == serving)
            .map(|(name, port)| format!("{name} 127.0.0.1:{port}"))
            .collect()
    };
    let smtp = sandbox
        .ports
        .iter()
        .find(|(name, _)| name == "SMTP")
        .map_or(0, |(_, port)| *port);
    text.push_str(&format!(
        "  serving   {}   (swaks --server 127.0.0.1:{smtp} --to {DEMO_ADDRESS})\n",
        port_list(true).join(", ")
    ));
    let submission = sandbox
        .ports
        .iter()
        .find(|(name, _)| name == "submission")
        .map_or(0, |(_, port)| *port);
    text.push_str(&format!(
        "  send      swaks --server 127.0.0.1:{submission} --tls --auth PLAIN --auth-user {DEMO_ADDRESS} --auth-password PASSWORD --to {DEMO_ADDRESS}\n\
         \x20           (TLS with the self-signed certificate in {}/tls)\n\
         \x20 note      mail to other hosts: {}\n",
        sandbox.dir.display(),
        postern_routing::REMOTE_DELIVERY
    ));
    let imap = |service: &str| {
        sandbox
            .ports
            .iter()
            .find(|(name, _)| name == service)
            .map_or(0, |(_, port)| *port)
    };
    text.push_str(&format!(
        "  read      mutt -f 'imap://{}@127.0.0.1:{}/INBOX'   (IMAPS on {}, POP3 as above)\n",
        DEMO_ADDRESS.replace('@', "%40"),
        imap("IMAP"),
        imap("IMAPS"),
    ));
    let waiting = port_list(false);
    if !waiting.is_empty() {
        text.push_str(&format!(
            "  not served yet (each starts here when it lands): {}\n",
            waiting.join(", ")
        ));
    }
    if postern_privilege::is_root() {
        let ids: Vec<String> = sandbox
            .ids
            .iter()
            .map(|(role, uid, _)| format!("{role}={uid}"))
            .collect();
        text.push_str(&format!("  uids      {}\n", ids.join(" ")));
    }
    text.push_str("Running in the foreground; Ctrl-C stops.\n");
    print!("{text}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
