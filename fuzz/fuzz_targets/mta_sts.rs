#![no_main]
//! What an MTA-STS policy's server and DNS send: any bytes as the HTTP
//! response, the policy, or the TXT record, never a panic; a policy that
//! parses holds what RFC 8461 asks.
use libfuzzer_sys::fuzz_target;
use postern_mta_sts::{Mode, Policy, parse_response, record_id};

fuzz_target!(|data: &[u8]| {
    let _ = parse_response(data);
    let text = String::from_utf8_lossy(data);
    if let Some(id) = record_id(&text) {
        assert!(!id.is_empty() && id.len() <= 32);
    }
    if let Ok(policy) = Policy::parse(&text) {
        assert!(policy.mode == Mode::None || !policy.mx.is_empty());
        assert!(policy.max_age <= 31_557_600);
        let _ = policy.allows(&text);
    }
});
