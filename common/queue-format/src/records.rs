//! `state/ID`: what happened to an accepted message, one line per event,
//! appended by the queue manager (and `postern-queue --hold/--release`);
//! for a recipient the last outcome wins (docs/QUEUE.md, step 3).
//!
//! | line | meaning |
//! |---|---|
//! | `round SECS` | an attempt at the pending recipients started then (written with its first outcome) |
//! | `done N` / `fail N STATUS` / `defer N STATUS` | recipient N's outcome |
//! | `next SECS` | no attempt before then (the backoff) |
//! | `reported N` | the report recipient N's outcome called for is queued |
//! | `warned` | the delay report is queued |
//! | `hold` / `release` | parked by the admin, and let go |

use std::io::{self, Write};

use crate::status::{Class, Status};
use crate::{QueueDir, QueueId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Given up: the recipient will not be tried again.
    Failed {
        status: Status,
    },
    /// Try again later.
    Deferred {
        status: Status,
    },
}

/// What the records say of a message of a known number of recipients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// The last outcome of each recipient, by index.
    pub outcomes: Vec<Option<Outcome>>,
    /// Whether each recipient's report (failure or success) is queued.
    pub reported: Vec<bool>,
    /// When each attempt started, oldest first.
    pub rounds: Vec<u64>,
    /// The earliest time for the next attempt.
    pub next: Option<u64>,
    pub held: bool,
    pub warned: bool,
}

/// One line of `state/ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Round(u64),
    Outcome(usize, Outcome),
    Next(u64),
    Reported(usize),
    Warned,
    Hold,
    Release,
}

impl Event {
    /// One line of the file; `None` for a line it cannot read (skipped).
    fn parse(line: &str) -> Option<Event> {
        let mut fields = line.splitn(3, ' ');
        let kind = fields.next().unwrap_or_default();
        let number = fields.next().and_then(|n| n.parse::<u64>().ok());
        let mut status = |class| Status::from_record(fields.next().unwrap_or_default(), class);
        let index = || number.and_then(|n| usize::try_from(n).ok());
        Some(match kind {
            "round" => Event::Round(number?),
            "next" => Event::Next(number?),
            "warned" => Event::Warned,
            "hold" => Event::Hold,
            "release" => Event::Release,
            "reported" => Event::Reported(index()?),
            "done" => Event::Outcome(index()?, Outcome::Done),
            "fail" => Event::Outcome(
                index()?,
                Outcome::Failed {
                    status: status(Class::Permanent),
                },
            ),
            "defer" => Event::Outcome(
                index()?,
                Outcome::Deferred {
                    status: status(Class::Temporary),
                },
            ),
            _ => return None,
        })
    }

    fn line(&self) -> String {
        match self {
            Event::Round(secs) => format!("round {secs}\n"),
            Event::Outcome(index, Outcome::Done) => format!("done {index}\n"),
            Event::Outcome(index, Outcome::Failed { status }) => {
                format!("fail {index} {}\n", status.record())
            }
            Event::Outcome(index, Outcome::Deferred { status }) => {
                format!("defer {index} {}\n", status.record())
            }
            Event::Next(secs) => format!("next {secs}\n"),
            Event::Reported(index) => format!("reported {index}\n"),
            Event::Warned => "warned\n".to_string(),
            Event::Hold => "hold\n".to_string(),
            Event::Release => "release\n".to_string(),
        }
    }
}

