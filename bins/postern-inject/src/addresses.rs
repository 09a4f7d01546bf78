//! The addresses in a To, Cc or Bcc field (RFC 5322 section 3.4): display
//! names, quoted strings, comments, angle brackets and groups, enough to
//! find each address for `-t`. By hand: it is one small function, and the
//! MIME crate the IMAP server will bring parses whole messages instead.

/// Every address in an address-list field value.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut angle: Option<String> = None;
    let mut in_angle = false;
    let mut quoted = false;
    let mut comment = 0usize;
    let mut chars = value.chars();
    let mut finish = |current: &mut String, angle: &mut Option<String>| {
        let address = angle.take().unwrap_or_else(|| current.trim().to_string());
        let address = address.trim().to_string();
        if address.contains('@') || (!address.is_empty() && !address.contains(' ')) {
            out.push(address);
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        if comment > 0 {
            match c {
                '(' => comment += 1,
                ')' => comment -= 1,
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
            continue;
        }
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
            continue;
        }
        if in_angle {
            if c == '>' {
                in_angle = false;
            } else if let Some(a) = angle.as_mut() {
                a.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' => comment = 1,
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            // A group's name ends with ':'; its members follow.
            ':' => current.clear(),
            ',' | ';' => finish(&mut current, &mut angle),
            c => current.push(c),
        }
    }
    finish(&mut current, &mut angle);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_people_write() {
        assert_eq!(addresses(" a@x.test "), ["a@x.test"]);
        assert_eq!(
            addresses("\"Doe, John\" <john@x.test>, Jane <jane@x.test> (home), bob@x.test (Bob)"),
            ["john@x.test", "jane@x.test", "bob@x.test"]
        );
        assert_eq!(addresses("undisclosed-recipients:;"), Vec::<String>::new());
        assert_eq!(
            addresses("team: a@x.test, b@x.test; c@x.test"),
            ["a@x.test", "b@x.test", "c@x.test"]
        );
        assert_eq!(addresses("root"), ["root"]);
        assert_eq!(addresses("<weird,one@x.test>"), ["weird,one@x.test"]);
        assert_eq!(addresses(""), Vec::<String>::new());
        assert_eq!(addresses("((nested) comment) a@x.test"), ["a@x.test"]);
    }
}
