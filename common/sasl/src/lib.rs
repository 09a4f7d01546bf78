//! The server side of the SASL mechanisms Postern offers — PLAIN (RFC
//! 4616), LOGIN (draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195) — as
//! sans-I/O exchanges: the protocol core (SMTP AUTH, POP3 AUTH, IMAP
//! AUTHENTICATE) feeds the client's base64 lines in and sends the
//! challenges out, and gets the credentials to hand to postern-auth.
//! By hand: no crate offers a server side that leaves the check to
//! someone else.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
pub use postern_auth_protocol::Proof;

/// The longest response line a client may send (RFC 4954 §4: 12,288
/// octets), without its CRLF.
pub const MAX_RESPONSE: usize = 12_288;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            "CRAM-MD5" => Some(Mechanism::CramMd5),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
        }
    }

    /// Whether the password itself crosses the wire (so only under TLS,
    /// unless the admin allows otherwise).
    pub fn sends_password(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

/// What a client proved, for postern-auth to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub proof: Proof,
}

/// Why an exchange ended without credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client sent `*`.
    Cancelled,
    /// A response that is not base64.
    NotBase64,
    /// A response that decodes but does not read as the mechanism's.
    Malformed(&'static str),
}

/// The next step of an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this challenge (the caller base64-encodes it), then feed the
    /// client's answer to [`Exchange::respond`].
    Challenge(Vec<u8>),
    Done(Credentials),
    Failed(Failure),
}

enum Step {
    PlainResponse,
    LoginUser,
    LoginPassword { user: String },
    CramResponse { challenge: String },
    Over,
}

pub struct Exchange {
    step: Step,
}

impl Exchange {
    /// Starts `mechanism`, with the initial response of the command if the
    /// client sent one (`=` is an empty one, RFC 4954 §4). `challenge` is
    /// CRAM-MD5's, unique to this attempt (`<random.time@host>`).
    pub fn start(mechanism: Mechanism, initial: Option<&str>, challenge: &str) -> (Exchange, Next) {
        let mut exchange = Exchange { step: Step::Over };
        let next = match (mechanism, initial) {
            (Mechanism::Plain, None) => {
                exchange.step = Step::PlainResponse;
                Next::Challenge(Vec::new())
            }
            (Mechanism::Plain, Some(response)) => {
                exchange.step = Step::PlainResponse;
                exchange.respond(response)
            }
            (Mechanism::Login, None) => {
                exchange.step = Step::LoginUser;
                Next::Challenge(b"Username:".to_vec())
            }
            (Mechanism::Login, Some(response)) => {
                exchange.step = Step::LoginUser;
                exchange.respond(response)
            }
            (Mechanism::CramMd5, None) => {
                exchange.step = Step::CramResponse {
                    challenge: challenge.to_string(),
                };
                Next::Challenge(challenge.as_bytes().to_vec())
            }
            (Mechanism::CramMd5, Some(_)) => {
                Next::Failed(Failure::Malformed("CRAM-MD5 takes no initial response"))
            }
        };
        (exchange, next)
    }

    /// The client's answer to the last challenge, without its CRLF.
    pub fn respond(&mut self, line: &str) -> Next {
        let step = std::mem::replace(&mut self.step, Step::Over);
        if line == "*" {
            return Next::Failed(Failure::Cancelled);
        }
        let decoded = if line == "=" {
            Vec::new()
        } else {
            match BASE64.decode(line.trim_end()) {
                Ok(bytes) => bytes,
                Err(_) => return Next::Failed(Failure::NotBase64),
            }
        };
        match step {
            Step::PlainResponse => plain(&decoded),
            Step::LoginUser => match text(&decoded) {
                Some(user) => {
                    self.step = Step::LoginPassword { user };
                    Next::Challenge(b"Password:".to_vec())
                }
                None => Next::Failed(Failure::Malformed("a user name that does not read")),
            },
            Step::LoginPassword { user } if !decoded.is_empty() => Next::Done(Credentials {
                user,
                proof: Proof::Password(decoded),
            }),
            Step::LoginPassword { .. } => Next::Failed(Failure::Malformed("an empty password")),
            Step::CramResponse { challenge } => cram(&decoded, challenge),
            Step::Over => Next::Failed(Failure::Malformed("no exchange under way")),
        }
    }
}

/// A user name: UTF-8, not empty, without control characters.
fn text(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.is_empty() && !text.chars().any(char::is_control)).then(|| text.to_string())
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. Acting for another
/// identity is not offered: an authzid must name the authcid itself.
fn plain(decoded: &[u8]) -> Next {
    let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
    let [authzid, authcid, password] = parts[..] else {
        return Next::Failed(Failure::Malformed("not authzid NUL authcid NUL password"));
    };
    let Some(user) = text(authcid) else {
        return Next::Failed(Failure::Malformed("a user name that does not read"));
    };
    if !authzid.is_empty() && authzid != authcid {
        return Next::Failed(Failure::Malformed(
            "an authorization identity of another user",
        ));
    }
    if password.is_empty() {
        return Next::Failed(Failure::Malformed("an empty password"));
    }
    Next::Done(Credentials {
        user,
        proof: Proof::Password(password.to_vec()),
    })
}

