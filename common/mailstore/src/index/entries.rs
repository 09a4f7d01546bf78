//! `postern-cache`, beside the index: for each message, what a reader
//! described of it once (for IMAP: ENVELOPE and BODYSTRUCTURE as sent,
//! the header fields SEARCH and SORT compare), so that answering them
//! never opens the message again. Entries are only appended, by whoever
//! holds the folder's lock, and each names its UID, so an entry is found
//! by the offset the index gives and checked against the UID it is for.
//!
//! An entry: its length (u32, all of it), the UID (u32), the number of
//! fields (u32), each field's length (u32), then the fields. The store
//! does not know what the fields mean: the reader's `Describe` makes them
//! and the reader asks for them by number.

pub const CACHE_FILE: &str = "postern-cache";

/// How a reader makes a message's fields from its bytes (CRLF line
/// ends), and the version of what it makes: a snapshot written with
/// another version has its entries made again, so that a change to what
/// is cached (an ENVELOPE fix) reaches every folder.
#[derive(Clone, Copy)]
pub struct Describe {
    pub version: u32,
    pub fields: fn(&[u8]) -> Vec<Vec<u8>>,
}

/// Appends the entry for `uid` to `out`.
pub fn encode(uid: u32, fields: &[Vec<u8>], out: &mut Vec<u8>) {
    let length = 12 + 4 * fields.len() + fields.iter().map(Vec::len).sum::<usize>();
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out.extend_from_slice(&uid.to_le_bytes());
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    for field in fields {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    }
    for field in fields {
        out.extend_from_slice(field);
    }
}

/// The entry at `offset` in `cache`, if it is whole and for `uid`.
pub fn entry(cache: &[u8], offset: u64, uid: u32) -> Option<Entry<'_>> {
    let start = usize::try_from(offset).ok()?;
    let head = cache.get(start..start.checked_add(12)?)?;
    let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let (length, entry_uid, count) = (word(0) as usize, word(4), word(8) as usize);
    if entry_uid != uid {
        return None;
    }
    let bytes = cache.get(start..start.checked_add(length)?)?;
    let lengths_end = 12usize.checked_add(count.checked_mul(4)?)?;
    let lengths = bytes.get(12..lengths_end)?;
    let total: usize = lengths
        .chunks_exact(4)
        .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
        .sum();
    if lengths_end.checked_add(total)? != length {
        return None;
    }
    Some(Entry { bytes, count })
}

/// One message's fields.
pub struct Entry<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Entry<'a> {
    /// The whole entry, as the cache holds it.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Field `n`, empty when the entry has fewer.
    pub fn field(&self, n: usize) -> &'a [u8] {
        if n >= self.count {
            return &[];
        }
        let length_at = |i: usize| {
            u32::from_le_bytes(
                self.bytes[12 + 4 * i..16 + 4 * i]
                    .try_into()
                    .expect("4 bytes"),
            ) as usize
        };
        let start = 12 + 4 * self.count + (0..n).map(length_at).sum::<usize>();
        &self.bytes[start..start + length_at(n)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_by_offset_and_uid_only_when_whole() {
        let mut cache = Vec::new();
        encode(
            4,
            &[b"one".to_vec(), Vec::new(), b"three".to_vec()],
            &mut cache,
        );
        let second = cache.len() as u64;
        encode(9, &[b"x".to_vec()], &mut cache);
        let first = entry(&cache, 0, 4).unwrap();
        assert_eq!(first.field(0), b"one");
        assert_eq!(first.field(1), b"");
        assert_eq!(first.field(2), b"three");
        assert_eq!(first.field(3), b"");
        assert_eq!(entry(&cache, second, 9).unwrap().field(0), b"x");
        assert!(entry(&cache, second, 4).is_none(), "another UID's entry");
        assert!(
            entry(&cache[..cache.len() - 1], second, 9).is_none(),
            "torn"
        );
        assert!(entry(&cache, 3, 4).is_none());
        assert!(entry(&cache, u64::MAX, 4).is_none());
    }
}
