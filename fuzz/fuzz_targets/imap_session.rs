#![no_main]
//! The IMAP server session over a real Maildir: any bytes, cut into reads
//! where the first byte says, give CRLF-ended answers and well-formed
//! actions, never a panic, whatever the commands do to the folder (flags
//! renamed, keywords added). The first byte's high bits choose STARTTLS
//! and cleartext; a login as "fred" succeeds into the Maildir.
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use postern_imap::{Action, Config, LoginFailure, Session};

const MESSAGES: [&[u8]; 3] = [
    b"From: a@x.test\nSubject: one\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n\nbody one\n",
    b"From: \"B\" <b@x.test>\nTo: c@x.test, d@x.test\nSubject: =?utf-8?q?caf=C3=A9?=\n\
      MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\n\
      Content-Type: text/plain; charset*=utf-8''%C3%A9\n\nhi\n--b\n\
      Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b--\n",
    b"Subject: no body",
];

/// A fresh Maildir for each run, so a crash replays from its input alone.
fn maildir() -> tempfile::TempDir {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    let root = ROOT.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
    let dir = tempfile::tempdir_in(root.path()).expect("a temporary directory");
    for sub in ["cur", "new", "tmp", ".Sub/cur", ".Sub/new", ".Sub/tmp"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("a folder");
    }
    for (n, message) in MESSAGES.iter().enumerate() {
        let name = format!("new/170000000{n}.M{n}P1.fuzz");
        std::fs::write(dir.path().join(name), message).expect("a message");
    }
    dir
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let dir = maildir();
    let mut config = Config::new("imap.fuzz");
    config.starttls = cut & 0x40 != 0;
    config.cleartext_allowed = cut & 0x80 != 0;
    let mut session = Session::new(config);
    let step = usize::from(cut % 32) + 1;
    let mut logged_in = false;
    // Whether the session ended: nothing more is read.
    let mut drive = |session: &mut Session| -> bool {
        let mut closed = false;
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => assert!(
                    bytes.ends_with(b"\r\n"),
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                ),
                Action::StartTls => {
                    assert!(!logged_in);
                    session.tls_started();
                }
                Action::Login(credentials) => {
                    assert!(!logged_in);
                    if credentials.user == "fred" {
                        logged_in = true;
                        session.logged_in(dir.path().to_path_buf());
                    } else {
                        session.login_failed(LoginFailure::Credentials);
                    }
                }
                Action::Close => closed = true,
            }
        }
        closed
    };
    if drive(&mut session) {
        return;
    }
    for piece in input.chunks(step) {
        session.receive(piece);
        if drive(&mut session) {
            break;
        }
    }
});
