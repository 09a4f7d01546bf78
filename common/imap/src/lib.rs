//! IMAP4rev1 (RFC 3501), the server side, as a sans-I/O session over
//! postern-mailstore's folders.

pub mod dates;
pub mod describe;
pub mod fetch;
pub mod flags;
pub mod mailboxes;
pub mod mime;
pub mod search;
pub mod sequence;
pub mod session;
pub mod store;

pub use session::{Action, Config, LoginFailure, Session};
pub mod wire;
