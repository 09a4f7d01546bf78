//! Address literals in MAIL and RCPT paths (RFC 5321 §4.1.3:
//! `user@[192.0.2.1]`, `user@[IPv6:2001:db8::1]`), which smtp-proto's
//! path parser does not take. A valid literal is masked with a domain name
//! that cannot occur in mail before the line is parsed, and put back in
//! the parsed address after; an invalid one is left for the parser to
//! refuse.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Stands in for the literal while smtp-proto reads the line.
const MASK: &str = "address-literal.postern.invalid";

/// The line with its path's literal masked, and the literal; `None` when
/// the line has no valid literal in a path.
pub fn mask(line: &[u8]) -> Option<(Vec<u8>, String)> {
    let open = line.iter().position(|&b| b == b'<')?;
    let close = open + line[open..].iter().position(|&b| b == b'>')?;
    let path = &line[open + 1..close];
    let at = path.iter().rposition(|&b| b == b'@')?;
    let domain = std::str::from_utf8(&path[at + 1..]).ok()?;
    if !is_literal(domain) {
        return None;
    }
    let mut masked = line[..open + 1 + at + 1].to_vec();
    masked.extend_from_slice(MASK.as_bytes());
    masked.extend_from_slice(&line[close..]);
    Some((masked, domain.to_string()))
}

/// `address` with the mask put back as `literal`.
pub fn unmask(address: &mut String, literal: &str) {
    if let Some(local) = address.strip_suffix(MASK).and_then(|a| a.strip_suffix('@')) {
        *address = format!("{local}@{literal}");
    }
}

/// `[IPv4]` or `[IPv6:address]`, as RFC 5321 §4.1.3 spells them.
fn is_literal(domain: &str) -> bool {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse::<Ipv6Addr>().is_ok(),
        _ => inner.parse::<Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_masked_and_restored() {
        let (masked, literal) = mask(b"RCPT TO:<bob@[192.0.2.1]> NOTIFY=NEVER").unwrap();
        assert_eq!(
            masked,
            b"RCPT TO:<bob@address-literal.postern.invalid> NOTIFY=NEVER"
        );
        let mut address = "bob@address-literal.postern.invalid".to_string();
        unmask(&mut address, &literal);
        assert_eq!(address, "bob@[192.0.2.1]");
        assert!(mask(b"MAIL FROM:<a@[IPv6:2001:db8::1]>").is_some());
        for bad in [
            &b"RCPT TO:<bob@[300.0.0.1]>"[..],
            b"RCPT TO:<bob@[IPv6:zz]>",
            b"RCPT TO:<bob@example.org>",
            b"RCPT TO:<bob@[192.0.2.1]",
            b"RCPT TO:<[192.0.2.1]>",
        ] {
            assert!(mask(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
