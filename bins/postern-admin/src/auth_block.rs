//! `auth blocked` and `auth unblock`: what postern-auth's failure throttle
//! delays or refuses now, and lifting it. The throttle lives in
//! postern-auth's memory, so these ask it over its socket, as root.

use std::path::Path;
use std::time::Duration;

use postern_auth_protocol::{Client, Reply, Request};
use postern_config::Settings;

fn client(dir: &Path) -> Result<Client, String> {
    let settings = Settings::load(dir).map_err(|e| e.to_string())?;
    Ok(Client::new(&settings.auth.socket, Duration::from_secs(30)))
}

/// Says why postern-auth could not be asked.
fn unreachable(why: &str) -> i32 {
    eprintln!("postern-admin: {why} (is postern-auth running? the throttle lives in its memory)");
    1
}

/// `auth blocked`: one line per address or account.
pub fn blocked(dir: &Path) -> i32 {
    let blocks = match client(dir).and_then(|mut c| c.blocked()) {
        Ok(blocks) => blocks,
        Err(why) => return unreachable(&why),
    };
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
            postern_log::dates::rfc5322_secs(block.until)
        );
    }
    0
}

/// `auth unblock KEY`: an IP address, or an account.
pub fn unblock(dir: &Path, key: &str) -> i32 {
    let request = Request::Unblock {
        key: key.to_string(),
    };
    match client(dir).and_then(|mut c| c.ask(&request)) {
        Ok(Reply::Unblocked(0)) => {
            println!("{key}: nothing was blocked");
            0
        }
        Ok(Reply::Unblocked(n)) => {
            println!("{key}: unblocked ({n} throttle entries forgotten)");
            0
        }
        Ok(other) => {
            eprintln!("postern-admin: postern-auth answered {other:?}");
            1
        }
        Err(why) => unreachable(&why),
    }
}
