//! postern-auth's socket protocol (docs/AUTH.md): one request line, one
//! reply line, each at most `MAX_LINE` octets with its LF; a connection
//! may carry many requests in turn. Values never hold spaces or control
//! characters, so a line splits on spaces alone.
//!
//! ```text
//! LOOKUP alice@example.test        LOCAL
//!                                  UNKNOWN 5.1.1 user unknown
//!                                  REMOTE
//!                                  DEFER 4.3.5 bad map line at accounts:7
//! ```

/// The longest line, LF included, either way.
pub const MAX_LINE: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Whether mail for the address is taken here.
    Lookup { address: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A local or virtual address that takes mail.
    Local,
    /// A local or virtual domain without that address: `code text`.
    Unknown(String),
    /// Not a domain of this host.
    Remote,
    /// Cannot say now (a bad map line, a map that cannot be read).
    Defer(String),
    /// The request was not understood.
    Error(String),
}

fn clean(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_control() || c == ' ')
}

impl Request {
    /// The request line, or `None` for a value that cannot travel.
    pub fn encode(&self) -> Option<String> {
        match self {
            Request::Lookup { address } => {
                let line = format!("LOOKUP {address}\n");
                (clean(address) && line.len() <= MAX_LINE).then_some(line)
            }
        }
    }

    /// One line, without its LF.
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("LOOKUP"), Some(address), None) if clean(address) => Ok(Request::Lookup {
                address: address.to_string(),
            }),
            (Some("LOOKUP"), _, _) => Err("LOOKUP takes one address".to_string()),
            _ => Err("unknown request".to_string()),
        }
    }
}

/// Text after a code: no control characters, no line end.
fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

impl Reply {
    pub fn encode(&self) -> String {
        let mut line = match self {
            Reply::Local => "LOCAL".to_string(),
            Reply::Remote => "REMOTE".to_string(),
            Reply::Unknown(text) => format!("UNKNOWN {}", one_line(text)),
            Reply::Defer(text) => format!("DEFER {}", one_line(text)),
            Reply::Error(text) => format!("ERROR {}", one_line(text)),
        };
        line.truncate(MAX_LINE - 1);
        while !line.is_char_boundary(line.len()) {
            line.pop();
        }
        line.push('\n');
        line
    }

    /// One line, without its LF.
    pub fn parse(line: &str) -> Result<Reply, String> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "LOCAL" => Ok(Reply::Local),
            "REMOTE" => Ok(Reply::Remote),
            "UNKNOWN" => Ok(Reply::Unknown(rest.to_string())),
            "DEFER" => Ok(Reply::Defer(rest.to_string())),
            "ERROR" => Ok(Reply::Error(rest.to_string())),
            _ => Err(format!("not a reply: {:?}", one_line(line))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        let request = Request::Lookup {
            address: "alice@example.test".into(),
        };
        let line = request.encode().unwrap();
        assert_eq!(line, "LOOKUP alice@example.test\n");
        assert_eq!(Request::parse(line.trim_end()), Ok(request));
        assert_eq!(
            Request::Lookup {
                address: "a b@x".into()
            }
            .encode(),
            None
        );
        assert!(Request::parse("LOOKUP a b").is_err());
        assert!(Request::parse("DROP TABLE").is_err());
        for reply in [
            Reply::Local,
            Reply::Remote,
            Reply::Unknown("5.1.1 user unknown".into()),
            Reply::Defer("4.3.5 bad map line".into()),
        ] {
            assert_eq!(Reply::parse(reply.encode().trim_end()), Ok(reply));
        }
        assert_eq!(Reply::Unknown("a\nb".into()).encode(), "UNKNOWN ab\n");
        assert!(Reply::parse("MAYBE").is_err());
        assert!(Reply::Error("x".repeat(5000)).encode().len() <= MAX_LINE);
    }
}
