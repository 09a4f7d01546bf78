#![no_main]
//! A queue message's records (`state/ID`): any text reads, never a panic,
//! and what it says stays within the message's recipients.
use libfuzzer_sys::fuzz_target;
use postern_queue_format::Records;

fuzz_target!(|data: &[u8]| {
    let Some((&count, text)) = data.split_first() else {
        return;
    };
    let recipients = usize::from(count % 8);
    let records = Records::parse(&String::from_utf8_lossy(text), recipients);
    assert_eq!(records.outcomes.len(), recipients);
    assert_eq!(records.reported.len(), recipients);
    assert!(records.pending().iter().all(|&i| i < recipients));
    assert_eq!(records.finished(), records.pending().is_empty());
});
