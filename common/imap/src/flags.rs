//! Flags as IMAP names them and as Maildir keeps them: the system flags
//! as the `:2,` letters every Maildir reader knows (S seen, R replied,
//! F flagged, T trashed, D draft), keywords as Dovecot's letters `a`–`z`
//! named in `dovecot-keywords`.

use std::path::Path;

/// System flags and their letters, in the order FLAGS lists them.
pub const SYSTEM: [(&str, u8); 5] = [
    ("\\Answered", b'R'),
    ("\\Flagged", b'F'),
    ("\\Deleted", b'T'),
    ("\\Seen", b'S'),
    ("\\Draft", b'D'),
];

pub fn bit(letter: u8) -> u32 {
    1 << (letter - b'A')
}

/// A folder's keyword names by letter index (`dovecot-keywords`: lines
/// `N name`); empty without the file.
pub fn keywords(folder: &Path) -> Vec<Option<String>> {
    let mut names = vec![None; 26];
    let Ok(text) = std::fs::read_to_string(folder.join("dovecot-keywords")) else {
        return names;
    };
    for line in text.lines() {
        let Some((number, name)) = line.split_once(' ') else {
            continue;
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
        if let Ok(n) = number.parse::<usize>()
            && n < 26
            && valid
        {
            names[n] = Some(name.to_string());
        }
    }
    names
}

/// `(\Seen $Label1 \Recent)`.
pub fn list(flags: u32, keywords: u32, names: &[Option<String>], recent: bool, out: &mut Vec<u8>) {
    out.push(b'(');
    let mut first = true;
    let mut add = |name: &str, out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(name.as_bytes());
    };
    for (name, letter) in SYSTEM {
        if flags & bit(letter) != 0 {
            add(name, out);
        }
    }
    for (n, name) in names.iter().enumerate() {
        if keywords & (1 << n) != 0
            && let Some(name) = name
        {
            add(name, out);
        }
    }
    if recent {
        add("\\Recent", out);
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dovecot-keywords"),
            "0 $Junk\n2 Work\n30 Over\nx y\n",
        )
        .unwrap();
        let names = keywords(dir.path());
        assert_eq!(names[0].as_deref(), Some("$Junk"));
        assert_eq!(names[2].as_deref(), Some("Work"));
        let mut out = Vec::new();
        list(bit(b'S') | bit(b'F'), 0b101, &names, true, &mut out);
        assert_eq!(out, b"(\\Flagged \\Seen $Junk Work \\Recent)");
        out.clear();
        list(0, 0, &names, false, &mut out);
        assert_eq!(out, b"()");
    }
}
