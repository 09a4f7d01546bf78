//! Address lists (RFC 5322 §3.4) as ENVELOPE gives them: each mailbox as
//! name, source route, local part and domain, a group as a start marker
//! with its name and an end marker. Names stay as they were sent (encoded
//! words too: the client decodes them), unquoted and unfolded; a comment
//! stands in for a missing name, as Dovecot does. A mailbox without its
//! local part or domain gets Dovecot's `MISSING_MAILBOX` and
//! `MISSING_DOMAIN` in their place: a NIL domain would read as the start
//! of a group (RFC 3501 §7.4.2). By hand: the crates that read addresses
//! decode the names.

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub local: Vec<u8>,
    pub domain: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Mailbox(Mailbox),
    GroupStart(Vec<u8>),
    GroupEnd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(Vec<u8>),
    Quoted(Vec<u8>),
    Comment(Vec<u8>),
    Special(u8),
}

fn tokens(value: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < value.len() {
        let byte = value[at];
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'"' => {
                at += 1;
                let mut text = Vec::new();
                while at < value.len() && value[at] != b'"' {
                    match value[at] {
                        b'\\' if at + 1 < value.len() => {
                            text.push(value[at + 1]);
                            at += 1;
                        }
                        b'\r' | b'\n' => {}
                        other => text.push(other),
                    }
                    at += 1;
                }
                at += 1;
                out.push(Token::Quoted(text));
            }
            b'(' => {
                let mut depth = 0;
                let mut text = Vec::new();
                while at < value.len() {
                    match value[at] {
                        b'\\' if at + 1 < value.len() => {
                            text.push(value[at + 1]);
                            at += 1;
                        }
                        b'(' => {
                            if depth > 0 {
                                text.push(b'(');
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                at += 1;
                                break;
                            }
                            text.push(b')');
                        }
                        b'\r' | b'\n' => {}
                        other => text.push(other),
                    }
                    at += 1;
                }
                out.push(Token::Comment(text));
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'[' | b']' => {
                out.push(Token::Special(byte));
                at += 1;
            }
            _ => {
                let start = at;
                while at < value.len() && !b" \t\r\n\"(<>@,;:[]".contains(&value[at]) {
                    at += 1;
                }
                out.push(Token::Word(value[start..at].to_vec()));
            }
        }
    }
    out
}

/// The words of a phrase joined by single spaces.
fn phrase(words: &[Vec<u8>]) -> Option<Vec<u8>> {
    if words.is_empty() {
        return None;
    }
    Some(words.join(&b' '))
}

/// Reads an address list; what does not read as an address is left out.
pub fn parse(value: &[u8]) -> Vec<Item> {
    let tokens = tokens(value);
    let mut items = Vec::new();
    let mut at = 0;
    let mut in_group = false;
    while at < tokens.len() {
        // One mailbox, or a group's start, up to a ',' ';' or the end.
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut comment: Option<Vec<u8>> = None;
        let mut spec: Vec<Token> = Vec::new();
        let mut angle: Option<Vec<Token>> = None;
        while at < tokens.len() {
            match &tokens[at] {
                Token::Special(b',') => {
                    at += 1;
                    break;
                }
                Token::Special(b';') if in_group => break,
                Token::Special(b':') if angle.is_none() && !in_group => {
                    // A group: what came before is its name.
                    let name = phrase(&words).unwrap_or_default();
                    items.push(Item::GroupStart(name));
                    in_group = true;
                    words.clear();
                    spec.clear();
                    comment = None;
                }
                Token::Special(b'<') => {
                    let mut inside = Vec::new();
                    at += 1;
                    while at < tokens.len() && tokens[at] != Token::Special(b'>') {
                        inside.push(tokens[at].clone());
                        at += 1;
                    }
                    angle = Some(inside);
                }
                Token::Comment(text) => {
                    if comment.is_none() {
                        comment = Some(text.clone());
                    }
                }
                token => {
                    if let Token::Word(w) | Token::Quoted(w) = token {
                        words.push(w.clone());
                    }
                    spec.push(token.clone());
                }
            }
            at += 1;
        }
        let has_at = spec.contains(&Token::Special(b'@'));
        let mailbox = match angle {
            Some(inside) => Some(addr_spec(&inside).unwrap_or_else(missing)).map(|mut mailbox| {
                mailbox.name = phrase(&words).or(comment);
                mailbox
            }),
            // Words and no address: a name whose address is missing.
            None if !has_at && words.len() > 1 => Some(Mailbox {
                name: phrase(&words),
                ..missing()
            }),
            None => addr_spec(&spec).map(|mut mailbox| {
                mailbox.name = comment;
                mailbox
            }),
        };
        if let Some(mailbox) = mailbox {
            items.push(Item::Mailbox(mailbox));
        }
        if in_group && tokens.get(at) == Some(&Token::Special(b';')) {
            items.push(Item::GroupEnd);
            in_group = false;
            at += 1;
        }
    }
    if in_group {
        items.push(Item::GroupEnd);
    }
    items
}

