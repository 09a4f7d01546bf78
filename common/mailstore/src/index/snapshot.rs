//! `postern-index`, a folder's index: a snapshot of what the folder held
//! at its last sync, written whole to a new file and renamed into place,
//! never changed in place, and read through a memory map, so that any
//! number of sessions share one copy in the page cache and a reader never
//! waits for a writer.
//!
//! Layout (little-endian): an 88-byte header, `count` records of 40 bytes
//! sorted by UID, then the file names, back to back.
//!
//! | header field | bytes |
//! |---|---|
//! | magic `PSTNIDX1` | 8 |
//! | uidvalidity, uidnext, count, first recent UID | 4 × 4 |
//! | names' length, 0 | 4 × 2 |
//! | new/ mtime, cur/ mtime (ns since the epoch) | 8 × 2 |
//! | `dovecot-uidlist` size, mtime (ns), inode | 8 × 3 |
//! | length of `postern-cache` the records point into | 8 |
//! | checksum of the 80 bytes before it | 8 |
//!
//! A record: UID, flag letters `A`–`Z` as bits, keyword letters `a`–`z`
//! as bits, RFC822.SIZE (CRLF octets), name offset and length, the
//! internal date (seconds), the cache entry's offset.
//!
//! Nothing in the file is trusted: `Snapshot::parse` checks the length,
//! the checksum, UIDs rising below uidnext and every name in bounds, and
//! a file that fails is rebuilt from the Maildir.

use std::io;

pub const INDEX_FILE: &str = "postern-index";

const MAGIC: &[u8; 8] = b"PSTNIDX1";
pub const HEADER_LEN: usize = 88;
pub const RECORD_LEN: usize = 40;

/// What the folder looked like when the snapshot was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    pub new_mtime: i64,
    pub cur_mtime: i64,
    pub uidlist_size: u64,
    pub uidlist_mtime: i64,
    pub uidlist_inode: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub validity: u32,
    pub next_uid: u32,
    pub count: u32,
    /// The lowest UID no session has yet seen as `\Recent`.
    pub first_recent: u32,
    pub names_len: u32,
    /// The `Describe` version the cache entries were made with.
    pub describe_version: u32,
    pub stamps: Stamps,
    pub cache_len: u64,
}

/// One message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    /// Bit n: the flag letter `'A' + n` in the file name.
    pub flags: u32,
    /// Bit n: the keyword letter `'a' + n`.
    pub keywords: u32,
    pub size: u32,
    pub internal_date: i64,
    pub cache_offset: u64,
}

/// The flag and keyword bits of a file name's `:2,` letters.
pub fn letters_of(name: &str) -> (u32, u32) {
    let Some((_, info)) = name.split_once(":2,") else {
        return (0, 0);
    };
    let (mut flags, mut keywords) = (0, 0);
    for byte in info.bytes() {
        match byte {
            b'A'..=b'Z' => flags |= 1 << (byte - b'A'),
            b'a'..=b'z' => keywords |= 1 << (byte - b'a'),
            _ => {}
        }
    }
    (flags, keywords)
}

/// The `:2,` letters of flags and keywords, in the ASCII order Maildir
/// readers expect: system flags (upper case), then keywords.
pub fn letters(flags: u32, keywords: u32) -> String {
    let upper = (0..26u8)
        .filter(|n| flags & (1 << n) != 0)
        .map(|n| b'A' + n);
    let lower = (0..26u8)
        .filter(|n| keywords & (1 << n) != 0)
        .map(|n| b'a' + n);
    upper.chain(lower).map(char::from).collect()
}

