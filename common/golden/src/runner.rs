//! The one runner of golden transcripts: each file of a directory, fed
//! to a fresh session whole and then byte by byte, compared with what the
//! file expects; every difference is reported at once.

use std::path::Path;

use crate::Transcript;

/// A protocol core under test, with the stand-ins that answer its
/// questions (logins, mailboxes, the queue) and write what it does as
/// output lines.
pub trait Driver: Sized {
    /// A fresh session and driver for the transcript's directives; what
    /// the session does before the client speaks (the greeting) goes to
    /// `out`.
    fn start(transcript: &Transcript, out: &mut Vec<String>) -> Self;

    /// Feeds client bytes (one write, or one byte of it) and writes what
    /// the session does.
    fn receive(&mut self, bytes: &[u8], out: &mut Vec<String>);

    /// After each whole write of the client.
    fn end_of_write(&mut self, _out: &mut Vec<String>) {}

    /// How the byte-by-byte run is compared.
    const TRICKLED: Trickled = Trickled::Same;
}

/// How output fed byte by byte must match the transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trickled {
    /// Line for line, as fed whole.
    Same,
    /// The `S:` lines in their order and the effects in theirs: a core
    /// that flushes replies at the end of a pipelined write sends them
    /// at other moments when the write comes a byte at a time.
    RepliesApart,
}

/// Runs every `*.txt` transcript in `dir` (at least `at_least` of them,
/// so a moved directory cannot pass by running nothing) and panics with
/// every difference found.
pub fn check_directory<D: Driver>(dir: &Path, at_least: usize) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= at_least,
        "{}: {} golden transcripts, expected at least {at_least}",
        dir.display(),
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if let Err(failure) = check::<D>(&text) {
            failures.push(format!("{}{failure}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One transcript, whole then byte by byte.
fn check<D: Driver>(text: &str) -> Result<(), String> {
    let transcript = crate::parse(text);
    let mut expected = transcript.greeting.clone();
    for group in &transcript.groups {
        expected.extend(group.expected.iter().cloned());
    }
    let whole = run::<D>(&transcript, false);
    if whole != expected {
        return Err(format!(
            ":\n--- expected\n{}\n--- got\n{}\n",
            expected.join("\n"),
            whole.join("\n")
        ));
    }
    let trickled = run::<D>(&transcript, true);
    let same = match D::TRICKLED {
        Trickled::Same => trickled == expected,
        Trickled::RepliesApart => {
            let split = |lines: &[String]| -> (Vec<String>, Vec<String>) {
                lines.iter().cloned().partition(|l| l.starts_with("S: "))
            };
            split(&trickled) == split(&expected)
        }
    };
    match same {
        true => Ok(()),
        false => Err(format!(
            " fed byte by byte:\n--- expected\n{}\n--- got\n{}\n",
            expected.join("\n"),
            trickled.join("\n")
        )),
    }
}

/// A `T:` line among what the session just did: it asked for the TLS
/// handshake, and the rest of the client's write belongs to TLS.
fn handshake_in(lines: &[String]) -> bool {
    lines.iter().any(|line| line.starts_with("T: "))
}

fn run<D: Driver>(transcript: &Transcript, byte_by_byte: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut driver = D::start(transcript, &mut out);
    for group in &transcript.groups {
        if byte_by_byte {
            for byte in &group.client {
                let before = out.len();
                driver.receive(std::slice::from_ref(byte), &mut out);
                if handshake_in(&out[before..]) {
                    break;
                }
            }
        } else {
            // Whatever followed the handshake's start was fed with it:
            // the session itself must leave it unread.
            driver.receive(&group.client, &mut out);
        }
        driver.end_of_write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo core: each line back as `S:`, `QUIT` closes, `TLS` starts
    /// the handshake (and drops what follows it in the write).
    struct Echo {
        pending: Vec<u8>,
    }

    impl Driver for Echo {
        fn start(_: &Transcript, out: &mut Vec<String>) -> Echo {
            out.push("S: hello".into());
            Echo {
                pending: Vec::new(),
            }
        }

        fn receive(&mut self, bytes: &[u8], out: &mut Vec<String>) {
            self.pending.extend_from_slice(bytes);
            while let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..end + 2).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                match line.as_str() {
                    "QUIT" => out.push("X: close".into()),
                    "TLS" => {
                        out.push("T: starttls".into());
                        self.pending.clear();
                        return;
                    }
                    _ => out.push(format!("S: {line}")),
                }
            }
        }
    }

    #[test]
    fn a_matching_transcript_passes_whole_and_byte_by_byte() {
        let text = "S: hello\nC: one\nC: two\nS: one\nS: two\nC: TLS\nC: hidden\nT: starttls\nC: QUIT\nX: close\n";
        assert_eq!(check::<Echo>(text), Ok(()));
    }

    #[test]
    fn a_wrong_line_fails_and_shows_both_sides() {
        let text = "S: hello\nC: one\nS: uno\n";
        let failure = check::<Echo>(text).unwrap_err();
        assert!(
            failure.contains("--- expected\nS: hello\nS: uno"),
            "{failure}"
        );
        assert!(failure.contains("--- got\nS: hello\nS: one"), "{failure}");
    }

    #[test]
    fn a_directory_with_too_few_transcripts_fails() {
        let dir = std::env::temp_dir().join(format!("postern-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("one.txt"), "S: hello\n").unwrap();
        check_directory::<Echo>(&dir, 1);
        let result = std::panic::catch_unwind(|| check_directory::<Echo>(&dir, 2));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(result.is_err());
    }
}
