//! The message as a mailbox receives it: line ends made Unix (Maildir holds
//! LF lines, as mutt and Dovecot expect), and the trace header lines
//! Postern prepends. The body is otherwise copied byte for byte.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Reads the message from `fd` at `offset` without moving a shared file
/// position (children reading one queue file must not disturb each other).
/// Refuses to read past `limit` bytes: `Ok(None)` means too big.
pub fn read_at(file: &File, offset: u64, limit: Option<u64>) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut position = offset;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read_at(&mut buffer, position) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buffer[..n]);
        position += n as u64;
        if limit.is_some_and(|limit| data.len() as u64 > limit) {
            return Ok(None);
        }
    }
    Ok(Some(data))
}

/// The file's size past `offset`, when the file system knows it.
pub fn size_after(file: &File, offset: u64) -> Option<u64> {
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        return None;
    }
    metadata.len().checked_sub(offset)
}

/// How many `Delivered-To:` header lines name `address` (case-insensitive),
/// the loop signal of qmail and Postfix.
pub fn delivered_to_count(message: &[u8], address: &str) -> usize {
    let mut count = 0;
    for line in header_lines(message) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"Delivered-To") {
            continue;
        }
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        let value = value.trim().trim_start_matches('<').trim_end_matches('>');
        if value.eq_ignore_ascii_case(address) {
            count += 1;
        }
    }
    count
}

/// The header's physical lines, up to the first empty line.
fn header_lines(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
}

/// `Return-Path:` and `Delivered-To:` as Postfix's local and virtual agents
/// write them. Both values come from the envelope, already validated, and
/// hold no line breaks.
pub fn trace_headers(sender: &str, delivered_to: &str) -> Vec<u8> {
    format!("Return-Path: <{sender}>\nDelivered-To: {delivered_to}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_delivered_to_in_the_header_only() {
        let m = b"Delivered-To: bob@x.test\r\ndelivered-to:  <BOB@x.test>\nDelivered-To: other@x.test\nSubject: s\n\nDelivered-To: bob@x.test\n";
        assert_eq!(delivered_to_count(m, "bob@x.test"), 2);
        assert_eq!(delivered_to_count(b"Subject: x\n", "bob@x.test"), 0);
    }

    #[test]
    fn trace() {
        assert_eq!(
            trace_headers("", "a@b"),
            b"Return-Path: <>\nDelivered-To: a@b\n"
        );
    }
}
