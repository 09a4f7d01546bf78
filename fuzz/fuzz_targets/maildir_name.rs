#![no_main]
//! Maildir file names as readers find them: parsing never panics, and a
//! name made by `for_new` parses back to its parts.
use libfuzzer_sys::fuzz_target;
use postern_maildir::{MessageName, escape_host};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let name = MessageName::parse(&text);
    assert!(!name.base.contains(':'));
    let host = escape_host(&text);
    assert!(!host.contains('/') && !host.contains(':'));
    let base = format!("1700000000.M1P1Q1.{host}");
    if !base.contains(',') {
        let made = MessageName::for_new(&base, 10, 12);
        let parsed = MessageName::parse(&made);
        assert_eq!((parsed.base.as_str(), parsed.size, parsed.virtual_size), (base.as_str(), Some(10), Some(12)));
    }
});