fn checksum(bytes: &[u8]) -> u64 {
    crate::names::fnv1a(bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Writes a snapshot of `records` (sorted by UID) and their names.
pub fn encode(header: &Header, records: &[(Record, &str)]) -> Vec<u8> {
    let names_len: usize = records.iter().map(|(_, name)| name.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() * RECORD_LEN + names_len);
    out.extend_from_slice(MAGIC);
    for value in [
        header.validity,
        header.next_uid,
        records.len() as u32,
        header.first_recent,
        names_len as u32,
        header.describe_version,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    let stamps = &header.stamps;
    for value in [
        stamps.new_mtime as u64,
        stamps.cur_mtime as u64,
        stamps.uidlist_size,
        stamps.uidlist_mtime as u64,
        stamps.uidlist_inode,
        header.cache_len,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    let mut name_at = 0u32;
    for (record, name) in records {
        for value in [
            record.uid,
            record.flags,
            record.keywords,
            record.size,
            name_at,
            name.len() as u32,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&record.internal_date.to_le_bytes());
        out.extend_from_slice(&record.cache_offset.to_le_bytes());
        name_at += name.len() as u32;
    }
    for (_, name) in records {
        out.extend_from_slice(name.as_bytes());
    }
    out
}

/// A checked view of a snapshot's bytes.
pub struct Snapshot<B> {
    bytes: B,
    pub header: Header,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{INDEX_FILE}: {why}"))
}

impl<B: AsRef<[u8]>> Snapshot<B> {
    /// Checks `bytes` as a whole snapshot.
    pub fn parse(bytes: B) -> io::Result<Snapshot<B>> {
        let data = bytes.as_ref();
        if data.len() < HEADER_LEN || &data[..8] != MAGIC {
            return Err(invalid("not an index"));
        }
        if checksum(&data[..80]) != u64_at(data, 80) {
            return Err(invalid("header checksum"));
        }
        let header = Header {
            validity: u32_at(data, 8),
            next_uid: u32_at(data, 12),
            count: u32_at(data, 16),
            first_recent: u32_at(data, 20),
            names_len: u32_at(data, 24),
            describe_version: u32_at(data, 28),
            stamps: Stamps {
                new_mtime: u64_at(data, 32) as i64,
                cur_mtime: u64_at(data, 40) as i64,
                uidlist_size: u64_at(data, 48),
                uidlist_mtime: u64_at(data, 56) as i64,
                uidlist_inode: u64_at(data, 64),
            },
            cache_len: u64_at(data, 72),
        };
        let records_len = header.count as usize * RECORD_LEN;
        if data.len() != HEADER_LEN + records_len + header.names_len as usize {
            return Err(invalid("torn (length does not match the header)"));
        }
        let snapshot = Snapshot { bytes, header };
        let mut last_uid = 0;
        let mut name_end = 0u64;
        for index in 0..header.count as usize {
            let at = HEADER_LEN + index * RECORD_LEN;
            let data = snapshot.bytes.as_ref();
            let uid = u32_at(data, at);
            if uid <= last_uid || uid >= header.next_uid {
                return Err(invalid("UIDs out of order"));
            }
            last_uid = uid;
            let (offset, length) = (u32_at(data, at + 16), u32_at(data, at + 20));
            if u64::from(offset) != name_end || length == 0 {
                return Err(invalid("names out of place"));
            }
            name_end += u64::from(length);
        }
        if name_end != u64::from(header.names_len) {
            return Err(invalid("names out of place"));
        }
        Ok(snapshot)
    }

    pub fn len(&self) -> usize {
        self.header.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    fn at(&self, index: usize) -> usize {
        HEADER_LEN + index * RECORD_LEN
    }

    pub fn uid(&self, index: usize) -> u32 {
        u32_at(self.bytes.as_ref(), self.at(index))
    }

    pub fn record(&self, index: usize) -> Record {
        let data = self.bytes.as_ref();
        let at = self.at(index);
        Record {
            uid: u32_at(data, at),
            flags: u32_at(data, at + 4),
            keywords: u32_at(data, at + 8),
            size: u32_at(data, at + 12),
            internal_date: u64_at(data, at + 24) as i64,
            cache_offset: u64_at(data, at + 32),
        }
    }

    /// The file name as of the snapshot (valid UTF-8 was written; anything
    /// else reads as empty and fails to open).
    pub fn name(&self, index: usize) -> &str {
        let data = self.bytes.as_ref();
        let at = self.at(index);
        let names = HEADER_LEN + self.len() * RECORD_LEN;
        let start = names + u32_at(data, at + 16) as usize;
        let end = start + u32_at(data, at + 20) as usize;
        std::str::from_utf8(&data[start..end]).unwrap_or("")
    }

    /// The index of `uid`, or where it would be.
    pub fn search(&self, uid: u32) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.uid(middle).cmp(&uid) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let header = Header {
            validity: 1_700_000_000,
            next_uid: 10,
            first_recent: 3,
            stamps: Stamps {
                new_mtime: 5,
                cur_mtime: 6,
                uidlist_size: 7,
                uidlist_mtime: 8,
                uidlist_inode: 9,
            },
            cache_len: 100,
            ..Header::default()
        };
        let records = [
            (
                Record {
                    uid: 2,
                    flags: letters_of("x:2,FS").0,
                    size: 120,
                    internal_date: 1_700_000_002,
                    ..Record::default()
                },
                "1.M1.host:2,FS",
            ),
            (
                Record {
                    uid: 7,
                    keywords: 0b101,
                    size: 4,
                    cache_offset: 60,
                    ..Record::default()
                },
                "2.M2.host",
            ),
        ];
        encode(&header, &records)
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        let bytes = sample();
        let snapshot = Snapshot::parse(&bytes[..]).unwrap();
        assert_eq!(snapshot.header.validity, 1_700_000_000);
        assert_eq!(snapshot.header.first_recent, 3);
        assert_eq!(snapshot.header.stamps.uidlist_inode, 9);
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot.name(0), "1.M1.host:2,FS");
        assert_eq!(snapshot.name(1), "2.M2.host");
        let first = snapshot.record(0);
        assert_eq!(first.flags, (1 << 5) | (1 << 18));
        assert_eq!(first.internal_date, 1_700_000_002);
        assert_eq!(snapshot.record(1).cache_offset, 60);
        assert_eq!(snapshot.search(7), Ok(1));
        assert_eq!(snapshot.search(3), Err(1));
    }

    #[test]
    fn torn_or_altered_snapshots_are_refused() {
        let bytes = sample();
        for cut in [0, 10, HEADER_LEN, bytes.len() - 1] {
            assert!(Snapshot::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut header_changed = bytes.clone();
        header_changed[12] ^= 1;
        assert!(Snapshot::parse(&header_changed[..]).is_err());
        let mut uids_swapped = bytes.clone();
        uids_swapped[HEADER_LEN] = 9;
        assert!(Snapshot::parse(&uids_swapped[..]).is_err());
        let mut name_moved = bytes;
        name_moved[HEADER_LEN + RECORD_LEN + 16] = 1;
        assert!(Snapshot::parse(&name_moved[..]).is_err());
    }
}
