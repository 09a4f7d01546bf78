//! Delivery outcomes as RFC 3463 codes, and the exit codes the queue reads:
//! 0, 75 (EX_TEMPFAIL) for any 4.x.x, 67 (EX_NOUSER) for 5.1.1 and 69
//! (EX_UNAVAILABLE) for any other 5.x.x.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `2.0.0`, `4.2.2`, `5.1.1`, ...
    pub code: String,
    pub text: String,
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_NOUSER: i32 = 67;
pub const EXIT_UNAVAILABLE: i32 = 69;
pub const EXIT_TEMPFAIL: i32 = 75;
pub const EXIT_USAGE: i32 = 64;

impl Status {
    pub fn new(code: &str, text: impl Into<String>) -> Status {
        Status {
            code: code.to_string(),
            text: text.into(),
        }
    }

    pub fn delivered(text: impl Into<String>) -> Status {
        Status::new("2.0.0", text)
    }

    pub fn temporary(text: impl Into<String>) -> Status {
        Status::new("4.3.0", text)
    }

    pub fn is_success(&self) -> bool {
        self.code.starts_with('2')
    }

    pub fn is_temporary(&self) -> bool {
        self.code.starts_with('4')
    }

    pub fn exit_code(&self) -> i32 {
        match self.code.as_bytes().first() {
            Some(b'2') => EXIT_OK,
            Some(b'5') if self.code == "5.1.1" => EXIT_NOUSER,
            Some(b'5') => EXIT_UNAVAILABLE,
            _ => EXIT_TEMPFAIL,
        }
    }

    /// The word Postfix logs for the outcome.
    pub fn log_word(&self) -> &'static str {
        match self.code.as_bytes().first() {
            Some(b'2') => "sent",
            Some(b'5') => "bounced",
            _ => "deferred",
        }
    }

    /// Of several outcomes for one recipient, the one to report: a
    /// temporary failure first (the retry redoes only what did not land),
    /// then a permanent one, then success.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Option<Status> {
        statuses
            .into_iter()
            .max_by_key(|s| match s.code.as_bytes().first() {
                Some(b'4') => 2,
                Some(b'5') => 1,
                _ => 0,
            })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
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
        let worst = Status::worst([
            Status::delivered("a"),
            Status::new("5.1.1", "b"),
            Status::new("4.2.2", "c"),
        ]);
        assert_eq!(worst.unwrap().code, "4.2.2");
    }
}
