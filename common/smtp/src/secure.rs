//! STARTTLS (RFC 3207) and AUTH (RFC 4954) in the session: what the EHLO
//! reply offers, the switch to TLS with everything pipelined before it
//! thrown away, and the SASL exchange whose credentials the driver checks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use postern_sasl::{Exchange, Failure, Mechanism, Next};

use crate::Reply;
use crate::session::{Action, Session, State, Waiting};

impl Session {
    /// The EHLO keywords of STARTTLS and AUTH, as they stand now.
    pub(crate) fn security_keywords(&self) -> Vec<String> {
        let mut keywords = Vec::new();
        if self.config.starttls && !self.tls {
            keywords.push("STARTTLS".to_string());
        }
        let offered: Vec<&str> = self
            .offered_mechanisms()
            .into_iter()
            .map(Mechanism::name)
            .collect();
        if !offered.is_empty() {
            keywords.push(format!("AUTH {}", offered.join(" ")));
        }
        keywords
    }

    /// The mechanisms that may be used now: PLAIN and LOGIN only under TLS,
    /// unless the config allows them in the clear.
    fn offered_mechanisms(&self) -> Vec<Mechanism> {
        self.config
            .auth_mechanisms
            .iter()
            .copied()
            .filter(|m| !m.sends_password() || self.tls || self.config.plaintext_auth)
            .collect()
    }

