//! Completing a local user's message and queueing it: the deliver mode,
//! and each message of `-bs`.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use postern_config::{Address, Masquerade, Settings};
use postern_queue_format::{Envelope, Notify, QueueDir, QueueId, Recipient, Ret};

use crate::args::Invocation;
use crate::message::{Message, normalize};
use crate::{EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_TEMPFAIL, EX_USAGE, fail};

/// Users whose `-f` is taken as it is: root, and the queue's own user.
const TRUSTED: &[&str] = &["root", "postern"];

/// Why a message was not queued: a sysexits code and the reason.
#[derive(Debug)]
pub struct Refusal {
    pub exit: i32,
    pub text: String,
    /// The queue's file system is full (ENOSPC, EDQUOT): SMTP says 452.
    pub storage_full: bool,
}

fn refuse(exit: i32, text: impl Into<String>) -> Refusal {
    Refusal {
        exit,
        text: text.into(),
        storage_full: false,
    }
}

/// One message as the invoker hands it over.
pub struct Submission<'a> {
    /// `-f` or MAIL FROM; `None` for the invoker's own address.
    pub sender: Option<&'a str>,
    /// Addresses as given (bare names too), with their DSN parameters.
    pub recipients: Vec<Recipient>,
    /// `-N`: the NOTIFY of recipients taken from the header.
    pub notify: Option<Notify>,
    /// `-R`, `-V` or MAIL's RET and ENVID.
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// Recipients are also taken from To/Cc/Bcc, and Bcc is removed (`-t`).
    pub from_headers: bool,
    /// `-F`.
    pub full_name: Option<&'a str>,
    /// The message with LF line ends.
    pub data: &'a [u8],
}

/// The invoking user and the queue, for one or (under `-bs`) many messages.
pub struct Submitter {
    pub settings: Settings,
    uid: u32,
    user: Option<postern_privilege::SystemUser>,
    login: String,
    own_address: String,
    /// What the user's own address goes out as (the masquerade map).
    outward_address: String,
}

impl Submitter {
    pub fn new(dir: &Path) -> Result<Submitter, Refusal> {
        // Mail from cron and scripts must not be lost to a typo in a key
        // that queueing does not need: a bad line is left out, with a
        // word to the caller. A file that cannot be read stops it, and so
        // does a bad line whose default would queue the message elsewhere.
        let (settings, errors) = Settings::load_salvaged_except(dir, &["queue_dir", "hostname"])
            .map_err(|e| refuse(EX_CONFIG, e.to_string()))?;
        for error in errors {
            eprintln!("sendmail: {error} (left out; queued with the rest)");
        }
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let user = postern_privilege::lookup_uid(uid);
        let login = user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_else(|| uid.to_string());
        let own_address = qualify(&login, &settings.hostname)
            .unwrap_or_else(|_| format!("{uid}@{}", settings.hostname));
        // A bad line is skipped (`postern-admin check` names it); a map that
        // cannot be read stops the submission rather than give the user's
        // real address away.
        let (masquerade, _) =
            Masquerade::load(dir).map_err(|e| refuse(EX_CONFIG, e.to_string()))?;
        let outward_address = Address::parse(&own_address)
            .ok()
            .and_then(|address| masquerade.lookup(&login, &address))
            .map(|(address, _)| address.to_string())
            .unwrap_or_else(|| own_address.clone());
        Ok(Submitter {
            settings,
            uid,
            user,
            login,
            own_address,
            outward_address,
        })
    }

    /// The largest message taken, or `u64::MAX` for no limit.
    pub fn limit(&self) -> u64 {
        match self.settings.max_message_size {
            0 => u64::MAX,
            n => n,
        }
    }

    /// A recipient as it goes into the envelope: a bare name is that user
    /// at this host.
    pub fn recipient(&self, text: &str) -> Result<String, String> {
        qualify(text, &self.settings.hostname)
    }

