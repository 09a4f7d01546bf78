//! What a batch's answer calls for, as the scheduler settles each message
//! (`Scheduler::results`): each answer line as an outcome (a deferral past
//! the queue lifetime becomes a failure), the wait before the next attempt
//! (exponential backoff), the reports that are due, queued by
//! `postern-bounce`, and the log line of a recipient given up.

use std::path::{Path, PathBuf};
use std::process::Command;

use postern_config::Settings;
use postern_queue_format::status::Class;
use postern_queue_format::{
    Envelope, Event, Outcome, QueueId, Records, Report, ReportKind as Kind, Status,
};
use tracing::{info, warn};

/// The retry schedule and the reports' clock, from the settings.
#[derive(Clone, Debug)]
pub struct Policy {
    pub first_retry: u64,
    pub max_retry: u64,
    pub lifetime: u64,
    /// 0: no delay reports.
    pub delay_warning: u64,
}

impl Policy {
    pub fn from(settings: &Settings) -> Policy {
        Policy {
            first_retry: settings.retry_interval.max(1),
            max_retry: settings.max_retry_interval.max(1),
            lifetime: settings.queue_lifetime,
            delay_warning: settings.delay_warning,
        }
    }

    /// The wait after the `rounds`-th attempt: the first interval, doubled
    /// each time, at most the cap.
    pub fn backoff(&self, rounds: usize) -> u64 {
        let doublings = rounds.saturating_sub(1).min(40) as u32;
        self.first_retry
            .saturating_mul(1u64 << doublings)
            .min(self.max_retry.max(self.first_retry))
    }
}

/// The reports a message's records call for at `now`, each with the
/// recipients it covers. A message from `<>` never gets one, except that a
/// report Postern made which fails is told to postmaster, once.
pub fn due_reports(
    envelope: &Envelope,
    records: &Records,
    policy: &Policy,
    now: u64,
) -> Vec<(Kind, Vec<usize>)> {
    let unreported = |want: &dyn Fn(&Outcome) -> bool| -> Vec<usize> {
        records
            .outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| o.as_ref().is_some_and(want) && !records.reported[*i])
            .map(|(i, _)| i)
            .collect()
    };
    let failed = |o: &Outcome| matches!(o, Outcome::Failed { .. });
    if envelope.sender.is_empty() {
        let failures = unreported(&failed);
        return match envelope.report {
            Some(Report::Dsn) if !failures.is_empty() => vec![(Kind::Postmaster, failures)],
            _ => Vec::new(),
        };
    }
    let notify = |i: usize| envelope.recipients[i].notify;
    let mut due = Vec::new();
    let failures: Vec<usize> = unreported(&failed)
        .into_iter()
        .filter(|&i| notify(i).is_none_or(|n| n.failure))
        .collect();
    if !failures.is_empty() {
        due.push((Kind::Failure, failures));
    }
    let successes: Vec<usize> = unreported(&|o| matches!(o, Outcome::Done))
        .into_iter()
        .filter(|&i| notify(i).is_some_and(|n| n.success))
        .collect();
    if !successes.is_empty() {
        due.push((Kind::Success, successes));
    }
    let late = policy.delay_warning > 0 && now >= envelope.arrival + policy.delay_warning;
    if late && !records.warned {
        let delayed: Vec<usize> = records
            .outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                matches!(o, Some(Outcome::Deferred { .. })) && notify(*i).is_none_or(|n| n.delay)
            })
            .map(|(i, _)| i)
            .collect();
        if !delayed.is_empty() {
            due.push((Kind::Delay, delayed));
        }
    }
    due
}

/// Runs `postern-bounce`, which runs as this process's user.
pub struct Reporter {
    pub program: PathBuf,
    pub config: PathBuf,
}

