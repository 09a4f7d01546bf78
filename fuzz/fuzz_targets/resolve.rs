#![no_main]
//! Resolution over fuzzed maps: input is `domains NUL aliases NUL address`.
//! It must end (no unbounded recursion or fan-out) and never panic.
use libfuzzer_sys::fuzz_target;
use postern_config::{Accounts, Address, Aliases, Domains, Maps, Settings};
use postern_routing::{Resolver};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let (Some(domains), Some(aliases), Some(address)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let mut errors = Vec::new();
    let maps = Maps {
        domains: Domains::parse(Path::new("domains"), domains, &mut errors),
        accounts: Accounts::parse(Path::new("accounts"), "a@example.test:{PLAIN}x\n", &mut errors),
        aliases: Aliases::parse(Path::new("aliases"), aliases, &mut errors),
        errors,
    };
    let settings = Settings {
        hostname: "mx.example.test".into(),
        ..Settings::default()
    };
    if let Ok(address) = Address::parse(address) {
        let resolution = Resolver::new(&settings, &maps).resolve(&address);
        assert!(resolution.destinations.len() + resolution.failures.len() <= 2000);
    }
});
