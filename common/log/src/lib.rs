//! Logging: one line per event, to syslog with facility `mail` when running
//! as a service, or to stderr as `program[pid]: text` (under `postern up`,
//! and from commands an admin runs). Programs log through `tracing` macros
//! with the whole line in the message, Postfix style:
//! `1a2b3c: to=<b@example.net>, relay=local, delay=0.4, status=sent (...)`.
//!
//! syslog goes through libc's `syslog(3)`, which reconnects to `/dev/log`
//! by itself after syslogd restarts (the syslog crate does not).

pub mod dates;

use std::borrow::Cow;
use std::ffi::CString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Syslog,
    Stderr,
}

struct LineSubscriber {
    program: &'static str,
    target: Target,
    max_level: Level,
}

static IDENT: OnceLock<CString> = OnceLock::new();

/// Installs the logger for this process; later calls change nothing.
pub fn init(program: &'static str, target: Target) {
    let max_level = match std::env::var("POSTERN_DEBUG") {
        Ok(v) if !v.is_empty() && v != "0" => Level::DEBUG,
        _ => Level::INFO,
    };
    if target == Target::Syslog {
        let ident = IDENT.get_or_init(|| CString::new(program).expect("program names hold no NUL"));
        // SAFETY: the ident lives in a static for the life of the process,
        // as openlog(3) requires.
        unsafe {
            libc::openlog(
                ident.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_MAIL,
            )
        };
    }
    let _ = tracing::subscriber::set_global_default(LineSubscriber {
        program,
        target,
        max_level,
    });
}

/// One recipient's outcome as Postfix logs it, which `grep status=` and
/// pflogsumm read: `ID: to=<rcpt>[, orig_to=<addr>], relay=R, delay=S,
/// status=WORD (detail)`, the addresses escaped. `delay` is the time since
/// the message arrived.
pub fn delivery_line(
    id: &str,
    to: &str,
    orig_to: Option<&str>,
    relay: &str,
    delay: std::time::Duration,
    status: &str,
    detail: &str,
) -> String {
    let original = orig_to
        .map(|o| format!(", orig_to=<{}>", escape(o)))
        .unwrap_or_default();
    format!(
        "{id}: to=<{}>{original}, relay={relay}, delay={:.2}, status={status} ({detail})",
        escape(to),
        delay.as_secs_f64()
    )
}

/// One attempt at another host, as Postfix's smtp(8) logs it.
pub struct RemoteAttempt<'a> {
    pub id: &'a str,
    pub to: &'a str,
    /// `name[address]:port`, or `none`.
    pub relay: &'a str,
    /// Since the message arrived.
    pub delay: std::time::Duration,
    /// Postfix's four: before the queue manager, in it, setting up the
    /// connection (DNS, greeting, TLS), sending.
    pub delays: [std::time::Duration; 4],
    /// The enhanced status code.
    pub dsn: &'a str,
    /// `sent`, `deferred` or `bounced`.
    pub status: &'a str,
    pub detail: &'a str,
}

impl std::fmt::Display for RemoteAttempt<'_> {
    /// `ID: to=<rcpt>, relay=R, delay=S, delays=a/b/c/d, dsn=X.Y.Z,
    /// status=WORD (detail)`, which pflogsumm reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d] = self.delays.map(|t| t.as_secs_f64());
        write!(
            f,
            "{}: to=<{}>, relay={}, delay={:.2}, delays={a:.2}/{b:.2}/{c:.2}/{d:.2}, dsn={}, status={} ({})",
            self.id,
            escape(self.to),
            escape(self.relay),
            self.delay.as_secs_f64(),
            self.dsn,
            self.status,
            escape(self.detail)
        )
    }
}

/// Makes text from the network or a message safe for one log line: control
/// characters and backslashes become `\xNN` escapes.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() || c == '\\' {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

struct LineVisitor(String);

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, ", {}={}", field.name(), escape(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, ", {}={value:?}", field.name());
        }
    }
}

impl Subscriber for LineSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = LineVisitor(String::new());
        event.record(&mut visitor);
        let line = visitor.0;
        match self.target {
            Target::Stderr => {
                let prefix = match *event.metadata().level() {
                    Level::ERROR => "error: ",
                    Level::WARN => "warning: ",
                    _ => "",
                };
                // One write for the whole line: processes that share the
                // stderr pipe (postern-lspawn's workers) must not interleave
                // their lines, and a write of less than PIPE_BUF is atomic.
                let whole = format!("{}[{}]: {prefix}{line}\n", self.program, std::process::id());
                let _ = std::io::stderr().lock().write_all(whole.as_bytes());
            }
            Target::Syslog => {
                let priority = match *event.metadata().level() {
                    Level::ERROR => libc::LOG_ERR,
                    Level::WARN => libc::LOG_WARNING,
                    Level::INFO => libc::LOG_INFO,
                    _ => libc::LOG_DEBUG,
                };
                let text = CString::new(line.replace('\0', "\\x00")).expect("NULs were replaced");
                // SAFETY: "%s" with one valid C string; syslog copies it.
                unsafe { libc::syslog(libc::LOG_MAIL | priority, c"%s".as_ptr(), text.as_ptr()) };
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("plain <a@b>"), "plain <a@b>");
        assert_eq!(escape("a\r\nb\\c\u{7f}"), "a\\x0d\\x0ab\\x5cc\\x7f");
    }
}
