//! `auth blocked` and `auth unblock`: what postern-auth's failure throttle
//! delays or refuses now, and lifting it. The throttle lives in
//! postern-auth's memory, so these ask it over its socket, as root.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use postern_auth_protocol::{Block, MAX_LINE, Reply, Request};
use postern_config::Settings;

/// Sends `request` and gives each answer line (without its LF) to `line`
/// until it returns false.
fn ask(dir: &Path, request: &Request, mut line: impl FnMut(&str) -> bool) -> Result<(), String> {
    let settings = Settings::load(dir).map_err(|e| e.to_string())?;
    let socket = &settings.auth.socket;
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "{}: {e} (is postern-auth running? the throttle lives in its memory)",
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let text = request.encode().ok_or("the key cannot be sent")?;
    stream
        .write_all(text.as_bytes())
        .map_err(|e| format!("postern-auth: {e}"))?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut answer = String::new();
        match reader.read_line(&mut answer) {
            Ok(0) | Err(_) => return Err("postern-auth closed the connection".into()),
            Ok(_) if answer.len() > MAX_LINE || !answer.ends_with('\n') => {
                return Err("postern-auth sent a bad line".into());
            }
            Ok(_) => {}
        }
        if !line(answer.trim_end()) {
            return Ok(());
        }
    }
}

/// `auth blocked`: one line per address or account, then how many.
pub fn blocked(dir: &Path) -> i32 {
    let mut blocks = Vec::new();
    let mut error = None;
    let result = ask(dir, &Request::Blocked, |line| {
        if let Some(block) = Block::parse(line) {
            blocks.push(block);
            return true;
        }
        if !line.starts_with("END ") {
            error = Some(line.to_string());
        }
        false
    });
    if let Err(e) = result {
        eprintln!("postern-admin: {e}");
        return 1;
    }
    if let Some(line) = error {
        eprintln!("postern-admin: postern-auth answered {line:?}");
        return 1;
    }
    if blocks.is_empty() {
        println!("nothing is blocked");
        return 0;
    }
    for block in &blocks {
        println!(
            "{:<10} {:<40} {:>3} failures  {} until {}",
            block.kind,
            block.key,
            block.failures,
            if block.refused { "refused" } else { "delayed" },
            postern_log::dates::rfc5322(UNIX_EPOCH + Duration::from_secs(block.until))
        );
    }
    0
}

/// `auth unblock KEY`: an IP address, or an account.
pub fn unblock(dir: &Path, key: &str) -> i32 {
    let mut reply = None;
    let request = Request::Unblock {
        key: key.to_string(),
    };
    if let Err(e) = ask(dir, &request, |line| {
        reply = Some(Reply::parse(line));
        false
    }) {
        eprintln!("postern-admin: {e}");
        return 1;
    }
    match reply {
        Some(Ok(Reply::Unblocked(0))) => {
            println!("{key}: nothing was blocked");
            0
        }
        Some(Ok(Reply::Unblocked(n))) => {
            println!("{key}: unblocked ({n} throttle entries forgotten)");
            0
        }
        other => {
            eprintln!("postern-admin: postern-auth answered {other:?}");
            1
        }
    }
}
