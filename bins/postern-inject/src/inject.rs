//! Deliver mode: read, complete and queue one message.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use postern_config::{Address, Settings};
use postern_queue_format::{Envelope, QueueDir, Recipient};

use crate::args::Invocation;
use crate::message::{Message, normalize};
use crate::{EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_TEMPFAIL, fail};

/// Users whose `-f` is taken as it is: root, and the queue's own user.
const TRUSTED: &[&str] = &["root", "postern"];

pub fn run(dir: &Path, invocation: &Invocation) -> i32 {
    let settings = match Settings::load(dir) {
        Ok(settings) => settings,
        Err(e) => fail(EX_CONFIG, &e.to_string()),
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let user = postern_privilege::lookup_uid(uid);
    let login = user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_else(|| uid.to_string());
    let own_address = qualify(&login, &settings.hostname)
        .unwrap_or_else(|_| format!("{uid}@{}", settings.hostname));

    let limit = if settings.max_message_size > 0 {
        settings.max_message_size
    } else {
        u64::MAX - 1
    };
    let mut data = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut data)
    {
        fail(EX_TEMPFAIL, &format!("read the message: {e}"));
    }
    if data.len() as u64 > limit {
        fail(EX_CANTCREAT, &format!("message larger than {limit} bytes"));
    }
    let mut message = Message::parse(&normalize(data, invocation.ignore_dots));

    let mut recipients: Vec<String> = invocation.recipients.clone();
    if invocation.from_headers {
        recipients.extend(message.header_recipients());
        message.remove("Bcc");
    }
    let mut addresses: Vec<String> = Vec::new();
    for recipient in &recipients {
        match qualify(recipient, &settings.hostname) {
            Ok(address) if !addresses.contains(&address) => addresses.push(address),
            Ok(_) => {}
            Err(why) => fail(
                EX_DATAERR,
                &format!("bad recipient address {recipient:?}: {why}"),
            ),
        }
    }
    if addresses.is_empty() {
        fail(EX_DATAERR, "no recipients");
    }

    let trusted = TRUSTED.contains(&login.as_str());
    let sender = match invocation.sender.as_deref() {
        None => own_address.clone(),
        Some("") | Some("<>") => String::new(),
        Some(given) => match qualify(given, &settings.hostname) {
            Ok(address) => address,
            Err(why) => fail(EX_DATAERR, &format!("bad sender address {given:?}: {why}")),
        },
    };

    let now = SystemTime::now();
    let arrival = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let envelope = Envelope {
        arrival,
        sender: sender.clone(),
        recipients: addresses
            .iter()
            .map(|a| Recipient { address: a.clone() })
            .collect(),
    };
    let queue = QueueDir::at(&settings.queue_dir);
    let mut writer = match queue.begin(&envelope) {
        Ok(writer) => writer,
        Err(e) => fail(
            EX_TEMPFAIL,
            &format!(
                "cannot queue the message in {}: {e}",
                settings.queue_dir.display()
            ),
        ),
    };
    let id = writer.id().clone();
    let date = postern_maildir::dates::rfc5322(now);

    // The submission's own trace, first, as every MTA adds its Received.
    let mut added = vec![format!(
        "Received: by {} (Postern, from userid {uid})\n\tid {id}; {date}\n",
        settings.hostname
    )];
    if sender != own_address && !trusted {
        // The sender was chosen, not proven: say who chose it.
        added.push(format!("X-Authenticated-Sender: {own_address}\n"));
    }
    if !message.has("Date") {
        message.fields.push(format!("Date: {date}\n"));
    }
    if !message.has("Message-ID") {
        message
            .fields
            .push(format!("Message-ID: <{id}@{}>\n", settings.hostname));
    }
    if !message.has("From") {
        let name = invocation.full_name.clone().or_else(|| {
            user.as_ref()
                .map(|u| u.full_name.clone())
                .filter(|n| !n.is_empty())
        });
        message.fields.push(match name {
            Some(name) => format!("From: {} <{own_address}>\n", display_name(&name)),
            None => format!("From: {own_address}\n"),
        });
    }
    let bytes = message.to_bytes(&added);
    if let Err(e) = writer.write(&bytes) {
        // Dropping the writer removes its tmp/ file: nothing half-written
        // stays (fail exits without running destructors).
        drop(writer);
        fail(EX_TEMPFAIL, &format!("cannot queue the message: {e}"));
    }
    match writer.commit() {
        Ok(_) => {
            queue.poke();
            0
        }
        Err(e) => fail(EX_TEMPFAIL, &format!("cannot queue the message: {e}")),
    }
}

/// A bare name is that user at this host.
fn qualify(text: &str, hostname: &str) -> Result<String, String> {
    let text = text.trim().trim_start_matches('<').trim_end_matches('>');
    let address = if text.contains('@') {
        Address::parse(text)
    } else {
        Address::new(text, hostname)
    };
    address.map(|a| a.to_string()).map_err(|e| e.to_string())
}

/// A display name, quoted when it holds RFC 5322 specials.
fn display_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().any(|c| "()<>[]:;@\\,.\"".contains(c)) {
        format!("\"{}\"", clean.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(display_name("Cron Daemon"), "Cron Daemon");
        assert_eq!(display_name("Doe, John"), "\"Doe, John\"");
        assert_eq!(qualify("root", "mx.test").unwrap(), "root@mx.test");
        assert_eq!(qualify("<A@X.test>", "mx.test").unwrap(), "a@x.test");
        assert!(qualify("a b", "mx.test").is_err());
    }
}
