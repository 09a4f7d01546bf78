//! ENVELOPE, BODYSTRUCTURE, BODY and RFC822.SIZE of real-world MIME
//! shapes (`tests/mime/`), compared with what Dovecot's imap answers for
//! the same Maildir: two servers that disagree mean one is wrong.
//! Where Postern differs on purpose, `DIFFERENCES` says where and why
//! (and docs/IMAP.md repeats it).

use std::collections::BTreeMap;
use std::path::Path;

use postern_imap::{Action, Config, Session};

/// Items that differ on purpose: (message file, item, why).
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "05-message-rfc822.eml",
        "BODYSTRUCTURE",
        "the enclosed message ends before the CRLF that RFC 2046 §5.1.1 \
         attaches to the next boundary; Dovecot counts that CRLF into it \
         (2 octets and a line more)",
    ),
    ("05-message-rfc822.eml", "BODY", "as BODYSTRUCTURE"),
    (
        "28-encoded-rfc822.eml",
        "BODYSTRUCTURE",
        "as 05's enclosed message",
    ),
    ("28-encoded-rfc822.eml", "BODY", "as 05's enclosed message"),
    (
        "29-deep-nesting.eml",
        "BODYSTRUCTURE",
        "as 05's enclosed message",
    ),
    ("29-deep-nesting.eml", "BODY", "as 05's enclosed message"),
    (
        "27-padding-and-longer-boundary.eml",
        "BODYSTRUCTURE",
        "a line that starts with the delimiter and goes on (`--bb ...` for \
         the boundary `b`) is no delimiter line (RFC 2046 §5.1.1: the \
         boundary, optional white space, the line end); Dovecot splits \
         there",
    ),
    (
        "27-padding-and-longer-boundary.eml",
        "BODY",
        "as BODYSTRUCTURE",
    ),
    (
        "07-missing-boundary.eml",
        "BODYSTRUCTURE",
        "a multipart without a boundary cannot be split: Postern shows its \
         body as the text it can be read as, where Dovecot shows one empty \
         part and the body is lost to the client",
    ),
    ("07-missing-boundary.eml", "BODY", "as BODYSTRUCTURE"),
    (
        "13-case.eml",
        "BODYSTRUCTURE",
        "types, subtypes and parameter names are case-insensitive \
         (RFC 2045 §5.1): Postern sends them lower-case, Dovecot as written",
    ),
    ("13-case.eml", "BODY", "as BODYSTRUCTURE"),
    (
        "21-long-folded-subject.eml",
        "ENVELOPE",
        "unfolding removes the CRLF and keeps the tab that follows it \
         (RFC 5322 §2.2.3); Dovecot turns the tab into a space",
    ),
];

