//! The Sender Rewriting Scheme exactly as libsrs2 (and so postsrsd) writes
//! it, so that bounces to addresses an earlier postsrsd rewrote still come
//! home. Forwarding mail from `user@example.org` through this host makes
//! its sender
//!
//! ```text
//! SRS0=HHHH=TT=example.org=user@srs.host.example
//! ```
//!
//! (HHHH: the first four characters of the base64 HMAC-SHA1, under the
//! first secret, of the lower-cased timestamp, domain and local part; TT:
//! the day, modulo 1024, in two base32 characters), and an SRS0 address
//! another host made becomes `SRS1=HHHH=thathost==HHHH=TT=...`, its hash
//! over that host and the rest. Reversing checks the hash under each
//! secret (several, for key rollover; compared without regard to case, as
//! libsrs2 does, since some hosts lower-case addresses) and, for SRS0,
//! that the timestamp is at most `max_age` days old.

use base64::Engine;
use hmac::{KeyInit, Mac};

/// The first separator, after `SRS0`/`SRS1`: postsrsd's default.
const SEPARATOR: char = '=';
/// The characters libsrs2 takes as that separator.
const SEPARATORS: &[char] = &['=', '-', '+'];
const HASH_LENGTH: usize = 4;
const TIME_CHARS: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const DAY: u64 = 86_400;
/// Timestamps count days modulo this (two base32 characters).
const TIME_SLOTS: u64 = 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("a malformed SRS address")]
    Malformed,
    #[error("the SRS hash does not match")]
    BadHash,
    #[error("the SRS timestamp is too old")]
    Expired,
    #[error("a sender without a domain cannot be rewritten")]
    NoDomain,
}

pub struct Srs {
    /// The first signs; all verify.
    secrets: Vec<Vec<u8>>,
    /// The host's SRS domain: rewritten addresses end `@domain`.
    domain: String,
    /// How many days an SRS0 address stays valid.
    max_age: u64,
}

impl Srs {
    /// `secrets` as postsrsd's secrets file holds them (one a line, the
    /// first for signing); `None` when there is none.
    pub fn new(secrets: &str, domain: &str, max_age_days: u64) -> Option<Srs> {
        let secrets: Vec<Vec<u8>> = secrets
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .map(|l| l.as_bytes().to_vec())
            .collect();
        (!secrets.is_empty()).then(|| Srs {
            secrets,
            domain: domain.to_string(),
            max_age: max_age_days,
        })
    }

    /// Whether `local` is an SRS local part (`SRS0=`, `SRS1-`, ...).
    pub fn is_srs(local: &str) -> bool {
        let bytes = local.as_bytes();
        bytes.len() > 4
            && bytes[..3].eq_ignore_ascii_case(b"SRS")
            && matches!(bytes[3], b'0' | b'1')
            && SEPARATORS.contains(&(bytes[4] as char))
    }

    /// The sender to forward with, at `now` (unix seconds): `sender` itself
    /// when it is already at the SRS domain.
    pub fn forward(&self, sender: &str, now: u64) -> Result<String, SrsError> {
        let (local, host) = sender.rsplit_once('@').ok_or(SrsError::NoDomain)?;
        // A domain with `=` in it would not come back apart.
        if local.is_empty() || host.is_empty() || host.contains('=') {
            return Err(SrsError::NoDomain);
        }
        if host.eq_ignore_ascii_case(&self.domain) {
            return Ok(sender.to_string());
        }
        let tag = |n: char| format!("SRS{n}{SEPARATOR}");
        let lead = local.get(..4).unwrap_or("");
        let sep = local
            .chars()
            .nth(4)
            .is_some_and(|c| SEPARATORS.contains(&c));
        if lead.eq_ignore_ascii_case("SRS1") && sep {
            // Already guarded: keep its first host, hash it again.
            let rest = &local[5..];
            let (_, rest) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            let (srs_host, srs_user) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            let hash = self.hash(0, &[srs_host, srs_user]);
            return Ok(format!(
                "{}{hash}={srs_host}={srs_user}@{}",
                tag('1'),
                self.domain
            ));
        }
        if lead.eq_ignore_ascii_case("SRS0") && sep {
            let srs_user = &local[4..];
            let hash = self.hash(0, &[host, srs_user]);
            return Ok(format!(
                "{}{hash}={host}={srs_user}@{}",
                tag('1'),
                self.domain
            ));
        }
        let stamp = timestamp(now);
        let hash = self.hash(0, &[&stamp, host, local]);
        Ok(format!(
            "{}{hash}={stamp}={host}={local}@{}",
            tag('0'),
            self.domain
        ))
    }

    /// The address an SRS address stands for, checked: `user@domain` for
    /// SRS0, the SRS0 address at its first host for SRS1.
    pub fn reverse(&self, address: &str, now: u64) -> Result<String, SrsError> {
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        if !Srs::is_srs(local) {
            return Err(SrsError::NotSrs);
        }
        let rest = &local[5..];
        if local[..4].eq_ignore_ascii_case("SRS1") {
            let (hash, rest) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            let (srs_host, srs_user) = rest.split_once('=').ok_or(SrsError::Malformed)?;
            if srs_host.is_empty() || srs_user.is_empty() {
                return Err(SrsError::Malformed);
            }
            self.check(hash, &[srs_host, srs_user])?;
            return Ok(format!("SRS0{srs_user}@{srs_host}"));
        }
        let (hash, rest) = rest.split_once('=').ok_or(SrsError::Malformed)?;
        let (stamp, rest) = rest.split_once('=').ok_or(SrsError::Malformed)?;
        let (host, user) = rest.split_once('=').ok_or(SrsError::Malformed)?;
        if host.is_empty() || user.is_empty() {
            return Err(SrsError::Malformed);
        }
        self.check_timestamp(stamp, now)?;
        self.check(hash, &[stamp, host, user])?;
        Ok(format!("{user}@{host}"))
    }

