//! postern-auth's socket protocol (docs/AUTH.md): one request line, one
//! reply line, each at most `MAX_LINE` octets with its LF; a connection
//! may carry many requests in turn. Words are separated by single spaces;
//! what a client chose (a login name, a password, a challenge) travels in
//! base64, so no value can hold a space or a line end.
//!
//! ```text
//! LOOKUP alice@example.test                        LOCAL
//!                                                  UNKNOWN 5.1.1 user unknown
//!                                                  REMOTE
//!                                                  DEFER 4.3.5 bad map line at accounts for alice@example.test
//! PASS pop3 192.0.2.7 YWxpY2U= c2VjcmV0            OK YWxpY2U= 5000 5000 L3Zhci9tYWls
//! CRAM pop3 192.0.2.7 YWxpY2U= PDEuMkBoPg== 0f1e.. FAIL 5.7.8 bad credentials
//! APOP pop3 192.0.2.7 YWxpY2U= PDEuMkBoPg== 0f1e.. FAIL 4.7.0 too many failures
//! BLOCKED                                          BLOCK ip MTkyLjAuMi43 10 refused 1796000000
//!                                                  BLOCK account YWxpY2U= 4 delayed 1796000000
//!                                                  END 2
//! UNBLOCK MTkyLjAuMi43                             UNBLOCKED 1
//! ```
//!
//! `BLOCKED` is the one request answered by more than one line: a `BLOCK`
//! line per key of the failure throttle that delays or refuses logins now,
//! then `END` and their number. It and `UNBLOCK` are root's only.

pub mod client;

#[cfg(feature = "tokio")]
pub use client::AsyncClient;
pub use client::Client;

use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The longest line, LF included, either way.
pub const MAX_LINE: usize = 4096;

/// Who asks for a login: it decides what a success records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Smtp,
    Pop3,
    Imap,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Pop3 => "pop3",
            Service::Imap => "imap",
        }
    }

    fn parse(word: &str) -> Option<Service> {
        match word {
            "smtp" => Some(Service::Smtp),
            "pop3" => Some(Service::Pop3),
            "imap" => Some(Service::Imap),
            _ => None,
        }
    }
}

/// How a client proves it knows the password.
#[derive(Clone, PartialEq, Eq)]
pub enum Proof {
    /// The password itself (SASL PLAIN and LOGIN, USER/PASS, IMAP LOGIN).
    Password(Vec<u8>),
    /// RFC 2195: the challenge the caller issued, and the client's
    /// HMAC-MD5 of it, in lower-case hex.
    CramMd5 { challenge: String, digest: String },
    /// RFC 1939 §7: the greeting's timestamp, and the client's MD5 of it
    /// and the password, in lower-case hex.
    Apop { timestamp: String, digest: String },
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A password never reaches a log by accident.
        f.write_str(match self {
            Proof::Password(_) => "Password(***)",
            Proof::CramMd5 { .. } => "CramMd5",
            Proof::Apop { .. } => "Apop",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Whether mail for the address is taken here.
    Lookup { address: String },
    /// What the failure throttle delays or refuses now.
    Blocked,
    /// Forget the failures of an address or an account.
    Unblock { key: String },
    /// A login by `user` from `ip` for `service`.
    Login {
        service: Service,
        ip: IpAddr,
        user: String,
        proof: Proof,
    },
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
    /// The login is good.
    Ok(Login),
    /// The login is refused: answer with `status` (`5.7.8 ...` bad
    /// credentials, `4.7.0 ...` too many failures from this client).
    Fail { status: String },
    /// The throttle's blocks, for `BLOCKED`.
    Blocked(Vec<Block>),
    /// How many throttle keys `UNBLOCK` removed.
    Unblocked(usize),
}

/// A key of the failure throttle that delays or refuses logins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// `ip`, `ip+account` (an address of a local network, counted with
    /// the account: `IP ACCOUNT`) or `account`.
    pub kind: String,
    pub key: String,
    pub failures: usize,
    /// Refused outright, or only delayed.
    pub refused: bool,
    /// When it stops, unless more failures come (seconds since the epoch).
    pub until: u64,
}

impl Block {
    fn encode(&self) -> String {
        format!(
            "BLOCK {} {} {} {} {}\n",
            self.kind,
            BASE64.encode(&self.key),
            self.failures,
            if self.refused { "refused" } else { "delayed" },
            self.until
        )
    }

