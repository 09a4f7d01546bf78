//! `mailq` / `-bp`: the queue's listing (postern-queue-format's `list`).

use std::path::Path;

use postern_config::Settings;
use postern_queue_format::QueueDir;

use crate::{EX_CONFIG, EX_TEMPFAIL, fail};

pub fn run(dir: &Path) -> i32 {
    let settings = match Settings::load_salvaged(dir) {
        Ok((settings, errors)) => {
            for error in errors {
                eprintln!("mailq: {error} (left out)");
            }
            settings
        }
        Err(e) => fail(EX_CONFIG, &e.to_string()),
    };
    let queue = QueueDir::at(&settings.queue_dir);
    match postern_queue_format::list(&queue, postern_log::dates::rfc5322_secs) {
        Ok(listing) => {
            print!("{listing}");
            0
        }
        Err(e) => fail(
            EX_TEMPFAIL,
            &format!("read {}: {e}", settings.queue_dir.display()),
        ),
    }
}
