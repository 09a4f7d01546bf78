//! What a message's file name says: its unique part (the name up to `:`,
//! which flag changes leave alone), its base (up to the first `,` or `:`,
//! the delivery time first, for ordering) and the UIDL made of it.

/// RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E.
const MAX_UIDL: usize = 70;

/// The file name up to `:` (the unique part with its `,S=`/`,W=`).
pub fn unique_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(unique, _)| unique)
}

/// The file name up to its first `,` or `:`.
pub fn base_of(name: &str) -> &str {
    let unique = unique_of(name);
    unique.split_once(',').map_or(unique, |(base, _)| base)
}

pub fn uidl_of(unique: &str) -> String {
    let printable = unique.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if printable && !unique.is_empty() && unique.len() <= MAX_UIDL {
        return unique.to_string();
    }
    let hash = unique.bytes().fold(0xcbf29ce484222325u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{hash:016x}")
}