    pub(crate) fn starttls(&mut self) {
        if self.tls {
            return self.error(Reply::new(503, "5.5.1", "Error: TLS already active"));
        }
        if !self.config.starttls {
            return self.error(Reply::new(502, "5.5.1", "Error: STARTTLS is not available"));
        }
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.transaction.is_some() {
            return self.error(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
        }
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        if let Some(send) = self.flush() {
            self.actions.push_back(send);
        }
        self.actions.push_back(Action::StartTls);
        // SECURITY: whatever the client sent after STARTTLS before the
        // handshake is dropped unread (the CVE-2011-0411 injection), and
        // the session starts over as before EHLO (RFC 3207 §4.2).
        self.input.clear();
        self.discarding = false;
        self.helo = None;
        self.transaction = None;
        self.authenticated = None;
        self.tls = true;
    }

    /// `AUTH mechanism [initial-response]`.
    pub(crate) fn auth(&mut self, arguments: &str) {
        if self.config.auth_mechanisms.is_empty() {
            return self.error(Reply::new(
                502,
                "5.5.1",
                "Error: authentication not enabled",
            ));
        }
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.authenticated.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Error: already authenticated"));
        }
        if self.transaction.is_some() {
            return self.error(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
        }
        let words: Vec<&str> = arguments
            .trim_end_matches(['\r', '\n'])
            .split(' ')
            .collect();
        let (name, initial) = match words[..] {
            [name] if !name.is_empty() => (name, None),
            [name, initial] if !name.is_empty() && !initial.is_empty() => (name, Some(initial)),
            _ => {
                return self.error(Reply::new(
                    501,
                    "5.5.4",
                    "Syntax: AUTH mechanism [initial-response]",
                ));
            }
        };
        let Some(mechanism) =
            Mechanism::parse(name).filter(|m| self.config.auth_mechanisms.contains(m))
        else {
            return self.error(Reply::new(
                504,
                "5.5.4",
                "Error: unsupported authentication mechanism",
            ));
        };
        if !self.offered_mechanisms().contains(&mechanism) {
            return self.error(Reply::new(
                538,
                "5.7.11",
                "Error: encryption required for requested authentication mechanism",
            ));
        }
        self.auth_attempts += 1;
        let challenge = format!(
            "<{}.{}@{}>",
            self.config.challenge_seed, self.auth_attempts, self.config.hostname
        );
        let (exchange, next) = Exchange::start(mechanism, initial, &challenge);
        self.auth_step(mechanism, exchange, next);
    }

    /// A line of the client inside an AUTH exchange.
    pub(crate) fn auth_response(&mut self, line: &[u8]) {
        let State::Auth(mechanism, mut exchange) =
            std::mem::replace(&mut self.state, State::Command)
        else {
            return;
        };
        let text = String::from_utf8_lossy(line);
        let next = exchange.respond(text.trim_end_matches(['\r', '\n']));
        self.auth_step(mechanism, exchange, next);
    }

    fn auth_step(&mut self, mechanism: Mechanism, exchange: Exchange, next: Next) {
        match next {
            Next::Challenge(bytes) => {
                self.reply(Reply::plain(334, vec![BASE64.encode(bytes)]));
                self.state = State::Auth(mechanism, exchange);
            }
            Next::Done(credentials) => {
                self.waiting = Some(Waiting::Credentials);
                self.actions.push_back(Action::CheckCredentials {
                    mechanism,
                    credentials,
                });
            }
            Next::Failed(Failure::Cancelled) => {
                self.error(Reply::new(501, "5.7.0", "Error: authentication aborted"))
            }
            Next::Failed(Failure::NotBase64) => {
                self.error(Reply::new(501, "5.5.2", "Error: cannot decode response"))
            }
            Next::Failed(Failure::Malformed(why)) => {
                self.error(Reply::new(501, "5.5.2", format!("Error: {why}")))
            }
        }
    }

    /// The answer to [`Action::CheckCredentials`]: the account's name, or
    /// the reply to give (535 5.7.8 bad credentials, 454 4.7.0 no answer).
    pub fn credentials_checked(&mut self, result: Result<String, Reply>) {
        if !matches!(self.waiting.take(), Some(Waiting::Credentials)) {
            return;
        }
        match result {
            Ok(user) => {
                self.authenticated = Some(user);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
            }
            Err(reply) => self.error(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Action, Config, Mechanism, Session};

    fn replies(session: &mut Session, input: &[u8]) -> String {
        session.receive(input);
        let mut text = String::new();
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
                Action::CheckCredentials { .. } => text.push_str("(check)\r\n"),
                _ => {}
            }
        }
        text
    }

    #[test]
    fn starttls_drops_an_injected_login_and_forgets_an_earlier_one() {
        let mut config = Config::new("mx.test");
        config.starttls = true;
        config.auth_mechanisms = vec![Mechanism::Plain, Mechanism::CramMd5];
        let mut session = Session::new(config);
        replies(&mut session, b"EHLO c\r\n");
        // A login in the clear (CRAM-MD5), accepted.
        assert!(replies(&mut session, b"AUTH CRAM-MD5\r\n").starts_with("334 "));
        assert_eq!(
            replies(
                &mut session,
                b"dGltIDM0NjcxNWY2ODgyNDUxZmIyNGEwNGNhOTIxZjczOTU2\r\n"
            ),
            "(check)\r\n"
        );
        session.credentials_checked(Ok("mallory".into()));
        assert_eq!(session.authenticated(), Some("mallory"));
        // STARTTLS with a whole login and transaction in the same read.
        let text = replies(
            &mut session,
            b"STARTTLS\r\nEHLO x\r\nAUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\nMAIL FROM:<a@b>\r\n",
        );
        assert_eq!(
            text,
            "235 2.7.0 Authentication successful\r\n220 2.0.0 Ready to start TLS\r\n"
        );
        assert_eq!(
            session.authenticated(),
            None,
            "the login before TLS counts no more"
        );
        // Over TLS the session starts again: nothing of the injection ran.
        let text = replies(&mut session, b"MAIL FROM:<a@b>\r\n");
        assert_eq!(text, "503 5.5.1 Error: send HELO/EHLO first\r\n");
    }

    fn authenticating() -> Session {
        let mut config = Config::new("mx.test");
        config.tls = true;
        config.auth_mechanisms = vec![Mechanism::Plain];
        let mut session = Session::new(config);
        replies(&mut session, b"EHLO c\r\n");
        session
    }

    #[test]
    fn responses_up_to_12288_octets_and_not_one_more() {
        let mut session = authenticating();
        assert_eq!(replies(&mut session, b"AUTH PLAIN\r\n"), "334 \r\n");
        let longest = "A".repeat(postern_sasl::MAX_RESPONSE);
        // Not base64 of a PLAIN response, but taken as a line and decoded.
        let text = replies(&mut session, format!("{longest}\r\n").as_bytes());
        assert!(text.starts_with("501 5.5.2 "), "{text}");
        assert_eq!(replies(&mut session, b"AUTH PLAIN\r\n"), "334 \r\n");
        let text = replies(&mut session, format!("{longest}A\r\n").as_bytes());
        assert_eq!(
            text,
            "500 5.5.6 Error: authentication exchange line is too long\r\n"
        );
        // The exchange is over: the next line is a command again.
        assert_eq!(replies(&mut session, b"NOOP\r\n"), "250 2.0.0 Ok\r\n");
        // The same bound for an initial response on the AUTH line.
        let text = replies(&mut session, format!("AUTH PLAIN {longest}\r\n").as_bytes());
        assert!(text.starts_with("501 5.5.2 "), "{text}");
        let text = replies(
            &mut session,
            format!("AUTH PLAIN {longest}AAAAAAAAAAAAAAAAAAAAAAA\r\n").as_bytes(),
        );
        assert!(text.starts_with("500 5.5.2 "), "{text}");
    }
}
