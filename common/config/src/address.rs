//! Addresses as Postern looks them up: lower-cased, checked, split.

use std::fmt;

/// An address as Postern looks it up: `localpart@domain`, lower-cased, since
/// lookups in the maps are case-insensitive (as in Postfix). The original
/// spelling stays in the message; only lookups and Maildir paths use this.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no '@' in address")]
    NoDomain,
    #[error("empty local part")]
    EmptyLocal,
    #[error("empty domain")]
    EmptyDomain,
    #[error("local part longer than 64 octets")]
    LocalTooLong,
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    #[error("control character, space or one of \"(),:;<>@[\\] in the local part")]
    BadCharacter,
    #[error("bad character in domain")]
    BadDomain,
}

/// RFC 5321 section 4.5.3.1 limits.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;

impl Address {
    /// Parses `local@domain`, with optional angle brackets. The last `@`
    /// splits, as in RFC 5321, since a local part cannot hold one unquoted.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let text = text.trim();
        let text = text
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(text);
        let (local, domain) = text.rsplit_once('@').ok_or(AddressError::NoDomain)?;
        Address::new(local, domain)
    }

    pub fn new(local: &str, domain: &str) -> Result<Address, AddressError> {
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if local.len() > MAX_LOCAL {
            return Err(AddressError::LocalTooLong);
        }
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        if local
            .chars()
            // RFC 5322 atext and dots (RFC 6531 adds non-ASCII): no
            // specials, so no `:` to split a passwd-file line.
            .any(|c| c.is_control() || c.is_whitespace() || "\"(),:;<>@[\\]".contains(c))
        {
            return Err(AddressError::BadCharacter);
        }
        if !valid_domain(domain) {
            return Err(AddressError::BadDomain);
        }
        Ok(Address {
            local: local.to_lowercase(),
            domain: domain.to_lowercase(),
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `user@domain` for `user+ext@domain`, if the local part carries the
    /// delimiter after at least one character.
    pub fn without_extension(&self, delimiter: &str) -> Option<Address> {
        if delimiter.is_empty() {
            return None;
        }
        let at = self.local.find(delimiter).filter(|&at| at > 0)?;
        Some(Address {
            local: self.local[..at].to_string(),
            domain: self.domain.clone(),
        })
    }

    pub fn with_domain(&self, domain: &str) -> Address {
        Address {
            local: self.local.clone(),
            domain: domain.to_string(),
        }
    }

    /// Whether the local part can safely name a directory under the mail
    /// root: no `/`, not `.` or `..`, no leading dot.
    pub fn is_path_safe(&self) -> bool {
        !self.local.starts_with('.') && !self.local.contains('/') && !self.domain.starts_with('.')
    }
}

/// A domain name or address literal: letters, digits, `-`, `.`, and the
/// brackets, colons and dots of `[192.0.2.1]` / `[IPv6:...]`; non-ASCII
/// letters are allowed for internationalized names (RFC 6531).
pub(crate) fn valid_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return domain.ends_with(']')
            && domain[1..domain.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':'));
    }
    // A trailing dot (the root) is stripped by the callers; one left over
    // would be an empty label, and the address would change on each parse.
    !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '_')
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_dot_goes_two_are_refused() {
        assert_eq!(
            Address::parse("a@b.example.").unwrap().to_string(),
            "a@b.example"
        );
        assert_eq!(
            Address::parse("a@b.example.."),
            Err(AddressError::BadDomain)
        );
        assert_eq!(
            Address::new("a", "b.example.."),
            Err(AddressError::BadDomain)
        );
    }

    #[test]
    fn parses_and_lowercases() {
        let a = Address::parse("<Bob.Smith@Example.TEST>").unwrap();
        assert_eq!(a.to_string(), "bob.smith@example.test");
        assert_eq!(Address::parse("a@b.c.").unwrap().domain(), "b.c");
        assert_eq!(
            Address::parse("two@ats@x.test"),
            Err(AddressError::BadCharacter)
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        assert_eq!(Address::parse("nobody"), Err(AddressError::NoDomain));
        assert_eq!(Address::parse("@x.test"), Err(AddressError::EmptyLocal));
        assert_eq!(Address::parse("a@"), Err(AddressError::EmptyDomain));
        assert_eq!(
            Address::parse("a b@x.test"),
            Err(AddressError::BadCharacter)
        );
        assert_eq!(
            Address::parse("a\0@x.test"),
            Err(AddressError::BadCharacter)
        );
        assert_eq!(Address::parse("a@x/y"), Err(AddressError::BadDomain));
        assert_eq!(Address::parse("a@x..y"), Err(AddressError::BadDomain));
        assert_eq!(
            Address::parse(&format!("{}@x", "a".repeat(65))),
            Err(AddressError::LocalTooLong)
        );
    }

    #[test]
    fn extension() {
        let a = Address::parse("bob+lists@x.test").unwrap();
        assert_eq!(a.without_extension("+").unwrap().to_string(), "bob@x.test");
        assert_eq!(
            Address::parse("+x@x.test").unwrap().without_extension("+"),
            None
        );
        assert_eq!(a.without_extension(""), None);
    }

    #[test]
    fn path_safety() {
        assert!(Address::parse("bob@x.test").unwrap().is_path_safe());
        assert!(!Address::parse("../etc@x.test").unwrap().is_path_safe());
        assert!(!Address::parse("a/b@x.test").unwrap().is_path_safe());
    }
}
