#![no_main]
//! The SMTP server session: any bytes, cut into reads where the first
//! byte says, give whole CRLF-ended reply lines and well-ordered actions,
//! never a panic; a message's data is never more than was sent. The first
//! byte's high bits also choose STARTTLS, AUTH and whether logins succeed.
use libfuzzer_sys::fuzz_target;
use postern_smtp::{Action, Config, Mechanism, Reply, Session};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let mut config = Config::new("mx.fuzz");
    config.max_message_size = 1 << 16;
    config.max_recipients = 3;
    config.starttls = cut & 0x40 != 0;
    config.plaintext_auth = cut & 0x80 != 0;
    config.auth_required = cut & 0x20 != 0;
    config.auth_mechanisms = vec![Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5];
    let mut session = Session::new(config);
    let mut tls = false;
    let step = usize::from(cut % 64) + 1;
    let mut in_message = false;
    let mut stored = 0usize;
    let mut drive = |session: &mut Session| {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    assert!(bytes.ends_with(b"\r\n"));
                    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        assert!(line.len() >= 4 && line.ends_with(b"\r"));
                        assert!(line[..3].iter().all(u8::is_ascii_digit));
                    }
                }
                Action::CheckRecipient(rcpt) => {
                    let verdict = if rcpt.address.len() % 2 == 0 {
                        Ok(())
                    } else {
                        Err(Reply::new(550, "5.1.1", "no"))
                    };
                    session.recipient_checked(verdict);
                }
                Action::Begin(envelope) => {
                    assert!(!in_message);
                    assert!(!envelope.recipients.is_empty());
                    in_message = true;
                    stored = 0;
                }
                Action::Data(bytes) => {
                    assert!(in_message);
                    stored += bytes.len();
                }
                Action::End => {
                    assert!(in_message);
                    in_message = false;
                    session.message_stored(Ok("ID".into()));
                }
                Action::Abort => {
                    assert!(in_message);
                    in_message = false;
                }
                Action::Close => {}
                Action::StartTls => {
                    assert!(!tls, "STARTTLS twice");
                    tls = true;
                }
                Action::CheckCredentials { credentials, .. } => {
                    assert!(!credentials.user.is_empty());
                    let verdict = if credentials.user.len() % 2 == 0 {
                        Ok(credentials.user)
                    } else {
                        Err(Reply::new(535, "5.7.8", "no"))
                    };
                    session.credentials_checked(verdict);
                }
            }
        }
    };
    drive(&mut session);
    for piece in input.chunks(step) {
        session.receive(piece);
        drive(&mut session);
    }
    assert!(stored <= input.len());
});
