//! MD5-crypt (`$1$`), Poul-Henning Kamp's FreeBSD scheme, verified here by
//! hand: RustCrypto has no crate for it, and old passwd-files still hold it.
//! It is never written.

use md5::{Digest, Md5};

const MAGIC: &str = "$1$";
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Hashes `password` with the salt taken from `setting` (`$1$salt$...`) and
/// returns the whole crypt string, or `None` if `setting` is not MD5-crypt.
pub fn hash_with_setting(password: &[u8], setting: &str) -> Option<String> {
    let rest = setting.strip_prefix(MAGIC)?;
    let salt_end = rest.find('$').unwrap_or(rest.len()).min(8);
    let salt = &rest.as_bytes()[..salt_end];

    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut context = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    for chunk in (0..password.len()).step_by(16) {
        context.update(&alternate[..(password.len() - chunk).min(16)]);
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = context.finalize();

    // 1,000 rounds to slow down dictionary attacks, as the original does.
    for round in 0..1000 {
        let mut step = Md5::new();
        if round & 1 == 1 {
            step.update(password);
        } else {
            step.update(digest);
        }
        if round % 3 != 0 {
            step.update(salt);
        }
        if round % 7 != 0 {
            step.update(password);
        }
        if round & 1 == 1 {
            step.update(digest);
        } else {
            step.update(password);
        }
        digest = step.finalize();
    }

    let d = digest;
    let mut out = String::with_capacity(34);
    out.push_str(MAGIC);
    out.push_str(std::str::from_utf8(salt).ok()?);
    out.push('$');
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push_base64(
            &mut out,
            (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
            4,
        );
    }
    push_base64(&mut out, u32::from(d[11]), 2);
    Some(out)
}

fn push_base64(out: &mut String, mut value: u32, count: usize) {
    for _ in 0..count {
        out.push(CRYPT_ALPHABET[(value & 0x3f) as usize] as char);
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_vectors() {
        // openssl passwd -1 -salt saltsalt password
        assert_eq!(
            hash_with_setting(b"password", "$1$saltsalt$").as_deref(),
            Some("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/")
        );
        // Dovecot's doveadm pw -s MD5-CRYPT -p secret
        let dovecot = "$1$aFjZGkrY$Euk0VzFdHIDMVjr6x7RnR0";
        assert_eq!(
            hash_with_setting(b"secret", dovecot).as_deref(),
            Some(dovecot)
        );
    }

    #[test]
    fn other_prefixes_are_refused() {
        assert_eq!(hash_with_setting(b"x", "$6$abc$def"), None);
    }
}
