//! Line ends as Maildir readers expect them.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends() {
        assert_eq!(unix_line_ends(b"a\r\nb\rc\r\n".to_vec()), b"a\nb\rc\n");
        assert_eq!(unix_line_ends(b"a\nb\n".to_vec()), b"a\nb\n");
    }
}
