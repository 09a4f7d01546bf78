//! Dovecot's `{CRAM-MD5}` scheme: the two MD5 states of HMAC-MD5 keyed with
//! the password, after the key block (RFC 2104's `K XOR ipad` and
//! `K XOR opad`). With them a server computes RFC 2195 responses without
//! storing the password, yet anyone holding them can log in by CRAM-MD5:
//! treat them as the password itself.

use md5::{Digest, Md5, block_api::compress};
use subtle::ConstantTimeEq;

const BLOCK: usize = 64;
const MD5_INITIAL: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

#[derive(Clone, Eq)]
pub struct CramMd5Context {
    outer: [u32; 4],
    inner: [u32; 4],
}

impl PartialEq for CramMd5Context {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes().ct_eq(&other.to_bytes()).into()
    }
}

impl std::fmt::Debug for CramMd5Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CramMd5Context(***)")
    }
}

impl CramMd5Context {
    pub fn from_password(password: &[u8]) -> CramMd5Context {
        let mut key = [0u8; BLOCK];
        if password.len() > BLOCK {
            key[..16].copy_from_slice(&Md5::digest(password));
        } else {
            key[..password.len()].copy_from_slice(password);
        }
        let keyed_state = |pad: u8| {
            let mut block = key;
            block.iter_mut().for_each(|b| *b ^= pad);
            let mut state = MD5_INITIAL;
            compress(&mut state, &[block]);
            state
        };
        CramMd5Context {
            outer: keyed_state(0x5c),
            inner: keyed_state(0x36),
        }
    }

    /// Reads Dovecot's 64 hex digits: outer state, then inner, each as four
    /// little-endian words.
    pub fn from_hex(hex: &str) -> Option<CramMd5Context> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        let word =
            |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        Some(CramMd5Context {
            outer: [word(0), word(1), word(2), word(3)],
            inner: [word(4), word(5), word(6), word(7)],
        })
    }

    pub fn to_hex(&self) -> String {
        self.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, word) in self.outer.iter().chain(self.inner.iter()).enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// HMAC-MD5 of `message` under the password (RFC 2104), the digest a
    /// CRAM-MD5 client sends in hex for the server's challenge.
    pub fn hmac(&self, message: &[u8]) -> [u8; 16] {
        let inner = finish_md5(self.inner, message);
        finish_md5(self.outer, &inner)
    }
}

/// Completes an MD5 whose first 64-byte block is already in `state`.
fn finish_md5(mut state: [u32; 4], rest: &[u8]) -> [u8; 16] {
    let total_bits = ((BLOCK + rest.len()) as u64) * 8;
    let mut tail = rest.to_vec();
    tail.push(0x80);
    while tail.len() % BLOCK != BLOCK - 8 {
        tail.push(0);
    }
    tail.extend_from_slice(&total_bits.to_le_bytes());
    let blocks: Vec<[u8; BLOCK]> = tail
        .chunks_exact(BLOCK)
        .map(|c| c.try_into().expect("chunks_exact gives whole blocks"))
        .collect();
    compress(&mut state, &blocks);
    let mut digest = [0u8; 16];
    for (i, word) in state.iter().enumerate() {
        digest[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{KeyInit, Mac};

    #[test]
    fn matches_dovecot() {
        // doveadm pw -s CRAM-MD5 -p secret
        let dovecot = "cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56";
        assert_eq!(CramMd5Context::from_password(b"secret").to_hex(), dovecot);
        assert_eq!(
            CramMd5Context::from_hex(dovecot),
            Some(CramMd5Context::from_password(b"secret"))
        );
    }

    #[test]
    fn rfc2195_example() {
        // RFC 2195 section 2: user tim, password tanstaaftanstaaf.
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let digest = CramMd5Context::from_password(b"tanstaaftanstaaf").hmac(challenge);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn agrees_with_hmac_crate_for_long_keys_and_messages() {
        let key = [7u8; 100];
        let message = [9u8; 200];
        let mut mac = hmac::Hmac::<Md5>::new_from_slice(&key).unwrap();
        mac.update(&message);
        let expected: [u8; 16] = mac.finalize().into_bytes().into();
        assert_eq!(CramMd5Context::from_password(&key).hmac(&message), expected);
    }
}
