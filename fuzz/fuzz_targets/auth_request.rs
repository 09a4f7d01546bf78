#![no_main]
//! postern-auth's request and reply lines: anything parses to a value or
//! an error, never a panic, and what parses encodes back to a line that
//! parses to the same value.
use libfuzzer_sys::fuzz_target;
use postern_auth_protocol::{Block, MAX_LINE, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = Request::parse(line)
        && let Some(encoded) = request.encode()
    {
        assert!(encoded.len() <= MAX_LINE && encoded.ends_with('\n'));
        assert_eq!(Request::parse(encoded.trim_end_matches('\n')), Ok(request));
    }
    if let Ok(reply) = Reply::parse(line) {
        let encoded = reply.encode();
        assert!(encoded.len() <= MAX_LINE && encoded.ends_with('\n'));
        assert_eq!(encoded.matches('\n').count(), 1);
    }
    // BLOCKED's listing: a BLOCK line that parses comes back the same.
    if let Some(block) = Block::parse(line) {
        let encoded = Reply::Blocked(vec![block.clone()]).encode();
        let first = encoded.lines().next().unwrap_or_default();
        if first.starts_with("BLOCK ") {
            assert_eq!(Block::parse(first), Some(block));
        }
    }
});
