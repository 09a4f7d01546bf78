//! Delivery outcomes (postern-queue-format's typed `Status`), and what
//! postern-local makes of them for its callers: the exit codes the queue
//! reads — 0, 75 (EX_TEMPFAIL) for any 4.x.x, 67 (EX_NOUSER) for 5.1.1
//! and 69 (EX_UNAVAILABLE) for any other 5.x.x — and Postfix's log words.

pub use postern_queue_format::Status;
use postern_queue_format::status::Class;

pub const EXIT_OK: i32 = 0;
pub const EXIT_NOUSER: i32 = 67;
pub const EXIT_UNAVAILABLE: i32 = 69;
pub const EXIT_TEMPFAIL: i32 = 75;
pub const EXIT_USAGE: i32 = 64;

/// What postern-local's callers read of a status.
pub trait Reported {
    fn exit_code(&self) -> i32;
    /// The word Postfix logs for the outcome.
    fn log_word(&self) -> &'static str;
}

impl Reported for Status {
    fn exit_code(&self) -> i32 {
        match self.class() {
            Class::Success => EXIT_OK,
            Class::Permanent if (self.code.subject, self.code.detail) == (1, 1) => EXIT_NOUSER,
            Class::Permanent => EXIT_UNAVAILABLE,
            Class::Temporary => EXIT_TEMPFAIL,
        }
    }

    fn log_word(&self) -> &'static str {
        match self.class() {
            Class::Success => "sent",
            Class::Permanent => "bounced",
            Class::Temporary => "deferred",
        }
    }
}

/// Of several outcomes for one recipient, the one to report: a temporary
/// failure first (the retry redoes only what did not land), then a
/// permanent one, then success.
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Option<Status> {
    statuses.into_iter().max_by_key(|s| match s.class() {
        Class::Temporary => 2,
        Class::Permanent => 1,
        Class::Success => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Status::delivered("ok").exit_code(), 0);
        assert_eq!(Status::new("4.2.2", "full").exit_code(), 75);
        assert_eq!(Status::new("5.1.1", "unknown").exit_code(), 67);
        assert_eq!(Status::new("5.2.3", "big").exit_code(), 69);
        let worst = worst([
            Status::delivered("a"),
            Status::new("5.1.1", "b"),
            Status::new("4.2.2", "c"),
        ]);
        assert_eq!(worst.unwrap().code.to_string(), "4.2.2");
    }
}
