//! Reading a golden transcript file into the client's writes, the
//! expected output after each, and the harness's directives.

/// One write of the client, and what the server is expected to do after it.
pub struct Group {
    pub client: Vec<u8>,
    pub expected: Vec<String>,
}

pub struct Transcript {
    /// What comes before the client's first write (the greeting).
    pub greeting: Vec<String>,
    pub groups: Vec<Group>,
    /// The `#` lines, without the `#`, for the harness's directives.
    pub directives: Vec<String>,
}

pub fn parse(text: &str) -> Transcript {
    let mut t = Transcript {
        greeting: Vec::new(),
        groups: Vec::new(),
        directives: Vec::new(),
    };
    for line in text.lines() {
        if let Some(directive) = line.strip_prefix('#') {
            t.directives.push(directive.trim_start().to_string());
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let client = if let Some(text) = line.strip_prefix("C: ") {
            Some(format!("{text}\r\n").into_bytes())
        } else if line == "C:" {
            Some(b"\r\n".to_vec())
        } else {
            line.strip_prefix("R: ").map(unescape)
        };
        match client {
            Some(bytes) => match t.groups.last_mut() {
                Some(group) if group.expected.is_empty() => group.client.extend(bytes),
                _ => t.groups.push(Group {
                    client: bytes,
                    expected: Vec::new(),
                }),
            },
            None => match t.groups.last_mut() {
                Some(group) => group.expected.push(line.to_string()),
                None => t.greeting.push(line.to_string()),
            },
        }
    }
    t
}

/// `text` with `\r`, `\n`, `\t`, `\0` and `\\` made the bytes they name.
pub fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buffer = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        out.push(match chars.next() {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('0') => 0,
            Some('\\') => b'\\',
            other => panic!("bad escape \\{other:?}"),
        });
    }
    out
}

/// The values of the `# NAME: value` directives, in order.
pub fn directives<'a>(transcript: &'a Transcript, name: &str) -> impl Iterator<Item = &'a str> {
    let prefix = format!("{name}: ");
    transcript
        .directives
        .iter()
        .filter_map(move |d| d.strip_prefix(prefix.as_str()))
}

/// The `key=value` pairs of every `config:` directive.
pub fn config(transcript: &Transcript) -> Vec<(String, String)> {
    transcript
        .directives
        .iter()
        .filter_map(|d| d.strip_prefix("config:"))
        .flat_map(|settings| {
            settings.split_whitespace().map(|pair| {
                let (key, value) = pair.split_once('=').expect("config: key=value");
                (key.to_string(), value.to_string())
            })
        })
        .collect()
}
