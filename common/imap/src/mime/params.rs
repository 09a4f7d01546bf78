//! Content-Type and Content-Disposition values: the type (or the
//! disposition) and its parameters, as BODYSTRUCTURE lists them. RFC 2231
//! continuations are joined (`name*0`, `name*1` into `name`; `name*0*`...
//! into `name*`, still encoded), as Dovecot joins them; quoted values are
//! unquoted; comments are skipped. By hand: the crates that read MIME
//! decode the values, and IMAP wants them as they were sent.

/// `type/subtype` or a disposition, lower-cased as given, and the
/// parameters in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Value {
    pub main: String,
    pub sub: Option<String>,
    pub params: Vec<(String, Vec<u8>)>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip_space(&mut self) {
        loop {
            while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
            if self.bytes.get(self.at) != Some(&b'(') {
                return;
            }
            let mut depth = 0;
            while self.at < self.bytes.len() {
                match self.bytes[self.at] {
                    b'\\' => self.at += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            self.at += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                self.at += 1;
            }
            // A backslash at the very end steps past it.
            self.at = self.at.min(self.bytes.len());
        }
    }

    fn token(&mut self, stop: &[u8]) -> Vec<u8> {
        self.skip_space();
        let start = self.at;
        while self.at < self.bytes.len()
            && !stop.contains(&self.bytes[self.at])
            && !self.bytes[self.at].is_ascii_whitespace()
        {
            self.at += 1;
        }
        self.bytes[start..self.at].to_vec()
    }

    fn value(&mut self) -> Vec<u8> {
        self.skip_space();
        if self.bytes.get(self.at) != Some(&b'"') {
            return self.token(b";");
        }
        self.at += 1;
        let mut out = Vec::new();
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' if self.at + 1 < self.bytes.len() => {
                    out.push(self.bytes[self.at + 1]);
                    self.at += 2;
                    continue;
                }
                b'\r' | b'\n' => {}
                byte => out.push(byte),
            }
            self.at += 1;
        }
        out
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            return true;
        }
        false
    }
}

/// Reads a Content-Type (`with_sub`) or Content-Disposition value.
pub fn parse(bytes: &[u8], with_sub: bool) -> Value {
    let mut reader = Reader { bytes, at: 0 };
    let main = String::from_utf8_lossy(&reader.token(b";/")).to_ascii_lowercase();
    let sub = match with_sub && reader.eat(b'/') {
        true => Some(String::from_utf8_lossy(&reader.token(b";")).to_ascii_lowercase()),
        false => None,
    };
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    while reader.at < bytes.len() {
        if !reader.eat(b';') {
            // Junk before the next parameter.
            reader.at += 1;
            continue;
        }
        let name = String::from_utf8_lossy(&reader.token(b";=")).to_ascii_lowercase();
        if name.is_empty() || !reader.eat(b'=') {
            continue;
        }
        let value = reader.value();
        raw.push((name, value));
    }
    Value {
        main,
        sub,
        params: join_continuations(raw),
    }
}

/// RFC 2231 §3: `name*0`, `name*1`... (and `name*0*`...) joined in order
/// of their numbers, at the place of the first; `name*` when any piece is
/// encoded.
fn join_continuations(raw: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    enum Slot {
        Plain(String, Vec<u8>),
        Joined(String, Vec<(u32, bool, Vec<u8>)>),
    }
    let split = |name: &str| {
        let (base, rest) = name.split_once('*')?;
        let (number, encoded) = match rest.strip_suffix('*') {
            Some(number) => (number, true),
            None => (rest, false),
        };
        Some((base.to_string(), number.parse::<u32>().ok()?, encoded))
    };
    let mut slots: Vec<Slot> = Vec::new();
    for (name, value) in raw {
        let Some((base, number, encoded)) = split(&name) else {
            slots.push(Slot::Plain(name, value));
            continue;
        };
        let found = slots.iter_mut().find_map(|slot| match slot {
            Slot::Joined(b, pieces) if *b == base => Some(pieces),
            _ => None,
        });
        match found {
            Some(pieces) => pieces.push((number, encoded, value)),
            None => slots.push(Slot::Joined(base, vec![(number, encoded, value)])),
        }
    }
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Plain(name, value) => (name, value),
            Slot::Joined(base, mut pieces) => {
                pieces.sort_by_key(|(number, _, _)| *number);
                let encoded = pieces.iter().any(|(_, encoded, _)| *encoded);
                let value = pieces.into_iter().flat_map(|(_, _, v)| v).collect();
                (if encoded { format!("{base}*") } else { base }, value)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_parameters_read_as_sent() {
        let value = parse(
            b"Text/Plain; charset=\"UTF-8\" (a comment); format=flowed",
            true,
        );
        assert_eq!(value.main, "text");
        assert_eq!(value.sub.as_deref(), Some("plain"));
        assert_eq!(
            value.params,
            [
                ("charset".to_string(), b"UTF-8".to_vec()),
                ("format".to_string(), b"flowed".to_vec())
            ]
        );
        let disposition = parse(b"attachment;\r\n filename=\"a \\\"b\\\".txt\"", false);
        assert_eq!(disposition.main, "attachment");
        assert_eq!(disposition.params[0].1, b"a \"b\".txt");
    }

    #[test]
    fn rfc2231_continuations_are_joined() {
        let value = parse(
            b"application/x-stuff; title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*0*=us-ascii'en'This%20is%20even%20more%20; title*2=\"isn't it!\"",
            true,
        );
        assert_eq!(
            value.params,
            [(
                "title*".to_string(),
                b"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!".to_vec()
            )]
        );
        let plain = parse(
            b"message/external-body; url*0=\"ftp://\"; url*1=\"x/y\"",
            true,
        );
        assert_eq!(plain.params, [("url".to_string(), b"ftp://x/y".to_vec())]);
    }

    #[test]
    fn a_comment_ending_in_a_backslash_ends_the_value() {
        // Found by the imap_mime fuzz target: the reader stepped past the
        // end and the next token sliced out of bounds.
        let value = parse(b"inline;((((\\", false);
        assert_eq!(value.main, "inline");
        assert!(value.params.is_empty());
        parse(b"text/plain; (\\", true);
    }
}
