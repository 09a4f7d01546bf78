//! The commands, on a file, a clock and an output, so tests can drive them.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use postern_config::relayers::{self, Entry};

use crate::Command;

pub const DATA_ERROR: i32 = 65;
pub const TRY_AGAIN: i32 = 75;

pub struct Context {
    pub file: PathBuf,
    /// `expire` without minutes: the window that grants relaying.
    pub window: u64,
    pub now: u64,
}

pub fn run(context: &Context, command: Command, out: &mut impl Write) -> Result<(), (i32, String)> {
    let update = |change: &mut dyn FnMut(&mut Vec<Entry>)| {
        relayers::update(&context.file, |entries| change(entries)).map_err(|e| (TRY_AGAIN, e))
    };
    match command {
        Command::Add { ip, ticks } => {
            update(&mut |entries| relayers::set(entries, ip, ticks.unwrap_or(context.now)))
        }
        Command::Delete { ips } => {
            let ips: Vec<IpAddr> = ips.into_iter().map(relayers::canonical).collect();
            let absent = relayers::update(&context.file, |entries| {
                let absent: Vec<IpAddr> = ips
                    .iter()
                    .filter(|ip| !entries.iter().any(|(e, _)| e == *ip))
                    .copied()
                    .collect();
                entries.retain(|(ip, _)| !ips.contains(ip));
                absent
            })
            .map_err(|e| (TRY_AGAIN, e))?;
            // Said, not an error: the file is as asked either way.
            for ip in absent {
                eprintln!("postern-relay: {ip} had no entry");
            }
            Ok(())
        }
        Command::Expire { minutes } => {
            let age = minutes.map_or(context.window, |m| m.saturating_mul(60));
            let oldest = context.now.saturating_sub(age);
            update(&mut |entries| entries.retain(|(_, stamp)| *stamp >= oldest))
        }
        Command::List { minutes } => {
            let newest = context
                .now
                .saturating_sub(minutes.unwrap_or(0).saturating_mul(60));
            let entries: Vec<Entry> = read(context)?
                .into_iter()
                .filter(|(_, stamp)| *stamp <= newest)
                .collect();
            print(out, &entries)
        }
        Command::Dump => print(out, &read(context)?),
        Command::Load { file } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| (DATA_ERROR, format!("standard input: {e}")))?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| (DATA_ERROR, format!("{}: {e}", file.display())))?
            };
            let loaded = relayers::parse_strict(&text).map_err(|(line, why)| {
                (
                    DATA_ERROR,
                    format!("{}:{line}: {why}; nothing loaded", file.display()),
                )
            })?;
            let loaded = relayers::newest_per_ip(loaded);
            update(&mut |entries| *entries = loaded.clone())
        }
    }
}

/// The file's entries (one per IP), without taking the lock: writers
/// replace it whole.
fn read(context: &Context) -> Result<Vec<Entry>, (i32, String)> {
    match std::fs::read_to_string(&context.file) {
        Ok(text) => Ok(relayers::newest_per_ip(relayers::parse(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err((TRY_AGAIN, format!("{}: {e}", context.file.display()))),
    }
}

fn print(out: &mut impl Write, entries: &[Entry]) -> Result<(), (i32, String)> {
    out.write_all(relayers::format(entries).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| (TRY_AGAIN, format!("write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn context(dir: &tempfile::TempDir) -> Context {
        Context {
            file: dir.path().join("relayers"),
            window: 20 * 60,
            now: NOW,
        }
    }

    fn output(context: &Context, command: Command) -> String {
        let mut out = Vec::new();
        run(context, command, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn add(context: &Context, text: &str, ticks: Option<u64>) {
        output(
            context,
            Command::Add {
                ip: ip(text),
                ticks,
            },
        );
    }

    fn listed(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_command_on_ipv4_and_ipv6() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(&dir);
        add(&context, "192.0.2.1", None);
        add(&context, "2001:db8::1", Some(NOW - 3600));
        add(&context, "::ffff:192.0.2.2", Some(NOW - 600));
        add(&context, "198.51.100.7", Some(NOW + 3600));
        // An IP added again keeps one entry, with the new time.
        add(&context, "2001:0db8:0::1", Some(NOW - 7200));
        let dump = output(&context, Command::Dump);
        assert_eq!(
            listed(&dump),
            [
                format!("192.0.2.1 {NOW}"),
                format!("2001:db8::1 {}", NOW - 7200),
                format!("192.0.2.2 {}", NOW - 600),
                format!("198.51.100.7 {}", NOW + 3600),
            ]
        );
        assert!(dump.starts_with("# timestamp (UTC): "));
        // list: not the future; with minutes, only entries that old.
        assert_eq!(
            listed(&output(&context, Command::List { minutes: None })).len(),
            3
        );
        assert_eq!(
            listed(&output(&context, Command::List { minutes: Some(10) })),
            [
                format!("2001:db8::1 {}", NOW - 7200),
                format!("192.0.2.2 {}", NOW - 600)
            ]
        );
        // expire: the window by default, else the minutes given; the
        // future stays.
        output(&context, Command::Expire { minutes: Some(60) });
        assert_eq!(listed(&output(&context, Command::Dump)).len(), 3);
        output(&context, Command::Expire { minutes: None });
        assert_eq!(
            listed(&output(&context, Command::Dump)),
            [
                format!("192.0.2.1 {NOW}"),
                format!("192.0.2.2 {}", NOW - 600),
                format!("198.51.100.7 {}", NOW + 3600),
            ]
        );
        output(
            &context,
            Command::Delete {
                ips: vec![ip("192.0.2.1"), ip("::ffff:192.0.2.2"), ip("203.0.113.9")],
            },
        );
        assert_eq!(
            listed(&output(&context, Command::Dump)),
            [format!("198.51.100.7 {}", NOW + 3600)]
        );
    }

    #[test]
    fn dump_and_load_round_trip_and_a_bad_file_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(&dir);
        add(&context, "192.0.2.1", Some(NOW - 5));
        add(&context, "2001:db8::1", Some(NOW + 5));
        let dump = output(&context, Command::Dump);
        let saved = dir.path().join("saved");
        std::fs::write(
            &saved,
            format!("{dump}# edited by hand\n203.0.113.9 {NOW}\n"),
        )
        .unwrap();
        output(
            &context,
            Command::Delete {
                ips: vec![ip("192.0.2.1")],
            },
        );
        output(
            &context,
            Command::Load {
                file: saved.clone(),
            },
        );
        let reloaded = output(&context, Command::Dump);
        assert!(reloaded.starts_with(&dump), "{reloaded}");
        assert_eq!(listed(&reloaded).len(), 3);

        std::fs::write(&saved, "192.0.2.1 5\nnot an entry\n").unwrap();
        let mut out = Vec::new();
        let refused = run(&context, Command::Load { file: saved }, &mut out).unwrap_err();
        assert_eq!(refused.0, DATA_ERROR);
        assert!(
            refused.1.contains(":2: expected `IP TIMESTAMP`"),
            "{}",
            refused.1
        );
        assert_eq!(output(&context, Command::Dump), reloaded);
    }

    #[test]
    fn an_unwritable_place_is_a_temporary_failure() {
        let dir = tempfile::tempdir().unwrap();
        let context = Context {
            file: dir.path().join("missing").join("relayers"),
            window: 1200,
            now: NOW,
        };
        let mut out = Vec::new();
        let failed = run(
            &context,
            Command::Add {
                ip: ip("192.0.2.1"),
                ticks: None,
            },
            &mut out,
        );
        assert_eq!(failed.unwrap_err().0, TRY_AGAIN);
    }
}
