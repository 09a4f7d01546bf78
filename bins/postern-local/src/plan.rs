//! From requests to work: each recipient is resolved through the maps, and
//! each mailbox it reaches becomes a job for the user who owns it. Runs in
//! the parent (root when started by the queue) and reads no message byte.

use std::collections::BTreeMap;
use std::path::PathBuf;

use postern_config::{Account, Address, Config, MailOwner};
use postern_maildir::QuotaLimits;
use postern_routing::{Destination, Resolution, Special};

use crate::status::Status;

/// The queue entry a delivery comes from, which names its Maildir file.
#[derive(Clone, Debug)]
pub struct QueueRef {
    pub id: String,
    pub arrival: u64,
    pub retry: bool,
}

/// One message for one recipient. The message is `None` until it is known
/// that a mailbox needs it (a pipe on stdin is copied only then).
pub struct Request {
    pub message: Option<std::fs::File>,
    pub offset: u64,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    pub recipient: String,
    pub queue: Option<QueueRef>,
}

/// One mailbox to write.
#[derive(Clone, Debug)]
pub struct Job {
    pub request: usize,
    pub delivered_to: Address,
    pub maildir: PathBuf,
    pub limits: QuotaLimits,
    /// `None`: no size limit.
    pub max_size: Option<u64>,
    pub kind: JobKind,
}

/// What writing a job means.
#[derive(Clone, Debug)]
pub enum JobKind {
    /// The Maildir of the job.
    Mailbox,
    /// A system user's delivery, which follows their `~/.forward`.
    SystemUser(SystemUserJob),
    /// A command of the host's aliases or an `:include:` list.
    Pipe {
        command: String,
        home: PathBuf,
        user: String,
    },
    /// An mbox file of the host's aliases or an `:include:` list.
    Mbox(PathBuf),
}

/// A system user, as their delivery process needs them.
#[derive(Clone, Debug)]
pub struct SystemUserJob {
    pub name: String,
    pub home: PathBuf,
}

/// Who a job runs as.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// For initgroups, when the owner is a named user.
    pub name: Option<String>,
}

/// An outcome known before any mailbox is touched.
pub struct Early {
    pub request: usize,
    pub to: String,
    pub status: Status,
}

#[derive(Default)]
pub struct Plan {
    pub jobs: BTreeMap<Owner, Vec<Job>>,
    pub early: Vec<Early>,
    /// Addresses outside the host that a request's aliases lead to, by
    /// request: forwarded through the queue.
    pub forwards: BTreeMap<usize, Vec<String>>,
}

pub fn plan(config: &Config, recipients: &[&str]) -> Plan {
    let mut plan = Plan::default();
    let resolver = postern_routing::Resolver::of(config);
    for (index, recipient) in recipients.iter().enumerate() {
        let address = match Address::parse(recipient) {
            Ok(address) => address,
            Err(e) => {
                plan.early.push(Early {
                    request: index,
                    to: recipient.to_string(),
                    status: Status::new("5.1.3", format!("bad recipient address: {e}")),
                });
                continue;
            }
        };
        let Resolution {
            destinations,
            failures,
            ..
        } = resolver.resolve(&address);
        for (target, error) in failures {
            let (code, text) = error.status();
            plan.early.push(Early {
                request: index,
                to: target.to_string(),
                status: Status::new(code, format!("{text}: <{target}>")),
            });
        }
        for destination in destinations {
            if let Destination::Remote(target) = &destination
                && *target != address
            {
                plan.forwards
                    .entry(index)
                    .or_default()
                    .push(target.to_string());
                continue;
            }
            match job_for(config, index, destination) {
                Ok((owner, job)) => plan.jobs.entry(owner).or_default().push(job),
                Err((to, status)) => plan.early.push(Early {
                    request: index,
                    to,
                    status,
                }),
            }
        }
    }
    plan
}

