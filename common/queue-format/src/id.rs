//! Queue ids: unique for ever on a host, sortable by arrival, safe as
//! file names.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A queue id: 22 lower-case hex digits, seconds, microseconds, pid and
/// three random digits (docs/QUEUE.md). Unique for ever on a host, safe as
/// a file name, and sortable by arrival.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

pub const ID_LENGTH: usize = 22;

static LAST: AtomicU32 = AtomicU32::new(0);

impl QueueId {
    pub fn generate() -> QueueId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // Two ids in one microsecond of one process would collide: wait it out.
        let mut micros = now.subsec_micros();
        let mut secs = now.as_secs();
        let stamp = (secs as u32).wrapping_mul(1_000_000).wrapping_add(micros);
        if LAST.swap(stamp, Ordering::SeqCst) == stamp {
            std::thread::sleep(std::time::Duration::from_micros(2));
            let later = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            secs = later.as_secs();
            micros = later.subsec_micros();
            LAST.store(
                (secs as u32).wrapping_mul(1_000_000).wrapping_add(micros),
                Ordering::SeqCst,
            );
        }
        let mut random = [0u8; 2];
        // Without the random digits the id is still unique unless a pid is
        // reused within a microsecond; no entropy is no reason to refuse mail.
        let _ = getrandom::fill(&mut random);
        let random = (u16::from_le_bytes(random) & 0xfff) as u32;
        QueueId(format!(
            "{:08x}{:05x}{:06x}{:03x}",
            secs as u32,
            micros,
            std::process::id() & 0xff_ffff,
            random
        ))
    }

    /// Accepts exactly the ids `generate` makes.
    pub fn parse(text: &str) -> Option<QueueId> {
        (text.len() == ID_LENGTH
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| QueueId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The arrival second the id carries.
    pub fn seconds(&self) -> u64 {
        u64::from_str_radix(&self.0[..8], 16).unwrap_or(0)
    }

    /// When the message of this id arrived, given the envelope's `arrival`
    /// second: to the microsecond the id carries when the two agree (the
    /// writer takes both at once), else the envelope's.
    pub fn arrived(&self, arrival: u64) -> std::time::SystemTime {
        let second = UNIX_EPOCH + std::time::Duration::from_secs(arrival);
        if self.seconds() != arrival {
            return second;
        }
        let micros = u64::from_str_radix(&self.0[8..13], 16).unwrap_or(0);
        second + std::time::Duration::from_micros(micros.min(999_999))
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_well_formed_and_round_trip() {
        let ids: Vec<QueueId> = (0..2000).map(|_| QueueId::generate()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert_eq!(QueueId::parse(id.as_str()).as_ref(), Some(id));
            assert!(id.seconds() > 1_700_000_000);
        }
        let before = SystemTime::now();
        let id = QueueId::generate();
        let arrived = id.arrived(id.seconds());
        assert!(arrived <= SystemTime::now());
        assert!(
            before
                .duration_since(arrived)
                .unwrap_or_default()
                .as_millis()
                < 1
        );
        assert_eq!(
            id.arrived(1_000),
            UNIX_EPOCH + std::time::Duration::from_secs(1_000)
        );
        assert_eq!(QueueId::parse("../etc/passwd"), None);
        assert_eq!(QueueId::parse("ABCDEF0123456789abcdef"), None);
    }
}