impl Reporter {
    pub fn beside_this_program(config: &Path) -> Reporter {
        let program = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("postern-bounce")))
            .unwrap_or_else(|| PathBuf::from("postern-bounce"));
        Reporter {
            program,
            config: config.to_path_buf(),
        }
    }

    /// Queues one report; true once it is accepted.
    pub fn report(&self, kind: Kind, id: &QueueId, indices: &[usize]) -> bool {
        let list: Vec<String> = indices.iter().map(usize::to_string).collect();
        let output = Command::new(&self.program)
            .arg("--config")
            .arg(&self.config)
            .args(["--kind", kind.name(), id.as_str(), &list.join(",")])
            .output();
        match output {
            Ok(out) if out.status.success() => {
                let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
                info!("{id}: {} report queued as {report}", kind.name());
                true
            }
            Ok(out) => {
                warn!(
                    "{id}: {} report not queued: {}",
                    kind.name(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                false
            }
            Err(e) => {
                warn!("{id}: cannot run {}: {e}", self.program.display());
                false
            }
        }
    }
}

/// Each recipient failed for good at `queue_lifetime` gets the line every
/// permanent failure gets from postern-local (`status=bounced`), which
/// `grep status=bounced` and pflogsumm count: the delivery that deferred
/// it could not know it was the last try.
pub fn log_given_up(id: &QueueId, envelope: &Envelope, events: &[Event]) {
    let delay = id.arrived(envelope.arrival).elapsed().unwrap_or_default();
    for event in events {
        if let Event::Outcome(index, Outcome::Failed { status }) = event
            && status.is_temporary()
            && let Some(recipient) = envelope.recipients.get(*index)
        {
            let line = postern_log::delivery_line(
                id.as_str(),
                &recipient.address,
                None,
                "none",
                delay,
                "bounced",
                &status.to_string(),
            );
            info!("{line}");
        }
    }
}

/// Step 3 of docs/QUEUE.md: a delivery's answer line for one recipient,
/// `recipient<TAB>exit<TAB>status`; no line is a deferral.
pub fn outcome_of_answer(line: Option<&str>, lifetime: Option<u64>) -> Outcome {
    let mut fields = line.unwrap_or("").splitn(3, '\t');
    let (_, exit, status) = (
        fields.next(),
        fields.next(),
        fields.next().unwrap_or("4.3.0 no answer from the delivery"),
    );
    match exit {
        Some("0") => Outcome::Done,
        Some("75") | None => deferral(Status::from_line(status, Class::Temporary), lifetime),
        Some(_) => Outcome::Failed {
            status: Status::from_line(status, Class::Permanent),
        },
    }
}

/// A deferral; after `lifetime` (when the message is that old) a failure
/// that keeps its status.
pub fn deferral(status: Status, lifetime: Option<u64>) -> Outcome {
    let Some(lifetime) = lifetime else {
        return Outcome::Deferred { status };
    };
    let text = format!(
        "{} (gave up: still failing after {} in the queue)",
        status.text,
        postern_config::span(lifetime)
    );
    Outcome::Failed {
        status: Status { text, ..status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_queue_format::{Notify, Recipient};

    fn policy() -> Policy {
        Policy {
            first_retry: 300,
            max_retry: 3600,
            lifetime: 5 * 86400,
            delay_warning: 4 * 3600,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=6).map(|r| policy().backoff(r)).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600]);
        assert_eq!(policy().backoff(500), 3600);
    }

    fn envelope(sender: &str, notify: &[Option<&str>]) -> Envelope {
        Envelope {
            arrival: 1000,
            sender: sender.into(),
            recipients: notify
                .iter()
                .enumerate()
                .map(|(i, n)| Recipient {
                    address: format!("r{i}@x.test"),
                    notify: n.and_then(Notify::parse),
                    orcpt: None,
                })
                .collect(),
            ..Envelope::default()
        }
    }

    #[test]
    fn which_reports_are_due() {
        let records = Records::parse(
            "fail 0 5.1.1 unknown\nfail 1 5.1.1 unknown\ndone 2\ndefer 3 4.2.2 full\n",
            4,
        );
        let e = envelope("a@b.test", &[None, Some("NEVER"), Some("SUCCESS"), None]);
        let early = due_reports(&e, &records, &policy(), 1000 + 60);
        assert_eq!(early, [(Kind::Failure, vec![0]), (Kind::Success, vec![2])]);
        let late = due_reports(&e, &records, &policy(), 1000 + 4 * 3600);
        assert_eq!(late[2], (Kind::Delay, vec![3]));
        // Reported and warned: nothing more.
        let done = Records::parse(
            "fail 0 5.1.1 x\nfail 1 5.1.1 x\ndone 2\ndefer 3 4.2.2 full\nreported 0\nreported 2\nwarned\n",
            4,
        );
        assert!(due_reports(&e, &done, &policy(), 1000 + 4 * 3600).is_empty());
        // No delay reports when they are off.
        let off = Policy {
            delay_warning: 0,
            ..policy()
        };
        assert_eq!(due_reports(&e, &records, &off, u64::MAX / 2).len(), 2);
    }

    #[test]
    fn null_senders_get_nothing_but_a_failed_report_tells_postmaster() {
        let records = Records::parse("fail 0 5.1.1 unknown\n", 1);
        let bounce = envelope("", &[None]);
        assert!(due_reports(&bounce, &records, &policy(), 2000).is_empty());
        let report = Envelope {
            report: Some(Report::Dsn),
            ..envelope("", &[None])
        };
        assert_eq!(
            due_reports(&report, &records, &policy(), 2000),
            [(Kind::Postmaster, vec![0])]
        );
        let notice = Envelope {
            report: Some(Report::Postmaster),
            ..envelope("", &[None])
        };
        assert!(due_reports(&notice, &records, &policy(), 2000).is_empty());
    }
}
