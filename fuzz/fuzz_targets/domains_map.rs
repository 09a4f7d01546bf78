#![no_main]
//! The domains map: any text loads, never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut errors = Vec::new();
    let domains = postern_config::Domains::parse(Path::new("domains"), &text, &mut errors);
    for (name, _) in domains.iter() {
        assert!(!name.is_empty() && !name.contains('/'));
    }
});
