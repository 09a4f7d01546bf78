//! `-bs`: SMTP on stdin and stdout, as alpine submits mail. The protocol is
//! postern-smtp's session; each message is completed and queued exactly as
//! in deliver mode, with the same rules for the invoking user's sender.

use std::io::{Read, Write};
use std::path::Path;

use postern_queue_format::{Recipient, Ret, dsn};
use postern_smtp::{Action, Config, Reply, Session};

use crate::inject::{Refusal, Submission, Submitter};
use crate::{EX_CANTCREAT, EX_DATAERR, EX_TEMPFAIL};

pub fn run(dir: &Path) -> i32 {
    let mut stdout = std::io::stdout().lock();
    let submitter = match Submitter::new(dir) {
        Ok(submitter) => submitter,
        Err(refusal) => {
            // The client still hears why, in its own protocol.
            let mut out = Vec::new();
            Reply::new(421, "4.3.0", format!("postern-inject: {}", refusal.text)).encode(&mut out);
            let _ = stdout.write_all(&out);
            return refusal.exit;
        }
    };
    let mut config = Config::new(submitter.settings.hostname.clone());
    config.max_message_size = submitter.settings.max_message_size;
    let mut session = Session::new(config);
    let mut stdin = std::io::stdin().lock();
    let mut sender: Option<String> = None;
    let mut recipients: Vec<Recipient> = Vec::new();
    let mut dsn: (Option<Ret>, Option<String>) = (None, None);
    let mut data = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    if stdout
                        .write_all(&bytes)
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        return 0;
                    }
                }
                Action::CheckRecipient(rcpt) => {
                    let verdict = submitter.recipient(&rcpt.address).map(drop).map_err(|why| {
                        Reply::new(553, "5.1.3", format!("Error: bad recipient address: {why}"))
                    });
                    session.recipient_checked(verdict);
                }
                Action::Begin(envelope) => {
                    dsn = (dsn::ret(&envelope.mail), envelope.mail.env_id.clone());
                    sender = Some(envelope.mail.address);
                    recipients = envelope.recipients.iter().map(dsn::recipient).collect();
                    data.clear();
                }
                Action::Data(bytes) => data.extend_from_slice(&bytes),
                Action::End => {
                    let submission = Submission {
                        sender: sender.as_deref(),
                        recipients: std::mem::take(&mut recipients),
                        notify: None,
                        ret: dsn.0,
                        envid: dsn.1.take(),
                        from_headers: false,
                        full_name: None,
                        data: &data,
                    };
                    let result = submitter
                        .submit(submission)
                        .map(|id| id.to_string())
                        .map_err(|refusal| reply_for(&refusal));
                    session.message_stored(result);
                    data.clear();
                }
                Action::Abort => data.clear(),
                Action::Close => return 0,
                // Not offered on a local pipe: the config leaves both off,
                // so the session never asks.
                Action::StartTls | Action::CheckCredentials { .. } => return 70,
            }
        }
        match stdin.read(&mut buffer) {
            Ok(0) | Err(_) => return 0,
            Ok(n) => session.receive(&buffer[..n]),
        }
    }
}

/// The reply for a message the queue did not take.
fn reply_for(refusal: &Refusal) -> Reply {
    let text = format!("Error: {}", refusal.text);
    match refusal.exit {
        EX_TEMPFAIL if refusal.storage_full => Reply::new(452, "4.3.1", text),
        EX_TEMPFAIL => Reply::new(451, "4.3.0", text),
        EX_CANTCREAT => Reply::new(552, "5.3.4", text),
        EX_DATAERR => Reply::new(554, "5.6.0", text),
        _ => Reply::new(451, "4.3.0", text),
    }
}
