//! ESMTP (RFC 5321) on the client side, with no I/O inside, as
//! postern-remote speaks it to the next hop: a [`Session`] takes the
//! server's bytes and gives back [`Action`]s — bytes to send, the TLS
//! handshake to make, the message body to send, each transaction's result
//! for each recipient — so golden transcripts test it line for line.
//!
//! What it speaks: EHLO with a HELO fallback, STARTTLS (opportunistic or
//! required), PIPELINING (RFC 2920), SIZE (RFC 1870: a message larger
//! than the server's limit is refused before it is sent), 8BITMIME (RFC
//! 6152: an 8-bit message goes to a server without it only if it can be
//! downgraded, `downgrade`), CHUNKING (RFC 3030: one BDAT chunk),
//! SMTPUTF8 (RFC 6531), DSN (RFC 3461: NOTIFY, ORCPT,
//! RET and ENVID passed on when offered), AUTH PLAIN or LOGIN (RFC 4954)
//! for a smarthost, over TLS only. A refused recipient never stops
//! the others. Replies are read with bounded memory: a line of more than
//! `MAX_LINE` octets or a reply of more than `MAX_LINES` lines ends the
//! session with a temporary failure.

pub mod downgrade;
mod encode;
mod extensions;
pub mod header;
mod replies;
mod session;

pub use encode::{DataEncoder, bdat_chunk};
pub use extensions::Extensions;
pub use postern_smtp::Reply;
pub use replies::{MAX_LINE, MAX_LINES, ReplyError, ReplyReader};
pub use session::{
    Action, Config, Login, Message, Recipient, Result as RecipientResult, Session, Tls,
};
