#![no_main]
//! The POP3 server session: any bytes, cut into reads where the first
//! byte says, give whole CRLF-ended lines and well-formed actions, never a
//! panic; the first byte's high bits choose STLS, cleartext and whether
//! logins succeed.
use libfuzzer_sys::fuzz_target;
use postern_pop3::{Action, Config, Listing, LoginFailure, Session};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let mut config = Config::new("pop.fuzz");
    config.stls = cut & 0x40 != 0;
    config.cleartext_allowed = cut & 0x80 != 0;
    let mut session = Session::new(config);
    let step = usize::from(cut % 32) + 1;
    let messages = 3;
    let mut logged_in = false;
    let mut proxied = false;
    let mut handed_over = false;
    let mut drive = |session: &mut Session| {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    assert!(bytes.ends_with(b"\r\n"));
                    if proxied {
                        // The other server's answer, and then nothing.
                        assert!(!handed_over && bytes.ends_with(b"+OK there\r\n"));
                        handed_over = true;
                    }
                }
                Action::StartTls => assert!(!logged_in),
                Action::Login { credentials, .. } => {
                    assert!(!logged_in);
                    if credentials.user.contains('#') {
                        // A proxied login: the session hands over and
                        // says nothing more.
                        if credentials.user.len() % 2 == 0 {
                            session.login_failed(LoginFailure::Denied("no".into()));
                        } else {
                            let _ = session.proxied(b"+OK there\r\n");
                            proxied = true;
                        }
                    } else if credentials.user.len() % 3 == 0 {
                        session.login_failed(LoginFailure::InUse);
                    } else if credentials.user.len() % 2 == 0 {
                        logged_in = true;
                        let mut listing = Listing::default();
                        for i in 0..messages {
                            listing.push(i as u64 * 10, &format!("u{i}"));
                        }
                        session.logged_in(listing);
                    } else {
                        session.login_failed(LoginFailure::Credentials);
                    }
                }
                Action::Retrieve { index, .. } => {
                    assert!(logged_in && index < messages);
                    session.receive(b"");
                }
                Action::Update { delete } => {
                    assert!(logged_in && delete.iter().all(|&i| i < messages));
                    session.updated(Ok(()));
                }
                Action::Close => {}
            }
        }
    };
    drive(&mut session);
    for piece in input.chunks(step) {
        session.receive(piece);
        drive(&mut session);
    }
});