/// RFC 2195: `user SP digest`, the digest 32 hex digits.
fn cram(decoded: &[u8], challenge: String) -> Next {
    let Some(response) = std::str::from_utf8(decoded).ok() else {
        return Next::Failed(Failure::Malformed("a response that does not read"));
    };
    let Some((user, digest)) = response.rsplit_once(' ') else {
        return Next::Failed(Failure::Malformed("not user SP digest"));
    };
    let digest = digest.to_ascii_lowercase();
    if digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Next::Failed(Failure::Malformed("a digest that is not 32 hex digits"));
    }
    match text(user.as_bytes()) {
        Some(user) => Next::Done(Credentials {
            user,
            proof: Proof::CramMd5 { challenge, digest },
        }),
        None => Next::Failed(Failure::Malformed("a user name that does not read")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &[u8]) -> String {
        BASE64.encode(text)
    }

    fn password(user: &str, password: &str) -> Next {
        Next::Done(Credentials {
            user: user.into(),
            proof: Proof::Password(password.as_bytes().to_vec()),
        })
    }

    #[test]
    fn plain_with_and_without_an_initial_response() {
        let response = b64(b"\0tim\0tanstaaftanstaaf");
        let (_, next) = Exchange::start(Mechanism::Plain, Some(&response), "");
        assert_eq!(next, password("tim", "tanstaaftanstaaf"));
        let (mut exchange, next) = Exchange::start(Mechanism::Plain, None, "");
        assert_eq!(next, Next::Challenge(Vec::new()));
        assert_eq!(
            exchange.respond(&b64(b"tim\0tim\0secret")),
            password("tim", "secret")
        );
        for (bad, why) in [
            (
                b64(b"ann\0tim\0secret"),
                Failure::Malformed("an authorization identity of another user"),
            ),
            (
                b64(b"\0tim"),
                Failure::Malformed("not authzid NUL authcid NUL password"),
            ),
            (b64(b"\0tim\0"), Failure::Malformed("an empty password")),
            (
                b64(b"\0\0secret"),
                Failure::Malformed("a user name that does not read"),
            ),
            ("!!!".to_string(), Failure::NotBase64),
            ("*".to_string(), Failure::Cancelled),
        ] {
            let (mut exchange, _) = Exchange::start(Mechanism::Plain, None, "");
            assert_eq!(exchange.respond(&bad), Next::Failed(why), "{bad}");
        }
        // An empty initial response (`=`) is asked again... as PLAIN's
        // single response it is malformed.
        let (_, next) = Exchange::start(Mechanism::Plain, Some("="), "");
        assert!(matches!(next, Next::Failed(Failure::Malformed(_))));
    }

    #[test]
    fn login_asks_for_the_user_then_the_password() {
        let (mut exchange, next) = Exchange::start(Mechanism::Login, None, "");
        assert_eq!(next, Next::Challenge(b"Username:".to_vec()));
        assert_eq!(
            exchange.respond(&b64(b"tim")),
            Next::Challenge(b"Password:".to_vec())
        );
        assert_eq!(
            exchange.respond(&b64(b"pass word")),
            password("tim", "pass word")
        );
        let (mut exchange, next) = Exchange::start(Mechanism::Login, Some(&b64(b"tim")), "");
        assert_eq!(next, Next::Challenge(b"Password:".to_vec()));
        assert_eq!(exchange.respond("*"), Next::Failed(Failure::Cancelled));
    }

    #[test]
    fn cram_md5_as_rfc_2195_shows_it() {
        let challenge = "<1896.697170952@postoffice.reston.mci.net>";
        let (mut exchange, next) = Exchange::start(Mechanism::CramMd5, None, challenge);
        assert_eq!(
            BASE64.encode(match next {
                Next::Challenge(bytes) => bytes,
                other => panic!("{other:?}"),
            }),
            "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
        );
        assert_eq!(
            exchange.respond("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"),
            Next::Done(Credentials {
                user: "tim".into(),
                proof: Proof::CramMd5 {
                    challenge: challenge.into(),
                    digest: "b913a602c7eda7a495b4e6e7334d3890".into(),
                },
            })
        );
        let (_, next) = Exchange::start(Mechanism::CramMd5, Some("dGlt"), challenge);
        assert!(matches!(next, Next::Failed(Failure::Malformed(_))));
        let (mut exchange, _) = Exchange::start(Mechanism::CramMd5, None, challenge);
        assert!(matches!(
            exchange.respond(&b64(b"tim nothex")),
            Next::Failed(Failure::Malformed(_))
        ));
    }
}