/// A parsed IMAP value: an atom or number, a string (quoted or literal,
/// NIL apart), or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Atom(String),
    Text(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

fn parse_value(input: &[u8], at: &mut usize) -> Value {
    while input[*at] == b' ' {
        *at += 1;
    }
    match input[*at] {
        b'(' => {
            *at += 1;
            let mut items = Vec::new();
            loop {
                while input[*at] == b' ' {
                    *at += 1;
                }
                if input[*at] == b')' {
                    *at += 1;
                    return Value::List(items);
                }
                items.push(parse_value(input, at));
            }
        }
        b'"' => {
            *at += 1;
            let mut text = Vec::new();
            while input[*at] != b'"' {
                if input[*at] == b'\\' {
                    *at += 1;
                }
                text.push(input[*at]);
                *at += 1;
            }
            *at += 1;
            Value::Text(text)
        }
        b'{' => {
            let end = *at + input[*at..].iter().position(|&b| b == b'}').unwrap();
            let length: usize = std::str::from_utf8(&input[*at + 1..end])
                .unwrap()
                .parse()
                .unwrap();
            let start = end + 3;
            *at = start + length;
            Value::Text(input[start..start + length].to_vec())
        }
        _ => {
            let start = *at;
            while !b" ()".contains(&input[*at]) {
                *at += 1;
            }
            let atom = String::from_utf8_lossy(&input[start..*at]).into_owned();
            match atom.eq_ignore_ascii_case("NIL") {
                true => Value::Nil,
                false => Value::Atom(atom),
            }
        }
    }
}

/// Each message's FETCH items, by sequence number and item name.
fn fetched(answer: &[u8]) -> BTreeMap<u32, BTreeMap<String, Value>> {
    let mut messages = BTreeMap::new();
    let mut at = 0;
    while let Some(found) = find(&answer[at..], b"* ") {
        at += found + 2;
        let line_end = at + find(&answer[at..], b"\r\n").unwrap();
        let line = String::from_utf8_lossy(&answer[at..line_end]).into_owned();
        let mut words = line.splitn(3, ' ');
        let (Some(number), Some("FETCH")) = (words.next(), words.next()) else {
            at = line_end;
            continue;
        };
        let number: u32 = number.parse().unwrap();
        at += line.find('(').unwrap();
        let Value::List(items) = parse_value(answer, &mut at) else {
            panic!("no FETCH list");
        };
        let entry: &mut BTreeMap<String, Value> = messages.entry(number).or_default();
        for pair in items.chunks(2) {
            if let [Value::Atom(name), value] = pair {
                entry.insert(name.to_ascii_uppercase(), value.clone());
            }
        }
    }
    messages
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Postern's session on `maildir`, in this process, given `commands`.
fn postern(maildir: &Path, commands: &str) -> Vec<u8> {
    let mut config = Config::new("imap.test");
    config.cleartext_allowed = true;
    let mut session = Session::new(config);
    let mut out = Vec::new();
    let run = |session: &mut Session, out: &mut Vec<u8>| {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => out.extend_from_slice(&bytes),
                Action::Login(_) => session.logged_in(maildir.to_path_buf()),
                Action::StartTls | Action::Close => {}
            }
        }
    };
    run(&mut session, &mut out);
    session.receive(b"a LOGIN fred secret\r\n");
    run(&mut session, &mut out);
    session.receive(commands.replace('\n', "\r\n").as_bytes());
    session.receive(b"\r\n");
    run(&mut session, &mut out);
    out
}

fn render(value: &Value) -> String {
    match value {
        Value::Atom(a) => a.clone(),
        Value::Nil => "NIL".into(),
        Value::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        Value::List(items) => format!(
            "({})",
            items.iter().map(render).collect::<Vec<_>>().join(" ")
        ),
    }
}

#[test]
fn envelope_and_bodystructure_match_dovecot_over_a_mime_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("mime");
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("postern"), tmp.path().join("dovecot"));
    for maildir in [&ours, &theirs] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        for (n, name) in names.iter().enumerate() {
            let file = maildir.join(format!("cur/17000000{n:02}.M{n}P1.corpus:2,"));
            std::fs::copy(corpus.join(name), file).unwrap();
        }
    }
    let state = tmp.path().join("state");
    let owner = (65534, 65534);
    if crate::util::is_root() {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&theirs)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let command = "b SELECT INBOX\nc FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE)";
    let dovecot = crate::uidlist::dovecot_on(&theirs, &state, owner, command);
    assert!(dovecot.contains("c OK"), "{dovecot}");
    let postern = postern(&ours, command);
    let (ours, theirs) = (fetched(&postern), fetched(dovecot.as_bytes()));
    assert_eq!(
        ours.len(),
        names.len(),
        "{}",
        String::from_utf8_lossy(&postern)
    );
    assert_eq!(theirs.len(), names.len(), "{dovecot}");
    let mut differences = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let number = n as u32 + 1;
        for item in ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE"] {
            let (a, b) = (&ours[&number][item], &theirs[&number][item]);
            let known = DIFFERENCES.iter().any(|(f, i, _)| f == name && *i == item);
            if (a != b) != known {
                differences.push(format!(
                    "{name} {item}{}:\n  postern {}\n  dovecot {}",
                    if known {
                        " (listed as a difference, but equal)"
                    } else {
                        ""
                    },
                    render(a),
                    render(b)
                ));
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
