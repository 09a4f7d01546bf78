//! The message as a local user hands it over, made whole: LF line ends,
//! the header fields a message needs and a local user's mail often lacks
//! (`Date:`, `Message-ID:`, `From:`), a `Received:` line for the
//! submission, and with `-t` its recipients found and `Bcc:` removed. The
//! body is kept byte for byte.

use crate::addresses::addresses;

/// The message split at the end of its header.
pub struct Message {
    /// Header lines, each with its continuation lines, LF-terminated.
    pub fields: Vec<String>,
    pub body: Vec<u8>,
}

impl Message {
    /// Splits `data` (LF line ends) at the first empty line. Data that does
    /// not start with a header field is all body.
    pub fn parse(data: &[u8]) -> Message {
        let mut fields: Vec<String> = Vec::new();
        let mut position = 0;
        while position < data.len() {
            let end = data[position..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| position + i + 1);
            let line = &data[position..end];
            if line == b"\n" {
                position = end;
                break;
            }
            let continuation = matches!(line.first(), Some(b' ') | Some(b'\t'));
            if continuation && !fields.is_empty() {
                fields
                    .last_mut()
                    .expect("not empty")
                    .push_str(&String::from_utf8_lossy(line));
            } else if is_field(line) {
                fields.push(String::from_utf8_lossy(line).into_owned());
            } else {
                break;
            }
            position = end;
        }
        let body = data[position..].to_vec();
        let mut message = Message { fields, body };
        if let Some(last) = message.fields.last_mut()
            && !last.ends_with('\n')
        {
            last.push('\n');
        }
        message
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|f| field_name(f).eq_ignore_ascii_case(name))
    }

    /// The addresses of every To, Cc and Bcc field.
    pub fn header_recipients(&self) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| ["to", "cc", "bcc"].contains(&field_name(f).to_ascii_lowercase().as_str()))
            .flat_map(|f| addresses(f.split_once(':').map_or("", |(_, v)| v)))
            .collect()
    }

    /// Replaces the address `old` (any case) with `new` in every field
    /// `name`, where it stands as a whole address: display names and
    /// other addresses stay as they are.
    pub fn replace_address(&mut self, name: &str, old: &str, new: &str) {
        let old = old.to_ascii_lowercase();
        for field in &mut self.fields {
            if !field_name(field).eq_ignore_ascii_case(name) {
                continue;
            }
            let lower = field.to_ascii_lowercase();
            let mut out = String::with_capacity(field.len());
            let mut from = 0;
            let mut search = 0;
            while let Some(found) = lower[search..].find(&old) {
                let start = search + found;
                let end = start + old.len();
                let boundary =
                    |c: Option<char>| c.is_none_or(|c| c.is_whitespace() || "<>,:;\"".contains(c));
                if boundary(lower[..start].chars().next_back())
                    && boundary(lower[end..].chars().next())
                {
                    out.push_str(&field[from..start]);
                    out.push_str(new);
                    from = end;
                }
                search = end;
            }
            out.push_str(&field[from..]);
            *field = out;
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.fields
            .retain(|f| !field_name(f).eq_ignore_ascii_case(name));
    }

    /// Header (with `before` first), the empty line, the body.
    pub fn to_bytes(&self, before: &[String]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 1024);
        for field in before.iter().chain(&self.fields) {
            out.extend_from_slice(field.as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }
}

fn field_name(field: &str) -> &str {
    field
        .split_once(':')
        .map_or("", |(name, _)| name.trim_end())
}

/// `name:` with a name of printable ASCII but no space or colon (RFC 5322
/// section 2.2); a `From ` mbox line is not a field.
fn is_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0 && line[..colon].iter().all(|&b| (33..=126).contains(&b))
}

/// The message from stdin: CRLF made LF, and without `-i` a line holding a
/// single dot ends it, as in sendmail.
pub fn normalize(data: Vec<u8>, ignore_dots: bool) -> Vec<u8> {
    let mut data = postern_maildir::unix_line_ends(data);
    if !ignore_dots {
        let mut start = 0;
        while start < data.len() {
            let end = data[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |i| start + i);
            if &data[start..end] == b"." {
                data.truncate(start);
                break;
            }
            start = end + 1;
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_replaced_where_it_stands_whole() {
        let mut m = Message::parse(
            b"From: Alice <Alice@Shell.Test>, xalice@shell.test\nTo: alice@shell.test\n\nalice@shell.test\n",
        );
        m.replace_address("from", "alice@shell.test", "alice@her.example");
        assert_eq!(
            m.fields[0],
            "From: Alice <alice@her.example>, xalice@shell.test\n"
        );
        assert_eq!(m.fields[1], "To: alice@shell.test\n");
        assert_eq!(m.body, b"alice@shell.test\n");
    }

    #[test]
    fn splits_header_and_body_and_keeps_the_body() {
        let m = Message::parse(b"Subject: a\n long\nTo: x@y\n\nbody\n\nmore\n");
        assert_eq!(m.fields, ["Subject: a\n long\n", "To: x@y\n"]);
        assert_eq!(m.body, b"body\n\nmore\n");
        let m = Message::parse(b"just text\nno header\n");
        assert!(m.fields.is_empty());
        assert_eq!(m.body, b"just text\nno header\n");
        assert_eq!(
            m.to_bytes(&["X: 1\n".into()]),
            b"X: 1\n\njust text\nno header\n"
        );
    }

    #[test]
    fn recipients_and_bcc() {
        let mut m = Message::parse(b"To: a@x.test, B <b@x.test>\nCc: c@x.test\nBcc: secret@x.test,\n\tother@x.test\nSubject: s\n\nhi\n");
        assert_eq!(
            m.header_recipients(),
            [
                "a@x.test",
                "b@x.test",
                "c@x.test",
                "secret@x.test",
                "other@x.test"
            ]
        );
        m.remove("bcc");
        assert_eq!(
            m.to_bytes(&[]),
            b"To: a@x.test, B <b@x.test>\nCc: c@x.test\nSubject: s\n\nhi\n"
        );
    }

    #[test]
    fn dots_and_line_ends() {
        assert_eq!(normalize(b"a\r\n.\r\nb\r\n".to_vec(), false), b"a\n");
        assert_eq!(normalize(b"a\n.\nb\n".to_vec(), true), b"a\n.\nb\n");
        assert_eq!(normalize(b"a\n..\nb".to_vec(), false), b"a\n..\nb");
    }
}
