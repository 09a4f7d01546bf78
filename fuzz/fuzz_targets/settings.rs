#![no_main]
//! postern.toml: any text gives settings or its errors, never a panic; the
//! salvaged settings are what the strict parse gives when there is no
//! error, and each error names a line of the text.
use libfuzzer_sys::fuzz_target;
use postern_config::Settings;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("postern.toml");
    let strict = Settings::parse(path, text);
    let (salvaged, errors) = Settings::salvage(path, text);
    assert!(salvaged.mail_root.is_absolute() && salvaged.queue_dir.is_absolute());
    assert_eq!(strict.is_ok(), errors.is_empty());
    if let Ok(settings) = strict {
        assert_eq!(settings, salvaged);
    }
    let lines = text.matches('\n').count() + 1;
    for error in errors {
        assert!(error.line <= lines, "{error} of {lines} lines");
    }
});
