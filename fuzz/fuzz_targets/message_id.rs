#![no_main]
//! The invalid Message-ID finder: any head, whole or cut (the first byte
//! says), gives ordered, disjoint ranges of whole `Message-ID:` fields,
//! and cutting them away shrinks POP3's count by exactly what the cut
//! ranges count: the size LIST gives is the size RETR sends.
use libfuzzer_sys::fuzz_target;
use postern_pop3::{crlf_len, invalid_message_ids};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, head)) = data.split_first() else {
        return;
    };
    let whole = flags & 1 != 0;
    let ranges = invalid_message_ids(head, whole);
    let mut kept = Vec::new();
    let mut at = 0;
    let mut cut = 0;
    for range in ranges {
        assert!(range.start >= at && range.start < range.end && range.end <= head.len());
        assert!(range.start == 0 || head[range.start - 1] == b'\n');
        assert!(range.end == head.len() || head[range.end - 1] == b'\n');
        assert!(head[range.start..].len() >= 11);
        assert!(head[range.start..range.start + 10].eq_ignore_ascii_case(b"message-id"));
        kept.extend_from_slice(&head[at..range.start]);
        cut += crlf_len(&head[range.clone()]);
        at = range.end;
    }
    kept.extend_from_slice(&head[at..]);
    assert_eq!(crlf_len(&kept), crlf_len(head) - cut);
});
