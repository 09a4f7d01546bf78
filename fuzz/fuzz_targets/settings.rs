#![no_main]
//! postern.toml: any text gives settings or one error, never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(settings) = postern_config::Settings::parse(Path::new("postern.toml"), text) {
            assert!(settings.mail_root.is_absolute());
        }
    }
});
