#![no_main]
//! The SASL exchanges: the first byte picks the mechanism and whether the
//! first line is an initial response; the lines that follow are the
//! client's answers. Never a panic; credentials carry a user name.
use libfuzzer_sys::fuzz_target;
use postern_sasl::{Exchange, Mechanism, Next};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mechanism = [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5][usize::from(choice % 3)];
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split("\r\n");
    let initial = if choice & 0x80 != 0 { lines.next() } else { None };
    let (mut exchange, mut next) = Exchange::start(mechanism, initial, "<1.2@fuzz>");
    for line in lines {
        match next {
            Next::Challenge(_) => next = exchange.respond(line),
            Next::Done(credentials) => {
                assert!(!credentials.user.is_empty());
                return;
            }
            Next::Failed(_) => return,
        }
    }
});
