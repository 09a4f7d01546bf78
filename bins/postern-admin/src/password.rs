//! Where a new password comes from: a file, a prompt on the terminal (twice,
//! without echo), or the first line of stdin for scripts — never argv,
//! which every user of the host can read with `ps`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

pub fn read(file: Option<&Path>) -> anyhow::Result<String> {
    let password = match file {
        Some(path) => first_line(
            &std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
        ),
        None if std::io::stdin().is_terminal() => {
            let first = prompt("New password: ")?;
            let again = prompt("Again: ")?;
            if first != again {
                bail!("the passwords differ");
            }
            first
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("read the password from stdin")?;
            first_line(&line)
        }
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// Reads one line from the terminal with echo off, restoring it after.
fn prompt(text: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("read terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet).context("turn off echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSAFLUSH, &saved);
    eprintln!();
    read.context("read the password")?;
    Ok(first_line(&line))
}
