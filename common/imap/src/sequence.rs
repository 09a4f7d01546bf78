//! Sequence sets (RFC 3501 §9, `sequence-set`) resolved against a
//! folder: to the message indexes they name, in ascending order without
//! repeats. `*` is the last message (or UID); a range names the same
//! messages in either order; numbers past the end name nothing.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// The lowest and highest number `sequence` names, `*` being `last`.
fn bounds(sequence: &Sequence, last: u32) -> (u32, u32) {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => last,
    };
    match sequence {
        Sequence::Single(v) => (value(v), value(v)),
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            (a.min(b), a.max(b))
        }
    }
}

/// The indexes (0-based) of messages 1..=`count` that `set` names as
/// sequence numbers.
pub fn by_number(set: &SequenceSet, count: usize) -> Vec<usize> {
    let last = count as u32;
    let mut out: Vec<usize> = Vec::new();
    for sequence in set.0.as_ref() {
        let (low, high) = bounds(sequence, last);
        let high = high.min(last);
        if low == 0 || low > high {
            continue;
        }
        out.extend((low..=high).map(|n| n as usize - 1));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `set` names a message number past `count` (RFC 3501 §9: a
/// client error, answered BAD; `*` is always in range).
pub fn beyond(set: &SequenceSet, count: usize) -> bool {
    set.0.as_ref().iter().any(|sequence| {
        let (_, high) = bounds(sequence, count as u32);
        high as usize > count
    })
}

/// The indexes of the messages whose UIDs `set` names; `uid_at(i)` is
/// message i's UID, rising with i.
pub fn by_uid(set: &SequenceSet, count: usize, uid_at: impl Fn(usize) -> u32) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let last = uid_at(count - 1);
    // The first index whose UID is at least `uid`.
    let lower_bound = |uid: u32| {
        let (mut low, mut high) = (0, count);
        while low < high {
            let middle = (low + high) / 2;
            if uid_at(middle) < uid {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    };
    let mut out = Vec::new();
    for sequence in set.0.as_ref() {
        let (low, high) = bounds(sequence, last);
        let mut at = lower_bound(low);
        while at < count && uid_at(at) <= high {
            out.push(at);
            at += 1;
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `set` names `n`, `*` being `last`.
pub fn includes(set: &SequenceSet, n: u32, last: u32) -> bool {
    set.0.as_ref().iter().any(|sequence| {
        let (low, high) = bounds(sequence, last);
        (low..=high).contains(&n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    #[test]
    fn numbers_and_uids_name_what_exists() {
        assert_eq!(by_number(&set("2:4,1,9"), 5), [0, 1, 2, 3]);
        assert_eq!(by_number(&set("4:2"), 5), [1, 2, 3]);
        assert_eq!(by_number(&set("*"), 5), [4]);
        assert_eq!(by_number(&set("3:*"), 0), Vec::<usize>::new());
        let uids = [3, 7, 8, 20];
        let at = |i: usize| uids[i];
        assert_eq!(by_uid(&set("1:7"), 4, at), [0, 1]);
        assert_eq!(by_uid(&set("9:19"), 4, at), Vec::<usize>::new());
        // RFC 3501 §6.4.8: "*" is the highest UID even in "n:*" past it.
        assert_eq!(by_uid(&set("25:*"), 4, at), [3]);
        assert_eq!(by_uid(&set("8,3"), 4, at), [0, 2]);
        assert!(includes(&set("2:4,9"), 9, 20));
        assert!(includes(&set("25:*"), 20, 20));
        assert!(!includes(&set("2:4"), 5, 20));
    }
}
