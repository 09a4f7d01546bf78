//! The files Postern keeps beside a folder's messages so that reading
//! a large folder never means reading its messages: the index snapshot
//! (`postern-index`) and the cache of described messages
//! (`postern-cache`). Both are rebuilt from the Maildir whenever they are
//! missing, torn or stale: the Maildir and `dovecot-uidlist` stay the
//! truth.

pub mod entries;
pub mod snapshot;
