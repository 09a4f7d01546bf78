//! ENVELOPE, BODYSTRUCTURE, BODY and RFC822.SIZE of real-world MIME
//! shapes (`tests/mime/`): postern-imapd under `postern up` and Dovecot's
//! imap, each on a Maildir of the same files, asked the same FETCH; two
//! servers that disagree mean one is wrong.
//! Where Postern differs on purpose, `DIFFERENCES` says where and why
//! (and docs/IMAP.md repeats it).

use std::collections::BTreeMap;
use std::path::Path;

use crate::suite::{Suite, python};

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

/// The demo mailbox's answers to LOGIN and then `commands` (one a line,
/// each tagged), read raw from postern-imapd's IMAP port.
const RAW: &str = r#"
import re, socket, sys
port, password, commands = int(sys.argv[1]), sys.argv[2], sys.argv[3].split("\n")
s = socket.create_connection(("127.0.0.1", port), timeout=60)
answer = b""
def until(tag):
    global answer
    while not re.search(rb"(^|\r\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n", answer):
        chunk = s.recv(65536)
        assert chunk, answer[-300:]
        answer += chunk
s.sendall(b"a LOGIN demo@example.test " + password.encode() + b"\r\n")
until(b"a")
for command in commands:
    s.sendall(command.encode() + b"\r\n")
    until(command.split(" ")[0].encode())
print(answer.hex())
print("ok")
"#;

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
    let s = Suite::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (s.demo(), tmp.path().join("dovecot"));
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(theirs.join(sub)).unwrap();
    }
    let owner = std::fs::metadata(&ours).unwrap();
    for (n, name) in names.iter().enumerate() {
        let file = format!("cur/17000000{n:02}.M{n}P1.corpus:2,");
        std::fs::copy(corpus.join(name), theirs.join(&file)).unwrap();
        std::fs::copy(corpus.join(name), ours.join(&file)).unwrap();
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(ours.join(&file), Some(owner.uid()), Some(owner.gid())).unwrap();
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
    let raw = python(RAW, &[&s.port("IMAP"), &s.password(), command]);
    let postern = crate::pop3d::hex(raw.lines().next().unwrap());
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
    s.stop();
}
