//! The mail store: a mailbox as its readers see it, over postern-maildir's
//! Maildir++ files. Today the maildrop of a POP3 session — the listing
//! with sizes and UIDLs (Dovecot's kept where `dovecot-uidlist` has them),
//! the size cache, the one-session lock and deletions that keep
//! `maildirsize` true; and a folder's IMAP UID list, kept in Dovecot's
//! `dovecot-uidlist` format under its lock protocol (`uidlist`); and a
//! folder as IMAP reads it (`folder`), through the index and cache kept
//! beside it (`index`).
//! No protocol's types are inside: a server's glue turns what the store
//! says into its protocol's answers.
//!
//! How sessions share one mailbox (docs/DESIGN.md, "Mailbox sharing"):
//! the Maildir is the truth and every reader works on it as it is; a POP3
//! session holds the mailbox's POP3 lock (`MaildropLock`) from login to
//! its end, so two POP3 sessions never list one mailbox at once; IMAP
//! sessions, `postern-local` and mutt on the shell take no such lock. A
//! message is known by its unique part (its name up to `:`), which flag
//! changes leave alone, and a file another reader removed is gone, never
//! an error: POP3's UPDATE counts it removed, RETR says it is gone.

mod cache;
pub mod folder;
pub mod index;
mod listing;
mod lock;
mod maildrop;
mod measure;
mod names;
mod scan;
pub mod uidlist;
pub mod uidsync;

pub use listing::Listing;
pub use lock::{LOCK_FILE, LockError, MaildropLock};
pub use maildrop::{Maildrop, View};
pub use measure::read_head;

/// Octets a view leaves out of each message (POP3's invalid
/// `Message-ID:` fields), found in its first `head_limit` octets: given
/// them and whether they are the whole message, `octets` says how many
/// (counted with CRLF line ends).
#[derive(Clone, Copy)]
pub struct Cut {
    pub head_limit: usize,
    pub octets: fn(&[u8], bool) -> u64,
}