    /// libsrs2's hash: HMAC-SHA1 over the lower-cased parts, base64, its
    /// first `HASH_LENGTH` characters.
    fn hash(&self, secret: usize, parts: &[&str]) -> String {
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&self.secrets[secret])
            .expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(part.to_ascii_lowercase().as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let mut encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        encoded.truncate(HASH_LENGTH);
        encoded
    }

    fn check(&self, hash: &str, parts: &[&str]) -> Result<(), SrsError> {
        if hash.len() < HASH_LENGTH {
            return Err(SrsError::BadHash);
        }
        // Bytes, not characters: a hash from the network may be any text.
        let given = &hash.as_bytes()[..HASH_LENGTH];
        let matches = (0..self.secrets.len()).any(|secret| {
            let made = self.hash(secret, parts);
            given.eq_ignore_ascii_case(made.as_bytes())
        });
        matches.then_some(()).ok_or(SrsError::BadHash)
    }

    fn check_timestamp(&self, stamp: &str, now: u64) -> Result<(), SrsError> {
        let bytes = stamp.as_bytes();
        if bytes.len() != 2 {
            return Err(SrsError::Malformed);
        }
        let mut then = 0u64;
        for &byte in bytes {
            let value = TIME_CHARS
                .iter()
                .position(|&c| c == byte.to_ascii_uppercase())
                .ok_or(SrsError::Malformed)?;
            then = (then << 5) | value as u64;
        }
        let mut today = (now / DAY) % TIME_SLOTS;
        while today < then {
            today += TIME_SLOTS;
        }
        (today <= then + self.max_age)
            .then_some(())
            .ok_or(SrsError::Expired)
    }
}

/// Today, as two base32 characters.
fn timestamp(now: u64) -> String {
    let days = now / DAY;
    let chars = [
        TIME_CHARS[((days >> 5) & 31) as usize],
        TIME_CHARS[(days & 31) as usize],
    ];
    String::from_utf8_lossy(&chars).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_600_000;

    fn srs() -> Srs {
        Srs::new("new secret\nold secret\n", "srs.host.test", 21).unwrap()
    }

    #[test]
    fn forward_and_back() {
        let srs = srs();
        let rewritten = srs.forward("Alice@Example.ORG", NOW).unwrap();
        let (local, domain) = rewritten.rsplit_once('@').unwrap();
        assert_eq!(domain, "srs.host.test");
        let parts: Vec<&str> = local.split('=').collect();
        assert_eq!(parts[0], "SRS0");
        assert_eq!(parts[1].len(), 4);
        assert_eq!(parts[2], timestamp(NOW));
        assert_eq!(&parts[3..], ["Example.ORG", "Alice"]);
        assert_eq!(srs.reverse(&rewritten, NOW).unwrap(), "Alice@Example.ORG");
        // Some hosts lower-case what they return.
        assert_eq!(
            srs.reverse(&rewritten.to_ascii_lowercase(), NOW).unwrap(),
            "alice@example.org"
        );
        // Our own SRS domain is left alone.
        assert_eq!(
            srs.forward("x@srs.host.test", NOW).unwrap(),
            "x@srs.host.test"
        );
        assert_eq!(srs.forward("nodomain", NOW), Err(SrsError::NoDomain));
        assert_eq!(srs.forward("x@", NOW), Err(SrsError::NoDomain));
        assert_eq!(srs.forward("@x.test", NOW), Err(SrsError::NoDomain));
    }

    #[test]
    fn srs0_from_elsewhere_becomes_srs1_and_comes_back() {
        let srs = srs();
        let other = "SRS0=abcd=AB=orig.test=bob@first.test";
        let rewritten = srs.forward(other, NOW).unwrap();
        assert!(rewritten.starts_with("SRS1="), "{rewritten}");
        assert!(
            rewritten.ends_with("=first.test==abcd=AB=orig.test=bob@srs.host.test"),
            "{rewritten}"
        );
        assert_eq!(srs.reverse(&rewritten, NOW).unwrap(), other);
        // And SRS1 again keeps its first host.
        let again = srs
            .forward(&rewritten.replace("@srs.host.test", "@second.test"), NOW)
            .unwrap();
        assert!(again.contains("=first.test==abcd="), "{again}");
    }

    #[test]
    fn forged_old_and_rolled_over() {
        let srs = srs();
        let good = srs.forward("a@b.test", NOW).unwrap();
        let forged = good.replacen("SRS0=", "SRS0=X", 1);
        assert_eq!(srs.reverse(&forged, NOW), Err(SrsError::BadHash));
        assert_eq!(
            srs.reverse(&good, NOW + 21 * DAY),
            Ok("a@b.test".to_string())
        );
        assert_eq!(srs.reverse(&good, NOW + 22 * DAY), Err(SrsError::Expired));
        assert_eq!(srs.reverse("plain@x.test", NOW), Err(SrsError::NotSrs));
        assert_eq!(
            srs.reverse("SRS0=abc@x.test", NOW),
            Err(SrsError::Malformed)
        );
        // Made under the old secret, still checked after rollover.
        let old = Srs::new("old secret\n", "srs.host.test", 21).unwrap();
        let made = old.forward("a@b.test", NOW).unwrap();
        assert_eq!(srs.reverse(&made, NOW).unwrap(), "a@b.test");
        let retired = Srs::new("new secret\n", "srs.host.test", 21).unwrap();
        assert_eq!(retired.reverse(&made, NOW), Err(SrsError::BadHash));
    }
}
