//! The golden transcripts of the protocol cores (SMTP, POP3, and every
//! core to come): a session as client lines in and server lines and
//! effects out, one file each, run by one runner (`check_directory`) that
//! feeds each file whole and then byte by byte; and golden log lines
//! (`log_lines`), for the lines other programs read, such as fail2ban's.
//!
//! The format. `C: text` is a client line (CRLF added), `C:` an empty
//! one; `R: text` raw client bytes with `\r`, `\n`, `\t`, `\0` and `\\`
//! escapes. Client lines in a row go in one write, as a pipelining client
//! sends them. Any other line is expected output, compared as it is: by
//! convention a letter, a colon and a space, then the text. The letters
//! every core uses:
//!
//! - `S:` a line the server sends;
//! - `X: close` the session ends the connection;
//! - `T: starttls` (`T: stls`) the session asks for the TLS handshake;
//!   what the client sent after it in the same write belongs to TLS (the
//!   runner stops feeding that write there when it goes byte by byte);
//! - `L: MECHANISM user proof` the session asks for a login check.
//!
//! Each core adds its own effects (SMTP's `Q:` message begun, `D:` its
//! data, `A:` aborted; POP3's `U:` deletions, `P:` lines passed to a
//! proxied server) and says so at the top of its `tests/golden.rs`.
//! Lines starting with `#` are comments, or directives the core's driver
//! reads (`# config: key=value ...`).

mod log;
mod runner;
mod transcript;

pub use log::log_lines;
pub use runner::{Driver, Trickled, check_directory};
pub use transcript::{Group, Transcript, config, directives, parse, unescape};
