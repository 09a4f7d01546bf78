//! postern-inject (also `sendmail` and `mailq`): the only door into the
//! queue for local users, for mutt, alpine, cron and scripts.
//!
//! Installed setgid `postern`, so that it can write the queue's `tmp/` and
//! `queue/`, and nothing else: it reads `postern.toml` (never the accounts
//! file) and the message on stdin, adds the header fields a local user's
//! message lacks, writes one queue file, makes it durable, and only then
//! exits 0. It distrusts its invoker: the envelope sender of an ordinary
//! user is theirs (another `-f` is kept, with an `X-Authenticated-Sender:`
//! naming the user), and another configuration directory is accepted only
//! from root or when `/etc/postern` lists it (as Postfix's postdrop does).
//!
//! Exit codes (sysexits): 0 queued; 64 bad usage; 65 bad address or no
//! recipients; 69 unsupported; 73 message too big; 75 the queue cannot
//! take it now (disk full, ...); 78 configuration.

mod addresses;
mod args;
mod inject;
mod mailq;
mod message;
mod smtp;

use std::path::{Path, PathBuf};

use args::Mode;

pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_UNAVAILABLE: i32 = 69;
pub const EX_CANTCREAT: i32 = 73;
pub const EX_TEMPFAIL: i32 = 75;
pub const EX_CONFIG: i32 = 78;

fn main() {
    let mut argv = std::env::args();
    let name = argv
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(a)
        })
        .unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let invocation = match args::parse(&name, &rest) {
        Ok(invocation) => invocation,
        Err(args::UsageError(why)) => fail(EX_USAGE, &why),
    };
    for ignored in &invocation.ignored {
        eprintln!("{name}: warning: {ignored} has no effect");
    }
    let code = match invocation.mode {
        Mode::Help => {
            println!(
                "usage: {name} [-t] [-i] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] [--config DIR] [--] recipient...\n       {name} -bp    (mailq: list the queue)"
            );
            0
        }
        Mode::Version => {
            println!("{name} (Postern) {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Mode::Smtp => smtp::run(&config_dir(&invocation)),
        Mode::ListQueue => mailq::run(&config_dir(&invocation)),
        Mode::Deliver => inject::run(&config_dir(&invocation), &invocation),
    };
    std::process::exit(code);
}

pub fn fail(code: i32, why: &str) -> ! {
    eprintln!("postern-inject: {why}");
    std::process::exit(code);
}

/// `--config`, `$POSTERN_CONFIG` or /etc/postern. Run set-id by someone
/// other than root, another directory must be listed in /etc/postern's
/// `alternate_config_directories`: else any user could point the program's
/// group rights at a queue of their choosing.
fn config_dir(invocation: &args::Invocation) -> PathBuf {
    let dir = postern_config::config_dir(invocation.config.as_deref().map(Path::new));
    let default = Path::new(postern_config::DEFAULT_CONFIG_DIR);
    // SAFETY: these calls read the process's ids and have no preconditions.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let set_id = uid != euid || gid != egid;
    if !set_id || uid == 0 || dir == default {
        return dir;
    }
    let allowed = postern_config::Settings::load_salvaged(default)
        .map(|(s, _)| s.alternate_config_directories.iter().any(|d| d == &dir))
        .unwrap_or(false);
    if !allowed {
        fail(
            EX_CONFIG,
            &format!(
                "{} is not listed in alternate_config_directories of {}",
                dir.display(),
                default.display()
            ),
        );
    }
    dir
}
