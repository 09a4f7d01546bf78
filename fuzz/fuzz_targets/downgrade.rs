#![no_main]
//! RFC 6152's downgrade of any message: never a panic, and what it
//! makes is 7-bit.
use libfuzzer_sys::fuzz_target;
use postern_smtp_client::downgrade::{can_downgrade, to_seven_bit};

fuzz_target!(|data: &[u8]| {
    let possible = can_downgrade(data);
    match to_seven_bit(data) {
        Some(out) => {
            assert!(possible);
            assert!(out.iter().all(|&b| b < 0x80), "not 7-bit");
        }
        None => assert!(!possible),
    }
});
