#![no_main]
//! The masquerade map: any text loads, never a panic; every lookup gives
//! an address that parses again.
use libfuzzer_sys::fuzz_target;
use postern_config::{Address, Masquerade};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut errors = Vec::new();
    let map = Masquerade::parse(Path::new("masquerade"), &text, &mut errors);
    for probe in ["alice@shell.test", "bob@example.org", "x@y.z"] {
        let address = Address::parse(probe).expect("a good probe");
        for user in ["alice", "bob", ""] {
            if let Some((new, line)) = map.lookup(user, &address) {
                assert!(line >= 1);
                assert_eq!(Address::parse(&new.to_string()).as_ref(), Ok(&new));
            }
        }
    }
});
