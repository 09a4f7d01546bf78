//! Line ends: LF as Maildir readers (and the queue) keep them, CRLF as
//! the wire counts and carries them.

/// CRLF line ends become LF, as Maildir readers expect; a lone CR stays.
pub fn unix_line_ends(mut data: Vec<u8>) -> Vec<u8> {
    if !data.windows(2).any(|w| w == b"\r\n") {
        return data;
    }
    let mut write = 0;
    for read in 0..data.len() {
        if data[read] == b'\r' && data.get(read + 1) == Some(&b'\n') {
            continue;
        }
        data[write] = data[read];
        write += 1;
    }
    data.truncate(write);
    data
}

/// Octets with CRLF line ends, as POP3, IMAP and SMTP's SIZE count
/// them: a bare LF is two.
pub fn crlf_len(bytes: &[u8]) -> u64 {
    let bare = memchr::memchr_iter(b'\n', bytes)
        .filter(|&at| at == 0 || bytes[at - 1] != b'\r')
        .count();
    (bytes.len() + bare) as u64
}

/// The bytes with every bare LF made CRLF, a line at a time (a large
/// mailbox's first IMAP session converts every message once).
pub fn crlf_line_ends(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut from = 0;
    for at in memchr::memchr_iter(b'\n', bytes) {
        if at == 0 || bytes[at - 1] != b'\r' {
            out.extend_from_slice(&bytes[from..at]);
            out.extend_from_slice(b"\r\n");
            from = at + 1;
        }
    }
    out.extend_from_slice(&bytes[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_sizes_and_bytes() {
        assert_eq!(crlf_len(b"a\nb\r\nc\r"), 8);
        assert_eq!(crlf_len(b""), 0);
        let wire = crlf_line_ends(b"a\nb\r\nc\r");
        assert_eq!(wire, b"a\r\nb\r\nc\r");
        assert_eq!(wire.len() as u64, crlf_len(b"a\nb\r\nc\r"));
    }

    #[test]
    fn line_ends() {
        assert_eq!(unix_line_ends(b"a\r\nb\rc\r\n".to_vec()), b"a\nb\rc\n");
        assert_eq!(unix_line_ends(b"a\nb\n".to_vec()), b"a\nb\n");
    }
}
