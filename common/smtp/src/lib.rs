//! ESMTP (RFC 5321) on the server side, with no I/O inside: a [`Session`]
//! takes the client's bytes and gives back [`Action`]s — bytes to send,
//! questions for its driver (may this recipient be accepted?), message data
//! to store — so `postern-smtpd` and `postern-inject -bs` share one
//! protocol core, and golden transcripts test it line for line.
//!
//! Command syntax is smtp-proto's; framing (line limits, the end of DATA,
//! BDAT chunks), the order of commands and every reply are here.

mod body;
mod literal;
mod reply;
mod secure;
mod session;

pub use postern_sasl::{Credentials, Mechanism};
pub use reply::Reply;
pub use session::{Action, Config, Envelope, Session};
pub use smtp_proto::{MailFrom, RcptTo};
