//! Golden transcripts: each file in `golden/` is an IMAP session, client
//! lines in, server lines and effects out, run by postern-golden's runner
//! (whose header gives the format and the common letters). `# message:
//! text` lines (with `\n` escapes) are delivered into INBOX's `new/` in
//! order, dated 2023-11-14 22:13:2n UTC; `# folder: .Name` makes a
//! folder; `# config: tls=1 starttls=1 cleartext=1` sets the session.
//! The driver takes the login fred / secret, by any mechanism; anything
//! else is a bad password.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use postern_golden::Transcript;
use postern_imap::{Action, Config, LoginFailure, Session};
use postern_maildir::{FolderName, Maildir};

struct Driver {
    session: Session,
    dir: tempfile::TempDir,
}

fn config(transcript: &Transcript) -> Config {
    let mut config = Config::new("imap.test");
    config.challenge_seed = "1".into();
    config.cleartext_allowed = true;
    for (key, value) in postern_golden::config(transcript) {
        match key.as_str() {
            "tls" => config.tls = value == "1",
            "starttls" => config.starttls = value == "1",
            "cleartext" => config.cleartext_allowed = value == "1",
            _ => panic!("unknown config key {key}"),
        }
    }
    config
}

impl Driver {
    fn run(&mut self, out: &mut Vec<String>) {
        while let Some(action) = self.session.next_action() {
            match action {
                Action::Send(bytes) => {
                    // Whole lines, and never nothing (a login with SASL-IR
                    // once sent an empty answer first).
                    assert!(bytes.ends_with(b"\r\n"), "{bytes:?}");
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    for line in text.split_inclusive("\r\n") {
                        out.push(format!("S: {}", line.trim_end_matches("\r\n")));
                    }
                }
                Action::StartTls => {
                    out.push("T: starttls".into());
                    self.session.tls_started();
                }
                Action::Login(credentials) => {
                    let proof = match &credentials.proof {
                        postern_sasl::Proof::Password(p) => String::from_utf8_lossy(p).into_owned(),
                        other => format!("{other:?}"),
                    };
                    out.push(format!("L: {} {proof}", credentials.user));
                    if credentials.user == "fred" && proof == "secret" {
                        self.session.logged_in(self.dir.path().to_path_buf());
                    } else {
                        self.session.login_failed(LoginFailure::Credentials);
                    }
                }
                Action::Close => out.push("X: close".into()),
            }
        }
    }
}

impl postern_golden::Driver for Driver {
    fn start(transcript: &Transcript, out: &mut Vec<String>) -> Driver {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(dir.path()).unwrap();
        for (n, text) in postern_golden::directives(transcript, "message").enumerate() {
            let name = format!("{}.M{n}P1.test", 1_700_000_000 + n);
            let path = dir.path().join("new").join(name);
            std::fs::write(&path, postern_golden::unescape(text)).unwrap();
            let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(date)
                .unwrap();
        }
        for folder in postern_golden::directives(transcript, "folder") {
            maildir
                .create_folder(&FolderName::from_dir_name(folder).unwrap())
                .unwrap();
        }
        let mut session = Session::new(config(transcript));
        // UIDVALIDITY comes from the clock.
        session.set_clock(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_100_000));
        let mut driver = Driver { session, dir };
        driver.run(out);
        driver
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        self.session.receive(bytes);
        self.run(out);
    }
}

#[test]
fn golden_transcripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    postern_golden::check_directory::<Driver>(&dir, 9);
}
