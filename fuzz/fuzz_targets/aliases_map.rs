#![no_main]
//! The aliases map: any text loads (good lines kept, bad ones reported),
//! never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut errors = Vec::new();
    let aliases = postern_config::Aliases::parse(Path::new("aliases"), &text, &mut errors);
    for entry in aliases.iter() {
        assert!(!entry.targets.is_empty());
        assert!(entry.line >= 1);
    }
    for error in &errors {
        assert!(error.line >= 1 && error.line <= text.lines().count().max(1));
    }
});