    /// A `BLOCK` line, without its LF.
    pub fn parse(line: &str) -> Option<Block> {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            [
                "BLOCK",
                kind,
                key,
                failures,
                state @ ("refused" | "delayed"),
                until,
            ] => Some(Block {
                kind: kind.to_string(),
                key: decode_text(key)?,
                failures: failures.parse().ok()?,
                refused: state == "refused",
                until: until.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// A good login: the account's name and, where it has one, its mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub mailbox: Option<Mailbox>,
}

/// Whose a mailbox is and where: what a POP3 or IMAP session becomes and
/// opens after the login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub uid: u32,
    pub gid: u32,
    pub maildir: PathBuf,
    /// POP3 shows every folder, not only INBOX (the account's option).
    pub all_folders: bool,
    /// POP3 leaves out invalid `Message-ID:` fields (the account's option).
    pub strip_message_id: bool,
}

fn clean(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_control() || c == ' ')
}

fn is_hex_digest(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode(word: &str) -> Option<Vec<u8>> {
    BASE64.decode(word).ok()
}

fn decode_text(word: &str) -> Option<String> {
    String::from_utf8(decode(word)?).ok()
}

impl Request {
    /// The request line, or `None` for a value that cannot travel.
    pub fn encode(&self) -> Option<String> {
        let line = match self {
            Request::Lookup { address } => {
                if !clean(address) {
                    return None;
                }
                format!("LOOKUP {address}\n")
            }
            Request::Blocked => "BLOCKED\n".to_string(),
            Request::Unblock { key } => format!("UNBLOCK {}\n", BASE64.encode(key)),
            Request::Login {
                service,
                ip,
                user,
                proof,
            } => {
                let head =
                    |verb: &str| format!("{verb} {} {ip} {}", service.name(), BASE64.encode(user));
                match proof {
                    Proof::Password(password) => {
                        format!("{} {}\n", head("PASS"), BASE64.encode(password))
                    }
                    Proof::CramMd5 { challenge, digest } if is_hex_digest(digest) => {
                        format!("{} {} {digest}\n", head("CRAM"), BASE64.encode(challenge))
                    }
                    Proof::Apop { timestamp, digest } if is_hex_digest(digest) => {
                        format!("{} {} {digest}\n", head("APOP"), BASE64.encode(timestamp))
                    }
                    _ => return None,
                }
            }
        };
        (line.len() <= MAX_LINE).then_some(line)
    }

    /// One line, without its LF.
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["LOOKUP", address] if clean(address) => Ok(Request::Lookup {
                address: address.to_string(),
            }),
            ["LOOKUP", ..] => Err("LOOKUP takes one address".to_string()),
            ["BLOCKED"] => Ok(Request::Blocked),
            ["UNBLOCK", key] => Ok(Request::Unblock {
                key: decode_text(key).filter(|k| clean(k)).ok_or("bad key")?,
            }),
            [
                verb @ ("PASS" | "CRAM" | "APOP"),
                service,
                ip,
                user,
                rest @ ..,
            ] => {
                let service = Service::parse(service).ok_or("unknown service")?;
                let ip: IpAddr = ip.parse().map_err(|_| "bad IP address")?;
                let user = decode_text(user)
                    .filter(|u| !u.is_empty() && !u.chars().any(char::is_control))
                    .ok_or("bad user")?;
                let proof = match (*verb, rest) {
                    ("PASS", [password]) => {
                        Proof::Password(decode(password).ok_or("bad password")?)
                    }
                    ("CRAM", [challenge, digest]) if is_hex_digest(digest) => Proof::CramMd5 {
                        challenge: decode_text(challenge).ok_or("bad challenge")?,
                        digest: digest.to_string(),
                    },
                    ("APOP", [timestamp, digest]) if is_hex_digest(digest) => Proof::Apop {
                        timestamp: decode_text(timestamp).ok_or("bad timestamp")?,
                        digest: digest.to_string(),
                    },
                    _ => return Err(format!("malformed {verb}")),
                };
                Ok(Request::Login {
                    service,
                    ip,
                    user,
                    proof,
                })
            }
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
            Reply::Ok(login) => match &login.mailbox {
                None => format!("OK {}", BASE64.encode(&login.user)),
                Some(mailbox) => format!(
                    "OK {} {} {} {}{}{}",
                    BASE64.encode(&login.user),
                    mailbox.uid,
                    mailbox.gid,
                    BASE64.encode(mailbox.maildir.as_os_str().as_bytes()),
                    if mailbox.all_folders {
                        " all-folders"
                    } else {
                        ""
                    },
                    if mailbox.strip_message_id {
                        " strip-message-id"
                    } else {
                        ""
                    }
                ),
            },
            Reply::Fail { status } => format!("FAIL {}", one_line(status)),
            Reply::Unblocked(n) => format!("UNBLOCKED {n}"),
            Reply::Blocked(blocks) => {
                let lines: Vec<String> = blocks
                    .iter()
                    .map(Block::encode)
                    .filter(|line| line.len() <= MAX_LINE)
                    .collect();
                // END counts the lines sent, not those too long to go.
                return format!("{}END {}\n", lines.concat(), lines.len());
            }
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
        let bad = || format!("not a reply: {:?}", one_line(line));
        match word {
            "LOCAL" => Ok(Reply::Local),
            "REMOTE" => Ok(Reply::Remote),
            "UNKNOWN" => Ok(Reply::Unknown(rest.to_string())),
            "DEFER" => Ok(Reply::Defer(rest.to_string())),
            "ERROR" => Ok(Reply::Error(rest.to_string())),
            "OK" => parse_login(rest).map(Reply::Ok).ok_or_else(bad),
            "FAIL" if !rest.is_empty() => Ok(Reply::Fail {
                status: rest.to_string(),
            }),
            "UNBLOCKED" => rest.parse().map(Reply::Unblocked).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

fn parse_login(text: &str) -> Option<Login> {
    let words: Vec<&str> = text.split(' ').collect();
    match words[..] {
        [user] => Some(Login {
            user: decode_text(user)?,
            mailbox: None,
        }),
        [user, uid, gid, maildir, ref options @ ..] => Some(Login {
            user: decode_text(user)?,
            mailbox: Some(Mailbox {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                maildir: PathBuf::from(std::ffi::OsStr::from_bytes(&decode(maildir)?)),
                all_folders: options.contains(&"all-folders"),
                strip_message_id: options.contains(&"strip-message-id"),
            }),
        }),
        _ => None,
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
            Reply::Ok(Login {
                user: "alice@example.test".into(),
                mailbox: None,
            }),
            Reply::Ok(Login {
                user: "bob".into(),
                mailbox: Some(Mailbox {
                    uid: 1001,
                    gid: 100,
                    maildir: "/home/bob/Mail dir".into(),
                    all_folders: true,
                    strip_message_id: true,
                }),
            }),
            Reply::Fail {
                status: "5.7.8 bad credentials".into(),
            },
        ] {
            assert_eq!(Reply::parse(reply.encode().trim_end()), Ok(reply));
        }
        assert_eq!(Reply::Unknown("a\nb".into()).encode(), "UNKNOWN ab\n");
        assert_eq!(
            Reply::parse(Reply::Unblocked(2).encode().trim_end()),
            Ok(Reply::Unblocked(2))
        );
        for request in [
            Request::Blocked,
            Request::Unblock {
                key: "alice@example.test".into(),
            },
        ] {
            assert_eq!(
                Request::parse(request.encode().unwrap().trim_end()),
                Ok(request)
            );
        }
        assert!(
            Request::parse("UNBLOCK YSBi").is_err(),
            "a space in the key"
        );
        assert!(Reply::parse("MAYBE").is_err());
        assert!(Reply::parse("FAIL").is_err());
        assert!(Reply::Error("x".repeat(5000)).encode().len() <= MAX_LINE);
    }

    #[test]
    fn the_blocked_listing_is_block_lines_then_end() {
        let block = Block {
            kind: "ip+account".into(),
            key: "127.0.0.1 alice@example.test".into(),
            failures: 10,
            refused: true,
            until: 1796000000,
        };
        let text = Reply::Blocked(vec![block.clone()]).encode();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(Block::parse(lines[0]), Some(block));
        assert_eq!(lines[1], "END 1");
        assert_eq!(Reply::Blocked(Vec::new()).encode(), "END 0\n");
        assert_eq!(Block::parse("BLOCK ip !! 1 refused 2"), None);
    }

    #[test]
    fn logins_carry_any_bytes_but_only_well_formed_digests() {
        let login = |proof| Request::Login {
            service: Service::Pop3,
            ip: "2001:db8::7".parse().unwrap(),
            user: "alice smith@example.test".into(),
            proof,
        };
        for proof in [
            Proof::Password(b"pass word\n\x00\xff".to_vec()),
            Proof::CramMd5 {
                challenge: "<1896.697170952@postoffice.example.net>".into(),
                digest: "b913a602c7eda7a495b4e6e7334d3890".into(),
            },
            Proof::Apop {
                timestamp: "<1896.697170952@dbc.mtview.ca.us>".into(),
                digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
            },
        ] {
            let request = login(proof);
            let line = request.encode().unwrap();
            assert!(!line.trim_end().contains('\n'));
            assert_eq!(Request::parse(line.trim_end()), Ok(request));
        }
        assert_eq!(
            login(Proof::Apop {
                timestamp: "<x>".into(),
                digest: "C4C9".into(),
            })
            .encode(),
            None
        );
        assert_eq!(
            login(Proof::Password(vec![b'x'; 4000])).encode(),
            None,
            "longer than a line"
        );
        assert!(Request::parse("PASS ftp 127.0.0.1 YQ== YQ==").is_err());
        assert!(Request::parse("PASS smtp 300.0.0.1 YQ== YQ==").is_err());
        assert!(Request::parse("PASS smtp 127.0.0.1 !!! YQ==").is_err());
        assert!(Request::parse("PASS smtp 127.0.0.1  YQ==").is_err());
        assert!(Request::parse("CRAM smtp 127.0.0.1 YQ== YQ== nothex").is_err());
        assert!(format!("{:?}", login(Proof::Password(b"hunter2".to_vec()))).contains("***"));
    }
}
