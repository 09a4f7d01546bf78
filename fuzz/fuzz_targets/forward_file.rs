#![no_main]
//! A user's ~/.forward: any text gives targets and per-line errors, never
//! a panic; no path target can climb out with `..`, no pipe is empty.
use libfuzzer_sys::fuzz_target;
use postern_routing::forward::{Forward, ForwardTarget};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let forward = Forward::parse(&text, "shell.example.test");
    let lines = text.lines().count();
    for (line, target) in &forward.targets {
        assert!(*line >= 1 && *line <= lines);
        match target {
            ForwardTarget::File(path) | ForwardTarget::Maildir(path) => {
                assert!(path.is_absolute());
                assert!(!path.components().any(|c| c == std::path::Component::ParentDir));
            }
            ForwardTarget::Pipe(command) => assert!(!command.trim().is_empty()),
            _ => {}
        }
    }
});
