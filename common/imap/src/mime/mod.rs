//! What IMAP shows of a message's form: its header fields, ENVELOPE,
//! BODYSTRUCTURE and BODY, and the parts a section number names.

pub mod address;
pub mod envelope;
pub mod headers;
pub mod params;
pub mod structure;
