//! Writing mailboxes, as their owner. `run_as_owner` forks a child that
//! gives up root for the owner's uid and gid before it reads a byte of the
//! message, and reports one line per job back over a pipe.

use std::os::fd::{AsRawFd, RawFd};

use postern_config::Settings;
use postern_maildir::UniqueNames;

use crate::delivery::{Delivery, Outcome, failed};
use crate::message::{delivered_to_count, read_at, size_after, trace_headers};
use crate::plan::{Job, JobKind, Owner, Request};
use crate::status::Status;
use postern_maildir::unix_line_ends;

/// Runs `jobs` as `owner`: in a forked child when we are root, in this
/// process when we already are the owner; otherwise each job fails, since
/// only root can write another user's mailbox.
pub fn run_as_owner(
    settings: &Settings,
    requests: &[Request],
    owner: &Owner,
    jobs: &[Job],
) -> Vec<Outcome> {
    if postern_privilege::is_root() {
        return run_in_child(settings, requests, owner, jobs);
    }
    let (uid, _) = postern_privilege::current_ids();
    if uid != owner.uid {
        let status = Status::temporary(format!(
            "mailbox belongs to uid {}; postern-local runs as uid {uid} and only root may write it",
            owner.uid
        ));
        return jobs.iter().map(|_| failed(status.clone())).collect();
    }
    run_jobs(settings, requests, jobs)
}

fn run_in_child(
    settings: &Settings,
    requests: &[Request],
    owner: &Owner,
    jobs: &[Job],
) -> Vec<Outcome> {
    // SECURITY: the child keeps only its own jobs' messages: not other
    // owners', not root's stdin and stdout.
    let keep: Vec<RawFd> = jobs
        .iter()
        .filter_map(|job| {
            requests[job.request]
                .message
                .as_ref()
                .map(|f| f.as_raw_fd())
        })
        .collect();
    let report =
        postern_privilege::run_as(owner.uid, owner.gid, owner.name.as_deref(), &keep, || {
            let mut lines = String::new();
            for (index, outcome) in run_jobs(settings, requests, jobs).iter().enumerate() {
                lines.push_str(&format!(
                    "{index}\t{}\t{}\t{}\t{}\n",
                    outcome.status.code,
                    one_line(&outcome.status.text),
                    outcome.path.as_deref().map(one_line).unwrap_or_default(),
                    one_line(&outcome.forward.join(" "))
                ));
            }
            Ok(lines)
        });
    let lines = match report {
        Ok(lines) => lines,
        Err(why) => {
            return jobs
                .iter()
                .map(|_| failed(Status::temporary(one_line(&why))))
                .collect();
        }
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
    for line in lines.lines() {
        let mut fields = line.splitn(5, '\t');
        let (Some(index), Some(code), Some(text), path, forward) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        if let Some(slot) = index
            .parse::<usize>()
            .ok()
            .and_then(|i| outcomes.get_mut(i))
        {
            *slot = Some(Outcome {
                status: Status::new(code, text),
                path: path.filter(|p| !p.is_empty()).map(str::to_string),
                forward: crate::requeue::parse_targets(forward.unwrap_or_default()),
            });
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome
                .unwrap_or_else(|| failed(Status::temporary("no report from the delivery process")))
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// Performs the jobs in this process, which must already be their owner.
pub fn run_jobs(settings: &Settings, requests: &[Request], jobs: &[Job]) -> Vec<Outcome> {
    let names = UniqueNames::new(&settings.hostname);
    // Jobs come in request order, so one message in memory at a time is
    // enough: a batch of large messages never piles up.
    let mut loaded: Option<(usize, Result<Vec<u8>, Status>)> = None;
    jobs.iter()
        .map(|job| {
            if postern_privilege::is_root() {
                return failed(Status::temporary("refusing to write a mailbox as root"));
            }
            let request = &requests[job.request];
            if loaded
                .as_ref()
                .is_none_or(|(index, _)| *index != job.request)
            {
                loaded = Some((job.request, load_message(request, jobs, job.request)));
            }
            let (_, message) = loaded.as_ref().expect("loaded just above");
            match message {
                Ok(message) => write_job(settings, &names, request, job, message),
                Err(status) => failed(status.clone()),
            }
        })
        .collect()
}

/// Reads a request's message once for all its jobs here, up to the largest
/// size any of them accepts.
fn load_message(request: &Request, jobs: &[Job], index: usize) -> Result<Vec<u8>, Status> {
    let Some(fd) = &request.message else {
        return Err(Status::temporary("no message to deliver"));
    };
    let limits: Vec<Option<u64>> = jobs
        .iter()
        .filter(|j| j.request == index)
        .map(|j| j.max_size)
        .collect();
    let limit = if limits.iter().any(Option::is_none) {
        None
    } else {
        limits.into_iter().flatten().max()
    };
    let too_big = || Status::new("5.2.3", "message too big for the mailbox");
    if let (Some(limit), Some(size)) = (limit, size_after(fd, request.offset))
        && size > limit
    {
        return Err(too_big());
    }
    match read_at(fd, request.offset, limit) {
        Ok(Some(data)) => Ok(unix_line_ends(data)),
        Ok(None) => Err(too_big()),
        Err(e) => Err(Status::temporary(format!("read message: {e}"))),
    }
}

fn write_job(
    settings: &Settings,
    names: &UniqueNames,
    request: &Request,
    job: &Job,
    message: &[u8],
) -> Outcome {
    if job.max_size.is_some_and(|max| message.len() as u64 > max) {
        return failed(Status::new("5.2.3", "message too big for the mailbox"));
    }
    let to = job.delivered_to.to_string();
    if delivered_to_count(message, &to) > settings.max_delivered_to {
        return failed(Status::new(
            "5.4.6",
            format!("mail forwarding loop for <{to}>"),
        ));
    }
    let delivery = Delivery {
        settings,
        names,
        request,
        to: &to,
        headers: trace_headers(&request.sender, &to),
        message,
    };
    match &job.kind {
        JobKind::SystemUser(user) => match crate::forward::follow(&delivery, user, job) {
            Some(outcome) => outcome,
            None => delivery.to_maildir(&job.maildir, job.limits),
        },
        JobKind::Mailbox => delivery.to_maildir(&job.maildir, job.limits),
        JobKind::Pipe {
            command,
            home,
            user,
        } => failed(delivery.to_command(command, home, user)),
        JobKind::Mbox(path) => failed(delivery.to_mbox(path)),
    }
}
