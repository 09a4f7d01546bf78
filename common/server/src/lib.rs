//! What every server of the suite shares, so that each program keeps only
//! its protocol's glue: who may connect and how many at once
//! (`admission`), the root forking listener that reads no client byte
//! (`forking`), the privilege steps and socket options before a session's
//! first read (`start`), the blocking TLS transport (`transport`) and the
//! challenge seed for APOP and CRAM-MD5 (`seed`), and the login through
//! postern-auth to the mailbox's owner (`login`).
//!
//! postern-pop3d and postern-imapd run on all of it; postern-smtpd, which serves its
//! connections as tokio tasks in one process, shares the admission rules
//! and the seed.

mod admission;
mod forking;
pub mod launch;
mod login;
mod seed;
mod start;
mod transport;

pub use admission::{Access, Connections, Crowded};
pub use forking::{Accepted, Refusals, serve_forking};
pub use login::{LoggedIn, Refusal, log_in};
pub use seed::challenge_seed;
pub use start::{Start, start_session};
pub use transport::Transport;
