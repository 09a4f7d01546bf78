#![no_main]
//! The password field of an accounts line: any text parses to a scheme,
//! never a panic. Only the cheap schemes are verified here: a fuzzed
//! bcrypt cost or argon2 memory size would only measure the fuzzer's
//! patience.
use libfuzzer_sys::fuzz_target;
use postern_password::{Crypt, Mechanism, StoredPassword};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let stored = StoredPassword::parse(&text);
    let _ = stored.scheme_name();
    let _ = stored.supports(Mechanism::CramMd5);
    match &stored {
        StoredPassword::Plain(_) | StoredPassword::CramMd5(_) | StoredPassword::Crypt(Crypt::Md5, _) => {
            let _ = stored.verify(b"password");
            if let Some(context) = stored.cram_md5_context() {
                let _ = context.hmac(b"<1.2@example.test>");
            }
        }
        _ => {}
    }
});
