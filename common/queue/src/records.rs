//! `state/ID`: one line per outcome, appended by the queue manager, the
//! last line for a recipient winning (docs/QUEUE.md, step 3).

use std::io::{self, Write};

use crate::{QueueDir, QueueId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Given up: the recipient will not be tried again.
    Failed {
        status: String,
    },
    /// Try again later.
    Deferred {
        status: String,
    },
}

/// The last outcome of each recipient of a message, by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    pub outcomes: Vec<Option<Outcome>>,
}

impl Records {
    /// Reads `state/ID` for a message of `recipients` recipients; a missing
    /// file means nothing happened yet, a line it cannot read is skipped.
    pub fn read(queue: &QueueDir, id: &QueueId, recipients: usize) -> io::Result<Records> {
        let mut records = Records {
            outcomes: vec![None; recipients],
        };
        let text = match std::fs::read_to_string(queue.state_file(id)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(records),
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let mut fields = line.splitn(3, ' ');
            let (Some(kind), Some(index)) = (
                fields.next(),
                fields.next().and_then(|i| i.parse::<usize>().ok()),
            ) else {
                continue;
            };
            let status = fields.next().unwrap_or_default().to_string();
            let outcome = match kind {
                "done" => Outcome::Done,
                "fail" => Outcome::Failed { status },
                "defer" => Outcome::Deferred { status },
                _ => continue,
            };
            if let Some(slot) = records.outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        }
        Ok(records)
    }

    /// Appends one outcome in a single write (O_APPEND keeps lines whole).
    pub fn append(
        queue: &QueueDir,
        id: &QueueId,
        index: usize,
        outcome: &Outcome,
    ) -> io::Result<()> {
        let line = match outcome {
            Outcome::Done => format!("done {index}\n"),
            Outcome::Failed { status } => format!("fail {index} {}\n", one_line(status)),
            Outcome::Deferred { status } => format!("defer {index} {}\n", one_line(status)),
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(queue.state_file(id))?
            .write_all(line.as_bytes())
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
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
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
                status: "4.2.2 mailbox\nfull".into(),
            },
        )
        .unwrap();
        Records::append(
            &queue,
            &id,
            2,
            &Outcome::Failed {
                status: "5.1.1 user unknown".into(),
            },
        )
        .unwrap();
        let records = Records::read(&queue, &id, 3).unwrap();
        assert_eq!(records.pending(), [1]);
        assert_eq!(
            records.outcomes[1],
            Some(Outcome::Deferred {
                status: "4.2.2 mailbox full".into()
            })
        );
        Records::append(&queue, &id, 1, &Outcome::Done).unwrap();
        assert!(Records::read(&queue, &id, 3).unwrap().finished());
    }
}
