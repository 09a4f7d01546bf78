#![no_main]
//! The SMTP client session against any server bytes, cut into reads where
//! the first byte says: whole CRLF-ended commands, one result per
//! recipient for every transaction begun, at most one close, never a
//! panic; the first byte's high bits choose the TLS policy.
use libfuzzer_sys::fuzz_target;
use postern_smtp_client::{Action, Config, DataEncoder, Login, Message, Recipient, Session, Tls};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let tls = match cut >> 6 {
        0 => Tls::Never,
        1 | 2 => Tls::Opportunistic,
        _ => Tls::Required,
    };
    let login = (cut & 4 != 0).then(|| Login {
        user: "user@client.fuzz".into(),
        password: "secret".into(),
    });
    let mut session = Session::new(Config {
        helo_name: "client.fuzz".into(),
        tls,
        login,
    });
    let step = usize::from(cut % 32) + 1;
    let message = Message {
        sender: "a@client.fuzz".into(),
        recipients: (0..3)
            .map(|i| Recipient {
                address: format!("r{i}@server.fuzz"),
                notify: Some("SUCCESS,FAILURE".into()),
                orcpt: None,
            })
            .collect(),
        size: 100,
        eight_bit: cut & 1 != 0,
        downgradable: cut & 2 != 0,
        ..Message::default()
    };
    let mut sent = 0;
    let mut finished = 0;
    let mut closed = false;
    let mut drive = |session: &mut Session| {
        while let Some(action) = session.next_action() {
            assert!(!closed, "an action after the close");
            match action {
                Action::Send(bytes) => assert!(bytes.ends_with(b"\r\n")),
                Action::StartTls => session.tls_ready(),
                Action::Ready if sent < 3 => {
                    sent += 1;
                    session.send(message.clone());
                }
                Action::Ready => session.quit(),
                Action::SendBody { .. } => {
                    let mut out = Vec::new();
                    let mut encoder = DataEncoder::new();
                    encoder.feed(b"Subject: x\n\n.body\n", &mut out);
                    encoder.finish(&mut out);
                    session.body_sent();
                }
                Action::Finished(results) => {
                    finished += 1;
                    assert_eq!(results.len(), 3);
                }
                Action::Closed(_) => closed = true,
            }
        }
    };
    drive(&mut session);
    for piece in input.chunks(step) {
        session.receive(piece);
        drive(&mut session);
    }
    session.connection_lost();
    drive(&mut session);
    assert!(finished <= sent && sent - finished <= 1);
});
