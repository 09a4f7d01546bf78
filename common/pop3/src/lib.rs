//! POP3 (RFC 1939) on the server side, with no I/O inside: a [`Session`]
//! takes the client's bytes and gives back [`Action`]s — bytes to send,
//! a login to check, a message to send, deletions to carry out — so that
//! `postern-pop3d` drives it over a socket and golden transcripts test it
//! line for line. CAPA and response codes (RFC 2449), STLS (RFC 2595) and
//! AUTH (RFC 5034, through postern-sasl) are here too; the maildrop, the
//! locking and the privileges are the driver's.

mod encode;
mod message_id;
mod session;

pub use encode::{Encoder, retrieve_header};
pub use message_id::{HEAD_LIMIT, invalid_message_ids};
pub use postern_maildir::crlf_len;
pub use postern_mailstore::Listing;
pub use postern_sasl::{Credentials, Mechanism};
pub use session::{Action, Config, LoginFailure, Session};
