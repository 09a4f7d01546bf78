//! IMAP's modified UTF-7 (RFC 3501 section 5.1.3), the form Courier and
//! Dovecot use for non-ASCII folder names on disk. By hand because the
//! decoder must be strict: only the one canonical spelling of each name is
//! accepted, so that decode and encode round-trip and two directories can
//! never show as the same folder.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in text.chars() {
        if is_direct(c) {
            flush(&mut out, &mut pending);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut out, &mut pending);
    out
}

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

fn flush(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out.push('-');
    units.clear();
}

/// Decodes a canonical modified UTF-7 string; `None` for anything else.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut after_shift = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            after_shift = false;
            continue;
        }
        let end = i + 1 + bytes[i + 1..].iter().position(|&c| c == b'-')?;
        let encoded = &bytes[i + 1..end];
        if encoded.is_empty() {
            out.push('&');
            after_shift = false;
        } else {
            // Two encoded runs in a row would have been one when encoded.
            if after_shift {
                return None;
            }
            out.push_str(&decode_run(encoded)?);
            after_shift = true;
        }
        i = end + 1;
    }
    Some(out)
}

fn decode_run(encoded: &[u8]) -> Option<String> {
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    for &c in encoded {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | value;
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            bytes.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    // Leftover bits must be zero padding shorter than a character.
    if bits != 0 || bit_count >= 6 || bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let text = String::from_utf16(&units).ok()?;
    // Printable ASCII must not be encoded (RFC 3501 section 5.1.3).
    if text.chars().any(is_direct) {
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        // RFC 3501 section 5.1.3: "~peter/mail/台北/日本語"
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(encode(name), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some(name)
        );
    }

    #[test]
    fn ampersand_and_accents() {
        assert_eq!(encode("R&D"), "R&-D");
        assert_eq!(decode("R&-D").as_deref(), Some("R&D"));
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").as_deref(), Some("😀"));
    }

    #[test]
    fn rejects_non_canonical_and_bad_forms() {
        for bad in [
            "&AGE-",
            "&APw-&APw-",
            "&APw",
            "&A-",
            "&APx-",
            "caf\u{e9}",
            "a\tb",
            "&2D0-",
            "&AP-",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips() {
        for s in [
            "",
            "Sent",
            "a&b&&c",
            "日本語 mixed ascii",
            "é",
            "x\u{1}y",
            "Ā😀z",
        ] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s), "{s:?}");
        }
    }
}