fn job_for(
    config: &Config,
    request: usize,
    destination: Destination,
) -> Result<(Owner, Job), (String, Status)> {
    let settings = &config.settings;
    match destination {
        Destination::Mailbox {
            account,
            delivered_to,
            maildir,
        } => {
            let to = delivered_to.to_string();
            let owner =
                mailbox_owner(&account, &settings.mail_owner).map_err(|s| (to.clone(), s))?;
            let limits = QuotaLimits {
                bytes: account.quota.bytes.unwrap_or(settings.default_quota),
                messages: account
                    .quota
                    .messages
                    .unwrap_or(settings.default_quota_messages),
            };
            let max_size = Some(
                account
                    .max_message_size
                    .unwrap_or(settings.max_message_size),
            )
            .filter(|&n| n > 0);
            Ok((
                owner,
                Job {
                    request,
                    delivered_to,
                    maildir,
                    limits,
                    max_size,
                    kind: JobKind::Mailbox,
                },
            ))
        }
        Destination::SystemUser { name, delivered_to } => {
            let to = delivered_to.to_string();
            let Some(user) = postern_privilege::lookup_user(&name) else {
                return Err((
                    to.clone(),
                    Status::new("5.1.1", format!("user unknown: <{to}>")),
                ));
            };
            if user.uid == 0 {
                // Nothing is written as root; an alias must send root's
                // mail to a person.
                return Err((
                    to.clone(),
                    Status::temporary(format!(
                        "mail for {name} (uid 0) needs an alias to a person: <{to}>"
                    )),
                ));
            }
            let max_size = Some(settings.max_message_size).filter(|&n| n > 0);
            let limits = QuotaLimits {
                bytes: settings.default_quota,
                messages: settings.default_quota_messages,
            };
            Ok((
                Owner {
                    uid: user.uid,
                    gid: user.gid,
                    name: Some(user.name.clone()),
                },
                Job {
                    request,
                    delivered_to,
                    maildir: user.home.join("Maildir"),
                    limits,
                    max_size,
                    kind: JobKind::SystemUser(SystemUserJob {
                        name: user.name.clone(),
                        home: user.home.clone(),
                    }),
                },
            ))
        }
        Destination::Special {
            target,
            owner,
            delivered_to,
        } => {
            let to = delivered_to.to_string();
            let runner = runner(owner).map_err(|status| (to.clone(), status))?;
            let max_size = Some(settings.max_message_size).filter(|&n| n > 0);
            let (maildir, kind) = match target {
                Special::Pipe(command) => (
                    PathBuf::new(),
                    JobKind::Pipe {
                        command,
                        home: runner.home.clone(),
                        user: runner.name.clone().unwrap_or_else(|| owner.to_string()),
                    },
                ),
                Special::File(path) => (PathBuf::new(), JobKind::Mbox(path)),
                Special::Maildir(path) => (path, JobKind::Mailbox),
            };
            Ok((
                runner.owner,
                Job {
                    request,
                    delivered_to,
                    maildir,
                    limits: QuotaLimits::default(),
                    max_size,
                    kind,
                },
            ))
        }
        // postern-queue routes mail for other hosts to remote delivery;
        // only a domain dropped from the map since leaves one here.
        Destination::Remote(address) => Err((
            address.to_string(),
            postern_routing::remote_deferral(&address.to_string()),
        )),
    }
}

/// The account line's uid/gid, else the configured mail owner.
fn mailbox_owner(account: &Account, mail_owner: &MailOwner) -> Result<Owner, Status> {
    let (uid, gid, name) = account.owner(mail_owner).ok_or_else(|| {
        Status::temporary(format!(
            "mail_owner \"{mail_owner}\" is not a user on this host"
        ))
    })?;
    Ok(Owner { uid, gid, name })
}

/// Who runs a command or writes a file that an aliases file or `:include:`
/// list named: the file's owner, or for root-owned files the default user
/// `nobody`, as sendmail does — never root.
struct Runner {
    owner: Owner,
    name: Option<String>,
    home: PathBuf,
}

fn runner(uid: u32) -> Result<Runner, Status> {
    let user = if uid == 0 {
        postern_privilege::lookup_user("nobody").ok_or_else(|| {
            Status::temporary("no user nobody to run the host's alias commands as")
        })?
    } else {
        match postern_privilege::lookup_uid(uid) {
            Some(user) => user,
            None => {
                return Ok(Runner {
                    owner: Owner {
                        uid,
                        gid: uid,
                        name: None,
                    },
                    name: None,
                    home: PathBuf::from("/"),
                });
            }
        }
    };
    let home = if user.home.is_dir() {
        user.home.clone()
    } else {
        PathBuf::from("/")
    };
    Ok(Runner {
        owner: Owner {
            uid: user.uid,
            gid: user.gid,
            name: Some(user.name.clone()),
        },
        name: Some(user.name),
        home,
    })
}