/// `[@route,@route:]local@domain` from its tokens.
fn addr_spec(tokens: &[Token]) -> Option<Mailbox> {
    let mut tokens: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Comment(_)))
        .collect();
    let mut route = None;
    if tokens.first() == Some(&&Token::Special(b'@'))
        && let Some(colon) = tokens.iter().position(|t| **t == Token::Special(b':'))
    {
        let mut text = Vec::new();
        for token in &tokens[..colon] {
            match token {
                Token::Word(w) => text.extend_from_slice(w),
                Token::Special(s) => text.push(*s),
                _ => {}
            }
        }
        route = Some(text);
        tokens.drain(..=colon);
    }
    let at = tokens.iter().rposition(|t| **t == Token::Special(b'@'));
    let (local, domain) = match at {
        Some(at) => (&tokens[..at], Some(&tokens[at + 1..])),
        None => (&tokens[..], None),
    };
    let mut local_text = Vec::new();
    for token in local {
        match token {
            Token::Word(w) => local_text.extend_from_slice(w),
            Token::Quoted(q) => {
                // Quoted again where it must be, as it was sent.
                let plain = q
                    .iter()
                    .all(|b| b.is_ascii_graphic() && !b"\"\\(),:;<>@[]".contains(b));
                if plain {
                    local_text.extend_from_slice(q);
                } else {
                    local_text.push(b'"');
                    local_text.extend_from_slice(q);
                    local_text.push(b'"');
                }
            }
            _ => {}
        }
    }
    if local_text.is_empty() && domain.is_none_or(<[&Token]>::is_empty) {
        return None;
    }
    if local_text.is_empty() {
        local_text = MISSING_MAILBOX.to_vec();
    }
    let domain = domain.map(|tokens| {
        let mut text = Vec::new();
        for token in tokens {
            match token {
                Token::Word(w) => text.extend_from_slice(w),
                Token::Special(s) => text.push(*s),
                Token::Quoted(q) => text.extend_from_slice(q),
                Token::Comment(_) => {}
            }
        }
        text
    });
    Some(Mailbox {
        name: None,
        route,
        local: local_text,
        domain: Some(
            domain
                .filter(|d| !d.is_empty())
                .unwrap_or(MISSING_DOMAIN.to_vec()),
        ),
    })
}

/// A mailbox with neither part: `<>`, or a name alone.
fn missing() -> Mailbox {
    Mailbox {
        local: MISSING_MAILBOX.to_vec(),
        domain: Some(MISSING_DOMAIN.to_vec()),
        ..Mailbox::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: Option<&str>, local: &str, domain: &str) -> Item {
        Item::Mailbox(Mailbox {
            name: name.map(|n| n.as_bytes().to_vec()),
            route: None,
            local: local.as_bytes().to_vec(),
            domain: Some(domain.as_bytes().to_vec()),
        })
    }

    #[test]
    fn the_forms_people_send() {
        let parsed = parse(
            b"\"Doe, John\" <john@example.org>, jane@example.org (Jane Roe),\r\n =?utf-8?q?J=C3=BCrgen?= <j@example.de>",
        );
        assert_eq!(
            parsed,
            [
                mailbox(Some("Doe, John"), "john", "example.org"),
                mailbox(Some("Jane Roe"), "jane", "example.org"),
                mailbox(Some("=?utf-8?q?J=C3=BCrgen?="), "j", "example.de"),
            ]
        );
    }

    #[test]
    fn groups_routes_and_odd_forms() {
        let parsed = parse(b"Friends: a@x.test, <b@y.test>;, undisclosed-recipients:;");
        assert_eq!(
            parsed,
            [
                Item::GroupStart(b"Friends".to_vec()),
                mailbox(None, "a", "x.test"),
                mailbox(None, "b", "y.test"),
                Item::GroupEnd,
                Item::GroupStart(b"undisclosed-recipients".to_vec()),
                Item::GroupEnd,
            ]
        );
        let routed = parse(b"<@relay.test:user@host.test>");
        let Item::Mailbox(m) = &routed[0] else {
            panic!()
        };
        assert_eq!(m.route.as_deref(), Some(&b"@relay.test"[..]));
        assert_eq!(m.local, b"user");
        assert_eq!(parse(b"root")[0], mailbox(None, "root", "MISSING_DOMAIN"));
        assert!(parse(b"").is_empty());
        assert_eq!(
            parse(b"<>")[0],
            mailbox(None, "MISSING_MAILBOX", "MISSING_DOMAIN")
        );
        assert_eq!(
            parse(b"not an address, @x.test, foo@")[..],
            [
                mailbox(Some("not an address"), "MISSING_MAILBOX", "MISSING_DOMAIN"),
                mailbox(None, "MISSING_MAILBOX", "x.test"),
                mailbox(None, "foo", "MISSING_DOMAIN"),
            ]
        );
        assert_eq!(
            parse(b"\"a b\"@x.test")[0],
            Item::Mailbox(Mailbox {
                local: b"\"a b\"".to_vec(),
                domain: Some(b"x.test".to_vec()),
                ..Mailbox::default()
            })
        );
    }
}