impl Records {
    /// Reads `state/ID` for a message of `recipients` recipients; a missing
    /// file means nothing happened yet, a line it cannot read is skipped.
    pub fn read(queue: &QueueDir, id: &QueueId, recipients: usize) -> io::Result<Records> {
        let text = match std::fs::read_to_string(queue.state_file(id)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(Records::parse(&text, recipients))
    }

    pub fn parse(text: &str, recipients: usize) -> Records {
        let mut records = Records {
            outcomes: vec![None; recipients],
            reported: vec![false; recipients],
            ..Records::default()
        };
        let events: Vec<Event> = text.lines().filter_map(Event::parse).collect();
        records.apply(&events);
        records
    }

    /// What the records say once `events` are appended.
    pub fn apply(&mut self, events: &[Event]) {
        for event in events {
            match event {
                Event::Round(secs) => self.rounds.push(*secs),
                Event::Next(secs) => self.next = Some(*secs),
                Event::Warned => self.warned = true,
                Event::Hold => self.held = true,
                Event::Release => {
                    self.held = false;
                    self.next = None;
                }
                Event::Reported(index) => {
                    if let Some(slot) = self.reported.get_mut(*index) {
                        *slot = true;
                    }
                }
                Event::Outcome(index, outcome) => {
                    if let Some(slot) = self.outcomes.get_mut(*index) {
                        *slot = Some(outcome.clone());
                    }
                }
            }
        }
    }

    /// Appends one outcome in a single write (O_APPEND keeps lines whole).
    pub fn append(
        queue: &QueueDir,
        id: &QueueId,
        index: usize,
        outcome: &Outcome,
    ) -> io::Result<()> {
        Records::note(queue, id, &[Event::Outcome(index, outcome.clone())])
    }

    /// Appends events, in one write.
    pub fn note(queue: &QueueDir, id: &QueueId, events: &[Event]) -> io::Result<()> {
        let text: String = events.iter().map(Event::line).collect();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(queue.state_file(id))?
            .write_all(text.as_bytes())
    }

    /// Recipients still to deliver.
    pub fn pending(&self) -> Vec<usize> {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| !matches!(o, Some(Outcome::Done) | Some(Outcome::Failed { .. })))
            .map(|(i, _)| i)
            .collect()
    }

    pub fn finished(&self) -> bool {
        self.pending().is_empty()
    }

    /// When the last attempt started.
    pub fn last_attempt(&self) -> Option<u64> {
        self.rounds.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, Recipient};

    #[test]
    fn the_last_outcome_wins_and_finishes_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueDir::create(dir.path()).unwrap();
        let envelope = Envelope {
            arrival: 1,
            sender: String::new(),
            recipients: (0..3)
                .map(|i| Recipient::new(format!("r{i}@x.test")))
                .collect(),
            ..Envelope::default()
        };
        let id = queue.begin(&envelope).unwrap().commit().unwrap();
        let records = Records::read(&queue, &id, 3).unwrap();
        assert_eq!(records.pending(), [0, 1, 2]);
        Records::append(&queue, &id, 0, &Outcome::Done).unwrap();
        Records::append(
            &queue,
            &id,
            1,
            &Outcome::Deferred {
                status: Status::new("4.2.2", "mailbox\nfull"),
            },
        )
        .unwrap();
        Records::append(
            &queue,
            &id,
            2,
            &Outcome::Failed {
                status: Status::new("5.1.1", "user unknown"),
            },
        )
        .unwrap();
        let records = Records::read(&queue, &id, 3).unwrap();
        assert_eq!(records.pending(), [1]);
        assert_eq!(
            records.outcomes[1],
            Some(Outcome::Deferred {
                status: Status::new("4.2.2", "mailbox full")
            })
        );
        Records::append(&queue, &id, 1, &Outcome::Done).unwrap();
        assert!(Records::read(&queue, &id, 3).unwrap().finished());
    }

    #[test]
    fn schedule_reports_and_holds() {
        let text = "try\nround 100\ndefer 0 4.2.2 full\nnext 400\nhold\nround 500\nfail 1 5.1.1 unknown\nreported 1\nwarned\nreported 9\nrelease\nnext 900\n";
        let records = Records::parse(text, 2);
        assert_eq!(records.rounds, [100, 500]);
        assert_eq!(records.last_attempt(), Some(500));
        assert_eq!(records.next, Some(900));
        assert!(!records.held && records.warned);
        assert_eq!(records.reported, [false, true]);
        assert!(Records::parse("hold\n", 1).held);
        assert_eq!(Records::parse("next 5\nrelease\n", 1).next, None);
    }
}
