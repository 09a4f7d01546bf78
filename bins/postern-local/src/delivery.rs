//! One message on its way to one recipient's destination, in the
//! owner's process: into a Maildir, appended to an mbox file, or piped to
//! a command; and the outcome of each such job.

use std::path::Path;

use postern_config::{QuotaFailure, Settings};
use postern_maildir::{DeliverError, DeliveryName, Maildir, QuotaLimits, UniqueNames, deliver};

use crate::plan::Request;
use crate::status::Status;

/// The outcome of one job, with the file written.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    pub path: Option<String>,
    /// Addresses to send the message on to, through the queue: queued by
    /// the parent once the recipient's other deliveries are done.
    pub forward: Vec<String>,
}

pub fn failed(status: Status) -> Outcome {
    Outcome {
        status,
        path: None,
        forward: Vec::new(),
    }
}

/// One message on its way to one recipient's destinations.
pub struct Delivery<'a> {
    pub settings: &'a Settings,
    pub names: &'a UniqueNames,
    pub request: &'a Request,
    /// The address that reached the destination, for `Delivered-To:`.
    pub to: &'a str,
    pub headers: Vec<u8>,
    pub message: &'a [u8],
}

impl Delivery<'_> {
    /// Appends to the mbox file at `path`.
    pub fn to_mbox(&self, path: &Path) -> Status {
        match postern_maildir::mbox::append(
            path,
            &self.request.sender,
            &[&self.headers, self.message],
        ) {
            Ok(()) => Status::delivered(format!("appended to {}", path.display())),
            Err(e) => Status::temporary(format!("append to {}: {e}", path.display())),
        }
    }

    /// Runs `command` with the message on stdin, in `home`, as `user`
    /// (which this process already is).
    pub fn to_command(&self, command: &str, home: &Path, user: &str) -> Status {
        let context = crate::pipe::PipeContext {
            home,
            user,
            sender: &self.request.sender,
            recipient: self.to,
            time_limit: std::time::Duration::from_secs(self.settings.command_time_limit),
        };
        crate::pipe::run(command, &context, &[&self.headers, self.message])
    }

    /// Into the Maildir at `path` (made if missing), under `limits`.
    pub fn to_maildir(&self, path: &Path, limits: QuotaLimits) -> Outcome {
        let maildir = Maildir::at(path);
        if !maildir.exists()
            && let Err(e) = Maildir::create(path)
        {
            return failed(Status::temporary(format!("create {}: {e}", path.display())));
        }
        let name = match &self.request.queue {
            Some(queue) => DeliveryName::Queued {
                arrival: queue.arrival,
                queue_id: &queue.id,
                recipient: self.to,
                host: &self.settings.hostname,
                retry: queue.retry,
            },
            None => DeliveryName::Unique(self.names),
        };
        let quota = (!limits.is_unlimited()).then_some((limits, self.names));
        match deliver(&maildir, &[&self.headers, self.message], name, quota) {
            Ok(delivered) => Outcome {
                status: Status::delivered(if delivered.already_there {
                    "already delivered to maildir"
                } else {
                    "delivered to maildir"
                }),
                path: Some(delivered.path.display().to_string()),
                forward: Vec::new(),
            },
            Err(error @ DeliverError::OverQuota { .. }) => {
                let code = match self.settings.quota_exceeded {
                    QuotaFailure::Temporary => "4.2.2",
                    QuotaFailure::Permanent => "5.2.2",
                };
                failed(Status::new(code, error.to_string()))
            }
            Err(error @ DeliverError::LargerThanQuota { .. }) => {
                failed(Status::new("5.2.2", error.to_string()))
            }
            Err(error) if error.is_disk_full() => failed(Status::new("4.3.1", error.to_string())),
            Err(error) => failed(Status::temporary(error.to_string())),
        }
    }
}