    /// Completes the message and queues it durably; the queue id once it
    /// is accepted.
    pub fn submit(&self, submission: Submission<'_>) -> Result<QueueId, Refusal> {
        if submission.data.len() as u64 > self.limit() {
            return Err(refuse(
                EX_CANTCREAT,
                format!("message larger than {} bytes", self.limit()),
            ));
        }
        let mut message = Message::parse(submission.data);
        let mut recipients = submission.recipients;
        if submission.from_headers {
            recipients.extend(
                message
                    .header_recipients()
                    .into_iter()
                    .map(|address| Recipient {
                        address,
                        notify: submission.notify,
                        orcpt: None,
                    }),
            );
            message.remove("Bcc");
        }
        let mut addresses: Vec<Recipient> = Vec::new();
        for recipient in recipients {
            match self.recipient(&recipient.address) {
                Ok(address) if !addresses.iter().any(|r| r.address == address) => {
                    addresses.push(Recipient {
                        address,
                        ..recipient
                    })
                }
                Ok(_) => {}
                Err(why) => {
                    return Err(refuse(
                        EX_DATAERR,
                        format!("bad recipient address {:?}: {why}", recipient.address),
                    ));
                }
            }
        }
        if addresses.is_empty() {
            return Err(refuse(EX_DATAERR, "no recipients"));
        }

        let settings = &self.settings;
        let own_address = &self.own_address;
        let outward = &self.outward_address;
        let trusted = TRUSTED.contains(&self.login.as_str());
        let sender = match submission.sender {
            None => outward.clone(),
            Some("") | Some("<>") => String::new(),
            Some(given) => qualify(given, &settings.hostname).map_err(|why| {
                refuse(EX_DATAERR, format!("bad sender address {given:?}: {why}"))
            })?,
        };
        // The user's own address, given with -f, goes out masqueraded too.
        let sender = if sender.eq_ignore_ascii_case(own_address) {
            outward.clone()
        } else {
            sender
        };

        let now = SystemTime::now();
        let arrival = postern_config::unix_seconds(now);
        let envelope = Envelope {
            arrival,
            sender: sender.clone(),
            recipients: addresses,
            ret: submission.ret,
            envid: submission.envid,
            report: None,
        };
        let queue = QueueDir::at(&settings.queue_dir);
        let cannot = |e: std::io::Error| {
            let text = format!(
                "cannot queue the message in {}: {e}",
                settings.queue_dir.display()
            );
            Refusal {
                storage_full: postern_queue_format::status::storage_full(&e),
                ..refuse(EX_TEMPFAIL, text)
            }
        };
        let mut writer = queue.begin(&envelope).map_err(cannot)?;
        let id = writer.id().clone();
        let date = postern_log::dates::rfc5322(now);

        // The submission's own trace, first, as every MTA adds its Received.
        let mut added = vec![format!(
            "Received: by {} (Postern, from userid {})\n\tid {id}; {date}\n",
            settings.hostname, self.uid
        )];
        if sender != *own_address && sender != *outward && !trusted {
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
        if outward != own_address {
            message.replace_address("From", own_address, outward);
        }
        if !message.has("From") {
            let name = submission.full_name.map(str::to_string).or_else(|| {
                self.user
                    .as_ref()
                    .map(|u| u.full_name.clone())
                    .filter(|n| !n.is_empty())
            });
            message.fields.push(match name {
                Some(name) => format!("From: {} <{outward}>\n", display_name(&name)),
                None => format!("From: {outward}\n"),
            });
        }
        // A writer dropped on error removes its tmp/ file: nothing
        // half-written stays.
        writer.write(&message.to_bytes(&added)).map_err(cannot)?;
        let id = writer.commit().map_err(cannot)?;
        queue.poke(&id);
        Ok(id)
    }
}

/// Deliver mode: the message on stdin, recipients from the command line.
pub fn run(dir: &Path, invocation: &Invocation) -> i32 {
    let submitter = Submitter::new(dir).unwrap_or_else(|r| fail(r.exit, &r.text));
    let limit = submitter.limit();
    let mut data = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)
    {
        fail(EX_TEMPFAIL, &format!("read the message: {e}"));
    }
    let data = normalize(data, invocation.ignore_dots);
    let notify = invocation.notify.as_deref().map(|text| {
        Notify::parse(text).unwrap_or_else(|| {
            fail(
                EX_USAGE,
                &format!("-N {text}: expected never, or success, failure and delay"),
            )
        })
    });
    let ret = invocation
        .ret
        .as_deref()
        .map(|text| match text.to_ascii_lowercase().as_str() {
            "full" => Ret::Full,
            "hdrs" => Ret::Headers,
            _ => fail(EX_USAGE, &format!("-R {text}: expected full or hdrs")),
        });
    let submission = Submission {
        sender: invocation.sender.as_deref(),
        recipients: invocation
            .recipients
            .iter()
            .map(|address| Recipient {
                address: address.clone(),
                notify,
                orcpt: None,
            })
            .collect(),
        notify,
        ret,
        envid: invocation.envid.clone(),
        from_headers: invocation.from_headers,
        full_name: invocation.full_name.as_deref(),
        data: &data,
    };
    match submitter.submit(submission) {
        Ok(_) => 0,
        Err(refusal) => fail(refusal.exit, &refusal.text),
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
